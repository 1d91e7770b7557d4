//! Time-ordered ids for new records (UUIDv7, RFC 9562).
//!
//! `Uuid::now_v7` serialises every call through one process-wide mutex and asks the OS for
//! random bytes twice per id; under 64 concurrent creates that lock was contended on every
//! request. Here the 48-bit millisecond time and a 12-bit counter (RFC 9562, method 1) come
//! from one atomic, so ids made one after another always increase, and the 62 random bits come
//! from a per-thread block of OS random bytes (the OS is asked once per 512 ids). More than
//! 4,096 ids in one millisecond borrow the next millisecond's time, as the RFC allows.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use uuid::Uuid;

const BLOCK: usize = 4096;
const PER_ID: usize = 8;

/// The last id's time and counter: `millis << 12 | counter`.
static LAST: AtomicU64 = AtomicU64::new(0);

struct Pool {
    bytes: [u8; BLOCK],
    used: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool { bytes: [0; BLOCK], used: BLOCK })
    };
}

/// A new UUIDv7 for the current time.
pub fn new_v7() -> Uuid {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut stamp = 0;
    let _ = LAST.fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
        stamp = (millis << 12).max(last + 1);
        Some(stamp)
    });
    let mut bytes = [0u8; 10];
    bytes[..2].copy_from_slice(&((stamp & 0xfff) as u16).to_be_bytes());
    POOL.with_borrow_mut(|pool| {
        if pool.used + PER_ID > BLOCK {
            getrandom::fill(&mut pool.bytes).expect("the OS random source is available");
            pool.used = 0;
        }
        bytes[2..].copy_from_slice(&pool.bytes[pool.used..pool.used + PER_ID]);
        pool.used += PER_ID;
    });
    uuid::Builder::from_unix_timestamp_millis(stamp >> 12, &bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn ids_are_version_7_unique_and_carry_the_current_time() {
        let before = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let ids: Vec<Uuid> = (0..5000).map(|_| new_v7()).collect();
        let after = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        assert!(ids.iter().all(|id| id.get_version_num() == 7));
        assert!(
            ids.iter()
                .all(|id| id.get_variant() == uuid::Variant::RFC4122)
        );
        // More than one refill of the per-thread block, and still no repeats.
        assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
        // More than 4,096 ids in one millisecond borrow the next one's time (RFC 9562), and
        // other tests of this process draw ids at the same moment: allow a few such steps.
        let latest = after + 4;
        for id in &ids {
            let (secs, nanos) = id.get_timestamp().unwrap().to_unix();
            let ms = secs * 1000 + u64::from(nanos) / 1_000_000;
            assert!(
                (before..=latest).contains(&ms),
                "{ms} not in {before}..={latest}"
            );
        }
    }

    #[test]
    fn threads_draw_different_ids() {
        let a = std::thread::spawn(|| (0..100).map(|_| new_v7()).collect::<Vec<_>>());
        let b = std::thread::spawn(|| (0..100).map(|_| new_v7()).collect::<Vec<_>>());
        let mut all: HashSet<Uuid> = a.join().unwrap().into_iter().collect();
        all.extend(b.join().unwrap());
        assert_eq!(all.len(), 200);
    }
}
