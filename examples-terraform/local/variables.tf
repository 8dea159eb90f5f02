variable "kubeconfig_path" {
  description = "kubeconfig of the Kubernetes stand-in."
  type        = string
}

variable "cluster_oidc_issuer_url" {
  description = "Issuer URL of the Kubernetes stand-in's ServiceAccount tokens."
  type        = string
}

variable "aws_endpoint" {
  description = "aws-guard's URL (in front of moto)."
  type        = string
}

variable "region" {
  description = "AWS region of the parameters."
  type        = string
  default     = "eu-west-1"
}

variable "gcp_endpoint" {
  description = "The GCP stand-in's URL."
  type        = string
}

variable "gcp_project" {
  description = "Project in the GCP stand-in."
  type        = string
  default     = "multicloud-demo"
}

variable "gcp_access_token" {
  description = "Access token the GCP stand-in accepts for Terraform."
  type        = string
  sensitive   = true
}

variable "gke_cluster_location" {
  description = "Location the GCP stand-in knows the cluster by."
  type        = string
  default     = "europe-west1"
}

variable "gke_cluster_name" {
  description = "Name the GCP stand-in knows the cluster by."
  type        = string
  default     = "multicloud-autopilot"
}

variable "aws_namespace" {
  description = "Namespace of the AWS half (it must exist)."
  type        = string
  default     = "multicloud-aws"
}

variable "gcp_namespace" {
  description = "Namespace of the GCP half (it must exist)."
  type        = string
  default     = "multicloud-gcp"
}
