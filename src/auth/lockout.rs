//! Limits on failed logins, kept in memory: a restart forgets them, which only ever unlocks
//! early. Two tables use the same machinery:
//!
//! - per account (the lower-cased user name; unknown names are tracked like real ones, so the
//!   answer never says whether an account exists): at most `MAX_FAILURES` failed checks per
//!   window, and the last of them locks the account for the lockout duration;
//! - per client address: a budget of failed logins that refills at a steady rate, so that one
//!   source is slowed down before it can lock an account others use.
//!
//! A password is only checked after a slot has been reserved in both tables, atomically. While
//! a check runs its slot counts as a failure, so however many guesses arrive at once, no more
//! can be checked than the budget left: a request that finds the budget taken by checks still
//! running waits for them to end, and one that finds it spent by failures is refused at once.
//!
//! Memory is bounded: entries are forgotten once there is nothing left to remember (their
//! window has passed), and the table holds at most `MAX_BYTES` of keys and entries; beyond
//! that, new keys are refused (429) until something can be forgotten.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

/// Failed logins per window that lock an account.
pub const MAX_FAILURES: u32 = 5;
/// Bytes of keys and entries a table holds at most (about 16k entries of the longest user
/// name, far more of ordinary ones).
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// What an entry costs besides its key: the map's slot, the state, the hash.
const ENTRY_BYTES: usize = 160;
/// Expired entries are swept out at most this often (and whenever the table is full).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What a table says to a login that wants to check a password.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// A slot is free: reserve it and check.
    Go,
    /// Every slot left is held by a check in progress: wait for one to end.
    Wait,
    /// Refused for this many seconds.
    Refused(u64),
}

/// How one kind of key spends and regains its budget.
pub trait Policy {
    type State: Default;
    /// Whether one more check may start while `in_flight` others run. May reset a state
    /// whose window has passed.
    fn admit(&self, state: &mut Self::State, in_flight: u32, now: Instant) -> Admission;
    fn failed(&self, state: &mut Self::State, now: Instant);
    fn succeeded(&self, state: &mut Self::State);
    /// True when the state remembers nothing that still matters: it can be forgotten.
    fn spent(&self, state: &Self::State, now: Instant) -> bool;
}

/// The size a key occupies in memory, for the table's byte bound.
pub trait Weigh {
    fn weight(&self) -> usize;
}

impl Weigh for String {
    fn weight(&self) -> usize {
        self.len()
    }
}

impl Weigh for IpAddr {
    fn weight(&self) -> usize {
        0
    }
}

struct Slot<S> {
    state: S,
    in_flight: u32,
    /// The logins waiting for a slot of this key, woken one at a time in arrival order (all
    /// at once when the key becomes refused).
    waiters: Arc<Notify>,
    /// How many wait: while any do, a newcomer queues behind them instead of taking a slot.
    queued: u32,
}

struct Inner<K, S> {
    map: HashMap<K, Slot<S>>,
    bytes: usize,
    next_sweep: Instant,
}

/// Keys and their budgets, with reservations.
pub struct Table<K, P: Policy> {
    policy: P,
    max_bytes: usize,
    inner: Mutex<Inner<K, P::State>>,
}

fn secs_until(until: Instant, now: Instant) -> u64 {
    let left = until.saturating_duration_since(now);
    (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1)
}

impl<K: Hash + Eq + Clone + Weigh, P: Policy> Table<K, P> {
    pub fn new(policy: P) -> Self {
        Self::with_max_bytes(policy, MAX_BYTES)
    }

    pub fn with_max_bytes(policy: P, max_bytes: usize) -> Self {
        Table {
            policy,
            max_bytes,
            inner: Mutex::new(Inner {
                map: HashMap::new(),
                bytes: 0,
                next_sweep: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<K, P::State>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Entries and bytes held (for tests and diagnostics).
    pub fn usage(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.map.len(), inner.bytes)
    }

    /// Forgets every entry with nothing left to remember and no check in progress.
    fn sweep(&self, inner: &mut Inner<K, P::State>, now: Instant) {
        let mut freed = 0;
        inner.map.retain(|k, slot| {
            // Kept while a check runs or a login waits on it (holding its `waiters`).
            let keep = slot.in_flight > 0
                || Arc::strong_count(&slot.waiters) > 1
                || !self.policy.spent(&slot.state, now);
            if !keep {
                freed += k.weight() + ENTRY_BYTES;
            }
            keep
        });
        inner.bytes -= freed;
        inner.next_sweep = now + SWEEP_EVERY;
    }

    /// Reserves a slot for one check of `key`, waiting (first come, first served) while every
    /// slot left is held by a check in progress. `Err(seconds)` when the budget is spent or
    /// the table is full.
    pub async fn reserve(&self, key: K) -> Result<Reservation<'_, Self>, u64> {
        let mut queued: Option<Queued<'_, K, P>> = None;
        loop {
            let waiters: Arc<Notify>;
            let mut notified;
            {
                let mut inner = self.lock();
                let now = Instant::now();
                if now >= inner.next_sweep {
                    self.sweep(&mut inner, now);
                }
                if !inner.map.contains_key(&key) {
                    let weight = key.weight() + ENTRY_BYTES;
                    if inner.bytes + weight > self.max_bytes {
                        self.sweep(&mut inner, now);
                        if inner.bytes + weight > self.max_bytes {
                            return Err(secs_until(inner.next_sweep, now));
                        }
                    }
                    inner.bytes += weight;
                    inner.map.insert(
                        key.clone(),
                        Slot {
                            state: P::State::default(),
                            in_flight: 0,
                            waiters: Arc::new(Notify::new()),
                            queued: 0,
                        },
                    );
                }
                let slot = inner.map.get_mut(&key).expect("inserted above");
                let waited = queued.take().map(Queued::leave).is_some();
                if waited {
                    slot.queued = slot.queued.saturating_sub(1);
                }
                match self.policy.admit(&mut slot.state, slot.in_flight, now) {
                    // Those who waited go first.
                    Admission::Go if waited || slot.queued == 0 => {
                        slot.in_flight += 1;
                        // More than one slot may have come free at once (a success, a window
                        // that passed): the next in line checks too.
                        if slot.queued > 0
                            && self.policy.admit(&mut slot.state, slot.in_flight, now)
                                == Admission::Go
                        {
                            slot.waiters.notify_one();
                        }
                        return Ok(Reservation::new(self, key));
                    }
                    Admission::Refused(secs) => return Err(secs),
                    Admission::Go | Admission::Wait => {}
                }
                slot.queued += 1;
                waiters = slot.waiters.clone();
                notified = Box::pin(waiters.notified());
                // In line before the lock is let go: no release can be missed.
                notified.as_mut().enable();
                queued = Some(Queued {
                    table: self,
                    key: Some(key.clone()),
                });
            }
            notified.await;
        }
    }

    fn end(&self, key: &K, outcome: Option<bool>) {
        let mut inner = self.lock();
        let Some(slot) = inner.map.get_mut(key) else {
            return;
        };
        slot.in_flight = slot.in_flight.saturating_sub(1);
        let now = Instant::now();
        match outcome {
            Some(true) => self.policy.succeeded(&mut slot.state),
            Some(false) => self.policy.failed(&mut slot.state, now),
            None => {}
        }
        match self.policy.admit(&mut slot.state, slot.in_flight, now) {
            // Everyone waiting is refused now.
            Admission::Refused(_) => slot.waiters.notify_waiters(),
            Admission::Go if slot.queued > 0 => slot.waiters.notify_one(),
            _ => {}
        }
    }
}

/// A login in line for a slot of `key`. Dropped while still in line (the client went away),
/// it leaves the line and passes its turn on.
struct Queued<'a, K: Hash + Eq + Clone + Weigh, P: Policy> {
    table: &'a Table<K, P>,
    key: Option<K>,
}

impl<K: Hash + Eq + Clone + Weigh, P: Policy> Queued<'_, K, P> {
    /// Out of line by the normal way: the caller counts itself out under the lock it holds.
    fn leave(mut self) {
        self.key = None;
    }
}

impl<K: Hash + Eq + Clone + Weigh, P: Policy> Drop for Queued<'_, K, P> {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut inner = self.table.lock();
        if let Some(slot) = inner.map.get_mut(&key) {
            slot.queued = slot.queued.saturating_sub(1);
            // It may have been woken for a free slot: the next in line takes it instead.
            let now = Instant::now();
            if slot.queued > 0
                && self
                    .table
                    .policy
                    .admit(&mut slot.state, slot.in_flight, now)
                    == Admission::Go
            {
                slot.waiters.notify_one();
            }
        }
    }
}

/// A table whose reserved checks end by saying how they went (`None`: not at all).
pub trait Ends {
    type Key;
    fn end(&self, key: &Self::Key, outcome: Option<bool>);
}

impl<K: Hash + Eq + Clone + Weigh, P: Policy> Ends for Table<K, P> {
    type Key = K;
    fn end(&self, key: &K, outcome: Option<bool>) {
        Table::end(self, key, outcome)
    }
}

/// One reserved check. Say how it ended with `failed` or `succeeded`; dropped without either
/// (the client went away mid-check), it gives its slot back without counting.
pub struct Reservation<'a, T: Ends> {
    table: &'a T,
    key: Option<T::Key>,
}

impl<'a, T: Ends> Reservation<'a, T> {
    pub(crate) fn new(table: &'a T, key: T::Key) -> Self {
        Reservation {
            table,
            key: Some(key),
        }
    }

    pub fn failed(mut self) {
        if let Some(key) = self.key.take() {
            self.table.end(&key, Some(false));
        }
    }

    pub fn succeeded(mut self) {
        if let Some(key) = self.key.take() {
            self.table.end(&key, Some(true));
        }
    }
}

impl<T: Ends> Drop for Reservation<'_, T> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.table.end(&key, None);
        }
    }
}

/// Per account: `MAX_FAILURES` failures within `window` lock it for `lockout`; a success
/// starts over.
pub struct AccountPolicy {
    pub window: Duration,
    pub lockout: Duration,
}

#[derive(Default)]
pub struct AccountState {
    failures: u32,
    window_start: Option<Instant>,
    locked_until: Option<Instant>,
}

impl Policy for AccountPolicy {
    type State = AccountState;

    fn admit(&self, s: &mut AccountState, in_flight: u32, now: Instant) -> Admission {
        if let Some(until) = s.locked_until {
            if until > now {
                return Admission::Refused(secs_until(until, now));
            }
            *s = AccountState::default();
        }
        if s.window_start.is_some_and(|w| w + self.window <= now) {
            *s = AccountState::default();
        }
        if s.failures + in_flight < MAX_FAILURES {
            Admission::Go
        } else {
            Admission::Wait
        }
    }

    fn failed(&self, s: &mut AccountState, now: Instant) {
        if s.locked_until.is_some() {
            return;
        }
        if s.window_start.is_none_or(|w| w + self.window <= now) {
            *s = AccountState {
                window_start: Some(now),
                ..AccountState::default()
            };
        }
        s.failures += 1;
        if s.failures >= MAX_FAILURES {
            s.locked_until = Some(now + self.lockout);
            crate::metrics::METRICS.lockout();
        }
    }

    fn succeeded(&self, s: &mut AccountState) {
        *s = AccountState::default();
    }

    fn spent(&self, s: &AccountState, now: Instant) -> bool {
        match (s.locked_until, s.window_start) {
            (Some(until), _) => until <= now,
            (None, Some(start)) => start + self.window <= now,
            (None, None) => true,
        }
    }
}

/// Per client address: `burst` failures at once, then one more every `interval` (a token
/// bucket kept as the time at which it is full again).
pub struct AddressPolicy {
    pub burst: u32,
    pub interval: Duration,
}

#[derive(Default)]
pub struct AddressState {
    /// When every failure spent so far has been paid back; `None` or past: a full budget.
    full_at: Option<Instant>,
}

impl AddressPolicy {
    fn owed(s: &AddressState, now: Instant) -> Duration {
        s.full_at
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now))
    }
}

impl Policy for AddressPolicy {
    type State = AddressState;

    fn admit(&self, s: &mut AddressState, in_flight: u32, now: Instant) -> Admission {
        let budget = self.interval * self.burst;
        let owed = Self::owed(s, now);
        if owed + self.interval * (in_flight + 1) <= budget {
            Admission::Go
        } else if owed + self.interval <= budget {
            Admission::Wait
        } else {
            // Free again once one interval's worth has been paid back.
            Admission::Refused(secs_until(now + (owed + self.interval - budget), now))
        }
    }

    fn failed(&self, s: &mut AddressState, now: Instant) {
        let from = s.full_at.filter(|t| *t > now).unwrap_or(now);
        s.full_at = Some(from + self.interval);
    }

    fn succeeded(&self, _: &mut AddressState) {}

    fn spent(&self, s: &AddressState, now: Instant) -> bool {
        s.full_at.is_none_or(|t| t <= now)
    }
}

/// The key a client address is limited by: IPv4 as it is, IPv6 by its /64 (one client usually
/// holds a whole /64), an IPv4-mapped IPv6 address as the IPv4 address.
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

/// The lower-cased, trimmed user name an account is tracked by.
pub fn account_key(username: &str) -> String {
    username.trim().to_lowercase()
}

pub type Accounts = Table<String, AccountPolicy>;
pub type Addresses = Table<IpAddr, AddressPolicy>;

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(max_bytes: usize) -> Accounts {
        Table::with_max_bytes(
            AccountPolicy {
                window: Duration::from_secs(60),
                lockout: Duration::from_secs(60),
            },
            max_bytes,
        )
    }

    #[tokio::test]
    async fn no_more_checks_run_at_once_than_failures_are_left() {
        let t = std::sync::Arc::new(accounts(MAX_BYTES));
        let mut held = Vec::new();
        for _ in 0..MAX_FAILURES {
            held.push(t.reserve("a".into()).await.unwrap());
        }
        // A sixth has to wait for one of the five.
        let sixth = tokio::time::timeout(Duration::from_millis(50), t.reserve("a".into())).await;
        assert!(sixth.is_err(), "a sixth check started");
        // Another key is not affected.
        assert!(t.reserve("b".into()).await.is_ok());
        // The five fail: the account is locked, and a waiter is refused rather than let in.
        let waiter = tokio::spawn({
            let t = t.clone();
            async move { t.reserve("a".into()).await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        for r in held {
            r.failed();
        }
        let r = waiter.await.unwrap();
        assert_eq!(r, Err(60));
    }

    #[tokio::test]
    async fn an_entry_a_login_waits_on_is_not_swept_away() {
        let t = accounts(MAX_BYTES);
        drop(t.reserve("a".into()).await.unwrap());
        let mut inner = t.lock();
        // Nothing to remember, no check running, but a login holds its waiters.
        let waiting = inner.map["a"].waiters.clone();
        t.sweep(&mut inner, Instant::now());
        assert!(inner.map.contains_key("a"));
        drop(waiting);
        t.sweep(&mut inner, Instant::now());
        assert!(inner.map.is_empty());
        assert_eq!(inner.bytes, 0);
    }

    #[tokio::test]
    async fn waiting_logins_get_slots_in_arrival_order_before_newcomers() {
        let t = std::sync::Arc::new(accounts(MAX_BYTES));
        let mut held = Vec::new();
        for _ in 0..MAX_FAILURES {
            held.push(t.reserve("a".into()).await.unwrap());
        }
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut waiters = Vec::new();
        for i in 0..3 {
            let (t, tx) = (t.clone(), tx.clone());
            waiters.push(tokio::spawn(async move {
                let r = t.reserve("a".into()).await.unwrap();
                tx.send(i).unwrap();
                tokio::time::sleep(Duration::from_secs(5)).await;
                drop(r);
            }));
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        for expected in 0..3 {
            drop(held.pop());
            assert_eq!(rx.recv().await, Some(expected));
            // A newcomer does not get ahead of those still in line.
            let newcomer =
                tokio::time::timeout(Duration::from_millis(20), t.reserve("a".into())).await;
            assert!(newcomer.is_err());
        }
        for w in waiters {
            w.abort();
        }
    }

    #[tokio::test]
    async fn a_dropped_reservation_gives_its_slot_back_without_counting() {
        let t = accounts(MAX_BYTES);
        for _ in 0..(MAX_FAILURES * 3) {
            drop(t.reserve("a".into()).await.unwrap());
        }
        assert!(t.reserve("a".into()).await.is_ok());
    }

    #[tokio::test]
    async fn the_table_stays_within_its_bytes() {
        let t = accounts(64 * 1024);
        let mut refused = 0;
        for i in 0..10_000 {
            match t.reserve(format!("user-{i}-{}", "x".repeat(200))).await {
                Ok(r) => r.failed(),
                Err(_) => refused += 1,
            }
        }
        let (entries, bytes) = t.usage();
        assert!(bytes <= 64 * 1024, "{bytes}");
        assert!(entries > 100, "{entries}");
        assert!(refused > 0);
    }

    #[test]
    fn an_address_gets_its_burst_then_one_per_interval() {
        let p = AddressPolicy {
            burst: 3,
            interval: Duration::from_secs(60),
        };
        let mut s = AddressState::default();
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(p.admit(&mut s, 0, now), Admission::Go);
            p.failed(&mut s, now);
        }
        assert_eq!(p.admit(&mut s, 0, now), Admission::Refused(60));
        let later = now + Duration::from_secs(60);
        assert_eq!(p.admit(&mut s, 0, later), Admission::Go);
        assert_eq!(p.admit(&mut s, 1, later), Admission::Wait);
        assert!(!p.spent(&s, later));
        assert!(p.spent(&s, now + Duration::from_secs(180)));
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
        assert_ne!(address_key(a), address_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().unwrap();
        assert_eq!(address_key(mapped), "192.0.2.7".parse::<IpAddr>().unwrap());
    }
}
