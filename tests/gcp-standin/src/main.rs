//! `gcp-standin`: runs the GCP stand-in as a process for `make demo`.
//!
//! ```text
//! gcp-standin [--port P] [--admin-token T] [--project ID[:NUMBER]]...
//!             [--issuer URL --workload-pool POOL [--issuer-ca FILE] [--identity-provider URL]]...
//!             [--allow-anonymous-admin] [--metadata-service-account EMAIL]
//! ```
//! Prints `GCP_STANDIN_ENDPOINT=http://127.0.0.1:P` once listening, then serves
//! until interrupted.

use std::net::SocketAddr;
use std::process::ExitCode;

use gcp_standin::{GcpStandin, Options, ProjectSpec, TrustedIssuer};

/// What can go wrong reading the command line.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{flag} needs a value")]
    MissingValue { flag: String },
    #[error("unknown argument {0}; see the usage in the crate docs")]
    Unknown(String),
    #[error("{flag} {value}: {reason}")]
    BadValue { flag: String, value: String, reason: String },
    #[error("reading the CA file {path} for --issuer-ca failed")]
    ReadCa { path: String, source: std::io::Error },
    #[error("{0} must follow an --issuer")]
    NoIssuer(String),
    #[error("--issuer {0} needs --workload-pool")]
    NoPool(String),
}

fn parse(args: Vec<String>) -> Result<Options, CliError> {
    let mut options = Options { projects: Vec::new(), ..Options::default() };
    let mut iter = args.into_iter();
    let mut issuers: Vec<TrustedIssuer> = Vec::new();
    while let Some(flag) = iter.next() {
        let mut value = || iter.next().ok_or_else(|| CliError::MissingValue { flag: flag.clone() });
        match flag.as_str() {
            "--port" => {
                let port = value()?;
                let parsed = port.parse::<u16>().map_err(|err| CliError::BadValue {
                    flag: flag.clone(),
                    value: port.clone(),
                    reason: err.to_string(),
                })?;
                options.listen = SocketAddr::from(([127, 0, 0, 1], parsed));
            }
            "--admin-token" => options.admin_token = value()?,
            "--project" => {
                let text = value()?;
                let project = match text.split_once(':') {
                    Some((id, number)) => ProjectSpec {
                        id: id.to_owned(),
                        number: number.parse().map_err(|_| CliError::BadValue {
                            flag: flag.clone(),
                            value: text.clone(),
                            reason: "the project number must be digits".into(),
                        })?,
                    },
                    None => ProjectSpec::new(text),
                };
                options.projects.push(project);
            }
            "--issuer" => issuers.push(TrustedIssuer {
                issuer: value()?,
                ca_pem: None,
                workload_pool: String::new(),
                identity_provider: None,
            }),
            "--issuer-ca" => {
                let path = value()?;
                let pem = std::fs::read_to_string(&path).map_err(|source| CliError::ReadCa { path, source })?;
                issuers.last_mut().ok_or_else(|| CliError::NoIssuer(flag.clone()))?.ca_pem = Some(pem);
            }
            "--workload-pool" => {
                let pool = value()?;
                issuers.last_mut().ok_or_else(|| CliError::NoIssuer(flag.clone()))?.workload_pool = pool;
            }
            "--identity-provider" => {
                let provider = value()?;
                issuers.last_mut().ok_or_else(|| CliError::NoIssuer(flag.clone()))?.identity_provider = Some(provider);
            }
            "--allow-anonymous-admin" => options.allow_anonymous_admin = true,
            "--metadata-service-account" => options.metadata_service_account = Some(value()?),
            _ => return Err(CliError::Unknown(flag)),
        }
    }
    if let Some(issuer) = issuers.iter().find(|issuer| issuer.workload_pool.is_empty()) {
        return Err(CliError::NoPool(issuer.issuer.clone()));
    }
    if options.projects.is_empty() {
        options.projects = Options::default().projects;
    }
    options.trusted_issuers = issuers;
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1).collect()) {
        Ok(options) => options,
        Err(err) => {
            eprintln!("gcp-standin: {err}");
            return ExitCode::from(2);
        }
    };
    let projects: Vec<String> = options.projects.iter().map(|project| format!("{}:{}", project.id, project.number)).collect();
    let standin = match GcpStandin::start(options).await {
        Ok(standin) => standin,
        Err(err) => {
            eprintln!("gcp-standin: {err}");
            return ExitCode::FAILURE;
        }
    };
    println!("GCP_STANDIN_ENDPOINT={}", standin.endpoint());
    println!("GCP_STANDIN_PROJECTS={}", projects.join(","));
    let _ = tokio::signal::ctrl_c().await;
    standin.shutdown().await;
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn issuer_flags_attach_to_the_preceding_issuer() {
        let options = parse(args(
            "--port 8085 --admin-token t --project demo:123 --issuer https://k8s --workload-pool demo.svc.id.goog --identity-provider https://container",
        ))
        .expect("valid command line");
        assert_eq!(options.listen.port(), 8085);
        assert_eq!(options.admin_token, "t");
        assert_eq!(options.projects, [ProjectSpec { id: "demo".into(), number: 123 }]);
        assert_eq!(options.trusted_issuers[0].workload_pool, "demo.svc.id.goog");
        assert_eq!(options.trusted_issuers[0].identity_provider.as_deref(), Some("https://container"));
        assert_eq!(options.metadata_service_account, None);
    }

    #[test]
    fn metadata_service_account_flag_attaches_an_account() {
        let options = parse(args("--metadata-service-account node@demo.iam.gserviceaccount.com")).expect("valid command line");
        assert_eq!(options.metadata_service_account.as_deref(), Some("node@demo.iam.gserviceaccount.com"));
        assert!(matches!(parse(args("--metadata-service-account")), Err(CliError::MissingValue { .. })));
    }

    #[test]
    fn issuer_without_pool_and_stray_flags_are_refused() {
        assert!(matches!(parse(args("--issuer https://k8s")), Err(CliError::NoPool(_))));
        assert!(matches!(parse(args("--workload-pool p")), Err(CliError::NoIssuer(_))));
        assert!(matches!(parse(args("--port")), Err(CliError::MissingValue { .. })));
        assert!(matches!(parse(args("--nope")), Err(CliError::Unknown(_))));
    }
}
