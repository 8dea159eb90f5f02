output "gsa_email" {
  description = "The GSA the KSA acts as."
  value       = secretbridge_gcp_service_account.app.email
}

output "workload_identity_member" {
  description = "The federated member granted roles/iam.workloadIdentityUser on the GSA."
  value       = secretbridge_gcp_workload_identity.app.member
}
