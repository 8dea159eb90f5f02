output "role_arn" {
  description = "The IRSA role the ServiceAccount assumes."
  value       = secretbridge_aws_irsa_role.app.arn
}

output "access_policy_json" {
  description = "The role's only permissions: exactly the ExternalSecret's parameters."
  value       = secretbridge_aws_irsa_role.app.access_policy_json
}
