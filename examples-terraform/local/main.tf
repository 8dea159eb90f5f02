# Both clouds on one laptop: the AWS and GCP halves of the reference article,
# each through its module, against moto (behind aws-guard), the GCP stand-in
# and the Kubernetes stand-in on loopback. `make demo` applies this folder;
# the endpoints and the kubeconfig come in as variables.

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
  gcp {
    project      = var.gcp_project
    endpoint     = var.gcp_endpoint
    access_token = var.gcp_access_token
  }
  kubernetes {
    config_path = var.kubeconfig_path
  }
}

resource "secretbridge_aws_oidc_provider" "cluster" {
  url = var.cluster_oidc_issuer_url
}

module "aws" {
  source            = "../modules/app-secrets-aws"
  namespace         = var.aws_namespace
  app_name          = "multicloud-app"
  secret_name       = "multicloud-db-info"
  oidc_provider_arn = secretbridge_aws_oidc_provider.cluster.arn
  region            = var.region
  keys = {
    dburl    = "/multicloud/db/url"
    user     = "/multicloud/db/user"
    password = "/multicloud/db/password"
  }
}

module "gcp" {
  source           = "../modules/app-secrets-gcp"
  namespace        = var.gcp_namespace
  app_name         = "multicloud-app"
  secret_name      = "multicloud-db-info"
  project          = var.gcp_project
  cluster_location = var.gke_cluster_location
  cluster_name     = var.gke_cluster_name
  keys = {
    dburl    = "multicloud-db-url"
    user     = "multicloud-db-user"
    password = "multicloud-db-password"
  }
}
