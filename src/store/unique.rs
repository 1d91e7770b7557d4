//! Records with one unique secondary key (client profiles by name, accounts by email).
//!
//! Two trees: `records` maps id → record, `index` maps key → id. Uniqueness is enforced with
//! lock-free compare-and-swap reservations (the engine's one-key primitive) instead of sled's
//! multi-tree transactions, which
//! take a process-wide write lock and measured three times slower under concurrent load
//! (see `benches/uniqueness.rs`). The order of steps is chosen so that a crash can only leave
//! *extra* index entries behind, for writes that were never acknowledged:
//!
//! - insert: reserve key → CAS record None → Some;
//! - update: reserve the new key → CAS record old → new → release the old key;
//! - remove: CAS record old → None → release the key.
//!
//! `repair` removes such leftovers at start-up: an index entry whose record is missing or now
//! carries another key.
//!
//! On an engine with multi-key writes (etcd, `atomic`), each of these is one conditional write
//! instead: the record and its index keys change together, guarded by "the record is still
//! what was read" and "the new key is free", so nothing is ever left over and two writers on
//! two nodes racing for one key cannot both win.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

use super::engine::{Check, Db, Tree, Value as IVec, Write};

use super::StoreError;
use super::record_cache::{Lookup, RecordCache};

/// What `repair` (and the offline check) found and fixed.
#[derive(Debug, Default)]
pub struct RepairReport {
    /// Leftover index entries that were removed (tree, key).
    pub removed: Vec<String>,
    /// Index entries that were missing for an existing record and were added back.
    pub restored: Vec<String>,
    /// Problems that cannot be repaired safely (two records claim one key, unreadable records).
    pub unrepairable: Vec<String>,
}

impl RepairReport {
    pub fn is_clean(&self) -> bool {
        self.removed.is_empty() && self.restored.is_empty() && self.unrepairable.is_empty()
    }
}

/// The most conditions, and the most writes, that one of a table's conditional writes carries:
/// a rename checks that the record is still what was read and that the new key is free, and
/// writes the record, removes the old key and adds the new one. etcd refuses a transaction
/// with more conditions, or more writes, than its `--max-txn-ops` (128 by default): far
/// above. The etcd engine's own transactions (compare-and-swap, ids) carry one of each.
pub(crate) const MOST_TXN_OPS: usize = 3;

/// Reads a record's index key (`None`: the record cannot be read).
pub(crate) type KeyOf = fn(&[u8]) -> Option<Vec<u8>>;

/// Outcome of a conditional update: the caller re-reads and retries on `Changed`.
pub(crate) enum Swap {
    Done,
    Changed,
}

/// Held shared by every multi-step write and exclusively by a backup snapshot, so that a
/// snapshot never sees half of a write (a record renamed but not yet moved in the index), and
/// by a clean shutdown, which sets it to `true` ("closed": no multi-step write starts again).
pub(crate) type Gate = Arc<RwLock<bool>>;

/// Told of each successful write: the record's id and what it is now (`None`: removed).
pub(crate) type OnWrite = Box<dyn Fn(&[u8], Option<&[u8]>) + Send + Sync>;

pub(crate) struct UniqueTable {
    pub(crate) records: Tree,
    pub(crate) index: Tree,
    gate: Gate,
    /// Runs while the gate is still held, so that a clean shutdown (which closes the gate)
    /// sees every write's consequences complete.
    on_write: Option<OnWrite>,
    /// The number of records, where a table keeps it: changed under the gate, so that a clean
    /// shutdown reads a count that matches the records exactly.
    count: Option<AtomicU64>,
    /// Recently read records, for `get_cached` (see `record_cache`).
    cache: Option<RecordCache>,
    /// The database, when its engine writes several keys in one step.
    atomic: Option<Db>,
}

impl UniqueTable {
    pub(crate) fn new(records: Tree, index: Tree, gate: Gate) -> Self {
        UniqueTable {
            records,
            index,
            gate,
            on_write: None,
            count: None,
            cache: None,
            atomic: None,
        }
    }

    /// The same, writing each record and its index keys in one conditional write when the
    /// engine can (see the module's documentation).
    pub(crate) fn atomic(mut self, db: &Db) -> Self {
        self.atomic = Some(db.clone());
        self
    }

    /// One conditional write, when the engine has them (`None`: it has not).
    fn transact(
        &self,
        checks: &[Check<'_>],
        writes: &[Write<'_>],
    ) -> Result<Option<bool>, StoreError> {
        debug_assert!(checks.len() <= MOST_TXN_OPS && writes.len() <= MOST_TXN_OPS);
        match &self.atomic {
            Some(db) => Ok(db.transact(checks, writes)?),
            None => Ok(None),
        }
    }

    fn check_of<'a>(tree: &'a Tree, key: &'a [u8], holds: Option<&'a [u8]>) -> Check<'a> {
        Check { tree, key, holds }
    }

    fn write_of<'a>(tree: &'a Tree, key: &'a [u8], value: Option<&'a [u8]>) -> Write<'a> {
        Write { tree, key, value }
    }

    /// The same, keeping a live count of the records (start it with `set_count`).
    pub(crate) fn counted(records: Tree, index: Tree, gate: Gate) -> Self {
        UniqueTable {
            count: Some(AtomicU64::new(0)),
            ..Self::new(records, index, gate)
        }
    }

    /// The same, telling `on_write` of every write.
    pub(crate) fn watched(mut self, on_write: OnWrite) -> Self {
        self.on_write = Some(on_write);
        self
    }

    /// The same, keeping up to `capacity` recently read records in memory for `get_cached`.
    pub(crate) fn cached(mut self, capacity: usize) -> Self {
        self.cache = Some(RecordCache::new(capacity));
        self
    }

    /// The same without a record cache (when other processes write too, it could go stale).
    pub(crate) fn uncached(mut self) -> Self {
        self.cache = None;
        self
    }

    /// Every successful write ends here while the record is already in sled and before the
    /// write is acknowledged: the cache forgets the id, then `on_write` runs.
    fn wrote(&self, id: &[u8], now: Option<&[u8]>) {
        if let Some(c) = &self.cache {
            c.invalidate(id);
        }
        if let Some(f) = &self.on_write {
            f(id, now);
        }
    }

    pub(crate) fn count(&self) -> u64 {
        // Other nodes add and remove records too: only the database knows the number.
        if self.count.is_some() && self.atomic.as_ref().is_some_and(|d| d.shared()) {
            return self.records.len() as u64;
        }
        self.count.as_ref().map_or(0, |c| c.load(Ordering::SeqCst))
    }

    pub(crate) fn set_count(&self, n: u64) {
        if let Some(c) = &self.count {
            c.store(n, Ordering::SeqCst);
        }
    }

    fn add(&self, delta: i64) {
        if let Some(c) = &self.count {
            if delta >= 0 {
                c.fetch_add(delta as u64, Ordering::SeqCst);
            } else {
                c.fetch_sub(delta.unsigned_abs(), Ordering::SeqCst);
            }
        }
    }

    fn enter(&self) -> Result<RwLockReadGuard<'_, bool>, StoreError> {
        let gate = self.gate.read().unwrap_or_else(|p| p.into_inner());
        if *gate {
            // The store was closed cleanly: its count is on disk already.
            return Err(StoreError::Unavailable);
        }
        Ok(gate)
    }

    fn reserve(&self, key: &[u8], id: &[u8]) -> Result<bool, StoreError> {
        match self
            .index
            .compare_and_swap(key, None as Option<&[u8]>, Some(id))?
        {
            Ok(()) => Ok(true),
            Err(cur) if cur.current.as_deref() == Some(id) => Ok(false),
            Err(_) => Err(StoreError::KeyTaken),
        }
    }

    fn release(&self, key: &[u8], id: &[u8]) -> Result<(), StoreError> {
        // Only removes the entry if it is still ours; someone else's is left alone.
        let _ = self
            .index
            .compare_and_swap(key, Some(id), None as Option<&[u8]>)?;
        Ok(())
    }

    /// The record as sled has it now. Writers compare against this, never the cache.
    pub(crate) fn get(&self, id: &[u8]) -> Result<Option<IVec>, StoreError> {
        Ok(self.records.get(id)?)
    }

    /// Whether a record and its index keys are always written together (`atomic`): every
    /// index entry then names a record that carries its key, with no reservation in flight.
    pub(crate) fn is_atomic(&self) -> bool {
        self.atomic.is_some()
    }

    /// The records with these ids, for reads that only show them, in few round trips.
    pub(crate) fn get_many(&self, ids: &[&[u8]]) -> Result<Vec<Option<IVec>>, StoreError> {
        Ok(self.records.get_many(ids)?)
    }

    /// The record for reads that only show it (lists, GET): from the cache when it is there.
    pub(crate) fn get_cached(&self, id: &[u8]) -> Result<Option<IVec>, StoreError> {
        let Some(cache) = &self.cache else {
            return self.get(id);
        };
        match cache.lookup(id) {
            Lookup::Hit(record) => Ok(Some(record)),
            Lookup::Miss(stamp) => {
                let record = self.records.get(id)?;
                if let Some(r) = &record {
                    cache.fill(id, r, stamp);
                }
                Ok(record)
            }
        }
    }

    /// The id that holds `key`, if any.
    pub(crate) fn lookup(&self, key: &[u8]) -> Result<Option<IVec>, StoreError> {
        Ok(self.index.get(key)?)
    }

    pub(crate) fn insert(&self, id: &[u8], key: &[u8], record: Vec<u8>) -> Result<(), StoreError> {
        let _gate = self.enter()?;
        let (r, i) = (&self.records, &self.index);
        match self.transact(
            &[Self::check_of(r, id, None), Self::check_of(i, key, None)],
            &[
                Self::write_of(r, id, Some(record.as_slice())),
                Self::write_of(i, key, Some(id)),
            ],
        )? {
            Some(true) => {
                self.add(1);
                self.wrote(id, Some(&record));
                return Ok(());
            }
            Some(false) if self.records.contains_key(id)? => return Err(StoreError::IdTaken),
            Some(false) => return Err(StoreError::KeyTaken),
            None => {}
        }
        if self.records.contains_key(id)? {
            return Err(StoreError::IdTaken);
        }
        let fresh = self.reserve(key, id)?;
        match self
            .records
            .compare_and_swap(id, None as Option<&[u8]>, Some(record.as_slice()))?
        {
            Ok(()) => {
                self.add(1);
                self.wrote(id, Some(&record));
                Ok(())
            }
            Err(_) => {
                if fresh {
                    self.release(key, id)?;
                }
                Err(StoreError::IdTaken)
            }
        }
    }

    /// Replaces `old` by `new` for `id`, moving the index entry from `old_key` to `new_key`.
    pub(crate) fn update(
        &self,
        id: &[u8],
        old: &IVec,
        old_key: &[u8],
        new_key: &[u8],
        new: Vec<u8>,
    ) -> Result<Swap, StoreError> {
        let _gate = self.enter()?;
        let moved = old_key != new_key;
        if self.atomic.is_some() {
            let (r, i) = (&self.records, &self.index);
            let mut checks = vec![Self::check_of(r, id, Some(&old[..]))];
            let mut writes = vec![Self::write_of(r, id, Some(new.as_slice()))];
            if moved {
                checks.push(Self::check_of(i, new_key, None));
                writes.push(Self::write_of(i, old_key, None));
                writes.push(Self::write_of(i, new_key, Some(id)));
            }
            return match self.transact(&checks, &writes)? {
                Some(true) => {
                    self.wrote(id, Some(&new));
                    Ok(Swap::Done)
                }
                Some(false) if self.records.get(id)?.as_ref() != Some(old) => Ok(Swap::Changed),
                _ => Err(StoreError::KeyTaken),
            };
        }
        let fresh = moved && self.reserve(new_key, id)?;
        match self
            .records
            .compare_and_swap(id, Some(old), Some(new.as_slice()))?
        {
            Ok(()) => {
                self.wrote(id, Some(&new));
                if moved {
                    self.release(old_key, id)?;
                }
                Ok(Swap::Done)
            }
            Err(_) => {
                if fresh {
                    self.release(new_key, id)?;
                }
                Ok(Swap::Changed)
            }
        }
    }

    pub(crate) fn remove(&self, id: &[u8], old: &IVec, key: &[u8]) -> Result<Swap, StoreError> {
        let _gate = self.enter()?;
        let (r, i) = (&self.records, &self.index);
        match self.transact(
            &[Self::check_of(r, id, Some(&old[..]))],
            &[Self::write_of(r, id, None), Self::write_of(i, key, None)],
        )? {
            Some(true) => {
                self.add(-1);
                self.wrote(id, None);
                return Ok(Swap::Done);
            }
            Some(false) => return Ok(Swap::Changed),
            None => {}
        }
        match self
            .records
            .compare_and_swap(id, Some(old), None as Option<&[u8]>)?
        {
            Ok(()) => {
                self.add(-1);
                self.wrote(id, None);
                self.release(key, id)?;
                Ok(Swap::Done)
            }
            Err(_) => Ok(Swap::Changed),
        }
    }

    /// Verifies (and with `fix`, repairs) both directions of the index, and sets the count to
    /// the records found.
    pub(crate) fn check(
        &self,
        report: &mut RepairReport,
        what: &str,
        key_of: KeyOf,
        fix: bool,
    ) -> Result<(), StoreError> {
        let show = |k: &[u8]| String::from_utf8_lossy(k).into_owned();
        for entry in self.index.iter() {
            let (key, id) = entry?;
            let holds = match self.records.get(&id)? {
                Some(rec) => key_of(&rec).as_deref() == Some(key.as_ref()),
                None => false,
            };
            if !holds {
                report.removed.push(format!(
                    "{what} index entry {:?} (no record holds it)",
                    show(&key)
                ));
                if fix {
                    let _ = self
                        .index
                        .compare_and_swap(&key, Some(&id), None as Option<&[u8]>)?;
                }
            }
        }
        let mut records = 0;
        for entry in self.records.iter() {
            let (id, rec) = entry?;
            records += 1;
            let Some(key) = key_of(&rec) else {
                report
                    .unrepairable
                    .push(format!("record {:?} cannot be read", show(&id)));
                continue;
            };
            match self.index.get(&key)? {
                Some(owner) if owner == id => {}
                Some(owner)
                    if self
                        .records
                        .get(&owner)?
                        .is_some_and(|r| key_of(&r).as_deref() == Some(key.as_slice())) =>
                {
                    report.unrepairable.push(format!(
                        "records {:?} and {:?} both claim {what} {:?}",
                        show(&id),
                        show(&owner),
                        show(&key)
                    ))
                }
                // A stale entry (already reported above) stands where this record's should.
                Some(_) => report.restored.push(format!(
                    "{what} index entry {:?} for record {:?}",
                    show(&key),
                    show(&id)
                )),
                None => {
                    report.restored.push(format!(
                        "{what} index entry {:?} for record {:?}",
                        show(&key),
                        show(&id)
                    ));
                    if fix {
                        self.index.insert(&key, &id)?;
                    }
                }
            }
        }
        self.set_count(records);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
