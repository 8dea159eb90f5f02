//! A small JSON-over-HTTPS client for the GCP REST APIs (Secret Manager,
//! securetoken, IAM Credentials, the metadata server). Plain REST keeps the
//! controller's build light: the calls are four documented JSON endpoints,
//! and the official crates would add a second HTTP and auth stack for them.

use super::{CallError, CallErrorKind};
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::time::Duration;

/// Upper bound of one HTTP exchange.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// An HTTP(S) client for JSON APIs; `http://` is allowed for loopback stand-ins.
#[derive(Clone)]
pub struct JsonClient {
    client: Client<Connector, Full<Bytes>>,
}

impl JsonClient {
    /// A client trusting the system's root certificates.
    pub fn new() -> Result<Self, CallError> {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_native_roots()
            .map_err(|e| CallError::new(CallErrorKind::Network, format!("loading the system's root certificates failed: {e}")))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(JsonClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
        })
    }

    /// Sends a request with an optional bearer token and JSON body; returns
    /// the JSON answer of a 2xx, or a classified error.
    pub async fn send(&self, method: Method, url: &str, bearer: Option<&str>, body: Option<&Value>) -> Result<Value, CallError> {
        self.send_with_headers(method, url, bearer, &[], body).await
    }

    /// [`JsonClient::send`] with extra request headers, such as the
    /// metadata server's `Metadata-Flavor: Google`.
    pub async fn send_with_headers(
        &self,
        method: Method,
        url: &str,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, CallError> {
        let mut builder = Request::builder().method(method).uri(url).header("accept", "application/json");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        if let Some(token) = bearer {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let payload = match body {
            Some(json) => {
                builder = builder.header("content-type", "application/json");
                Bytes::from(json.to_string())
            }
            None => Bytes::new(),
        };
        let request = builder
            .body(Full::new(payload))
            .map_err(|e| CallError::new(CallErrorKind::InvalidRequest, format!("building the request to {url} failed: {e}")))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| CallError::new(CallErrorKind::Network, format!("{url}: {e}")))?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| CallError::new(CallErrorKind::Network, format!("{url}: reading the answer failed: {e}")))?
                .to_bytes();
            Ok::<_, CallError>((status, bytes))
        };
        let (status, bytes) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| CallError::new(CallErrorKind::Network, format!("{url}: no answer within {REQUEST_TIMEOUT:?}")))??;
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            return Ok(json);
        }
        Err(CallError::new(kind_of_status(status), error_message(status, &json, &bytes)))
    }
}

/// Maps an HTTP status to a call error kind (Google and OAuth conventions).
pub fn kind_of_status(status: u16) -> CallErrorKind {
    match status {
        404 => CallErrorKind::NotFound,
        401 | 403 => CallErrorKind::AccessDenied,
        429 => CallErrorKind::Throttled,
        500..=599 => CallErrorKind::Unavailable,
        _ => CallErrorKind::InvalidRequest,
    }
}

/// Longest plain-text error body quoted in a message.
const QUOTED_BODY_LIMIT: usize = 200;

/// The message of a Google error (`{"error": {"status", "message"}}`), an
/// OAuth error (`{"error", "error_description"}`) or a plain-text one (the
/// metadata server's), quoting at most [`QUOTED_BODY_LIMIT`] characters.
fn error_message(status: u16, json: &Value, body: &[u8]) -> String {
    let error = &json["error"];
    if let Some(message) = error["message"].as_str() {
        return format!("HTTP {status} {}: {message}", error["status"].as_str().unwrap_or_default());
    }
    if let Some(code) = error.as_str() {
        return format!("HTTP {status} {code}: {}", json["error_description"].as_str().unwrap_or_default());
    }
    let text: String = String::from_utf8_lossy(body).split_whitespace().collect::<Vec<_>>().join(" ");
    if json.is_null() && !text.is_empty() {
        return format!("HTTP {status}: {}", text.chars().take(QUOTED_BODY_LIMIT).collect::<String>());
    }
    format!("HTTP {status}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(kind_of_status(404), CallErrorKind::NotFound);
        assert_eq!(kind_of_status(403), CallErrorKind::AccessDenied);
        assert_eq!(kind_of_status(429), CallErrorKind::Throttled);
        assert_eq!(kind_of_status(503), CallErrorKind::Unavailable);
        assert_eq!(kind_of_status(400), CallErrorKind::InvalidRequest);
        let google = serde_json::json!({"error": {"code": 403, "status": "PERMISSION_DENIED", "message": "denied"}});
        assert_eq!(error_message(403, &google, b""), "HTTP 403 PERMISSION_DENIED: denied");
        let oauth = serde_json::json!({"error": "invalid_grant", "error_description": "bad token"});
        assert_eq!(error_message(400, &oauth, b""), "HTTP 400 invalid_grant: bad token");
        let text = b"Missing Metadata-Flavor:Google header.\n";
        assert_eq!(error_message(403, &Value::Null, text), "HTTP 403: Missing Metadata-Flavor:Google header.");
        assert_eq!(error_message(502, &Value::Null, b""), "HTTP 502");
        assert_eq!(error_message(500, &Value::Null, "x".repeat(1000).as_bytes()).len(), "HTTP 500: ".len() + QUOTED_BODY_LIMIT);
    }
}
