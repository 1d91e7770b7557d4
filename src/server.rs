//! The HTTP/1.1 server: accept loop with a connection cap, hyper with header and body
//! timeouts, one log line per request, panics turned into 500s, and graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hyper::Response;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::app::{App, StartError};
use crate::config::Config;
use crate::error::{ApiError, Dialect};
use crate::http::{Body, Req};
use crate::routes;

/// How often expired sessions are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Opens the data directory, serves on `listener` until `shutdown` resolves, lets in-flight
/// requests finish (bounded by `shutdown_timeout`), and flushes the store.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let app = App::open(config).await?;
    run(app.clone(), listener, shutdown).await;
    if let Err(e) = app.store.close_cleanly() {
        tracing::error!(error = %e, "final flush failed");
    }
    tracing::info!("stopped");
    Ok(())
}

/// The accept loop for an already opened app.
pub async fn run(app: App, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let permits = Arc::new(Semaphore::new(app.config.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let purge = tokio::spawn(purge_sessions(app.clone()));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = permits.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (stream, _peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Usually EMFILE: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let handler_app = app.clone();
        let service = service_fn(move |req| {
            let app = handler_app.clone();
            async move { Ok::<_, Infallible>(handle(app, req).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(app.config.header_timeout)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }
    purge.abort();
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(app.config.shutdown_timeout) => {
            tracing::warn!("in-flight requests did not finish in time; closing them");
        }
    }
}

/// Routes one request and logs one line for it.
async fn handle(app: App, req: Req) -> Response<Body> {
    let start = Instant::now();
    // A cheap clone: a standard method is a tag.
    let method = req.method().clone();
    // The route's name, never the raw path: paths hold ids.
    let found = routes::find(&method, req.uri().path());
    let (route, dialect) = (found.name, found.dialect);
    let resp = without_panics(dialect, routes::dispatch(app, req, found)).await;
    tracing::info!(
        target: "profiled::request",
        %method,
        route = %route,
        status = resp.status().as_u16(),
        micros = start.elapsed().as_micros() as u64,
    );
    resp
}

/// Runs a handler; a panic becomes a 500 without detail (the detail is logged).
async fn without_panics(
    dialect: Dialect,
    handler: impl Future<Output = Response<Body>>,
) -> Response<Body> {
    match std::panic::AssertUnwindSafe(handler).catch_unwind().await {
        Ok(resp) => resp,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            ApiError::internal(format!("handler panicked: {what}"))
                .into_response(dialect)
                .map(http_body_util::Either::Left)
        }
    }
}

async fn purge_sessions(app: App) {
    let mut tick = tokio::time::interval(PURGE_EVERY);
    loop {
        tick.tick().await;
        let store = app.store.clone();
        let now = crate::clock::millis(crate::clock::now());
        match tokio::task::spawn_blocking(move || store.purge_expired_sessions(now)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => tracing::debug!(n, "purged expired sessions"),
            Ok(Err(e)) => tracing::warn!(error = %e, "purging sessions failed"),
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_500_without_detail() {
        for dialect in [Dialect::Appgate, Dialect::Occ] {
            let resp = without_panics(dialect, async {
                panic!("secret internal state");
            })
            .await;
            assert_eq!(resp.status(), 500);
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            let text = String::from_utf8_lossy(&body);
            assert!(!text.contains("secret"), "{text}");
            assert!(text.contains("An unexpected error occurred."), "{text}");
        }
    }
}
