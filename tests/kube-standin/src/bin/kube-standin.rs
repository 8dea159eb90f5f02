//! `kube-standin --port P --state-dir D`: runs the stand-in until interrupted (for `make demo`).

use kube_standin::{KubeStandin, Options};
use std::path::PathBuf;

fn usage() -> ! {
    eprintln!("usage: kube-standin [--port PORT] [--state-dir DIR] [--no-rbac] [--issuer URL]");
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
    println!("kube-standin serving {} (kubeconfig: {})", standin.url(), standin.kubeconfig_path().display());
    let _ = tokio::signal::ctrl_c().await;
}
