variable "namespace" {
  description = "Namespace of the application (it must exist)."
  type        = string
}

variable "app_name" {
  description = "Application name: the KSA's name, and the prefix of the GSA, store and Secret."
  type        = string
}

variable "keys" {
  description = "Secret key => Secret Manager secret name, e.g. { dburl = \"app-db-url\" }."
  type        = map(string)
}

variable "project" {
  description = "GCP project of the cluster, the GSA and the secrets."
  type        = string
}

variable "cluster_location" {
  description = "Location of the GKE cluster."
  type        = string
}

variable "cluster_name" {
  description = "Name of the GKE cluster."
  type        = string
}

variable "gsa_account_id" {
  description = "Account ID of the GSA; defaults to sb-APP_NAME-NAMESPACE, cut to 30 characters."
  type        = string
  default     = null
}

variable "secret_name" {
  description = "Name of the ExternalSecret and of the Kubernetes Secret; defaults to APP_NAME-secrets."
  type        = string
  default     = null
}

variable "refresh_interval" {
  description = "How often the Secret is refreshed, e.g. 1h."
  type        = string
  default     = "1h"
}
