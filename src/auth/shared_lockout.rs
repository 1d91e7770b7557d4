//! The failed-login limits of `lockout` when several nodes share one store (etcd): the same
//! two policies, with their state kept in the store instead of in memory, so that every node
//! counts every failure and guesses spread over the nodes are limited as if they all reached
//! one node.
//!
//! Each key (an account's user name, a client address) is one entry, changed only by
//! compare-and-swap: a check reserves a slot by adding itself to the entry's `pending`
//! before the password is checked, and ends by taking itself out and counting its outcome. As
//! in `lockout`, a pending check counts as a failure, so no more checks can run at once, on
//! all nodes together, than the budget has left; a login that finds the rest of the budget
//! held by checks still running polls until one ends (`MAX_WAIT` at most, then 429).
//!
//! Entries are written with the time after which they mean nothing (`ITree::insert_until`):
//! etcd removes them with a lease, so names tried once do not pile up in the cluster. Keys
//! are HMACs of the name under the installation secret: what someone typed as a user name
//! (a password, by mistake) is never stored. A node that dies mid-check leaves its slot taken
//! until the entry's window passes, which only ever locks early, never late.
//!
//! Times are wall-clock Unix milliseconds (the nodes' clocks are assumed in step, as for the
//! sessions' expiry).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::lockout::{AccountPolicy, AddressPolicy, Admission, Ends, MAX_FAILURES, Reservation};
use crate::error::ApiError;
use crate::store::engine::{Tree, Value};
use crate::store::{Store, StoreError};

/// How often a login waiting for a running check looks again.
const POLL: Duration = Duration::from_millis(50);
/// How long a login waits for checks running elsewhere before it is refused (429).
const MAX_WAIT: Duration = Duration::from_secs(10);
/// How long an entry is kept for a check still running.
const PENDING_KEEP_MS: i64 = 60_000;
/// How often a conflicting end is tried again before it is given up (logged).
const END_TRIES: usize = 20;

/// One policy's state as the store keeps it.
pub trait SharedPolicy {
    type State: Serialize + DeserializeOwned + Default;
    /// Whether one more check may start while `in_flight` others run (on any node). May
    /// reset a state whose window has passed.
    fn admit(&self, state: &mut Self::State, in_flight: u32, now: i64) -> Admission;
    fn failed(&self, state: &mut Self::State, now: i64);
    fn succeeded(&self, state: &mut Self::State);
    /// Until when (Unix ms) the state remembers something; `None`: nothing.
    fn until(&self, state: &Self::State, now: i64) -> Option<i64>;
}

/// An entry: the policy's state and the checks running.
#[derive(Serialize, Deserialize, Default)]
struct Entry<S> {
    #[serde(default)]
    pending: u32,
    state: S,
}

/// One policy's entries in the store.
pub struct SharedTable<P: SharedPolicy> {
    tree: Tree,
    /// The installation secret, the key of the entries' HMAC keys.
    secret: [u8; 32],
    policy: P,
    /// Tells the two tables' keys apart.
    kind: u8,
}

fn now_ms() -> i64 {
    crate::clock::millis(crate::clock::now())
}

fn secs_until(until: i64, now: i64) -> u64 {
    (((until - now).max(0) + 999) / 1000).max(1) as u64
}

impl<P: SharedPolicy> SharedTable<P> {
    /// The table of a store several nodes share; `None` for a store of one node.
    pub fn new(store: &Store, policy: P, kind: u8) -> Option<Self> {
        Some(SharedTable {
            tree: store.login_failures()?.clone(),
            secret: *store.secret(),
            policy,
            kind,
        })
    }

    fn key(&self, name: &[u8]) -> [u8; 32] {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any size");
        mac.update(&[self.kind]);
        mac.update(name);
        mac.finalize().into_bytes().into()
    }

    /// Writes `entry` over `old` (or removes it when it remembers nothing).
    fn swap(
        &self,
        key: &[u8; 32],
        old: Option<Value>,
        entry: &Entry<P::State>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let tree = &self.tree;
        let until = self
            .policy
            .until(&entry.state, now)
            .into_iter()
            .chain((entry.pending > 0).then_some(now + PENDING_KEEP_MS))
            .max();
        let swapped = match until {
            Some(until) => {
                let new = serde_json::to_vec(entry).expect("an entry serialises");
                tree.compare_and_swap_until(key, old, Some(new), until)
            }
            None if old.is_none() => return Ok(true),
            None => tree.compare_and_swap(key, old, None::<&[u8]>),
        };
        Ok(swapped?.is_ok())
    }

    fn read(&self, key: &[u8; 32]) -> Result<(Option<Value>, Entry<P::State>), StoreError> {
        let raw = self.tree.get(key)?;
        // An entry this build cannot read remembers nothing it could use.
        let entry = raw
            .as_ref()
            .and_then(|v| serde_json::from_slice(v).ok())
            .unwrap_or_default();
        Ok((raw, entry))
    }

    /// Reserves a slot for one check of `name`: `Err` is 429 (the budget is spent, or checks
    /// elsewhere held the rest of it for `MAX_WAIT`) or the store's failure.
    pub async fn reserve(&self, name: &[u8]) -> Result<Reservation<'_, Self>, ApiError> {
        let key = self.key(name);
        let started = Instant::now();
        loop {
            let now = now_ms();
            let (old, mut entry) = self.read(&key)?;
            match self.policy.admit(&mut entry.state, entry.pending, now) {
                Admission::Go => {
                    entry.pending += 1;
                    if self.swap(&key, old, &entry, now)? {
                        return Ok(Reservation::new(self, key));
                    }
                    // Another node changed it meanwhile: read it again.
                    continue;
                }
                Admission::Refused(secs) => return Err(ApiError::too_many_requests(secs)),
                Admission::Wait if started.elapsed() >= MAX_WAIT => {
                    return Err(ApiError::too_many_requests(1));
                }
                Admission::Wait => tokio::time::sleep(POLL).await,
            }
        }
    }

    fn end(&self, key: &[u8; 32], outcome: Option<bool>) {
        for _ in 0..END_TRIES {
            let now = now_ms();
            let result = self.read(key).and_then(|(old, mut entry)| {
                entry.pending = entry.pending.saturating_sub(1);
                match outcome {
                    Some(true) => self.policy.succeeded(&mut entry.state),
                    Some(false) => self.policy.failed(&mut entry.state, now),
                    None => {}
                }
                self.swap(key, old, &entry, now)
            });
            match result {
                Ok(true) => return,
                Ok(false) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot count a login's outcome in the shared table");
                    return;
                }
            }
        }
        tracing::warn!("cannot count a login's outcome in the shared table: it kept changing");
    }
}

impl<P: SharedPolicy> Ends for SharedTable<P> {
    type Key = [u8; 32];
    fn end(&self, key: &[u8; 32], outcome: Option<bool>) {
        SharedTable::end(self, key, outcome)
    }
}

/// `AccountPolicy`'s state in the store.
#[derive(Serialize, Deserialize, Default)]
pub struct AccountEntry {
    #[serde(default)]
    failures: u32,
    /// When the window of these failures started (0: none).
    #[serde(default)]
    since: i64,
    /// Locked until then (0: not locked).
    #[serde(default)]
    locked_until: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl SharedPolicy for AccountPolicy {
    type State = AccountEntry;

    fn admit(&self, s: &mut AccountEntry, in_flight: u32, now: i64) -> Admission {
        if s.locked_until > 0 {
            if s.locked_until > now {
                return Admission::Refused(secs_until(s.locked_until, now));
            }
            *s = AccountEntry::default();
        }
        if s.since > 0 && s.since + ms(self.window) <= now {
            *s = AccountEntry::default();
        }
        if s.failures + in_flight < MAX_FAILURES {
            Admission::Go
        } else {
            Admission::Wait
        }
    }

    fn failed(&self, s: &mut AccountEntry, now: i64) {
        if s.locked_until > now {
            return;
        }
        if s.since == 0 || s.since + ms(self.window) <= now || s.locked_until > 0 {
            *s = AccountEntry {
                since: now,
                ..AccountEntry::default()
            };
        }
        s.failures += 1;
        if s.failures >= MAX_FAILURES {
            s.locked_until = now + ms(self.lockout);
            crate::metrics::METRICS.lockout();
        }
    }

    fn succeeded(&self, s: &mut AccountEntry) {
        *s = AccountEntry::default();
    }

    fn until(&self, s: &AccountEntry, now: i64) -> Option<i64> {
        let until = s.locked_until.max(if s.since > 0 {
            s.since + ms(self.window)
        } else {
            0
        });
        (until > now).then_some(until)
    }
}

/// `AddressPolicy`'s state in the store.
#[derive(Serialize, Deserialize, Default)]
pub struct AddressEntry {
    /// When every failure spent so far has been paid back (0 or past: a full budget).
    #[serde(default)]
    full_at: i64,
}

impl SharedPolicy for AddressPolicy {
    type State = AddressEntry;

    fn admit(&self, s: &mut AddressEntry, in_flight: u32, now: i64) -> Admission {
        let interval = ms(self.interval);
        let budget = interval * i64::from(self.burst);
        let owed = (s.full_at - now).max(0);
        if owed + interval * (i64::from(in_flight) + 1) <= budget {
            Admission::Go
        } else if owed + interval <= budget {
            Admission::Wait
        } else {
            Admission::Refused(secs_until(now + owed + interval - budget, now))
        }
    }

    fn failed(&self, s: &mut AddressEntry, now: i64) {
        s.full_at = s.full_at.max(now) + ms(self.interval);
    }

    fn succeeded(&self, _: &mut AddressEntry) {}

    fn until(&self, s: &AddressEntry, now: i64) -> Option<i64> {
        (s.full_at > now).then_some(s.full_at)
    }
}

pub type SharedAccounts = SharedTable<AccountPolicy>;
pub type SharedAddresses = SharedTable<AddressPolicy>;

/// The bytes an address is keyed by (its `lockout::address_key`).
pub fn address_name(ip: IpAddr) -> Vec<u8> {
    ip.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> AccountPolicy {
        AccountPolicy {
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(60),
        }
    }

    #[test]
    fn the_fifth_failure_locks_and_running_checks_count() {
        let p = account();
        let mut s = AccountEntry::default();
        for i in 0..4 {
            assert_eq!(p.admit(&mut s, 0, 1000 + i), Admission::Go);
            p.failed(&mut s, 1000 + i);
        }
        // One slot left: a running check holds it.
        assert_eq!(p.admit(&mut s, 1, 2000), Admission::Wait);
        assert_eq!(p.admit(&mut s, 0, 2000), Admission::Go);
        p.failed(&mut s, 2000);
        assert_eq!(p.admit(&mut s, 0, 3000), Admission::Refused(59));
        assert_eq!(p.until(&s, 3000), Some(62_000));
        // The lock passes with its time.
        assert_eq!(p.admit(&mut s, 0, 62_000), Admission::Go);
        assert_eq!(s.failures, 0);
    }

    #[test]
    fn a_success_starts_over_and_an_old_window_is_forgotten() {
        let p = account();
        let mut s = AccountEntry::default();
        p.failed(&mut s, 1000);
        p.failed(&mut s, 1000);
        p.succeeded(&mut s);
        assert_eq!(p.until(&s, 1000), None);
        p.failed(&mut s, 1000);
        assert_eq!(p.until(&s, 1000), Some(61_000));
        assert_eq!(p.admit(&mut s, 4, 61_000), Admission::Go);
        assert_eq!(s.failures, 0);
    }

    #[test]
    fn an_address_gets_its_burst_then_one_per_interval() {
        let p = AddressPolicy {
            burst: 3,
            interval: Duration::from_secs(10),
        };
        let mut s = AddressEntry::default();
        for _ in 0..3 {
            assert_eq!(p.admit(&mut s, 0, 0), Admission::Go);
            p.failed(&mut s, 0);
        }
        assert_eq!(p.admit(&mut s, 0, 0), Admission::Refused(10));
        assert_eq!(p.admit(&mut s, 0, 10_000), Admission::Go);
        assert_eq!(p.admit(&mut s, 1, 10_000), Admission::Wait);
        assert_eq!(p.until(&s, 10_000), Some(30_000));
    }
}
