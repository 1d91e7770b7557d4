//! Building the index from the records, once, in its own thread after an unclean start (a
//! clean one loads what the shutdown saved). Writers run meanwhile: what they touch, the build
//! leaves to them.

use std::sync::atomic::Ordering;

use super::super::profile_record::Fields;
use super::text::{self, Meta};
use uuid::Uuid;

use super::{Row, Search, State};

impl Search {
    /// Fills the index from every record; runs once, in its own thread, after start-up.
    pub(crate) fn build(&self, records: &super::super::engine::Tree) {
        let started = std::time::Instant::now();
        let mut batch: Vec<(Meta, Vec<u8>)> = Vec::with_capacity(1024);
        let mut loaded = 0;
        for item in records.iter() {
            if self.cancel.load(Ordering::Relaxed) {
                return;
            }
            let record = match item {
                Ok((_, v)) => v,
                Err(e) => {
                    tracing::error!(error = %e, "search index: cannot read the client profiles");
                    self.state.send_replace(State::Failed);
                    return;
                }
            };
            match Fields::of_record(&record) {
                Ok(f) => batch.push((Meta::of(&f), text::body(&f))),
                Err(e) => {
                    tracing::error!(error = %e, "search index: unreadable client profile left out")
                }
            }
            if batch.len() == batch.capacity() {
                loaded += self.add_batch(&mut batch);
            }
        }
        loaded += self.add_batch(&mut batch);
        self.lock_rows().touched = None;
        self.state.send_replace(State::Ready);
        tracing::info!(
            profiles = loaded,
            millis = started.elapsed().as_millis() as u64,
            bytes = self.footprint(),
            "search index ready"
        );
    }

    fn add_batch(&self, batch: &mut Vec<(Meta, Vec<u8>)>) -> usize {
        let mut rows = self.lock_rows();
        let mut n = 0;
        for (m, body) in batch.drain(..) {
            // A writer got there first and indexed what is current.
            let touched = rows.touched.as_ref().is_some_and(|t| t.contains(&m.id));
            if !touched && !rows.by_id.contains_key(&m.id) {
                self.upsert(&mut rows, &m, &body);
                n += 1;
            }
        }
        n
    }

    /// Stops a build that is still running (the store is being closed).
    pub(crate) fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Bytes the index holds (rows, text and the id map), for the logs.
    pub(crate) fn footprint(&self) -> usize {
        let rows = self.lock_rows();
        let map = rows.by_id.capacity() * (std::mem::size_of::<(Uuid, u32)>() + 1);
        let segs = self.segments.read().unwrap_or_else(|p| p.into_inner());
        map + segs
            .iter()
            .map(|s| {
                let s = s.read().unwrap_or_else(|p| p.into_inner());
                s.rows.capacity() * std::mem::size_of::<Row>() + s.arena.capacity()
            })
            .sum::<usize>()
    }
}
