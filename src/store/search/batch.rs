//! Queries share scans. While the scans run, new queries wait in a queue; the next scan takes
//! all of them and serves them in one pass over the index, reading each segment once for the
//! whole batch (its bytes stay in the CPU cache while every query of the batch searches it),
//! and a query asked several times in one batch runs once. A query never joins a scan that
//! started before it arrived, so it sees every write acknowledged before it was asked.

use std::sync::{Arc, MutexGuard};

use tokio::sync::oneshot;

use super::{Found, ProfileQuery, Search};
use crate::store::StoreError;

#[derive(Default)]
pub(super) struct Queue {
    waiting: Vec<(ProfileQuery, oneshot::Sender<Found>)>,
    /// Threads serving the queue; at most one per core.
    runners: usize,
}

/// Frees a runner's place if it stops by a panic (its batch then answers with an error).
struct Runner<'a> {
    search: &'a Search,
    done: bool,
}

impl Drop for Runner<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut queue = self.search.lock_queue();
            queue.runners -= 1;
            queue.waiting.clear();
        }
    }
}

impl Search {
    fn lock_queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a list request once the index is built, sharing the scan with those asked
    /// meanwhile.
    pub(crate) async fn search(self: &Arc<Self>, query: ProfileQuery) -> Result<Found, StoreError> {
        self.wait_ready().await?;
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queue = self.lock_queue();
            queue.waiting.push((query, tx));
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            let start = queue.runners < cores;
            if start {
                queue.runners += 1;
            }
            start
        };
        if start {
            let search = self.clone();
            // CPU-bound: off the async workers.
            tokio::task::spawn_blocking(move || search.serve_queue());
        }
        rx.await
            .map_err(|_| StoreError::Corrupt("the search stopped".into()))
    }

    fn serve_queue(&self) {
        let mut runner = Runner {
            search: self,
            done: false,
        };
        loop {
            let batch = {
                let mut queue = self.lock_queue();
                if queue.waiting.is_empty() {
                    // Under the lock: a query queued after this finds a free place.
                    queue.runners -= 1;
                    runner.done = true;
                    return;
                }
                std::mem::take(&mut queue.waiting)
            };
            let mut distinct: Vec<&ProfileQuery> = Vec::new();
            let mut which = Vec::with_capacity(batch.len());
            for (q, _) in &batch {
                match distinct.iter().position(|d| *d == q) {
                    Some(i) => which.push(i),
                    None => {
                        which.push(distinct.len());
                        distinct.push(q);
                    }
                }
            }
            let found = self.run_batch(&distinct);
            for ((_, tx), i) in batch.into_iter().zip(which) {
                let _ = tx.send(found[i].clone());
            }
        }
    }
}
