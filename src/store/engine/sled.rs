//! The sled engine: one sled database in the data directory. Its durable commit is sled's
//! `flush()` plus an `fdatasync` of the database file: sled's flush uses `sync_file_range` on
//! Linux, which leaves the disk's write cache and metadata alone. (`flush_async` is not used:
//! it can deadlock in 0.34.7.)

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use super::{CasFailure, Db, Entries, Error, IDb, ITree, Result, Value};
use crate::store::{OpenError, StoreOptions};

impl From<sled::Error> for Error {
    fn from(e: sled::Error) -> Self {
        Error::Sled(e)
    }
}

struct SledDb {
    db: sled::Db,
    /// The database file, synced after each flush (absent for a temporary database).
    file: Option<File>,
}

impl IDb for SledDb {
    fn open_tree(&self, name: &str) -> Result<Arc<dyn ITree>> {
        Ok(Arc::new(SledTree(self.db.open_tree(name)?)))
    }

    fn generate_id(&self) -> Result<u64> {
        Ok(self.db.generate_id()?)
    }

    fn is_empty(&self) -> Result<bool> {
        for name in self.db.tree_names() {
            if !self.db.open_tree(name)?.is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    fn flush(&self) -> Result<()> {
        self.db.flush()?;
        if let Some(f) = &self.file {
            f.sync_data()?;
        }
        Ok(())
    }
}

struct SledTree(sled::Tree);

impl ITree for SledTree {
    fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        Ok(self.0.get(key)?)
    }

    fn insert(&self, key: &[u8], value: &[u8]) -> Result<Option<Value>> {
        Ok(self.0.insert(key, value)?)
    }

    fn remove(&self, key: &[u8]) -> Result<Option<Value>> {
        Ok(self.0.remove(key)?)
    }

    fn compare_and_swap(
        &self,
        key: &[u8],
        old: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<std::result::Result<(), CasFailure>> {
        Ok(self
            .0
            .compare_and_swap(key, old, new)?
            .map_err(|e| CasFailure { current: e.current }))
    }

    fn iter(&self) -> Entries<'static> {
        Box::new(self.0.iter().map(|e| e.map_err(Error::from)))
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A sled database already open (tests, and the temporary ones below).
fn wrap(db: sled::Db, file: Option<File>) -> Db {
    Db::new(SledDb { db, file })
}

/// A database in memory, gone when dropped (unit tests).
#[cfg(test)]
pub(crate) fn temporary() -> Db {
    wrap(
        sled::Config::new().temporary(true).open().expect("sled"),
        None,
    )
}

/// What an engine error at open means for the operator.
pub(crate) fn open_error(dir: &Path, e: &Error) -> OpenError {
    match e {
        Error::Sled(e) => sled_error(dir, e),
        Error::Io(e) => {
            crate::store::open::io_error(dir, std::io::Error::new(e.kind(), e.to_string()))
        }
        #[cfg(feature = "etcd")]
        Error::Etcd(e) => OpenError::Unreachable { cause: e.clone() },
        // Its own words say which (no leader, database full …).
        #[cfg(feature = "etcd")]
        e @ (Error::EtcdUnavailable(_) | Error::EtcdNoSpace(_) | Error::EtcdTooLarge(_)) => {
            OpenError::Unreachable {
                cause: e.to_string(),
            }
        }
    }
}

fn sled_error(dir: &Path, e: &sled::Error) -> OpenError {
    match e {
        sled::Error::Io(e) if e.to_string().contains("could not acquire lock") => {
            OpenError::Locked {
                dir: dir.to_path_buf(),
            }
        }
        sled::Error::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::NotADirectory
            ) =>
        {
            crate::store::open::io_error(dir, std::io::Error::new(e.kind(), e.to_string()))
        }
        sled::Error::Corruption { .. } | sled::Error::ReportableBug(_) => OpenError::Damaged {
            dir: dir.to_path_buf(),
            what: format!("sled cannot read it ({e})"),
        },
        other => OpenError::Unreadable {
            dir: dir.to_path_buf(),
            cause: other.to_string(),
        },
    }
}

/// Size of sled's log segments (and write buffers) for a new database. sled frees space a
/// segment at a time, once at most half of it is live: with its default of 512 KiB a store of
/// client profiles took 2.8–3.1 × the JSON of its records, with 2 MiB 2.2 × (see
/// docs/benchmarks.md).
pub(crate) const SEGMENT_SIZE: usize = 2 * 1024 * 1024;

/// The segment size the database in `dir` was created with (sled refuses any other), read
/// from the file where sled keeps its creation parameters (text lines, then a checksum).
pub(crate) fn created_segment_size(dir: &Path) -> Option<usize> {
    let conf = std::fs::read(dir.join("conf")).ok()?;
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|l| l.strip_prefix("segment_size:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Opens sled in `dir`, waiting up to two seconds for its file lock: sled releases the lock
/// from a background thread shortly after the last handle is dropped, so a reopen in the same
/// process (restart in tests, `import`) can find it still held. Another running server keeps
/// it, and then the error stands.
pub(crate) fn open(dir: &Path, options: &StoreOptions) -> std::result::Result<Db, OpenError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    let db = loop {
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_capacity)
            .segment_size(created_segment_size(dir).unwrap_or(SEGMENT_SIZE));
        // sled panics on some damage it meets while recovering its log.
        let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| config.open()))
            .map_err(|_| OpenError::Damaged {
                dir: dir.to_path_buf(),
                what: "sled failed while reading its log".into(),
            })?;
        match opened {
            // sled reports the lock as `Other`, with the cause in the message.
            Err(sled::Error::Io(e))
                if (e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock"))
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.map_err(|e| sled_error(dir, &e))?,
        }
    };
    let file = File::open(dir.join("db")).map_err(|e| OpenError::Unreadable {
        dir: dir.to_path_buf(),
        cause: e.to_string(),
    })?;
    Ok(wrap(db, Some(file)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(e: sled::Error) -> String {
        sled_error(Path::new("/data"), &e).to_string()
    }

    #[test]
    fn a_database_is_empty_until_any_tree_holds_a_key() {
        let db = temporary();
        assert!(db.is_empty().unwrap());
        let t = db.open_tree("t").unwrap();
        assert!(db.is_empty().unwrap());
        t.insert(b"k", b"v").unwrap();
        assert!(!db.is_empty().unwrap());
        // Only this process writes: reads need no pinning, and see the database itself.
        assert!(
            db.pinned()
                .unwrap()
                .open_tree("t")
                .unwrap()
                .contains_key(b"k")
                .unwrap()
        );
    }

    #[test]
    fn sled_errors_at_open_say_what_they_are() {
        let io = |kind, m: &str| sled::Error::Io(std::io::Error::new(kind, m));
        // Tests run as root, where no permission is ever denied: the mapping is checked here.
        let m = message(io(std::io::ErrorKind::PermissionDenied, "EACCES"));
        assert!(m.contains("permission denied on /data"), "{m}");
        let m = message(io(
            std::io::ErrorKind::Other,
            "could not acquire lock on \"/data/db\": WouldBlock",
        ));
        assert!(
            m.contains("is another profiled running on this directory?"),
            "{m}"
        );
        let m = message(sled::Error::Corruption { at: None, bt: () });
        assert!(m.contains("is damaged"), "{m}");
        assert!(m.contains("restore it from a backup"), "{m}");
    }
}
