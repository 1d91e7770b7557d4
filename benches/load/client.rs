//! The load generator: one task per keep-alive HTTP/1.1 connection (hyper's client
//! connection API), each sending its next request as soon as the previous answer is read.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where requests go: the socket address, and what the `Host` header says.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
}

/// One request, built fresh for every send so each body can be unique.
pub struct Call {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
}

impl Call {
    pub fn get(path: impl Into<String>) -> Call {
        Call {
            method: Method::GET,
            path: path.into(),
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> Call {
        self.headers.push((
            name,
            HeaderValue::from_str(value).expect("bench header values are ASCII"),
        ));
        self
    }

    pub fn body(mut self, method: Method, content_type: &str, body: impl Into<Bytes>) -> Call {
        self.method = method;
        self.body = body.into();
        self.header(hyper::header::CONTENT_TYPE, content_type)
    }
}

/// Builds request number `seq` (unique across the whole bench run) for connection `conn`.
pub type Build = Arc<dyn Fn(usize, u64) -> Call + Send + Sync>;
/// Sees every expected answer's body (to collect the ids of created records).
pub type Sink = Arc<dyn Fn(usize, &Bytes) + Send + Sync>;

pub struct Workload {
    pub build: Build,
    /// The status that counts as success; anything else is an error.
    pub expect: u16,
    pub sink: Option<Sink>,
}

/// When a run ends.
#[derive(Clone, Copy)]
pub enum Stop {
    After(Duration),
    /// After this many requests in all (a load phase).
    Count(u64),
}

/// What a run measured. Latencies are of expected answers only, in microseconds, sorted.
#[derive(Default)]
pub struct Report {
    pub ok: u64,
    pub errors: u64,
    pub secs: f64,
    pub latencies_us: Vec<u32>,
    /// Body bytes of the expected answers.
    pub ok_body_bytes: u64,
    /// The first unexpected answer or transport error, to show why a scenario fails.
    pub first_error: Option<String>,
}

impl Report {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.secs.max(1e-9)
    }

    pub fn percentile_ms(&self, p: usize) -> Option<f64> {
        let v = &self.latencies_us;
        (!v.is_empty()).then(|| v[(v.len() * p / 100).min(v.len() - 1)] as f64 / 1000.0)
    }
}

/// A request without an answer by then counts as an error, and its connection is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A number unique within this bench process: request names and e-mails are built from it.
static SEQ: AtomicU64 = AtomicU64::new(0);

pub async fn connect(target: &Target) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = TcpStream::connect(target.addr)
        .await
        .map_err(|e| format!("connect {}: {e}", target.addr))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends one request on `sender`, returning the status and the whole body.
pub async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    target: &Target,
    call: Call,
) -> Result<(u16, Bytes), String> {
    sender
        .ready()
        .await
        .map_err(|e| format!("connection: {e}"))?;
    let mut req = Request::builder()
        .method(call.method)
        .uri(call.path)
        .header(hyper::header::HOST, target.host.as_str());
    for (name, value) in call.headers {
        req = req.header(name, value);
    }
    let req = req
        .body(Full::new(call.body))
        .expect("bench requests are well-formed");
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status().as_u16();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?
        .to_bytes();
    Ok((status, body))
}

/// One request on a fresh connection (logins, probes).
pub async fn once(target: &Target, call: Call) -> Result<(u16, Bytes), String> {
    let mut sender = connect(target).await?;
    send(&mut sender, target, call).await
}

/// Drives `work` over `connections` keep-alive connections until `stop`.
pub async fn run(target: &Target, connections: usize, stop: Stop, work: &Workload) -> Report {
    let start = Instant::now();
    let issued = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..connections)
        .map(|conn| {
            let target = target.clone();
            let issued = issued.clone();
            let build = work.build.clone();
            let sink = work.sink.clone();
            let expect = work.expect;
            tokio::spawn(async move {
                connection(conn, &target, stop, start, &issued, &build, sink, expect).await
            })
        })
        .collect();
    let mut report = Report::default();
    for t in tasks {
        let r = t.await.expect("a load task does not panic");
        report.ok += r.ok;
        report.errors += r.errors;
        report.ok_body_bytes += r.ok_body_bytes;
        report.latencies_us.extend(r.latencies_us);
        if report.first_error.is_none() {
            report.first_error = r.first_error;
        }
    }
    report.secs = start.elapsed().as_secs_f64();
    report.latencies_us.sort_unstable();
    report
}

#[allow(clippy::too_many_arguments)]
async fn connection(
    conn: usize,
    target: &Target,
    stop: Stop,
    start: Instant,
    issued: &AtomicU64,
    build: &Build,
    sink: Option<Sink>,
    expect: u16,
) -> Report {
    let mut r = Report::default();
    let mut sender = None;
    let note = |r: &mut Report, e: String| {
        r.errors += 1;
        if r.first_error.is_none() {
            r.first_error = Some(e);
        }
    };
    loop {
        let more = match stop {
            Stop::After(d) => start.elapsed() < d,
            Stop::Count(n) => issued.fetch_add(1, Ordering::Relaxed) < n,
        };
        if !more {
            break;
        }
        let s = match sender.as_mut() {
            Some(s) => s,
            None => match connect(target).await {
                Ok(s) => sender.insert(s),
                Err(e) => {
                    note(&mut r, e);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let call = build(conn, SEQ.fetch_add(1, Ordering::Relaxed));
        let t0 = Instant::now();
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, send(s, target, call))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {REQUEST_TIMEOUT:?}")));
        match answer {
            Ok((status, body)) if status == expect => {
                let us = t0.elapsed().as_micros().min(u32::MAX as u128) as u32;
                r.ok += 1;
                r.latencies_us.push(us);
                r.ok_body_bytes += body.len() as u64;
                if let Some(sink) = &sink {
                    sink(conn, &body);
                }
            }
            Ok((status, body)) => {
                let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
                note(&mut r, format!("{status} {text}"));
            }
            Err(e) => {
                note(&mut r, e);
                sender = None;
            }
        }
    }
    r
}
