output "secrets" {
  description = "The Kubernetes Secrets the controller writes, as NAMESPACE/NAME."
  value = [
    "${var.aws_namespace}/${module.aws.secret_name}",
    "${var.gcp_namespace}/${module.gcp.secret_name}",
  ]
}
