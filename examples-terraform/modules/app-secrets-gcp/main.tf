# Everything one application needs to read its GCP Secret Manager secrets
# into one Kubernetes Secret: a GSA, secretAccessor on exactly those secrets,
# the Workload Identity binding, the annotated KSA, a ClusterSecretStore
# limited to the application's namespace, and the ExternalSecret.

terraform {
  required_version = ">= 1.0"
  required_providers {
    secretbridge = {
      source = "secretbridge/secretbridge"
    }
  }
}

locals {
  secret_name = coalesce(var.secret_name, "${var.app_name}-secrets")
  # 6 to 30 characters, starting with a letter.
  account_id = coalesce(var.gsa_account_id, trimsuffix(substr("sb-${var.app_name}-${var.namespace}", 0, 30), "-"))
}

resource "secretbridge_gcp_service_account" "app" {
  project      = var.project
  account_id   = local.account_id
  display_name = "${var.app_name} in ${var.namespace} (secretbridge)"
}

resource "secretbridge_gcp_secret_access" "app" {
  project = var.project
  member  = secretbridge_gcp_service_account.app.member
  secrets = secretbridge_external_secret.app.remote_refs
}

resource "secretbridge_gcp_workload_identity" "app" {
  service_account            = secretbridge_gcp_service_account.app.email
  namespace                  = var.namespace
  kubernetes_service_account = var.app_name
}

resource "secretbridge_service_account" "app" {
  namespace           = secretbridge_gcp_workload_identity.app.namespace
  name                = secretbridge_gcp_workload_identity.app.kubernetes_service_account
  gcp_service_account = secretbridge_gcp_workload_identity.app.service_account
}

resource "secretbridge_cluster_secret_store" "app" {
  name = "${var.namespace}-${var.app_name}-gcp"
  spec {
    conditions {
      namespaces = [var.namespace]
    }
    provider {
      gcpsm {
        project_id = var.project
        auth {
          workload_identity {
            cluster_location   = var.cluster_location
            cluster_name       = var.cluster_name
            cluster_project_id = var.project
            service_account_ref = {
              name      = secretbridge_service_account.app.name
              namespace = secretbridge_service_account.app.namespace
            }
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
      name = secretbridge_cluster_secret_store.app.name
      kind = "ClusterSecretStore"
    }
    target {
      name            = local.secret_name
      creation_policy = "Owner"
    }
  }
}
