variable "cluster_name" {
  description = "Name of the EKS cluster. It prefixes the IAM role's name (role names are unique per account) and tags what this creates."
  type        = string
}

variable "cluster_oidc_issuer_url" {
  description = "The EKS cluster's OIDC issuer URL: `aws eks describe-cluster --query cluster.identity.oidc.issuer`."
  type        = string
}

variable "region" {
  description = "AWS region of the cluster and the parameters."
  type        = string
  default     = "eu-west-1"
}

variable "namespace" {
  description = "Namespace of the application (it must exist)."
  type        = string
  default     = "multicloud"
}

variable "aws_endpoint" {
  description = "AWS endpoint override, for emulators only. Leave null for AWS."
  type        = string
  default     = null
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
