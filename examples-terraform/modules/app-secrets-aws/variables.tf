variable "namespace" {
  description = "Namespace of the application (it must exist)."
  type        = string
}

variable "app_name" {
  description = "Application name: the ServiceAccount's name, and the prefix of the role, store and Secret."
  type        = string
}

variable "keys" {
  description = "Secret key => parameter name (or Secrets Manager secret name), e.g. { dburl = \"/app/db/url\" }."
  type        = map(string)
}

variable "oidc_provider_arn" {
  description = "ARN of the cluster's IAM OIDC provider (secretbridge_aws_oidc_provider.NAME.arn)."
  type        = string
}

variable "region" {
  description = "AWS region of the parameters."
  type        = string
}

variable "service" {
  description = "ParameterStore or SecretsManager."
  type        = string
  default     = "ParameterStore"
  validation {
    condition     = contains(["ParameterStore", "SecretsManager"], var.service)
    error_message = "The service must be ParameterStore or SecretsManager."
  }
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
