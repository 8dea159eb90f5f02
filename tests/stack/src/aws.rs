//! AWS seeding as moto's administrator: the OIDC provider for the stand-in's
//! issuer, IRSA roles with least-privilege inline policies, SSM parameters and
//! Secrets Manager secrets.

use crate::{AWS_ACCOUNT, AWS_AUDIENCE, Stack, StackError};
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use serde_json::{Value, json};

impl Stack {
    /// An IAM client straight at moto.
    pub fn iam_admin(&self) -> Result<aws_sdk_iam::Client, StackError> {
        Ok(aws_sdk_iam::Client::new(&self.aws_parts()?.admin))
    }

    /// An SSM client straight at moto (admin; nothing is checked).
    pub fn ssm_admin(&self) -> Result<aws_sdk_ssm::Client, StackError> {
        Ok(aws_sdk_ssm::Client::new(&self.aws_parts()?.admin))
    }

    /// A Secrets Manager client straight at moto (admin).
    pub fn secrets_admin(&self) -> Result<aws_sdk_secretsmanager::Client, StackError> {
        Ok(aws_sdk_secretsmanager::Client::new(&self.aws_parts()?.admin))
    }

    /// `issuer` without the scheme: the OIDC provider's name in ARNs and condition keys.
    fn issuer_host_path(&self) -> String {
        self.issuer().trim_start_matches("https://").trim_end_matches('/').to_string()
    }

    /// The ARN of the OIDC provider for the cluster's issuer.
    pub fn oidc_provider_arn(&self) -> String {
        format!("arn:aws:iam::{AWS_ACCOUNT}:oidc-provider/{}", self.issuer_host_path())
    }

    /// Registers the cluster's issuer as an IAM OIDC provider (client id
    /// `sts.amazonaws.com`), as EKS setup does. Idempotent.
    pub async fn create_oidc_provider(&self) -> Result<String, StackError> {
        self.create_oidc_provider_for(&[AWS_AUDIENCE]).await
    }

    /// Registers the cluster's issuer as an IAM OIDC provider accepting these
    /// audiences (client ids). Idempotent: when the provider exists, the
    /// audiences it lacks are added with `AddClientIDToOpenIDConnectProvider`
    /// (which the guard implements; moto alone lacks it).
    pub async fn create_oidc_provider_for(&self, audiences: &[&str]) -> Result<String, StackError> {
        let iam = self.iam_admin()?;
        let mut request = iam
            .create_open_id_connect_provider()
            .url(self.issuer())
            .thumbprint_list("9e99a48a9960b14926bb7f3b02e22da2b0ab7280");
        for audience in audiences {
            request = request.client_id_list(*audience);
        }
        match request.send().await {
            Ok(created) => Ok(created.open_id_connect_provider_arn().unwrap_or_default().to_string()),
            Err(error) if error.code() == Some("EntityAlreadyExists") => {
                let arn = self.oidc_provider_arn();
                let existing = iam
                    .get_open_id_connect_provider()
                    .open_id_connect_provider_arn(&arn)
                    .send()
                    .await
                    .map_err(StackError::aws("reading the OIDC provider"))?;
                let missing: Vec<&str> =
                    audiences.iter().copied().filter(|a| !existing.client_id_list().iter().any(|c| c == a)).collect();
                let through_guard = aws_sdk_iam::Client::new(&crate::admin_config(&self.aws_endpoint()?, self.aws_region()));
                for audience in missing {
                    through_guard
                        .add_client_id_to_open_id_connect_provider()
                        .open_id_connect_provider_arn(&arn)
                        .client_id(audience)
                        .send()
                        .await
                        .map_err(StackError::aws("adding an audience to the OIDC provider"))?;
                }
                Ok(arn)
            }
            Err(error) => Err(StackError::aws("creating the OIDC provider")(error)),
        }
    }

    /// The ARN an SSM parameter name has in the stack's region.
    pub fn parameter_arn(&self, name: &str) -> String {
        let region = self.aws_region();
        format!("arn:aws:ssm:{region}:{AWS_ACCOUNT}:parameter/{}", name.trim_start_matches('/'))
    }

    /// The ARN pattern matching a Secrets Manager secret by name (AWS adds a
    /// `-XXXXXX` suffix to the name in its ARN).
    pub fn secret_arn_pattern(&self, name: &str) -> String {
        let region = self.aws_region();
        format!("arn:aws:secretsmanager:{region}:{AWS_ACCOUNT}:secret:{name}-??????")
    }

    /// Creates an IRSA role that `system:serviceaccount:NAMESPACE:SA` may
    /// assume with a TokenRequest token (audience `sts.amazonaws.com`), with an
    /// inline policy granting `ssm:GetParameter(s)` on `parameters` and
    /// `secretsmanager:GetSecretValue` on `secrets` (names; an entry starting
    /// with `arn:` is used as given, wildcards included). Returns the role ARN.
    /// Call [`Stack::create_oidc_provider`] first.
    pub async fn create_irsa_role(
        &self,
        name: &str,
        namespace: &str,
        service_account: &str,
        parameters: &[&str],
        secrets: &[&str],
    ) -> Result<String, StackError> {
        self.create_irsa_role_for_audience(name, namespace, service_account, AWS_AUDIENCE, parameters, secrets).await
    }

    /// Like [`Stack::create_irsa_role`], with the trust policy requiring the
    /// token audience `audience` (a ServiceAccount's `eks.amazonaws.com/audience`).
    /// The OIDC provider must accept it: see [`Stack::create_oidc_provider_for`].
    pub async fn create_irsa_role_for_audience(
        &self,
        name: &str,
        namespace: &str,
        service_account: &str,
        audience: &str,
        parameters: &[&str],
        secrets: &[&str],
    ) -> Result<String, StackError> {
        let provider = self.issuer_host_path();
        let trust = json!({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"Federated": self.oidc_provider_arn()},
                "Action": "sts:AssumeRoleWithWebIdentity",
                "Condition": {"StringEquals": {
                    format!("{provider}:sub"): format!("system:serviceaccount:{namespace}:{service_account}"),
                    format!("{provider}:aud"): audience,
                }}
            }]
        });
        self.create_role_with_trust(name, &trust, parameters, secrets).await
    }

    /// Creates a role that the role `trusted_role_arn` may chain into with
    /// `sts:AssumeRole` (trust principal `{"AWS": trusted_role_arn}`, as ESO's
    /// `provider.aws.role` needs), with the read policy of
    /// [`Stack::create_irsa_role`]. The trusted role still needs an
    /// `sts:AssumeRole` grant of its own: see [`Stack::allow_assume_role`].
    pub async fn create_chained_role(
        &self,
        name: &str,
        trusted_role_arn: &str,
        parameters: &[&str],
        secrets: &[&str],
    ) -> Result<String, StackError> {
        let trust = json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": trusted_role_arn}, "Action": "sts:AssumeRole"}]
        });
        self.create_role_with_trust(name, &trust, parameters, secrets).await
    }

    /// Grants role `name` `sts:AssumeRole` on `target_role_arn` (inline policy `NAME-assume`).
    pub async fn allow_assume_role(&self, name: &str, target_role_arn: &str) -> Result<(), StackError> {
        let policy = json!({
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": target_role_arn}]
        });
        self.iam_admin()?
            .put_role_policy()
            .role_name(name)
            .policy_name(format!("{name}-assume"))
            .policy_document(policy.to_string())
            .send()
            .await
            .map_err(StackError::aws(format!("granting role {name} sts:AssumeRole on {target_role_arn}")))?;
        Ok(())
    }

    /// Creates role `name` with this trust policy and the read policy for
    /// `parameters` and `secrets`; returns its ARN.
    async fn create_role_with_trust(&self, name: &str, trust: &Value, parameters: &[&str], secrets: &[&str]) -> Result<String, StackError> {
        let iam = self.iam_admin()?;
        let created = iam
            .create_role()
            .role_name(name)
            .assume_role_policy_document(trust.to_string())
            .send()
            .await
            .map_err(StackError::aws(format!("creating IAM role {name}")))?;
        let arn = created.role().map(|role| role.arn().to_string()).unwrap_or_default();
        let policy = self.read_policy(parameters, secrets);
        if let Some(policy) = policy {
            iam.put_role_policy()
                .role_name(name)
                .policy_name(format!("{name}-read"))
                .policy_document(policy.to_string())
                .send()
                .await
                .map_err(StackError::aws(format!("putting the inline policy of role {name}")))?;
        }
        Ok(arn)
    }

    /// The least-privilege read policy for the given parameters and secrets.
    fn read_policy(&self, parameters: &[&str], secrets: &[&str]) -> Option<Value> {
        let mut statements = Vec::new();
        let arn_or = |entry: &str, make: &dyn Fn(&str) -> String| {
            if entry.starts_with("arn:") { entry.to_string() } else { make(entry) }
        };
        if !parameters.is_empty() {
            let resources: Vec<String> = parameters.iter().map(|p| arn_or(p, &|n| self.parameter_arn(n))).collect();
            statements.push(json!({
                "Effect": "Allow",
                "Action": ["ssm:GetParameter", "ssm:GetParameters"],
                "Resource": resources,
            }));
        }
        if !secrets.is_empty() {
            let resources: Vec<String> = secrets.iter().map(|s| arn_or(s, &|n| self.secret_arn_pattern(n))).collect();
            statements.push(json!({
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                "Resource": resources,
            }));
        }
        (!statements.is_empty()).then(|| json!({"Version": "2012-10-17", "Statement": statements}))
    }

    /// Writes (or overwrites) a `String` SSM parameter; returns its new version.
    pub async fn put_parameter(&self, name: &str, value: &str) -> Result<i64, StackError> {
        let answer = self
            .ssm_admin()?
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .map_err(StackError::aws(format!("putting parameter {name}")))?;
        Ok(answer.version())
    }

    /// Adds a label to a version of a parameter.
    pub async fn label_parameter_version(&self, name: &str, version: i64, label: &str) -> Result<(), StackError> {
        self.ssm_admin()?
            .label_parameter_version()
            .name(name)
            .parameter_version(version)
            .labels(label)
            .send()
            .await
            .map_err(StackError::aws(format!("labelling version {version} of parameter {name}")))?;
        Ok(())
    }

    /// Deletes a parameter.
    pub async fn delete_parameter(&self, name: &str) -> Result<(), StackError> {
        self.ssm_admin()?
            .delete_parameter()
            .name(name)
            .send()
            .await
            .map_err(StackError::aws(format!("deleting parameter {name}")))?;
        Ok(())
    }

    /// Creates a secret with a string value, or adds a new current version if
    /// it exists; returns the version id.
    pub async fn put_secret(&self, name: &str, value: &str) -> Result<String, StackError> {
        let client = self.secrets_admin()?;
        let created = client.create_secret().name(name).secret_string(value).send().await;
        match created {
            Ok(answer) => Ok(answer.version_id().unwrap_or_default().to_string()),
            Err(error) if error.code() == Some("ResourceExistsException") => {
                let answer = client
                    .put_secret_value()
                    .secret_id(name)
                    .secret_string(value)
                    .send()
                    .await
                    .map_err(StackError::aws(format!("putting a new value into secret {name}")))?;
                Ok(answer.version_id().unwrap_or_default().to_string())
            }
            Err(error) => Err(StackError::aws(format!("creating secret {name}"))(error)),
        }
    }

    /// Adds a version with the given staging labels (e.g. `["AWSPREVIOUS"]`,
    /// or a custom stage) without making it current unless asked; returns its id.
    pub async fn put_secret_version(&self, name: &str, value: &str, stages: &[&str]) -> Result<String, StackError> {
        let mut request = self.secrets_admin()?.put_secret_value().secret_id(name).secret_string(value);
        for stage in stages {
            request = request.version_stages(*stage);
        }
        let answer = request.send().await.map_err(StackError::aws(format!("putting a version into secret {name}")))?;
        Ok(answer.version_id().unwrap_or_default().to_string())
    }

    /// Deletes a secret at once (no recovery window).
    pub async fn delete_secret(&self, name: &str) -> Result<(), StackError> {
        self.secrets_admin()?
            .delete_secret()
            .secret_id(name)
            .force_delete_without_recovery(true)
            .send()
            .await
            .map_err(StackError::aws(format!("deleting secret {name}")))?;
        Ok(())
    }
}
