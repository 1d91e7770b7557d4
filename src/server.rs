//! The HTTP/1.1 server: accept loop with a connection cap (and a share per client address;
//! when full, a connection idle without a request head gives up its slot), hyper with header
//! timeouts and a 16 KiB head cap, one log line per request, panics turned into 500s, and
//! graceful shutdown; plain HTTP and HTTPS (after a TLS handshake with a time limit) alike.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use hyper::Response;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

use crate::app::{App, StartError};
use crate::auth::lockout::address_key;
use crate::config::Config;
use crate::error::{ApiError, Dialect};
use crate::http::{Body, LocalAddr, OverTls, PeerAddr, Req};
use crate::routes;
use crate::tls::Tls;

/// How often expired sessions are purged.
const PURGE_EVERY: Duration = Duration::from_secs(60);

/// The sockets the server is to accept on: plain HTTP, HTTPS, or both.
pub struct Listeners {
    pub plain: Option<TcpListener>,
    pub tls: Option<TcpListener>,
}

/// Opens the data directory, serves plain HTTP on `listener` until `shutdown` resolves, lets
/// in-flight requests finish (bounded by `shutdown_timeout`), and flushes the store.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let listeners = Listeners {
        plain: Some(listener),
        tls: None,
    };
    serve_on(config, listeners, shutdown, None).await
}

/// `serve` on plain HTTP, HTTPS or both; with a TLS listener the certificate is loaded (or
/// generated) once the data directory is open, and each `reload` signal (SIGHUP) reloads it.
pub async fn serve_on(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    reload: Option<tokio::signal::unix::Signal>,
) -> Result<(), StartError> {
    let (app, plain) = open_answering_probes(config, listeners.plain).await;
    let app = app?;
    let listeners = Listeners {
        plain,
        tls: listeners.tls,
    };
    let tls = match &listeners.tls {
        Some(_) => match Tls::start(&app.config) {
            Ok(tls) => Some(Arc::new(tls)),
            Err(e) => {
                let _ = app.store.close_cleanly();
                return Err(StartError::Tls(e));
            }
        },
        None => None,
    };
    let reloader = reload.map(|r| tokio::spawn(reload_on_signal(r, tls.clone())));
    let tls = listeners.tls.zip(tls);
    run_on(app.clone(), listeners.plain, tls, shutdown).await;
    if let Some(r) = reloader {
        r.abort();
    }
    if let Err(e) = app.store.close_cleanly() {
        tracing::error!(error = %e, "final flush failed");
    }
    tracing::info!("stopped");
    Ok(())
}

/// Opens the data directory while answering on the plain listener, which can take a while
/// (after a crash start-up checks every index): `/healthz` is 200 and `/readyz` 503 with the
/// reason at once, and any other request waits for the open store, as it would have waited in
/// the accept queue, and is then served (or, when opening fails, answered 503). Those answers
/// close their connection, so that the next request reaches the full server. Gives the
/// listener back for the accept loop.
async fn open_answering_probes(
    config: Config,
    plain: Option<TcpListener>,
) -> (Result<App, StartError>, Option<TcpListener>) {
    // Opening blocks (sled, the index check): off the runtime's workers, so that the answers
    // go on even on a one-core machine.
    let runtime = tokio::runtime::Handle::current();
    let open = tokio::task::spawn_blocking(move || runtime.block_on(App::open(config)));
    let Some(listener) = plain else {
        let app = open
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        return (app, None);
    };
    let listener = Arc::new(listener);
    let (opened_tx, opened) = tokio::sync::watch::channel(StoreState::Opening);
    let answering = tokio::spawn(answer_while_opening(listener.clone(), opened));
    let app = open
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    let _ = opened_tx.send(match &app {
        Ok(app) => StoreState::Open(app.clone()),
        Err(_) => StoreState::Failed,
    });
    let _ = answering.await;
    let listener = Arc::try_unwrap(listener)
        .unwrap_or_else(|_| unreachable!("only the finished accept loop held the listener"));
    (app, Some(listener))
}

/// The state of the data directory while `open_answering_probes` answers.
#[derive(Clone)]
enum StoreState {
    Opening,
    Open(App),
    Failed,
}

/// Connections served at once while opening; more are closed at once.
const OPENING_CONNECTIONS: usize = 64;

async fn answer_while_opening(
    listener: Arc<TcpListener>,
    mut opened: tokio::sync::watch::Receiver<StoreState>,
) {
    let permits = Arc::new(Semaphore::new(OPENING_CONNECTIONS));
    loop {
        let accepted = tokio::select! {
            _ = opened.wait_for(|o| !matches!(o, StoreState::Opening)) => return,
            a = listener.accept() => a,
        };
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            continue;
        };
        let local = stream.local_addr().ok();
        let state = opened.clone();
        let service = service_fn(move |mut req: Req| {
            let mut state = state.clone();
            req.extensions_mut().insert(PeerAddr(peer));
            if let Some(local) = local {
                req.extensions_mut().insert(LocalAddr(local));
            }
            async move {
                let probe = matches!(req.uri().path(), "/healthz" | "/readyz");
                let now: StoreState = state.borrow().clone();
                let state = match now {
                    StoreState::Opening if !probe => {
                        match state.wait_for(|o| !matches!(o, StoreState::Opening)).await {
                            Ok(o) => o.clone(),
                            Err(_) => StoreState::Failed,
                        }
                    }
                    now => now,
                };
                let mut resp = match state {
                    StoreState::Open(app) => handle(app, req).await,
                    StoreState::Opening if req.uri().path() == "/healthz" => {
                        crate::http::ok_json(&serde_json::json!({"status": "ok"}), Dialect::Appgate)
                            .map(Body::Left)
                    }
                    StoreState::Opening | StoreState::Failed => {
                        let reason = match state {
                            StoreState::Opening => "opening the database",
                            _ => "the database could not be opened: the server is stopping",
                        };
                        let mut r = match req.uri().path() {
                            "/healthz" | "/readyz" => crate::http::json_response(
                                hyper::StatusCode::SERVICE_UNAVAILABLE,
                                &serde_json::json!({"status": "unavailable", "reason": reason}),
                                Dialect::Appgate,
                            ),
                            path => ApiError::unavailable().into_response(Dialect::of(path)),
                        };
                        r.headers_mut().insert(
                            hyper::header::RETRY_AFTER,
                            hyper::header::HeaderValue::from_static("1"),
                        );
                        r.map(Body::Left)
                    }
                };
                resp.headers_mut().insert(
                    hyper::header::CONNECTION,
                    hyper::header::HeaderValue::from_static("close"),
                );
                Ok::<_, Infallible>(resp)
            }
        });
        tokio::spawn(async move {
            let mut http = http1::Builder::new();
            http.timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .max_buf_size(MAX_HEAD)
                .max_header_size(MAX_HEAD)
                .keep_alive(false);
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
            drop(permit);
        });
    }
}

/// Reloads the certificate at every signal; without HTTPS there is nothing to reload.
async fn reload_on_signal(mut signal: tokio::signal::unix::Signal, tls: Option<Arc<Tls>>) {
    while signal.recv().await.is_some() {
        match &tls {
            Some(tls) => {
                let tls = tls.clone();
                let _ = tokio::task::spawn_blocking(move || tls.reload()).await;
            }
            None => tracing::info!("SIGHUP: nothing to reload (HTTPS is off)"),
        }
    }
}

/// Largest request head (request line and headers) accepted: beyond it hyper answers 431
/// and closes the connection, so an unfinished head cannot hold more than this in memory.
pub const MAX_HEAD: usize = 16 * 1024;

/// `idle_since` of a connection that is serving a request.
const BUSY: u64 = u64::MAX;

/// What the accept loop knows of one open connection.
struct Conn {
    /// Milliseconds since the loop started at which the connection last began to wait for a
    /// request head (when it opened, or when its last response was sent); `BUSY` meanwhile.
    idle_since: AtomicU64,
    /// Told to close when the server is full and this connection waited longest for a head.
    evict: Notify,
}

/// Open connections, by id and per client address.
struct Conns {
    start: Instant,
    table: Mutex<ConnTable>,
}

#[derive(Default)]
struct ConnTable {
    next_id: u64,
    open: HashMap<u64, Arc<Conn>>,
    per_address: HashMap<IpAddr, usize>,
}

impl Conns {
    fn lock(&self) -> std::sync::MutexGuard<'_, ConnTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    /// Counts a connection from `ip`, or `None` when that address holds `limit` already.
    fn open(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<ConnGuard> {
        let mut t = self.lock();
        let n = t.per_address.entry(ip).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        let id = t.next_id;
        t.next_id += 1;
        Some(ConnGuard {
            conns: self.clone(),
            id,
            ip,
            conn: Arc::new(Conn {
                idle_since: AtomicU64::new(0),
                evict: Notify::new(),
            }),
        })
    }

    /// Asks the connection that has waited longest for a request head, if longer than
    /// `after`, to close. True when one was asked.
    fn evict_idlest(&self, after: Duration) -> bool {
        let Some(limit) = self.now_ms().checked_sub(after.as_millis() as u64) else {
            return false;
        };
        let t = self.lock();
        let victim = t
            .open
            .values()
            .map(|c| (c.idle_since.load(Ordering::Relaxed), c))
            .filter(|(since, _)| *since != BUSY && *since <= limit)
            .min_by_key(|(since, _)| *since);
        match victim {
            Some((_, c)) => {
                // Not chosen twice while it closes.
                c.idle_since.store(BUSY, Ordering::Relaxed);
                c.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// One registered connection; unregisters it when dropped.
struct ConnGuard {
    conns: Arc<Conns>,
    id: u64,
    ip: IpAddr,
    conn: Arc<Conn>,
}

impl ConnGuard {
    /// Makes the connection, now holding a slot, a candidate for eviction while idle.
    fn serving(&self) {
        self.conn
            .idle_since
            .store(self.conns.now_ms(), Ordering::Relaxed);
        self.conns.lock().open.insert(self.id, self.conn.clone());
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        let mut t = self.conns.lock();
        t.open.remove(&self.id);
        if let Some(n) = t.per_address.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                t.per_address.remove(&self.ip);
            }
        }
    }
}

/// Marks a connection busy while a request is served, up to the end of its response body.
struct Busy {
    /// The accept loop's start, which `idle_since` counts from.
    start: Instant,
    conn: Arc<Conn>,
}

impl Busy {
    fn new(start: Instant, conn: &Arc<Conn>) -> Busy {
        conn.idle_since.store(BUSY, Ordering::Relaxed);
        Busy {
            start,
            conn: conn.clone(),
        }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.start.elapsed().as_millis() as u64;
        self.conn.idle_since.store(now, Ordering::Relaxed);
    }
}

/// A response body that keeps its connection marked busy until hyper has sent it all.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = <Body as hyper::body::Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// The accept loop for an already opened app, plain HTTP on `listener`.
pub async fn run(app: App, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    run_on(app, Some(listener), None, shutdown).await
}

/// Accepts the next connection on `listener`; never, without one.
async fn accept(
    listener: Option<&TcpListener>,
) -> std::io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// The accept loop for an already opened app, on a plain listener, a TLS one, or both: both
/// share the connection limits, the request handling and the graceful shutdown.
pub async fn run_on(
    app: App,
    plain: Option<TcpListener>,
    tls: Option<(TcpListener, Arc<Tls>)>,
    shutdown: impl Future<Output = ()>,
) {
    let permits = Arc::new(Semaphore::new(app.config.max_connections.max(1)));
    let per_address = match app.config.max_connections_per_address {
        0 => usize::MAX,
        n => n,
    };
    let evict_after = app.config.evict_idle_after;
    let conns = Arc::new(Conns {
        start: Instant::now(),
        table: Mutex::new(ConnTable::default()),
    });
    let graceful = GracefulShutdown::new();
    // Set once the loop stops accepting: a connection still in its TLS handshake then closes
    // rather than hold up the shutdown.
    let (stopping, stopping_rx) = tokio::sync::watch::channel(false);
    let purge = tokio::spawn(purge_sessions(app.clone()));
    tokio::pin!(shutdown);
    'accept: loop {
        let (accepted, acceptor) = tokio::select! {
            _ = &mut shutdown => break,
            a = accept(plain.as_ref()) => (a, None),
            a = accept(tls.as_ref().map(|(l, _)| l)) => {
                (a, tls.as_ref().map(|(_, t)| t.acceptor().clone()))
            }
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Over its address's share: closed at once, before it takes a slot.
        let Some(guard) = conns.open(address_key(peer.ip()), per_address) else {
            continue;
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            // Full: a connection that has waited too long for a request head makes room;
            // without one, wait for a slot (checking again as connections age).
            Err(_) => loop {
                conns.evict_idlest(evict_after);
                tokio::select! {
                    _ = &mut shutdown => break 'accept,
                    p = permits.clone().acquire_owned() => {
                        break p.expect("the semaphore is never closed");
                    }
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            },
        };
        guard.serving();
        let _ = stream.set_nodelay(true);
        let local = stream.local_addr().ok();
        let handler_app = app.clone();
        let (start, handler_conn) = (conns.start, guard.conn.clone());
        let over_tls = acceptor.is_some();
        let service = service_fn(move |mut req: Req| {
            let app = handler_app.clone();
            let busy = Busy::new(start, &handler_conn);
            req.extensions_mut().insert(PeerAddr(peer));
            if let Some(local) = local {
                req.extensions_mut().insert(LocalAddr(local));
            }
            if over_tls {
                req.extensions_mut().insert(OverTls);
            }
            async move {
                let resp = handle(app, req).await;
                Ok::<_, Infallible>(resp.map(|body| Tracked { body, _busy: busy }))
            }
        });
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(app.config.header_timeout)
            .max_buf_size(MAX_HEAD)
            .max_header_size(MAX_HEAD)
            .keep_alive(true);
        // Taken now, so that a shutdown waits for a connection still in its TLS handshake.
        let watcher = graceful.watcher();
        let handshake_timeout = app.config.tls_handshake_timeout;
        let mut stopping = stopping_rx.clone();
        crate::metrics::METRICS.connection_opened();
        tokio::spawn(async move {
            let conn = async move {
                let Some(acceptor) = acceptor else {
                    return serve_connection(http, stream, service, watcher).await;
                };
                // A client that connects and never finishes the handshake is closed.
                let handshake = tokio::time::timeout(handshake_timeout, acceptor.accept(stream));
                let shaken = tokio::select! {
                    h = handshake => h,
                    _ = stopping.wait_for(|s| *s) => return,
                };
                match shaken {
                    Ok(Ok(stream)) => serve_connection(http, stream, service, watcher).await,
                    Ok(Err(e)) => {
                        tracing::debug!(client = %peer, error = %e, "TLS handshake failed")
                    }
                    Err(_) => tracing::debug!(client = %peer, "TLS handshake timed out"),
                }
            };
            tokio::select! {
                _ = conn => {}
                _ = guard.conn.evict.notified() => {}
            }
            crate::metrics::METRICS.connection_closed();
            drop(guard);
            drop(permit);
        });
    }
    purge.abort();
    let _ = stopping.send(true);
    drop(plain);
    drop(tls);
    tracing::info!("shutting down: waiting for in-flight requests");
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(app.config.shutdown_timeout) => {
            tracing::warn!("in-flight requests did not finish in time; closing them");
        }
    }
}

/// Serves HTTP/1.1 on one connection (plain or TLS) until it closes or the server shuts down.
async fn serve_connection<I, S>(
    http: http1::Builder,
    io: I,
    service: S,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::HttpService<hyper::body::Incoming, ResBody = Tracked> + Send,
    S::Future: Send,
{
    let _ = watcher
        .watch(http.serve_connection(TokioIo::new(io), service))
        .await;
}

/// Routes one request and logs one line for it.
async fn handle(app: App, req: Req) -> Response<Body> {
    let start = Instant::now();
    // A cheap clone: a standard method is a tag.
    let method = req.method().clone();
    let client = req.extensions().get::<PeerAddr>().map(|p| p.0.ip());
    // The route's name, never the raw path: paths hold ids.
    let found = routes::find(&method, req.uri().path());
    let (route, dialect) = (found.name, found.dialect);
    let resp = without_panics(dialect, routes::dispatch(app, req, found)).await;
    let took = start.elapsed();
    let status = resp.status().as_u16();
    crate::metrics::METRICS.request(route, &method, status, took);
    let account = resp.extensions().get::<crate::http::CallerId>();
    tracing::info!(
        target: "profiled::request",
        %method,
        route = %route,
        status,
        micros = took.as_micros() as u64,
        client = client.map(tracing::field::display),
        account = account.map(|a| tracing::field::display(&a.0)),
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
