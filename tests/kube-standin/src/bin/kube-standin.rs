//! `kube-standin --port P --state-dir D`: runs the stand-in until interrupted (for `make demo`).
//! Writes `D/kubeconfig` (admin), `D/ca.crt`, `D/issuer` and `D/jwks.json`.

use kube_standin::{KubeStandin, Options};
use std::path::PathBuf;

fn usage() -> ! {
    eprintln!("usage: kube-standin [--port PORT] [--state-dir DIR] [--no-rbac] [--issuer URL] [--watch-history EVENTS]");
    std::process::exit(2)
}

#[tokio::main]
async fn main() {
    let mut options = Options {
        state_dir: Some(PathBuf::from(".kube-standin")),
        ..Options::default()
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => options.port = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| usage()),
            "--state-dir" => options.state_dir = Some(args.next().map(PathBuf::from).unwrap_or_else(|| usage())),
            "--issuer" => options.issuer = Some(args.next().unwrap_or_else(|| usage())),
            "--no-rbac" => options.rbac = false,
            "--watch-history" => {
                options.watch_history = args.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| usage())
            }
            _ => usage(),
        }
    }
    let standin = match KubeStandin::start(options).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("kube-standin: {e}");
            std::process::exit(1);
        }
    };
    // Beside the kubeconfig: what cloud stand-ins need to trust this issuer.
    if let Some(dir) = standin.kubeconfig_path().parent() {
        let files = [
            ("ca.crt", standin.ca_pem().to_string()),
            ("issuer", standin.issuer().to_string()),
            ("jwks.json", standin.jwks().to_string()),
        ];
        for (name, content) in files {
            if let Err(e) = std::fs::write(dir.join(name), content) {
                eprintln!("kube-standin: writing {} failed: {e}", dir.join(name).display());
                std::process::exit(1);
            }
        }
    }
    println!("kube-standin serving {} (kubeconfig: {})", standin.url(), standin.kubeconfig_path().display());
    let _ = tokio::signal::ctrl_c().await;
}
