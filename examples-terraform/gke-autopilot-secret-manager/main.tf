# The reference article's GCP setup, with secretbridge: a GKE Autopilot pod's
# Kubernetes ServiceAccount (KSA) acts as a Google service account (GSA)
# through Workload Identity, and the GSA may read exactly the three secrets the
# ExternalSecret names.
#
# Prerequisites: the cluster runs secretbridge-controller (deploy/), and the
# namespace exists. Create the secrets, then `terraform apply`.

terraform {
  required_version = ">= 1.0"
  required_providers {
    secretbridge = {
      source = "secretbridge/secretbridge"
    }
  }
}

provider "secretbridge" {
  gcp {
    project      = var.project
    endpoint     = var.gcp_endpoint
    access_token = var.gcp_access_token
  }
  kubernetes {
    config_path    = var.kubeconfig_path
    config_context = var.kubeconfig_context
  }
}

resource "secretbridge_gcp_service_account" "app" {
  account_id   = "multicloud-app"
  display_name = "multicloud app (secretbridge)"
}

resource "secretbridge_gcp_secret_access" "db" {
  member  = secretbridge_gcp_service_account.app.member
  secrets = secretbridge_external_secret.db.remote_refs
}

resource "secretbridge_gcp_workload_identity" "app" {
  service_account            = secretbridge_gcp_service_account.app.email
  namespace                  = var.namespace
  kubernetes_service_account = "multicloud-app"
}

resource "secretbridge_service_account" "app" {
  namespace           = secretbridge_gcp_workload_identity.app.namespace
  name                = secretbridge_gcp_workload_identity.app.kubernetes_service_account
  gcp_service_account = secretbridge_gcp_workload_identity.app.service_account
}

resource "secretbridge_cluster_secret_store" "gcp" {
  name = "gcp-secret-manager"
  spec {
    # The store always acts as the one KSA below, so only its namespace may
    # use it: without conditions, an ExternalSecret in any namespace could
    # read every secret the GSA may read.
    conditions {
      namespaces = [secretbridge_service_account.app.namespace]
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

resource "secretbridge_external_secret" "db" {
  namespace = var.namespace
  name      = "multicloud-db-info"
  labels    = { "app.kubernetes.io/part-of" = "multicloud" }
  # Secret key => remote key; a data block is needed only for property,
  # version or decoding_strategy.
  data_map = {
    dburl    = "multicloud-db-url"
    user     = "multicloud-db-user"
    password = "multicloud-db-password"
  }
  spec {
    refresh_interval = "1h"
    secret_store_ref = {
      name = secretbridge_cluster_secret_store.gcp.name
      kind = "ClusterSecretStore"
    }
    target {
      name            = "multicloud-db-info"
      creation_policy = "Owner"
    }
  }
}
