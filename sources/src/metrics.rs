//! The metrics endpoint: `GET /metrics` on `nymvisor.metrics_address`, served by hyper (already
//! in the binary for the HTTP client) on nymvisor's own runtime — no second runtime, no thread.
//! At most [`MAX_CONNECTIONS`] connections at once; when one more arrives, the oldest is closed
//! (idle connections that never send a request cannot lock a scraper out), and a request's head
//! must arrive within [`HEAD_TIMEOUT`].

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::net::TcpListener;
use tokio::task::AbortHandle;

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
    // the connections being served, oldest first
    let live: Arc<Mutex<VecDeque<(u64, AbortHandle)>>> = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if let Ok(mut l) = live.lock() {
            while l.len() >= MAX_CONNECTIONS {
                if let Some((_, oldest)) = l.pop_front() {
                    tracing::debug!(%peer, "metrics endpoint: too many connections; closing the oldest");
                    oldest.abort();
                }
            }
        }
        let (id, register) = (next_id, live.clone());
        next_id += 1;
        let render = render.clone();
        let task = tokio::spawn(async move {
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
            if let Ok(mut l) = register.lock() {
                l.retain(|(i, _)| *i != id);
            }
        });
        if !task.is_finished()
            && let Ok(mut l) = live.lock()
        {
            l.push_back((id, task.abort_handle()));
        }
    }
}

/// How often an address that could not be bound is tried again.
pub const BIND_RETRY: Duration = Duration::from_secs(5);

/// Tries to bind `address` every [`BIND_RETRY`] until it works (another process held it), then
/// serves. An optional observability port never keeps the node from running.
pub async fn serve_when_free(address: String, render: Render) {
    loop {
        tokio::time::sleep(BIND_RETRY).await;
        match bind(&address).await {
            Ok(listener) => {
                tracing::info!(
                    "serving metrics at http://{address}/metrics (the address is free now)"
                );
                serve(listener, render).await;
                return;
            }
            Err(e) => tracing::debug!("{e}"),
        }
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
