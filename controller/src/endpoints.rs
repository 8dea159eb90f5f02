//! The HTTP endpoints of the controller process: `/healthz` (the process
//! serves), `/readyz` (caches synced, or standing by for the lease) and
//! `/metrics` (Prometheus text). Served with hyper on one port, the one the
//! Deployment's probes and the NetworkPolicy name.

use crate::metrics::ControllerMetrics;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;

/// What the endpoints report.
#[derive(Debug)]
pub struct Health {
    ready: AtomicBool,
    /// The metrics `/metrics` renders.
    pub metrics: Arc<ControllerMetrics>,
}

impl Health {
    /// Not ready yet, with the given metrics.
    pub fn new(metrics: Arc<ControllerMetrics>) -> Self {
        Health { ready: AtomicBool::new(false), metrics }
    }

    /// Sets what `/readyz` answers.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    /// What `/readyz` answers.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

fn text(status: StatusCode, body: String, content_type: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

/// The answer to one request.
pub fn respond(health: &Health, method: &Method, path: &str) -> Response<Full<Bytes>> {
    const PLAIN: &str = "text/plain; charset=utf-8";
    if method != Method::GET && method != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".to_string(), PLAIN);
    }
    match path {
        "/healthz" | "/livez" => text(StatusCode::OK, "ok\n".to_string(), PLAIN),
        "/readyz" if health.is_ready() => text(StatusCode::OK, "ok\n".to_string(), PLAIN),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "caches not synced yet\n".to_string(), PLAIN),
        "/metrics" => text(StatusCode::OK, health.metrics.render(), "text/plain; version=0.0.4; charset=utf-8"),
        _ => text(StatusCode::NOT_FOUND, "not found: try /healthz, /readyz or /metrics\n".to_string(), PLAIN),
    }
}

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, health: Arc<Health>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accepting a metrics connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let health = health.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let response = respond(&health, request.method(), request.uri().path());
                async move { Ok::<_, Infallible>(response) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "metrics connection ended with an error");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readyz_follows_the_flag_and_metrics_render() {
        let health = Health::new(Arc::default());
        assert_eq!(respond(&health, &Method::GET, "/healthz").status(), StatusCode::OK);
        assert_eq!(respond(&health, &Method::GET, "/readyz").status(), StatusCode::SERVICE_UNAVAILABLE);
        health.set_ready(true);
        assert_eq!(respond(&health, &Method::GET, "/readyz").status(), StatusCode::OK);
        assert_eq!(respond(&health, &Method::GET, "/metrics").status(), StatusCode::OK);
        assert_eq!(respond(&health, &Method::GET, "/nope").status(), StatusCode::NOT_FOUND);
        assert_eq!(respond(&health, &Method::POST, "/metrics").status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
