//! Group commit: writers apply their changes to the engine, join the batch of the next round,
//! and wait until that round's durable commit (`engine::Db::flush`: for sled, its flush and an
//! `fdatasync` of the database file) is done.
//!
//! A round takes the whole batch at its start and answers exactly those writers when it ends:
//! a writer joins only after its writes are applied, so the flush that starts afterwards covers
//! them. Writers that arrive during a round wait for the next one, which starts as soon as the
//! current one ends; nobody is woken before their own round is done.
//!
//! Rounds are numbered and run one at a time: the number goes into sled before the flush and
//! into the commit record beside it after the fdatasync (see `manifest`), so that a database
//! sled recovered without its last commits is recognised at the next open.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use tokio::sync::oneshot;

use super::{StoreError, engine};

/// One durability round, given its number: the engine's durable commit, and the commit
/// record (replaceable in unit tests).
type Sync = Box<dyn Fn(u64) -> Result<(), StoreError> + Send + std::marker::Sync>;

/// Told `true` once the writer's round is durable, `false` when it failed.
type Waiter = oneshot::Sender<bool>;

#[derive(Default)]
struct State {
    /// Writers whose writes the next round covers.
    batch: Vec<Waiter>,
    /// The flusher sleeps on the condition variable: a writer has to wake it. While it is busy
    /// a writer only joins the batch, which saves a futex call per write.
    idle: bool,
    stop: bool,
}

struct Shared {
    state: Mutex<State>,
    cv: Condvar,
    /// A flush or sync failed. Linux does not keep fsync errors sticky, so a retry that
    /// "succeeds" proves nothing: from here on no write is acknowledged.
    failed: AtomicBool,
    sync: Sync,
    /// The number of the last round started; rounds are serialised by `round_lock`, so that
    /// their numbers reach sled and the commit record in order.
    seq: AtomicU64,
    round_lock: Mutex<()>,
    rounds: AtomicU64,
    writes: AtomicU64,
}

/// How much the group commit grouped: writes acknowledged and the rounds that covered them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub rounds: u64,
    pub writes: u64,
}

pub(super) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    /// Starts the flusher. Round numbers continue after `last_seq`; each round runs
    /// `before(n)` (which must write the number into the database), the engine's durable
    /// commit, then `after(n)` (the commit record), before any writer is answered.
    pub(super) fn start(
        db: &engine::Db,
        last_seq: u64,
        before: impl Fn(u64) -> Result<(), StoreError> + Send + std::marker::Sync + 'static,
        after: impl Fn(u64) -> Result<(), StoreError> + Send + std::marker::Sync + 'static,
    ) -> std::io::Result<GroupCommit> {
        let db = db.clone();
        Self::with_sync(
            Box::new(move |n| {
                before(n)?;
                db.flush()?;
                after(n)
            }),
            last_seq,
        )
    }

    fn with_sync(sync: Sync, last_seq: u64) -> std::io::Result<GroupCommit> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            cv: Condvar::new(),
            failed: AtomicBool::new(false),
            sync,
            seq: AtomicU64::new(last_seq),
            round_lock: Mutex::new(()),
            rounds: AtomicU64::new(0),
            writes: AtomicU64::new(0),
        });
        let worker = shared.clone();
        let thread = std::thread::Builder::new()
            .name("group-commit".into())
            .spawn(move || worker.run())?;
        Ok(GroupCommit {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Puts the group commit in the state a failed flush leaves (every write refused until a
    /// restart), without a failing disk: for tests of what clients and operators then see.
    pub(super) fn refuse_writes(&self) {
        self.shared.failed.store(true, Ordering::Release);
    }

    pub(super) fn check(&self) -> Result<(), StoreError> {
        if self.shared.failed.load(Ordering::Acquire) {
            Err(StoreError::Unavailable)
        } else {
            Ok(())
        }
    }

    /// Joins the next round with the writes already applied and waits until it is durable.
    pub(super) async fn wait(&self) -> Result<(), StoreError> {
        let (tx, rx) = oneshot::channel();
        let wake = {
            let mut state = self.shared.lock();
            self.check()?;
            state.batch.push(tx);
            std::mem::take(&mut state.idle)
        };
        if wake {
            self.shared.cv.notify_one();
        }
        match rx.await {
            Ok(true) => Ok(()),
            _ => Err(StoreError::Unavailable),
        }
    }

    /// Flushes on the caller's thread (start-up, shutdown, offline commands).
    pub(super) fn flush_now(&self) -> Result<(), StoreError> {
        self.check()?;
        self.shared.round()
    }

    /// The number of the last round started (after `flush_now`: the last one completed).
    pub(super) fn last_seq(&self) -> u64 {
        self.shared.seq.load(Ordering::Acquire)
    }

    pub(super) fn stats(&self) -> CommitStats {
        CommitStats {
            rounds: self.shared.rounds.load(Ordering::Relaxed),
            writes: self.shared.writes.load(Ordering::Relaxed),
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn run(&self) {
        // Two vectors swap roles, so batches reuse their allocation.
        let mut batch = Vec::new();
        loop {
            {
                let mut state = self.lock();
                while state.batch.is_empty() && !state.stop {
                    state.idle = true;
                    state = self.cv.wait(state).unwrap_or_else(|p| p.into_inner());
                }
                state.idle = false;
                if state.batch.is_empty() {
                    return;
                }
                std::mem::swap(&mut batch, &mut state.batch);
            }
            let started = std::time::Instant::now();
            let durable = !self.failed.load(Ordering::Acquire) && self.round().is_ok();
            if durable {
                crate::metrics::METRICS.commit_round(batch.len(), started.elapsed());
                self.rounds.fetch_add(1, Ordering::Relaxed);
                self.writes.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
            for waiter in batch.drain(..) {
                // A writer whose client went away no longer listens; nothing to do.
                let _ = waiter.send(durable);
            }
        }
    }

    /// One flush + fdatasync covering every write applied before it started.
    fn round(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.round_lock.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.seq.fetch_add(1, Ordering::AcqRel) + 1;
        match (self.sync)(n) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "FLUSH FAILED: the database can no longer guarantee durability; every write is refused (503) until profiled is restarted and the disk is checked"
                );
                // Writers already in a batch are answered `false` by the flusher, which does
                // not sync again; later ones are refused by `check`.
                self.failed.store(true, Ordering::Release);
                Err(StoreError::Unavailable)
            }
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        {
            let mut state = self.shared.lock();
            state.stop = true;
        }
        self.shared.cv.notify_one();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
        let CommitStats { rounds, writes } = self.stats();
        if rounds > 0 {
            tracing::info!(
                rounds,
                writes,
                per_round = format_args!("{:.1}", writes as f64 / rounds as f64),
                "group commit"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    #[tokio::test]
    async fn concurrent_waiters_share_rounds_and_all_return_once_durable() {
        let rounds = Arc::new(AtomicU64::new(0));
        let counter = rounds.clone();
        let gc = Arc::new(
            GroupCommit::with_sync(
                Box::new(move |_| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    Ok(())
                }),
                0,
            )
            .unwrap(),
        );
        let waiters: Vec<_> = (0..64)
            .map(|_| {
                let gc = gc.clone();
                tokio::spawn(async move { gc.wait().await })
            })
            .collect();
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        // 64 writers, far fewer syncs: they were grouped.
        let n = rounds.load(Ordering::SeqCst);
        assert!((1..64).contains(&n), "{n} rounds");
        let stats = gc.stats();
        assert_eq!(stats.writes, 64);
        assert_eq!(stats.rounds, n);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_writer_that_joins_during_a_round_waits_for_the_next_one() {
        let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let release_rx = Mutex::new(release_rx);
        let gc = Arc::new(
            GroupCommit::with_sync(
                Box::new(move |_| {
                    started_tx.send(()).unwrap();
                    release_rx.lock().unwrap().recv().unwrap();
                    Ok(())
                }),
                0,
            )
            .unwrap(),
        );
        let wait = |gc: &Arc<GroupCommit>| {
            let gc = gc.clone();
            tokio::spawn(async move { gc.wait().await })
        };
        let first = wait(&gc);
        started.recv().await.unwrap();
        // Round 1 is under way: this writer's changes may have missed its flush.
        let second = wait(&gc);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        release.send(()).unwrap();
        first.await.unwrap().unwrap();
        started.recv().await.unwrap();
        assert!(
            !second.is_finished(),
            "answered by a round that began before it"
        );
        release.send(()).unwrap();
        second.await.unwrap().unwrap();
        assert_eq!(
            gc.stats(),
            CommitStats {
                rounds: 2,
                writes: 2
            }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rounds_are_numbered_in_order_after_the_last_one_recorded() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let gc = Arc::new(
            GroupCommit::with_sync(
                Box::new(move |n| {
                    log.lock().unwrap().push(n);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                    Ok(())
                }),
                41,
            )
            .unwrap(),
        );
        let waiters: Vec<_> = (0..32)
            .map(|_| {
                let gc = gc.clone();
                tokio::spawn(async move { gc.wait().await })
            })
            .collect();
        // Rounds on the caller's thread run one at a time with the flusher's.
        let direct = {
            let gc = gc.clone();
            std::thread::spawn(move || (0..5).try_for_each(|_| gc.flush_now()))
        };
        for w in waiters {
            w.await.unwrap().unwrap();
        }
        direct.join().unwrap().unwrap();
        let seen = seen.lock().unwrap().clone();
        let expected: Vec<u64> = (42..42 + seen.len() as u64).collect();
        assert_eq!(seen, expected);
        assert_eq!(gc.last_seq(), *expected.last().unwrap());
    }

    #[tokio::test]
    async fn a_failed_sync_refuses_every_later_write() {
        let fail = Arc::new(AtomicBool::new(false));
        let flag = fail.clone();
        let gc = GroupCommit::with_sync(
            Box::new(move |_| {
                if flag.load(Ordering::SeqCst) {
                    Err(StoreError::Io(std::io::Error::other("disk on fire")))
                } else {
                    Ok(())
                }
            }),
            0,
        )
        .unwrap();
        gc.wait().await.unwrap();
        gc.check().unwrap();
        fail.store(true, Ordering::SeqCst);
        assert!(matches!(gc.wait().await, Err(StoreError::Unavailable)));
        // Even once the disk "recovers", nothing is acknowledged again: fsync errors are not
        // sticky on Linux, so a later success proves nothing about earlier writes.
        fail.store(false, Ordering::SeqCst);
        assert!(matches!(gc.check(), Err(StoreError::Unavailable)));
        assert!(matches!(gc.wait().await, Err(StoreError::Unavailable)));
        assert!(matches!(gc.flush_now(), Err(StoreError::Unavailable)));
    }
}
