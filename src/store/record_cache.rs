//! A bounded in-memory cache of recently read client-profile records, in front of sled.
//!
//! Lists and reads by id copy stored records; at a million profiles a `range=0-100` list spent
//! 40 % of its CPU in 100 sled lookups (each a walk from the root of the tree), although the
//! same first page is read over and over. The cache holds records by id, up to a fixed number,
//! and shares their bytes with sled (`IVec` clones are reference counts).
//!
//! Coherence with writes, without a lock around sled:
//! - a writer changes the record in sled first, then calls [`RecordCache::invalidate`], which
//!   removes the id's entry and bumps a write counter, all before the write is acknowledged;
//! - a reader that misses notes the counter ([`RecordCache::lookup`]), reads sled, and
//!   [`RecordCache::fill`] stores what it read only if no write was invalidated meanwhile.
//!
//! So a value older than the last write can be stored only before that write's invalidation,
//! which then removes it; after an acknowledgement no reader sees the old record. Writers only
//! ever remove, so two writers racing on one id cannot leave the older value behind. Update
//! and delete paths read sled directly, never the cache, for the value they compare against.

use std::collections::HashMap;
use std::sync::Mutex;

use super::engine::Value as IVec;

/// Records kept at most: about 5 MiB of 300-byte profiles, far more than a page of 100.
pub(crate) const CAPACITY: usize = 16 * 1024;

/// Independent parts, chosen by the id's last byte (random in UUIDv4 and v7), so that
/// concurrent readers rarely meet on one lock and a write only refuses fills in its own part.
const SHARDS: usize = 16;

pub(crate) struct RecordCache {
    shards: Vec<Mutex<Shard>>,
    /// Per shard.
    capacity: usize,
}

struct Shard {
    map: HashMap<IVec, IVec>,
    /// Invalidations in this shard so far: a fill is refused when one happened since its
    /// lookup.
    writes: u64,
}

/// What a lookup found: the record, or the stamp to give to `fill` after reading sled.
pub(crate) enum Lookup {
    Hit(IVec),
    Miss(u64),
}

impl RecordCache {
    /// A cache of about `capacity` records in all (0: keeps nothing).
    pub(crate) fn new(capacity: usize) -> RecordCache {
        RecordCache {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        writes: 0,
                    })
                })
                .collect(),
            capacity: capacity.div_ceil(SHARDS),
        }
    }

    fn shard(&self, id: &[u8]) -> std::sync::MutexGuard<'_, Shard> {
        let n = id.last().map_or(0, |&b| usize::from(b) % SHARDS);
        self.shards[n].lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lookup(&self, id: &[u8]) -> Lookup {
        let shard = self.shard(id);
        match shard.map.get(id) {
            Some(record) => Lookup::Hit(record.clone()),
            None => Lookup::Miss(shard.writes),
        }
    }

    /// Keeps `record`, read from sled after the lookup that gave `stamp`, unless a write was
    /// invalidated since. When full, an arbitrary entry makes room (random eviction).
    pub(crate) fn fill(&self, id: &[u8], record: &IVec, stamp: u64) {
        let mut shard = self.shard(id);
        if shard.writes != stamp || self.capacity == 0 {
            return;
        }
        if shard.map.len() >= self.capacity
            && !shard.map.contains_key(id)
            && let Some(victim) = shard.map.keys().next().cloned()
        {
            shard.map.remove(&victim);
        }
        shard.map.insert(IVec::from(id), record.clone());
    }

    /// Called by every writer after its change to `id` is in sled, before it is acknowledged.
    pub(crate) fn invalidate(&self, id: &[u8]) {
        let mut shard = self.shard(id);
        shard.writes += 1;
        shard.map.remove(id);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap().map.len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> IVec {
        IVec::from(s.as_bytes())
    }

    #[test]
    fn a_fill_after_a_lookup_is_served_until_the_id_is_written() {
        let c = RecordCache::new(8);
        let Lookup::Miss(stamp) = c.lookup(b"a") else {
            panic!("empty cache hit")
        };
        c.fill(b"a", &v("one"), stamp);
        assert!(matches!(c.lookup(b"a"), Lookup::Hit(r) if r == v("one")));
        c.invalidate(b"a");
        assert!(matches!(c.lookup(b"a"), Lookup::Miss(_)));
    }

    #[test]
    fn a_fill_that_raced_a_write_is_refused() {
        let c = RecordCache::new(8);
        let Lookup::Miss(stamp) = c.lookup(b"a") else {
            panic!("empty cache hit")
        };
        // The reader read sled, then a writer changed "a" and invalidated before the fill.
        c.invalidate(b"a");
        c.fill(b"a", &v("old"), stamp);
        assert!(matches!(c.lookup(b"a"), Lookup::Miss(_)));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_stale_fill_before_the_invalidation_is_removed_by_it() {
        let c = RecordCache::new(8);
        let Lookup::Miss(stamp) = c.lookup(b"a") else {
            panic!("empty cache hit")
        };
        // The writer changed sled after the reader's read, but invalidates after the fill.
        c.fill(b"a", &v("old"), stamp);
        c.invalidate(b"a");
        assert!(matches!(c.lookup(b"a"), Lookup::Miss(_)));
    }

    #[test]
    fn it_never_holds_more_than_its_capacity() {
        // 16 shards of 4: every id below ends in the same byte, so they share one shard.
        let c = RecordCache::new(64);
        for i in 0..100u32 {
            let id = (i << 8).to_be_bytes();
            let Lookup::Miss(stamp) = c.lookup(&id) else {
                panic!("unexpected hit")
            };
            c.fill(&id, &v("r"), stamp);
            assert!(c.len() <= 4);
        }
        assert_eq!(c.len(), 4);
        let off = RecordCache::new(0);
        off.fill(b"a", &v("r"), 0);
        assert_eq!(off.len(), 0);
    }
}
