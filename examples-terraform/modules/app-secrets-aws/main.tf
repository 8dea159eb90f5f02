# Everything one application needs to read its AWS parameters (or Secrets
# Manager secrets) into one Kubernetes Secret: an IRSA role allowed exactly
# those keys, the annotated ServiceAccount, a SecretStore and the
# ExternalSecret. A platform team owns the cluster's OIDC provider and passes
# its ARN in; app teams only name their keys.

terraform {
  required_version = ">= 1.0"
  required_providers {
    secretbridge = {
      source = "secretbridge/secretbridge"
    }
  }
}

locals {
  secret_name      = coalesce(var.secret_name, "${var.app_name}-secrets")
  reads_parameters = var.service == "ParameterStore"
  role_name        = substr("${var.namespace}-${var.app_name}", 0, 64)
  # arn:PARTITION:iam::ACCOUNT:oidc-provider/ISSUER: the role lives in the
  # same partition and account.
  oidc_provider_arn = split(":", var.oidc_provider_arn)
}

# The role's ARN is built from its name and account, not read from the role:
# the role reads the ExternalSecret's remote_refs, so reading its ARN here
# would close a cycle. Without it the store references this ServiceAccount
# and the role its trusted ServiceAccount, so Terraform plans each pair in
# order and the namespace checks see both ends.
resource "secretbridge_service_account" "app" {
  namespace    = var.namespace
  name         = var.app_name
  aws_role_arn = "arn:${local.oidc_provider_arn[1]}:iam::${local.oidc_provider_arn[4]}:role/${local.role_name}"
}

resource "secretbridge_aws_irsa_role" "app" {
  name              = local.role_name
  oidc_provider_arn = var.oidc_provider_arn
  namespace         = secretbridge_service_account.app.namespace
  service_account   = secretbridge_service_account.app.name
  access = {
    parameters = local.reads_parameters ? secretbridge_external_secret.app.remote_refs : []
    secrets    = local.reads_parameters ? [] : secretbridge_external_secret.app.remote_refs
  }
}

resource "secretbridge_secret_store" "app" {
  namespace = var.namespace
  name      = "${var.app_name}-aws"
  spec {
    provider {
      aws {
        service = var.service
        region  = var.region
        auth {
          jwt {
            service_account_ref = { name = secretbridge_service_account.app.name }
          }
        }
      }
    }
  }
}

resource "secretbridge_external_secret" "app" {
  namespace = var.namespace
  name      = local.secret_name
  labels    = { "app.kubernetes.io/name" = var.app_name }
  # Secret key => remote key, beside (or instead of) data blocks.
  data_map = var.keys
  spec {
    refresh_interval = var.refresh_interval
    secret_store_ref = {
      name = secretbridge_secret_store.app.name
      kind = "SecretStore"
    }
    target {
      name            = local.secret_name
      creation_policy = "Owner"
    }
  }
}
