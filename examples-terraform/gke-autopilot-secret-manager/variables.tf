variable "project" {
  description = "GCP project of the cluster, the GSA and the secrets."
  type        = string
}

variable "cluster_location" {
  description = "Location of the GKE cluster."
  type        = string
  default     = "europe-west1"
}

variable "cluster_name" {
  description = "Name of the GKE cluster."
  type        = string
  default     = "multicloud-autopilot"
}

variable "namespace" {
  description = "Namespace of the application (it must exist)."
  type        = string
  default     = "multicloud"
}

variable "gcp_endpoint" {
  description = "GCP endpoint override, for emulators only. Leave null for Google Cloud."
  type        = string
  default     = null
}

variable "gcp_access_token" {
  description = "OAuth2 access token; null uses Application Default Credentials."
  type        = string
  default     = null
  sensitive   = true
}

variable "kubeconfig_path" {
  description = "kubeconfig of the cluster."
  type        = string
  default     = "~/.kube/config"
}

variable "kubeconfig_context" {
  description = "kubeconfig context; null uses the current one."
  type        = string
  default     = null
}
