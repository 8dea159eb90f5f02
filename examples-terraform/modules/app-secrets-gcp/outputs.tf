output "gsa_email" {
  description = "Email of the application's GSA."
  value       = secretbridge_gcp_service_account.app.email
}

output "secret_name" {
  description = "Name of the Kubernetes Secret the controller writes."
  value       = local.secret_name
}

output "remote_refs" {
  description = "The secrets the GSA may read."
  value       = secretbridge_external_secret.app.remote_refs
}
