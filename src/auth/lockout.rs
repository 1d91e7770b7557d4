//! Per-account lockout after repeated failed logins. Kept in memory: a restart forgets it,
//! which only ever unlocks early. Unknown usernames are tracked like real ones so the answer
//! never says whether an account exists.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins in a row that lock an account.
pub const MAX_FAILURES: u32 = 5;
/// Entries kept at most; beyond this, entries that lock nothing are dropped first.
const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
struct Entry {
    failures: u32,
    locked_until: Option<Instant>,
}

pub struct Lockout {
    duration: Duration,
    entries: Mutex<HashMap<String, Entry>>,
}

impl Lockout {
    pub fn new(duration: Duration) -> Self {
        Lockout {
            duration,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn key(username: &str) -> String {
        username.trim().to_lowercase()
    }

    /// `Some(seconds)` while the account is locked.
    pub fn locked(&self, username: &str) -> Option<u64> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let key = Self::key(username);
        let entry = entries.get_mut(&key)?;
        let until = entry.locked_until?;
        let now = Instant::now();
        if until > now {
            let left = until - now;
            Some(left.as_secs() + u64::from(left.subsec_nanos() > 0))
        } else {
            entries.remove(&key);
            None
        }
    }

    pub fn failed(&self, username: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_ENTRIES {
            let now = Instant::now();
            entries.retain(|_, e| e.locked_until.is_some_and(|u| u > now));
        }
        let entry = entries.entry(Self::key(username)).or_default();
        entry.failures += 1;
        if entry.failures >= MAX_FAILURES {
            entry.locked_until = Some(Instant::now() + self.duration);
        }
    }

    pub fn succeeded(&self, username: &str) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.remove(&Self::key(username));
    }
}
