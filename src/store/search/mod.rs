//! An in-memory search index over client profiles, so that a list with a `query`, a filter or
//! another order than the name index's reads only the records of the page it answers.
//!
//! Each profile is a row (id, times, kind) plus its searchable text, lower-cased, in a byte
//! arena laid out so that one `memmem` pass finds every candidate (`text.rs`). Rows are split
//! into segments with a lock each: a writer waits for at most one segment's scan, never for a
//! whole query.
//!
//! A clean shutdown saves it and the next open loads it (`persist.rs`); otherwise it is built
//! from the records in a background thread (`build.rs`), and until it is ready queries wait
//! (`wait_ready`) while everything else is served at once. Writers keep it in step after each
//! successful store write (`refresh`, under the store's write gate), which re-reads the record
//! under the index's lock, so that two writers of one profile cannot leave the older version
//! indexed. Concurrent queries share scans (`batch.rs`).

mod batch;
mod build;
mod persist;
mod query;
mod text;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use super::engine::Value as IVec;
use tokio::sync::watch;
use uuid::Uuid;

use super::StoreError;
use super::profile_record::Fields;
pub(crate) use persist::FILE;
use query::{Compiled, TopK};
use text::{FREED, Meta};

const SEGMENT_ROWS: u32 = 1 << 16;
/// Length bit of a row that is a `Group`.
const GROUP_BIT: u32 = 1 << 31;

/// A field a list can be filtered or ordered by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProfileField {
    Id,
    Name,
    Notes,
    Tags,
    Type,
    SpaKeyName,
    IdentityProviderName,
    Hostname,
    Created,
    Updated,
    Exported,
}

/// A list request, as the store runs it. Strings match case-insensitively, as substrings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProfileQuery {
    /// Each must occur in the name, the notes, a tag, the identity provider or the host name.
    pub queries: Vec<String>,
    /// Each field must contain its value.
    pub filters: Vec<(ProfileField, String)>,
    /// Ties go by name.
    pub order: ProfileField,
    pub descending: bool,
    /// `(start, end)`, end exclusive; `None` for all.
    pub range: Option<(usize, usize)>,
}

/// What a query found: how many profiles match, and the ids of the requested range in order.
#[derive(Clone, Debug)]
pub struct Found {
    pub matched: usize,
    pub ids: Vec<Uuid>,
}

#[derive(Clone, Copy)]
struct Row {
    id: Uuid,
    start: u32,
    /// Length of the entry's bytes (0: a free row), with `GROUP_BIT`.
    len: u32,
    created: i64,
    updated: i64,
    /// `i64::MIN` when never exported (sorts first, as an absent value did).
    exported: i64,
}

const FREE_ROW: Row = Row {
    id: Uuid::nil(),
    start: 0,
    len: 0,
    created: 0,
    updated: 0,
    exported: 0,
};

impl Row {
    fn len(&self) -> usize {
        (self.len & !GROUP_BIT) as usize
    }
    fn live(&self) -> bool {
        self.len() > 0
    }
    fn span(&self) -> std::ops::Range<usize> {
        self.start as usize..self.start as usize + self.len()
    }
    fn kind_text(&self) -> &'static [u8] {
        if self.len & GROUP_BIT != 0 {
            b"group"
        } else {
            b"profile"
        }
    }
}

#[derive(Default)]
struct Segment {
    rows: Vec<Row>,
    arena: Vec<u8>,
    /// Bytes of `arena` that belong to no live row.
    garbage: usize,
}

impl Segment {
    fn free(&mut self, row: usize) {
        let r = self.rows[row];
        if r.live() {
            self.arena[r.span()].fill(FREED);
            self.garbage += r.len();
            self.rows[row] = FREE_ROW;
        }
    }

    fn put(&mut self, row: usize, body: &[u8], m: &Meta) {
        if row >= self.rows.len() {
            self.rows.resize(row + 1, FREE_ROW);
        }
        self.free(row);
        if self.garbage > 1 << 16 && self.garbage * 2 > self.arena.len() {
            self.compact();
        }
        let start = self.arena.len();
        self.arena.extend_from_slice(&text::header(row));
        self.arena.extend_from_slice(body);
        let len = (self.arena.len() - start) as u32;
        self.rows[row] = Row {
            id: m.id,
            start: start as u32,
            len: len | if m.group { GROUP_BIT } else { 0 },
            created: m.created,
            updated: m.updated,
            exported: m.exported.unwrap_or(i64::MIN),
        };
    }

    fn compact(&mut self) {
        let mut arena = Vec::with_capacity(self.arena.len() - self.garbage + 4096);
        for r in self.rows.iter_mut().filter(|r| r.live()) {
            let start = arena.len() as u32;
            arena.extend_from_slice(&self.arena[r.span()]);
            r.start = start;
        }
        self.arena = arena;
        self.garbage = 0;
    }
}

/// Where each indexed profile is, and which rows are free.
#[derive(Default)]
struct Rows {
    by_id: HashMap<Uuid, u32>,
    free: Vec<u32>,
    next: u32,
    /// While the initial build runs: the profiles writers touched, which the build leaves alone.
    touched: Option<HashSet<Uuid>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Building,
    Ready,
    Failed,
}

pub(crate) struct Search {
    queue: Mutex<batch::Queue>,
    rows: Mutex<Rows>,
    segments: RwLock<Vec<Arc<RwLock<Segment>>>>,
    state: watch::Sender<State>,
    cancel: AtomicBool,
}

impl Search {
    pub(crate) fn new() -> Search {
        Search {
            queue: Mutex::default(),
            rows: Mutex::new(Rows {
                touched: Some(HashSet::new()),
                ..Rows::default()
            }),
            segments: RwLock::new(Vec::new()),
            state: watch::channel(State::Building).0,
            cancel: AtomicBool::new(false),
        }
    }

    fn lock_rows(&self) -> MutexGuard<'_, Rows> {
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn segment(&self, n: usize) -> Arc<RwLock<Segment>> {
        if let Some(s) = self
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(n)
        {
            return s.clone();
        }
        let mut segs = self.segments.write().unwrap_or_else(|p| p.into_inner());
        while segs.len() <= n {
            segs.push(Arc::default());
        }
        segs[n].clone()
    }

    /// Puts a profile in the index, replacing what was there for its id.
    fn upsert(&self, rows: &mut Rows, m: &Meta, body: &[u8]) {
        let row = match rows.by_id.get(&m.id) {
            Some(&r) => r,
            None => {
                let r = rows.free.pop().unwrap_or_else(|| {
                    rows.next += 1;
                    rows.next - 1
                });
                rows.by_id.insert(m.id, r);
                r
            }
        };
        let seg = self.segment((row / SEGMENT_ROWS) as usize);
        let mut seg = seg.write().unwrap_or_else(|p| p.into_inner());
        seg.put((row % SEGMENT_ROWS) as usize, body, m);
    }

    fn remove(&self, rows: &mut Rows, id: &Uuid) {
        if let Some(row) = rows.by_id.remove(id) {
            let seg = self.segment((row / SEGMENT_ROWS) as usize);
            let mut seg = seg.write().unwrap_or_else(|p| p.into_inner());
            seg.free((row % SEGMENT_ROWS) as usize);
            rows.free.push(row);
        }
    }

    /// Brings the entry of `id` in line with the store after a write. `read` gets the record
    /// as it is now; `written` is what this writer stored, read instead when nothing changed.
    pub(crate) fn refresh(
        &self,
        id: &Uuid,
        read: impl FnOnce() -> Result<Option<IVec>, StoreError>,
        written: Option<&[u8]>,
    ) {
        let mut rows = self.lock_rows();
        if let Some(t) = rows.touched.as_mut() {
            t.insert(*id);
        }
        let current = match read() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, %id, "search index: cannot re-read a client profile");
                return;
            }
        };
        let Some(record) = current else {
            self.remove(&mut rows, id);
            return;
        };
        let record: &[u8] = match written {
            Some(w) if w == record.as_ref() => w,
            _ => &record,
        };
        match Fields::of_record(record) {
            Ok(f) => self.upsert(&mut rows, &Meta::of(&f), &text::body(&f)),
            Err(e) => {
                tracing::error!(error = %e, %id, "search index: unreadable client profile");
                self.remove(&mut rows, id);
            }
        }
    }

    /// Waits until the index is built.
    pub(crate) async fn wait_ready(&self) -> Result<(), StoreError> {
        let mut rx = self.state.subscribe();
        let state = *rx
            .wait_for(|s| *s != State::Building)
            .await
            .map_err(|_| StoreError::Unavailable)?;
        match state {
            State::Ready => Ok(()),
            _ => Err(StoreError::Corrupt(
                "the client-profile search index could not be built".into(),
            )),
        }
    }

    /// Runs list requests over the whole index, in one pass. CPU-bound: call it off the
    /// async workers.
    fn run_batch(&self, batch: &[&ProfileQuery]) -> Vec<Found> {
        let compiled: Vec<Compiled> = batch.iter().map(|q| Compiled::new(q)).collect();
        let mut tops: Vec<TopK> = batch
            .iter()
            .map(|q| TopK::new(q.range.map_or(usize::MAX, |(_, end)| end), q.descending))
            .collect();
        let mut matched = vec![0; batch.len()];
        let segments: Vec<_> = self
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for seg in segments {
            let seg = seg.read().unwrap_or_else(|p| p.into_inner());
            let rows = &seg.rows;
            for (i, q) in batch.iter().enumerate() {
                let (top, matched) = (&mut tops[i], &mut matched[i]);
                query::scan(&seg, &compiled[i], |n, entry| {
                    *matched += 1;
                    let key = query::key(q.order, || &rows[n], entry);
                    top.offer(key, text::name(entry), || rows[n].id);
                });
            }
        }
        tops.into_iter()
            .zip(batch)
            .zip(matched)
            .map(|((top, q), matched)| {
                let start = q.range.map_or(0, |(start, _)| start);
                let ids = top.finish().into_iter().skip(start).map(|c| c.id).collect();
                Found { matched, ids }
            })
            .collect()
    }

    /// Runs one list request over the whole index (CPU-bound).
    #[cfg(test)]
    fn run(&self, q: &ProfileQuery) -> Found {
        self.run_batch(&[q]).remove(0)
    }
}

#[cfg(test)]
mod tests;
