# The reference article's AWS setup, with secretbridge: an EKS (Fargate) pod's
# ServiceAccount reads three SSM parameters through IRSA. The IAM OIDC provider
# needs no thumbprint, and the role may read exactly the parameters the
# ExternalSecret names.
#
# Prerequisites: the cluster runs secretbridge-controller (deploy/), and the
# namespace exists. Seed the parameters, then `terraform apply`.

terraform {
  required_version = ">= 1.0"
  required_providers {
    secretbridge = {
      source = "secretbridge/secretbridge"
    }
  }
}

provider "secretbridge" {
  aws {
    region   = var.region
    endpoint = var.aws_endpoint
  }
  kubernetes {
    config_path    = var.kubeconfig_path
    config_context = var.kubeconfig_context
  }
}

locals {
  service_account = "multicloud-app"
  role_name       = "${var.cluster_name}-multicloud-app"
  # arn:PARTITION:iam::ACCOUNT:oidc-provider/ISSUER: the role lives in the
  # same partition and account.
  oidc_provider_arn = split(":", secretbridge_aws_oidc_provider.eks.arn)
}

resource "secretbridge_aws_oidc_provider" "eks" {
  url  = var.cluster_oidc_issuer_url
  tags = { cluster = var.cluster_name }
}

# The ServiceAccount's role ARN is built from the role's name and account
# rather than read from the role: the role reads the ExternalSecret's
# remote_refs, so reading its ARN here would close a cycle (role ->
# ExternalSecret -> store -> ServiceAccount -> role). Without the cycle the
# store references the ServiceAccount, and the role its trusted
# ServiceAccount, so Terraform plans each pair in order and the namespace
# checks see both ends.
resource "secretbridge_service_account" "app" {
  namespace    = var.namespace
  name         = local.service_account
  aws_role_arn = "arn:${local.oidc_provider_arn[1]}:iam::${local.oidc_provider_arn[4]}:role/${local.role_name}"
}

resource "secretbridge_aws_irsa_role" "app" {
  name              = local.role_name
  tags              = { cluster = var.cluster_name }
  oidc_provider_arn = secretbridge_aws_oidc_provider.eks.arn
  namespace         = secretbridge_service_account.app.namespace
  service_account   = secretbridge_service_account.app.name
  access = {
    parameters = secretbridge_external_secret.db.remote_refs
  }
}

resource "secretbridge_secret_store" "aws" {
  namespace = var.namespace
  name      = "aws-parameter-store"
  spec {
    provider {
      aws {
        service = "ParameterStore"
        region  = var.region
        auth {
          jwt {
            service_account_ref = {
              name = secretbridge_service_account.app.name
            }
          }
        }
      }
    }
  }
}

resource "secretbridge_external_secret" "db" {
  namespace = var.namespace
  name      = "multicloud-db-info"
  labels    = { "app.kubernetes.io/part-of" = "multicloud" }
  # Secret key => remote key; a data block is needed only for property,
  # version or decoding_strategy.
  data_map = {
    dburl    = "/multicloud/db/url"
    user     = "/multicloud/db/user"
    password = "/multicloud/db/password"
  }
  spec {
    refresh_interval = "1h"
    secret_store_ref = {
      name = secretbridge_secret_store.aws.name
      kind = "SecretStore"
    }
    target {
      name            = "multicloud-db-info"
      creation_policy = "Owner"
    }
  }
}
