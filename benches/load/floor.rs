//! The floor of a durable create on this stack: hyper, then exactly the writes profiled must
//! make (a compare-and-swap on a name index tree and one on the record tree of raw sled
//! 0.34.7, configured as profiled configures it), then the same group commit (one flusher
//! thread: `db.flush()` + `fdatasync` of `<dir>/db`, answering each round's batch). No
//! authentication, validation, JSON, search index or logging. Driven by scenario 1's own
//! requests, it shows how much of the baseline a durable create can reach here at all.

use std::convert::Infallible;
use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

use crate::servers::{InProcess, accept_loop};

#[derive(Default)]
struct Batch {
    waiters: Vec<oneshot::Sender<()>>,
    idle: bool,
    stop: bool,
}

struct Commit {
    batch: Mutex<Batch>,
    cv: Condvar,
}

impl Commit {
    fn start(db: sled::Db, file: File) -> Arc<Commit> {
        let commit = Arc::new(Commit {
            batch: Mutex::new(Batch::default()),
            cv: Condvar::new(),
        });
        let c = commit.clone();
        std::thread::Builder::new()
            .name("floor-commit".into())
            .spawn(move || {
                let mut taken = Vec::new();
                loop {
                    {
                        let mut b = c.batch.lock().expect("floor batch lock");
                        while b.waiters.is_empty() && !b.stop {
                            b.idle = true;
                            b = c.cv.wait(b).expect("floor batch lock");
                        }
                        b.idle = false;
                        if b.stop {
                            return;
                        }
                        std::mem::swap(&mut taken, &mut b.waiters);
                    }
                    db.flush().expect("floor: sled flush");
                    file.sync_data().expect("floor: fdatasync");
                    for w in taken.drain(..) {
                        let _ = w.send(());
                    }
                }
            })
            .expect("floor commit thread");
        commit
    }

    async fn wait(&self) {
        let (tx, rx) = oneshot::channel();
        let wake = {
            let mut b = self.batch.lock().expect("floor batch lock");
            b.waiters.push(tx);
            std::mem::take(&mut b.idle)
        };
        if wake {
            self.cv.notify_one();
        }
        let _ = rx.await;
    }

    fn stop(&self) {
        self.batch.lock().expect("floor batch lock").stop = true;
        self.cv.notify_one();
    }
}

/// The value of the first `"name":"…"` in a create body (the bench's names need no escapes).
fn name_of(body: &[u8]) -> Option<&[u8]> {
    let key = br#""name":""#;
    let start = body.windows(key.len()).position(|w| w == key)? + key.len();
    let len = body[start..].iter().position(|&b| b == b'"')?;
    Some(&body[start..start + len])
}

async fn create(
    req: Request<hyper::body::Incoming>,
    records: &sled::Tree,
    names: &sled::Tree,
    commit: &Commit,
) -> Response<Full<Bytes>> {
    let answer = |status: StatusCode, body: Bytes| {
        Response::builder()
            .status(status)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .expect("a floor response is valid")
    };
    let Ok(body) = req.into_body().collect().await.map(|b| b.to_bytes()) else {
        return answer(StatusCode::BAD_REQUEST, Bytes::new());
    };
    let Some(name) = name_of(&body).map(|n| n.to_ascii_lowercase()) else {
        return answer(StatusCode::BAD_REQUEST, Bytes::new());
    };
    let id = profiled::ids::new_v7();
    let id = id.as_bytes().as_slice();
    match names.compare_and_swap(&name, None as Option<&[u8]>, Some(id)) {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return answer(StatusCode::CONFLICT, Bytes::new()),
        Err(_) => return answer(StatusCode::INTERNAL_SERVER_ERROR, Bytes::new()),
    }
    if !matches!(
        records.compare_and_swap(id, None as Option<&[u8]>, Some(&body[..])),
        Ok(Ok(()))
    ) {
        let _ = names.compare_and_swap(&name, Some(id), None as Option<&[u8]>);
        return answer(StatusCode::INTERNAL_SERVER_ERROR, Bytes::new());
    }
    commit.wait().await;
    answer(StatusCode::OK, body)
}

/// Starts the floor server on a fresh sled database in `dir`.
pub fn start(dir: &Path) -> InProcess {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(128 * 1024 * 1024)
        .segment_size(2 * 1024 * 1024)
        .open()
        .expect("floor: open sled");
    let records = db.open_tree("records").expect("floor: records tree");
    let names = db.open_tree("names").expect("floor: names tree");
    let file = File::open(dir.join("db")).expect("floor: open <dir>/db");
    let commit = Commit::start(db, file);
    InProcess::start("floor", move |listener, stop| async move {
        let serving = commit.clone();
        accept_loop(listener, stop, move |stream| {
            let (records, names, commit) = (records.clone(), names.clone(), serving.clone());
            async move {
                let service = service_fn(move |req| {
                    let (records, names, commit) = (records.clone(), names.clone(), commit.clone());
                    async move { Ok::<_, Infallible>(create(req, &records, &names, &commit).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            }
        })
        .await;
        commit.stop();
    })
}
