output "role_arn" {
  description = "ARN of the application's IRSA role."
  value       = secretbridge_aws_irsa_role.app.arn
}

output "secret_name" {
  description = "Name of the Kubernetes Secret the controller writes."
  value       = local.secret_name
}

output "remote_refs" {
  description = "The remote keys the role may read."
  value       = secretbridge_external_secret.app.remote_refs
}
