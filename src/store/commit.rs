//! Group commit: writers apply their changes to sled, take a ticket, and wait until one shared
//! flush covers it. sled's `flush()` uses `sync_file_range` on Linux, which leaves the disk's
//! write cache and metadata alone, so each round also `fdatasync`s the database file.
//! `flush_async` is not used: it can deadlock in 0.34.7.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use tokio::sync::watch;

use super::StoreError;

#[derive(Clone, Copy, Debug, Default)]
struct Durable {
    /// Every ticket up to and including this one is on disk.
    upto: u64,
    /// A flush or sync failed. Linux does not keep fsync errors sticky, so a retry that
    /// "succeeds" proves nothing: from here on no write is acknowledged.
    failed: bool,
}

#[derive(Default)]
struct Wake {
    pending: bool,
    stop: bool,
}

/// One durability round: sled's flush plus an fdatasync (replaceable in unit tests).
type Sync = Box<dyn Fn() -> Result<(), StoreError> + Send + std::marker::Sync>;

struct Shared {
    tickets: AtomicU64,
    wake: Mutex<Wake>,
    cv: Condvar,
    durable: watch::Sender<Durable>,
    sync: Sync,
}

pub(super) struct GroupCommit {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl GroupCommit {
    pub(super) fn start(db: &sled::Db, dir: &Path) -> std::io::Result<GroupCommit> {
        let file = File::open(dir.join("db"))?;
        let db = db.clone();
        Self::with_sync(Box::new(move || {
            db.flush()?;
            file.sync_data()?;
            Ok(())
        }))
    }

    fn with_sync(sync: Sync) -> std::io::Result<GroupCommit> {
        let (durable, _) = watch::channel(Durable::default());
        let shared = Arc::new(Shared {
            tickets: AtomicU64::new(0),
            wake: Mutex::new(Wake::default()),
            cv: Condvar::new(),
            durable,
            sync,
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

    pub(super) fn check(&self) -> Result<(), StoreError> {
        if self.shared.durable.borrow().failed {
            Err(StoreError::Unavailable)
        } else {
            Ok(())
        }
    }

    /// Takes a ticket for the writes already applied and waits until they are durable.
    pub(super) async fn wait(&self) -> Result<(), StoreError> {
        let mut rx = self.shared.durable.subscribe();
        // The ticket is taken after the caller's writes, so any flush that starts after this
        // increment includes them.
        let ticket = self.shared.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        {
            let mut wake = self.shared.wake.lock().unwrap_or_else(|p| p.into_inner());
            wake.pending = true;
        }
        self.shared.cv.notify_one();
        let state = rx
            .wait_for(|d| d.failed || d.upto >= ticket)
            .await
            .map(|d| *d)
            .map_err(|_| StoreError::Unavailable)?;
        if state.upto >= ticket {
            Ok(())
        } else {
            Err(StoreError::Unavailable)
        }
    }

    /// Flushes on the caller's thread (start-up, shutdown, offline commands).
    pub(super) fn flush_now(&self) -> Result<(), StoreError> {
        self.check()?;
        let target = self.shared.tickets.load(Ordering::SeqCst);
        self.shared.round(target)
    }
}

impl Shared {
    fn run(&self) {
        loop {
            {
                let mut wake = self.wake.lock().unwrap_or_else(|p| p.into_inner());
                while !wake.pending && !wake.stop {
                    wake = self.cv.wait(wake).unwrap_or_else(|p| p.into_inner());
                }
                if wake.stop && !wake.pending {
                    return;
                }
                wake.pending = false;
            }
            if self.durable.borrow().failed {
                continue;
            }
            let target = self.tickets.load(Ordering::SeqCst);
            if target <= self.durable.borrow().upto {
                continue;
            }
            let _ = self.round(target);
        }
    }

    /// One flush + fdatasync covering every ticket up to `target`.
    fn round(&self, target: u64) -> Result<(), StoreError> {
        match (self.sync)() {
            Ok(()) => {
                self.durable.send_modify(|d| d.upto = d.upto.max(target));
                Ok(())
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "FLUSH FAILED: the database can no longer guarantee durability; every write is refused (503) until profiled is restarted and the disk is checked"
                );
                self.durable.send_modify(|d| d.failed = true);
                Err(StoreError::Unavailable)
            }
        }
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        {
            let mut wake = self.shared.wake.lock().unwrap_or_else(|p| p.into_inner());
            wake.stop = true;
        }
        self.shared.cv.notify_one();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
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
            GroupCommit::with_sync(Box::new(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(5));
                Ok(())
            }))
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
    }

    #[tokio::test]
    async fn a_failed_sync_refuses_every_later_write() {
        let fail = Arc::new(AtomicBool::new(false));
        let flag = fail.clone();
        let gc = GroupCommit::with_sync(Box::new(move || {
            if flag.load(Ordering::SeqCst) {
                Err(StoreError::Io(std::io::Error::other("disk on fire")))
            } else {
                Ok(())
            }
        }))
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
