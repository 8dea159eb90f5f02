//! `aws-guard`: runs the guard in front of a moto server, for `make demo`.

use anyhow::Context;
use aws_guard::{AwsGuard, Options};
use std::net::SocketAddr;

const USAGE: &str = "usage: aws-guard --upstream URL [--port P] [--ca FILE] [--policy-cache-ttl SECS]\n  \
--upstream URL  moto's endpoint, e.g. http://127.0.0.1:5000\n  \
--port P        loopback port to listen on (default: a free one, printed on stdout)\n  \
--ca FILE       PEM CA certificate(s) trusted for OIDC discovery/JWKS over HTTPS\n  \
--policy-cache-ttl SECS  reuse a role's policies for SECS seconds (default: read on every call)";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let mut upstream = None;
    let mut port = 0u16;
    let mut ca = None;
    let mut policy_cache_ttl = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().with_context(|| format!("{name} needs a value\n{USAGE}"));
        match arg.as_str() {
            "--upstream" => upstream = Some(value("--upstream")?),
            "--port" => port = value("--port")?.parse().with_context(|| format!("--port must be a number\n{USAGE}"))?,
            "--ca" => ca = Some(value("--ca")?),
            "--policy-cache-ttl" => {
                let secs: u64 = value("--policy-cache-ttl")?
                    .parse()
                    .with_context(|| format!("--policy-cache-ttl must be whole seconds\n{USAGE}"))?;
                policy_cache_ttl = Some(std::time::Duration::from_secs(secs));
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let upstream = upstream.with_context(|| format!("--upstream is required\n{USAGE}"))?;
    let mut options = Options::new(upstream);
    options.listen = SocketAddr::from(([127, 0, 0, 1], port));
    options.policy_cache_ttl = policy_cache_ttl;
    if let Some(path) = ca {
        let pem = std::fs::read_to_string(&path).with_context(|| format!("reading CA file {path}"))?;
        options = options.with_extra_ca_pem(pem);
    }
    let guard = AwsGuard::start(options).await.context("starting aws-guard")?;
    println!("{}", guard.endpoint());
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    Ok(())
}
