//! The metrics endpoint: `GET /metrics` on `nymvisor.metrics_address`, served by hyper (already
//! in the binary for the HTTP client) on nymvisor's own runtime — no second runtime, no thread.
//! At most [`MAX_CONNECTIONS`] scrapers at once; a request's head must arrive within
//! [`HEAD_TIMEOUT`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Scrapers served at once.
pub const MAX_CONNECTIONS: usize = 16;
/// Longest wait for a request's head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// What renders the metrics text.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

fn answer(req: &Request<Incoming>, render: &Render) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &'static str, body: String| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static(ctype),
        );
        resp
    };
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            render(),
        ),
        (_, "/metrics") => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET /metrics\n".to_owned(),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            "nymvisor serves /metrics only\n".to_owned(),
        ),
    }
}

/// Serves `/metrics` on `listener` until the runtime ends. Errors of single connections are
/// logged at debug level and never end the server.
pub async fn serve(listener: TcpListener, render: Render) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "metrics endpoint: too many connections; closing this one");
            continue;
        };
        let render = render.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let resp = answer(&req, &render);
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!(%peer, "metrics endpoint: {e}");
            }
            drop(permit);
        });
    }
}

/// Binds the endpoint's address; the error names it.
pub async fn bind(address: &str) -> Result<TcpListener, crate::Error> {
    TcpListener::bind(address).await.map_err(|e| {
        crate::Error::Setup(format!(
            "cannot listen for metrics on {address} (NYMVISOR_METRICS_ADDRESS): {e}"
        ))
    })
}
