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
}

resource "secretbridge_aws_irsa_role" "app" {
  name              = substr("${var.namespace}-${var.app_name}", 0, 64)
  oidc_provider_arn = var.oidc_provider_arn
  namespace         = var.namespace
  service_account   = var.app_name
  access = {
    parameters = local.reads_parameters ? secretbridge_external_secret.app.remote_refs : []
    secrets    = local.reads_parameters ? [] : secretbridge_external_secret.app.remote_refs
  }
}

resource "secretbridge_service_account" "app" {
  namespace    = var.namespace
  name         = var.app_name
  aws_role_arn = secretbridge_aws_irsa_role.app.arn
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
            # The name, not a reference: the role depends on the ExternalSecret.
            service_account_ref = { name = var.app_name }
          }
        }
      }
    }
  }
}

resource "secretbridge_external_secret" "app" {
  namespace = var.namespace
  name      = local.secret_name
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
    dynamic "data" {
      for_each = var.keys
      content {
        secret_key = data.key
        remote_ref = { key = data.value }
      }
    }
  }
}
