//! Lookups the guard makes in moto (IAM, SSM, Secrets Manager, KMS) with the
//! static admin credentials moto accepts, to learn what real AWS would know:
//! OIDC providers, trust and identity policies, real resource ARNs and keys.

use std::collections::BTreeMap;

use crate::policy::{PolicyDocument, PolicyError};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_iam::config::{Credentials, SharedCredentialsProvider};
use aws_sdk_iam::error::{DisplayErrorContext, ProvideErrorMetadata};
use percent_encoding::percent_decode_str;

/// A failed lookup in moto; the guard answers it with a 500 naming the lookup.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// GetOpenIDConnectProvider failed (other than "no such provider").
    #[error("looking up IAM OIDC provider {arn} in moto failed: {message}; is moto running at the guard's upstream?")]
    OidcProvider {
        /// Provider ARN.
        arn: String,
        /// SDK error text.
        message: String,
    },
    /// GetRole failed (other than "no such role").
    #[error("looking up IAM role {role} in moto failed: {message}")]
    Role {
        /// Role name.
        role: String,
        /// SDK error text.
        message: String,
    },
    /// Listing or reading the role's inline or attached policies failed.
    #[error("reading the policies of IAM role {role} from moto failed: {message}")]
    RolePolicies {
        /// Role name.
        role: String,
        /// SDK error text.
        message: String,
    },
    /// A policy document stored in IAM does not parse.
    #[error("policy {name} of IAM role {role} cannot be evaluated: {source}")]
    PolicyDocument {
        /// Role name.
        role: String,
        /// Policy name or ARN.
        name: String,
        /// Parse failure.
        source: PolicyError,
    },
    /// DescribeParameters failed.
    #[error("describing SSM parameter {name} in moto failed: {message}")]
    Parameter {
        /// Parameter name.
        name: String,
        /// SDK error text.
        message: String,
    },
    /// DescribeSecret failed (other than "not found").
    #[error("describing secret {id} in moto failed: {message}")]
    Secret {
        /// Secret id as given.
        id: String,
        /// SDK error text.
        message: String,
    },
}

/// An IAM OIDC provider as registered in moto.
#[derive(Debug, Clone)]
pub struct OidcProvider {
    /// Its ARN.
    pub arn: String,
    /// Its client id list (accepted audiences).
    pub client_ids: Vec<String>,
}

/// What the guard needs to know about a secret.
#[derive(Debug, Clone)]
pub struct SecretInfo {
    /// Full ARN, with the 6-character suffix.
    pub arn: String,
    /// The customer KMS key, if the secret has one.
    pub kms_key_id: Option<String>,
}

/// Clients for moto, signed with the static admin credentials.
#[derive(Clone, Debug)]
pub struct Backend {
    base: SdkConfig,
    /// Serializes client-id changes, which replace the provider in moto (read, delete, create).
    oidc_writes: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// Why a client-id change was not made.
#[derive(Debug)]
pub enum ClientIdChangeError {
    /// IAM has no provider with that ARN.
    NoSuchProvider,
    /// The change would pass IAM's quota of client ids per provider.
    TooMany,
    /// moto failed.
    Moto(String),
}

/// IAM's quota of client ids (audiences) per OIDC provider.
pub const MAX_CLIENT_IDS: usize = 100;

fn decode_policy(raw: &str) -> String {
    // IAM returns policy documents URL-encoded; the SDK hands them over as-is.
    if raw.trim_start().starts_with('{') {
        raw.to_string()
    } else {
        percent_decode_str(raw).decode_utf8_lossy().into_owned()
    }
}

fn text<E: std::error::Error>(err: E) -> String {
    DisplayErrorContext(err).to_string()
}

/// The name part of a role ARN (`arn:aws:iam::1:role/path/NAME` -> `NAME`).
pub fn role_name(role_arn: &str) -> &str {
    role_arn.rsplit('/').next().unwrap_or(role_arn)
}

impl Backend {
    /// Clients for moto at `endpoint`, with the given static credentials.
    pub fn new(endpoint: &str, access_key: &str, secret_key: &str) -> Self {
        let creds = Credentials::new(access_key, secret_key, None, None, "aws-guard-backend");
        let base = SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(SharedCredentialsProvider::new(creds))
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            .build();
        Backend { base, oidc_writes: Default::default() }
    }

    /// Adds or removes a client id of an OIDC provider, keeping its URL, thumbprints and tags
    /// (`AddClientIDToOpenIDConnectProvider` / `RemoveClientIDFromOpenIDConnectProvider`, which
    /// moto 5.2.5 lacks). moto has no call that edits the list, so the provider is re-created in
    /// moto with the new list under the same ARN; every later read (GetOpenIDConnectProvider
    /// through the guard or straight at moto, and the guard's own audience check) sees it.
    /// Both calls are idempotent, as in IAM: adding a present id or removing an absent one
    /// changes nothing.
    pub async fn change_oidc_client_ids(&self, arn: &str, client_id: &str, add: bool) -> Result<(), ClientIdChangeError> {
        let _serialized = self.oidc_writes.lock().await;
        let iam = self.iam();
        let current = match iam.get_open_id_connect_provider().open_id_connect_provider_arn(arn).send().await {
            Ok(out) => out,
            Err(err) if err.code() == Some("NoSuchEntity") => return Err(ClientIdChangeError::NoSuchProvider),
            Err(err) => return Err(ClientIdChangeError::Moto(text(err))),
        };
        let mut client_ids = current.client_id_list().to_vec();
        let present = client_ids.iter().any(|id| id == client_id);
        match (add, present) {
            (true, true) | (false, false) => return Ok(()),
            (true, false) if client_ids.len() >= MAX_CLIENT_IDS => return Err(ClientIdChangeError::TooMany),
            (true, false) => client_ids.push(client_id.to_string()),
            (false, true) => client_ids.retain(|id| id != client_id),
        }
        let url = current.url().unwrap_or_default();
        let url = if url.starts_with("https://") { url.to_string() } else { format!("https://{url}") };
        iam.delete_open_id_connect_provider()
            .open_id_connect_provider_arn(arn)
            .send()
            .await
            .map_err(|err| ClientIdChangeError::Moto(text(err)))?;
        iam.create_open_id_connect_provider()
            .url(url)
            .set_client_id_list(Some(client_ids))
            .set_thumbprint_list(Some(current.thumbprint_list().to_vec()))
            .set_tags((!current.tags().is_empty()).then(|| current.tags().to_vec()))
            .send()
            .await
            .map_err(|err| ClientIdChangeError::Moto(text(err)))?;
        Ok(())
    }

    fn iam(&self) -> aws_sdk_iam::Client {
        aws_sdk_iam::Client::new(&self.base)
    }

    fn ssm(&self, region: &str) -> aws_sdk_ssm::Client {
        let conf = aws_sdk_ssm::config::Builder::from(&self.base).region(Region::new(region.to_string())).build();
        aws_sdk_ssm::Client::from_conf(conf)
    }

    fn secrets(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        let conf = aws_sdk_secretsmanager::config::Builder::from(&self.base)
            .region(Region::new(region.to_string()))
            .build();
        aws_sdk_secretsmanager::Client::from_conf(conf)
    }

    fn kms(&self, region: &str) -> aws_sdk_kms::Client {
        let conf = aws_sdk_kms::config::Builder::from(&self.base).region(Region::new(region.to_string())).build();
        aws_sdk_kms::Client::from_conf(conf)
    }

    /// The OIDC provider with this ARN, or `None` when IAM has none.
    pub async fn oidc_provider(&self, arn: &str) -> Result<Option<OidcProvider>, LookupError> {
        match self.iam().get_open_id_connect_provider().open_id_connect_provider_arn(arn).send().await {
            Ok(out) => Ok(Some(OidcProvider { arn: arn.to_string(), client_ids: out.client_id_list().to_vec() })),
            Err(err) if err.code() == Some("NoSuchEntity") => Ok(None),
            Err(err) => Err(LookupError::OidcProvider { arn: arn.to_string(), message: text(err) }),
        }
    }

    /// The role's trust policy, or `None` when the role does not exist.
    pub async fn trust_policy(&self, role: &str) -> Result<Option<PolicyDocument>, LookupError> {
        let out = match self.iam().get_role().role_name(role).send().await {
            Ok(out) => out,
            Err(err) if err.code() == Some("NoSuchEntity") => return Ok(None),
            Err(err) => return Err(LookupError::Role { role: role.to_string(), message: text(err) }),
        };
        let raw = out.role().and_then(|r| r.assume_role_policy_document()).unwrap_or("{\"Statement\":[]}");
        PolicyDocument::parse(&decode_policy(raw))
            .map(Some)
            .map_err(|source| LookupError::PolicyDocument { role: role.into(), name: "trust policy".into(), source })
    }

    /// All identity policies of the role: inline ones and the default versions of attached ones.
    pub async fn identity_policies(&self, role: &str) -> Result<Vec<PolicyDocument>, LookupError> {
        let iam = self.iam();
        let fail = |err: String| LookupError::RolePolicies { role: role.to_string(), message: err };
        let parse = |name: &str, raw: &str| {
            PolicyDocument::parse(&decode_policy(raw)).map_err(|source| LookupError::PolicyDocument {
                role: role.to_string(),
                name: name.to_string(),
                source,
            })
        };
        let mut docs = Vec::new();
        let mut marker = None;
        loop {
            let out = iam.list_role_policies().role_name(role).set_marker(marker).send().await.map_err(|e| fail(text(e)))?;
            for name in out.policy_names() {
                let p = iam.get_role_policy().role_name(role).policy_name(name).send().await.map_err(|e| fail(text(e)))?;
                docs.push(parse(name, p.policy_document())?);
            }
            marker = out.marker().map(str::to_string);
            if !out.is_truncated() || marker.is_none() {
                break;
            }
        }
        let mut marker = None;
        loop {
            let out = iam
                .list_attached_role_policies()
                .role_name(role)
                .set_marker(marker)
                .send()
                .await
                .map_err(|e| fail(text(e)))?;
            for attached in out.attached_policies() {
                let Some(arn) = attached.policy_arn() else { continue };
                let policy = iam.get_policy().policy_arn(arn).send().await.map_err(|e| fail(text(e)))?;
                let Some(version) = policy.policy().and_then(|p| p.default_version_id()) else { continue };
                let v = iam
                    .get_policy_version()
                    .policy_arn(arn)
                    .version_id(version)
                    .send()
                    .await
                    .map_err(|e| fail(text(e)))?;
                if let Some(doc) = v.policy_version().and_then(|v| v.document()) {
                    docs.push(parse(arn, doc)?);
                }
            }
            marker = out.marker().map(str::to_string);
            if !out.is_truncated() || marker.is_none() {
                break;
            }
        }
        Ok(docs)
    }

    /// The KMS key id of each named SecureString parameter (`None` for other
    /// types and for missing parameters), from one DescribeParameters call
    /// with a multi-value `Name Equals` filter: moto scans every stored
    /// parameter per call, so one call per name made a GetParameters of 10
    /// names cost ten scans.
    pub async fn parameter_keys(&self, region: &str, names: &[String]) -> Result<BTreeMap<String, Option<String>>, LookupError> {
        let mut keys: BTreeMap<String, Option<String>> = names.iter().map(|n| (n.clone(), None)).collect();
        if keys.is_empty() {
            return Ok(keys);
        }
        let error = |message: String| LookupError::Parameter { name: names.join(", "), message };
        let filter = aws_sdk_ssm::types::ParameterStringFilter::builder()
            .key("Name")
            .option("Equals")
            .set_values(Some(keys.keys().cloned().collect()))
            .build()
            .map_err(|e| error(text(e)))?;
        let mut token = None;
        loop {
            let out = self
                .ssm(region)
                .describe_parameters()
                .parameter_filters(filter.clone())
                .max_results(50)
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| error(text(e)))?;
            for p in out.parameters() {
                if let Some(slot) = p.name().and_then(|name| keys.get_mut(name)) {
                    let secure = p.r#type() == Some(&aws_sdk_ssm::types::ParameterType::SecureString);
                    *slot = secure.then(|| p.key_id().unwrap_or("alias/aws/ssm").to_string());
                }
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }

    /// The secret's real ARN and key, or `None` when it does not exist.
    pub async fn secret(&self, region: &str, id: &str) -> Result<Option<SecretInfo>, LookupError> {
        match self.secrets(region).describe_secret().secret_id(id).send().await {
            Ok(out) => Ok(out.arn().map(|arn| SecretInfo {
                arn: arn.to_string(),
                kms_key_id: out.kms_key_id().map(str::to_string),
            })),
            Err(err) if err.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(err) => Err(LookupError::Secret { id: id.to_string(), message: text(err) }),
        }
    }

    /// The ARN of a customer-managed KMS key, or `None` for AWS-managed keys
    /// (which need no `kms:Decrypt` grant in the caller's policy).
    pub async fn customer_key_arn(&self, region: &str, account: &str, key_id: &str) -> Option<String> {
        if key_id.starts_with("alias/aws/") || key_id.contains(":alias/aws/") {
            return None;
        }
        match self.kms(region).describe_key().key_id(key_id).send().await {
            Ok(out) => {
                let meta = out.key_metadata()?;
                if meta.key_manager() == Some(&aws_sdk_kms::types::KeyManagerType::Aws) {
                    return None;
                }
                meta.arn().map(str::to_string)
            }
            // An unknown key still needs a grant: name it as real KMS would.
            Err(_) if key_id.starts_with("arn:") => Some(key_id.to_string()),
            Err(_) => Some(format!("arn:aws:kms:{region}:{account}:key/{key_id}")),
        }
    }
}
