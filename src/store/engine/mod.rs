//! The storage engine seam: the few operations `store` needs from a database, in the style of
//! garage's `db` crate. Everything above it (tables, unique indexes, counts, caches, the search
//! index, group commit, backups) is written against `Db` and `Tree`; each engine implements
//! `IDb` and `ITree` below it (today sled, in `sled.rs`).
//!
//! What an engine provides:
//! - named trees of byte keys and values, read (`get`) and written (`insert`, `remove`) one key
//!   at a time, and scanned in key order (`iter`);
//! - compare-and-swap on one key (`compare_and_swap`): the primitive every uniqueness and
//!   conditional update above is built from;
//! - ids unique and increasing for the whole database (`generate_id`);
//! - a durable commit (`flush`): when it returns, every write applied before the call survives
//!   a crash (the group commit calls it once per round);
//! - optionally, a conditional write of several keys over several trees in one atomic step
//!   (`transact`): engines that have it (etcd) keep a record and its unique index keys in one
//!   write; the others (sled) answer `None`, and the tables use compare-and-swap reservations.
//!
//! Reads that must agree with each other while other processes write (`check`, `export`, a
//! backup) go through `pinned`: a read-only view of the whole database as it was at one
//! moment (etcd: one revision). An engine that only this process writes (sled) answers with
//! itself: the caller keeps its own writers out while it reads (the backup's gate), or works
//! on a stopped copy.
//!
//! The change feed: with one process writing (sled), every change passes through the tables'
//! own write hook (`UniqueTable::watched`). An engine that other processes write to too (etcd)
//! also tells `watch`ers of every change, in commit order, and `caught_up` waits until they
//! have been told of everything committed before the call.

#[cfg(feature = "etcd")]
pub(crate) mod etcd;
pub(crate) mod sled;

use std::fmt;
use std::sync::Arc;

/// A value or key read from an engine: a reference-counted byte buffer, cheap to clone (the
/// record cache keeps them). sled's buffer type, which any engine can build from bytes.
pub(crate) type Value = ::sled::IVec;

/// A failure of the engine itself (never an expected outcome such as a failed swap).
#[derive(Debug)]
pub enum Error {
    Sled(::sled::Error),
    Io(std::io::Error),
    /// An etcd request failed for a reason not classified below (a bug, bad credentials …).
    #[cfg(feature = "etcd")]
    Etcd(String),
    /// No etcd member answered in time, or the cluster has no leader: the same request may
    /// succeed later, with nothing to change on profiled's side. Carries etcd's cause.
    #[cfg(feature = "etcd")]
    EtcdUnavailable(String),
    /// etcd's database reached its quota (`--quota-backend-bytes`, its NOSPACE alarm): it
    /// refuses every write, and keeps serving reads and deletions, until an operator frees
    /// space and disarms the alarm.
    #[cfg(feature = "etcd")]
    EtcdNoSpace(String),
    /// The request is larger than etcd's `--max-request-bytes`: it was not applied.
    #[cfg(feature = "etcd")]
    EtcdTooLarge(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Sled(e) => write!(f, "sled: {e}"),
            Error::Io(e) => write!(f, "io: {e}"),
            #[cfg(feature = "etcd")]
            Error::Etcd(e) => write!(f, "etcd: {e}"),
            #[cfg(feature = "etcd")]
            Error::EtcdUnavailable(e) => write!(f, "etcd unavailable: {e}"),
            #[cfg(feature = "etcd")]
            Error::EtcdNoSpace(e) => write!(f, "etcd database space exhausted: {e}"),
            #[cfg(feature = "etcd")]
            Error::EtcdTooLarge(e) => write!(f, "etcd request too large: {e}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

pub(crate) type Result<T> = std::result::Result<T, Error>;

/// A compare-and-swap that found something else: what the key holds now.
#[derive(Debug)]
pub(crate) struct CasFailure {
    pub(crate) current: Option<Value>,
}

/// Entries of a tree in key order (either way).
pub(crate) type Entries<'a> =
    Box<dyn DoubleEndedIterator<Item = Result<(Value, Value)>> + Send + 'a>;

// Without the etcd engine, no engine reads these (sled answers `transact` with `None`).
#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
/// A condition of `Db::transact`: `key` of `tree` holds `holds` (`None`: nothing).
pub(crate) struct Check<'a> {
    pub(crate) tree: &'a Tree,
    pub(crate) key: &'a [u8],
    pub(crate) holds: Option<&'a [u8]>,
}

#[cfg_attr(not(feature = "etcd"), allow(dead_code))]
/// A write of `Db::transact`: sets `key` of `tree` to `value` (`None`: removes it).
pub(crate) struct Write<'a> {
    pub(crate) tree: &'a Tree,
    pub(crate) key: &'a [u8],
    pub(crate) value: Option<&'a [u8]>,
}

/// Told of each change to a watched tree: the key and its value now (`None`: removed).
pub(crate) type OnChange = Arc<dyn Fn(&[u8], Option<&[u8]>) + Send + Sync>;

/// One engine's database.
pub(crate) trait IDb: Send + Sync {
    fn open_tree(&self, name: &str) -> Result<Arc<dyn ITree>>;
    fn generate_id(&self) -> Result<u64>;
    fn flush(&self) -> Result<()>;
    /// Applies every write if every check holds, in one atomic step; `None`: this engine has
    /// no multi-key writes.
    fn transact(&self, _checks: &[Check<'_>], _writes: &[Write<'_>]) -> Result<Option<bool>> {
        Ok(None)
    }
    /// Whether other processes write to the same database (per-process caches and counts
    /// cannot be trusted, and nothing may be repaired while they run).
    fn shared(&self) -> bool {
        false
    }
    /// Tells `on_change` of every later change to `tree` made by any process (`false`: this
    /// engine has no change feed; only this process writes).
    fn watch(&self, _tree: &Tree, _on_change: OnChange) -> Result<bool> {
        Ok(false)
    }
    /// Waits (bounded) until every watcher was told of every change committed before the call.
    fn caught_up(&self) -> Result<()> {
        Ok(())
    }
    /// Asks the database whether it accepts writes now (etcd: it answers, and no alarm that
    /// refuses writes is raised). One request; for readiness probes, not for every write.
    fn ready(&self) -> Result<()> {
        Ok(())
    }
    /// A read-only view of every tree as it is now, which later writes do not change (`None`:
    /// only this process writes; reads see the database itself).
    fn pinned(&self) -> Result<Option<Db>> {
        Ok(None)
    }
    /// Whether the database holds no key at all, in any tree.
    fn is_empty(&self) -> Result<bool>;
    /// Removes every key (`false`: this engine cannot; a failed import into an etcd prefix
    /// that was empty takes back what it wrote).
    fn clear(&self) -> Result<bool> {
        Ok(false)
    }
}

/// One engine's named tree.
pub(crate) trait ITree: Send + Sync {
    fn get(&self, key: &[u8]) -> Result<Option<Value>>;
    /// `get` of each key, in order (an engine with round trips reads them in few).
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Value>>> {
        keys.iter().map(|k| self.get(k)).collect()
    }
    fn insert(&self, key: &[u8], value: &[u8]) -> Result<Option<Value>>;
    fn remove(&self, key: &[u8]) -> Result<Option<Value>>;
    fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<std::result::Result<(), CasFailure>>;
    /// `insert` of a value that means nothing after `until` (Unix ms). An engine with expiring
    /// keys (etcd's leases) removes it on its own a little after; the others keep it until the
    /// store removes it (its readers compare the time themselves, and a sweep removes it).
    fn insert_until(&self, key: &[u8], value: &[u8], _until: i64) -> Result<Option<Value>> {
        self.insert(key, value)
    }
    /// `compare_and_swap` to a value that means nothing after `until` (as `insert_until`).
    fn compare_and_swap_until(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
        _until: i64,
    ) -> Result<std::result::Result<(), CasFailure>> {
        self.compare_and_swap(key, old, new)
    }
    /// Whether this engine removes what `insert_until` wrote once its time has passed.
    fn expires(&self) -> bool {
        false
    }
    fn iter(&self) -> Entries<'static>;
    fn len(&self) -> usize;
    /// For an engine's `transact`, to find its own trees.
    #[cfg_attr(not(feature = "etcd"), allow(dead_code))]
    fn as_any(&self) -> &dyn std::any::Any;
}

/// A cheap handle to a database; clone it freely.
#[derive(Clone)]
pub(crate) struct Db(Arc<dyn IDb>);

impl Db {
    pub(crate) fn new(engine: impl IDb + 'static) -> Db {
        Db(Arc::new(engine))
    }

    pub(crate) fn open_tree(&self, name: &str) -> Result<Tree> {
        self.0.open_tree(name).map(Tree)
    }

    /// A number never returned before by this database, larger than every earlier one.
    pub(crate) fn generate_id(&self) -> Result<u64> {
        self.0.generate_id()
    }

    /// Makes every write applied before the call durable.
    pub(crate) fn flush(&self) -> Result<()> {
        self.0.flush()
    }

    /// See `IDb::transact`.
    pub(crate) fn transact(
        &self,
        checks: &[Check<'_>],
        writes: &[Write<'_>],
    ) -> Result<Option<bool>> {
        self.0.transact(checks, writes)
    }

    /// See `IDb::shared`.
    pub(crate) fn shared(&self) -> bool {
        self.0.shared()
    }

    /// See `IDb::watch`.
    pub(crate) fn watch(&self, tree: &Tree, on_change: OnChange) -> Result<bool> {
        self.0.watch(tree, on_change)
    }

    /// See `IDb::caught_up`.
    pub(crate) fn caught_up(&self) -> Result<()> {
        self.0.caught_up()
    }

    /// See `IDb::ready`.
    pub(crate) fn ready(&self) -> Result<()> {
        self.0.ready()
    }

    /// Every tree as it is now, read-only: reads through it agree with each other however
    /// long they take while other processes write (see `IDb::pinned`; sled: this database).
    pub(crate) fn pinned(&self) -> Result<Db> {
        Ok(self.0.pinned()?.unwrap_or_else(|| self.clone()))
    }

    /// See `IDb::is_empty`.
    pub(crate) fn is_empty(&self) -> Result<bool> {
        self.0.is_empty()
    }

    /// See `IDb::clear`.
    pub(crate) fn clear(&self) -> Result<bool> {
        self.0.clear()
    }
}

/// A cheap handle to one tree; clone it freely.
#[derive(Clone)]
pub(crate) struct Tree(pub(super) Arc<dyn ITree>);

impl Tree {
    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        self.0.get(key.as_ref())
    }

    /// See `ITree::get_many`.
    pub(crate) fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Value>>> {
        self.0.get_many(keys)
    }

    pub(crate) fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.0.get(key.as_ref())?.is_some())
    }

    /// Sets `key`; returns what it held.
    pub(crate) fn insert(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
    ) -> Result<Option<Value>> {
        self.0.insert(key.as_ref(), value.as_ref())
    }

    /// Removes `key`; returns what it held.
    pub(crate) fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        self.0.remove(key.as_ref())
    }

    /// Sets `key` to `new` (`None`: removes it) if it holds `old` (`None`: nothing), in one
    /// atomic step.
    pub(crate) fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        old: Option<impl AsRef<[u8]>>,
        new: Option<impl AsRef<[u8]>>,
    ) -> Result<std::result::Result<(), CasFailure>> {
        self.0.compare_and_swap(
            key.as_ref(),
            old.as_ref().map(|o| o.as_ref()),
            new.as_ref().map(|n| n.as_ref()),
        )
    }

    /// See `ITree::insert_until`.
    pub(crate) fn insert_until(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        until: i64,
    ) -> Result<Option<Value>> {
        self.0.insert_until(key.as_ref(), value.as_ref(), until)
    }

    /// See `ITree::compare_and_swap_until`.
    pub(crate) fn compare_and_swap_until(
        &self,
        key: impl AsRef<[u8]>,
        old: Option<impl AsRef<[u8]>>,
        new: Option<impl AsRef<[u8]>>,
        until: i64,
    ) -> Result<std::result::Result<(), CasFailure>> {
        self.0.compare_and_swap_until(
            key.as_ref(),
            old.as_ref().map(|o| o.as_ref()),
            new.as_ref().map(|n| n.as_ref()),
            until,
        )
    }

    /// See `ITree::expires`.
    pub(crate) fn expires(&self) -> bool {
        self.0.expires()
    }

    /// Every entry, in key order.
    pub(crate) fn iter(&self) -> Iter {
        Iter(self.0.iter())
    }

    /// The number of entries (a full scan).
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// Entries in key order.
pub(crate) struct Iter(Entries<'static>);

impl Iterator for Iter {
    type Item = Result<(Value, Value)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.0.next()
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.0.next_back()
    }
}

impl Iter {
    pub(crate) fn values(self) -> impl Iterator<Item = Result<Value>> {
        self.map(|e| e.map(|(_, v)| v))
    }
}
