//! The GCE/GKE metadata server's service-account endpoints, which Application
//! Default Credentials read on a VM or a GKE node:
//! `GET /computeMetadata/v1/instance/service-accounts/{default|EMAIL}/token`
//! and `.../email`. As on GCP, a request without `Metadata-Flavor: Google` is
//! refused with 403, an instance without a service account answers 404, and
//! errors are plain text, not Google's JSON shape.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde_json::json;

use crate::Shared;
use crate::auth::Principal;
use crate::http::{Call, json_response};

const FLAVOR: HeaderName = HeaderName::from_static("metadata-flavor");

/// Every answer carries `Metadata-Flavor: Google`, which clients use to tell
/// the metadata server from something else listening on that address.
fn flavored(mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    response.headers_mut().insert(FLAVOR, HeaderValue::from_static("Google"));
    response
}

fn text(code: u16, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    flavored(response)
}

/// Why the metadata server gives no account: the status and its text.
struct Refusal {
    code: u16,
    message: String,
}

impl Refusal {
    fn into_response(self) -> Response<Full<Bytes>> {
        text(self.code, self.message)
    }
}

/// The attached service account's email, if the request may have it.
fn attached_account(shared: &Shared, call: &Call, account: &str) -> Result<String, Refusal> {
    if call.metadata_flavor.as_deref() != Some("Google") {
        return Err(Refusal { code: 403, message: "Missing Metadata-Flavor:Google header.\n".to_owned() });
    }
    let attached = shared.lock().metadata_service_account.clone();
    match attached {
        Some(email) if account == "default" || account == email => Ok(email),
        _ => Err(Refusal { code: 404, message: format!("Service account {account} is not attached to this instance.\n") }),
    }
}

/// `GET .../service-accounts/ACCOUNT/token`: an access token acting as the
/// attached service account, `{"access_token", "expires_in", "token_type"}`.
pub(crate) fn token(shared: &Shared, call: &Call, account: &str) -> Response<Full<Bytes>> {
    let email = match attached_account(shared, call, account) {
        Ok(email) => email,
        Err(refusal) => return refusal.into_response(),
    };
    let lifetime = shared.options.token_lifetime_secs;
    let token = crate::tokens::mint(shared, Principal::ServiceAccount { email }, lifetime);
    flavored(json_response(200, &json!({"access_token": token, "expires_in": lifetime, "token_type": "Bearer"})))
}

/// `GET .../service-accounts/ACCOUNT/email`: the attached account's email, as text.
pub(crate) fn email(shared: &Shared, call: &Call, account: &str) -> Response<Full<Bytes>> {
    match attached_account(shared, call, account) {
        Ok(email) => text(200, email),
        Err(refusal) => refusal.into_response(),
    }
}
