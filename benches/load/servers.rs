//! The servers the bench talks to: the minimal hyper baseline and profiled in-process, each on
//! its own runtime so the client's tasks do not share its workers, and profiled as a child
//! process for resident memory and restarts.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::Response;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;

use crate::client::{self, Call, Target};

/// A server running on its own runtime thread inside the bench process.
pub struct InProcess {
    pub target: Target,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl InProcess {
    pub fn start<F, Fut>(name: &str, serve: F) -> InProcess
    where
        F: FnOnce(TcpListener, oneshot::Receiver<()>) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        std_listener.set_nonblocking(true).expect("non-blocking");
        let addr = std_listener.local_addr().expect("local address");
        let (stop, stopped) = oneshot::channel();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .enable_all()
                    .build()
                    .expect("server runtime");
                rt.block_on(async move {
                    let listener = TcpListener::from_std(std_listener).expect("tokio listener");
                    serve(listener, stopped).await;
                });
            })
            .expect("server thread");
        InProcess {
            target: local(addr),
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Stops accepting, lets the server finish, and drops its runtime (and its connections).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn local(addr: SocketAddr) -> Target {
    Target {
        addr,
        host: addr.to_string(),
    }
}

/// The reference point: hyper answering a fixed small JSON body, nothing else.
pub fn baseline() -> InProcess {
    InProcess::start("baseline", |listener, stop| {
        accept_loop(listener, stop, |stream| async move {
            let service = service_fn(|_req| async {
                Ok::<_, Infallible>(
                    Response::builder()
                        .header(hyper::header::CONTENT_TYPE, "application/json")
                        .body(Full::new(Bytes::from_static(br#"{"ok":true}"#)))
                        .expect("a fixed response is valid"),
                )
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        })
    })
}

/// Accepts connections until `stop`, each served by its own task from `serve`.
pub async fn accept_loop<S, Fut>(listener: TcpListener, stop: oneshot::Receiver<()>, mut serve: S)
where
    S: FnMut(TcpStream) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    tokio::pin!(stop);
    loop {
        let stream = tokio::select! {
            _ = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream));
    }
}

/// profiled's own `serve` on a temporary data directory, as `main` would run it (without a
/// log subscriber: request logging is off, as it is for the child below).
pub fn profiled_in_process(data_dir: &Path, password: &str) -> InProcess {
    let mut config = profiled::Config::new(data_dir);
    config.admin_password = Some(password.into());
    InProcess::start("profiled", move |listener, stop| async move {
        let shutdown = async move {
            let _ = stop.await;
        };
        if let Err(e) = profiled::serve(config, listener, shutdown).await {
            eprintln!("profiled did not start: {e}");
        }
    })
}

/// The `profiled` binary as a child process.
pub struct Child {
    pub target: Target,
    pub spawned: Instant,
    proc: std::process::Child,
}

impl Child {
    /// Starts the binary on `data_dir`; its log (at `warn` unless `RUST_LOG` says otherwise)
    /// goes to `log`, so one line per request does not cost terminal output.
    pub fn spawn(data_dir: &Path, log: &Path, password: &str) -> Child {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("server log file");
        let proc = Command::new(env!("CARGO_BIN_EXE_profiled"))
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .env("PROFILED_ADMIN_PASSWORD", password)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("the profiled binary starts");
        Child {
            target: local(addr),
            spawned: Instant::now(),
            proc,
        }
    }

    /// Polls `GET /admin/version` until it answers 200; the time since the spawn.
    pub async fn wait_ready(&mut self, limit: Duration) -> Result<Duration, String> {
        loop {
            if let Ok(Some(status)) = self.proc.try_wait() {
                return Err(format!("profiled exited during start-up: {status}"));
            }
            if let Ok((200, _)) = client::once(&self.target, Call::get("/admin/version")).await {
                return Ok(self.spawned.elapsed());
            }
            if self.spawned.elapsed() > limit {
                return Err(format!("profiled did not answer within {limit:?}"));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// (VmRSS, VmHWM) in KiB: resident memory now and at its peak.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.proc.id())).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        };
        Some((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// SIGTERM (a graceful stop: in-flight requests finish, the store flushes) and wait.
    pub fn terminate(mut self) -> Result<Duration, String> {
        let t0 = Instant::now();
        let sent = Command::new("kill")
            .arg("-TERM")
            .arg(self.proc.id().to_string())
            .status()
            .map_err(|e| format!("kill: {e}"))?;
        if !sent.success() {
            return Err("kill -TERM failed".into());
        }
        let status = self.proc.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            return Err(format!("profiled exited with {status} after SIGTERM"));
        }
        Ok(t0.elapsed())
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Ok(None) = self.proc.try_wait() {
            let _ = self.proc.kill();
            let _ = self.proc.wait();
        }
    }
}

/// (allocated, apparent) bytes of every file under `dir`: what `du` and `du -b` would say.
pub fn disk_usage(dir: &Path) -> (u64, u64) {
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    let (mut allocated, mut apparent) = (0, 0);
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                allocated += m.blocks() * 512;
                apparent += m.len();
            }
        }
    }
    (allocated, apparent)
}
