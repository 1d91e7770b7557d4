//! Opening and closing the database: the data directory, the start-up check and repair, and the
//! clean-shutdown marker that lets the next start skip them.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use super::manifest::{self, Record};
use super::unique::RepairReport;
use super::{
    META_CLEAN, META_SCHEMA, OpenError, SCHEMA_VERSION, Store, StoreError, StoreOptions, search,
};

/// Permissions of the data directory: it holds password hashes and the installation secret.
const DIR_MODE: u32 = 0o700;
/// Permissions of every file in it.
const FILE_MODE: u32 = 0o600;

pub(crate) fn io_error(path: &Path, e: std::io::Error) -> OpenError {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => OpenError::PermissionDenied {
            path: path.to_path_buf(),
        },
        std::io::ErrorKind::NotADirectory => OpenError::NotADirectory {
            path: path.to_path_buf(),
        },
        _ => OpenError::Unreadable {
            dir: path.to_path_buf(),
            cause: e.to_string(),
        },
    }
}

/// Creates the data directory (0700) or checks the one there: a directory, profiled's own or
/// empty, and closed to other users (an open one is tightened, with a warning).
pub(super) fn prepare_dir(dir: &Path) -> Result<(), OpenError> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return std::fs::DirBuilder::new()
                .recursive(true)
                .mode(DIR_MODE)
                .create(dir)
                .map_err(|e| io_error(dir, e));
        }
        Err(e) => return Err(io_error(dir, e)),
        Ok(m) if !m.is_dir() => {
            return Err(OpenError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
                    .map_err(|e| io_error(dir, e))?;
                tracing::warn!(
                    dir = %dir.display(),
                    was = format_args!("{mode:o}"),
                    now = format_args!("{DIR_MODE:o}"),
                    "the data directory was open to other users; its permissions were tightened"
                );
            }
        }
    }
    let mut entries = std::fs::read_dir(dir).map_err(|e| io_error(dir, e))?;
    let has = |name: &str| dir.join(name).exists();
    // sled writes `conf` when it creates a database: a `db` file with content but without it
    // is not sled's, and sled would take it for a torn log and write over it.
    let foreign_db = std::fs::metadata(dir.join("db")).is_ok_and(|m| m.len() > 0) && !has("conf");
    if foreign_db
        || (entries.next().is_some() && !has("db") && !has("conf") && !has(manifest::FILE))
    {
        return Err(OpenError::Foreign {
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// Makes every file sled (or profiled) created in the data directory private (0600): sled
/// creates them with the process's umask.
pub(super) fn tighten_files(dir: &Path) {
    let mut tightened = 0;
    let visit = |d: &Path, tightened: &mut usize| -> std::io::Result<Vec<std::path::PathBuf>> {
        let mut subdirs = Vec::new();
        for entry in std::fs::read_dir(d)? {
            let entry = entry?;
            let m = entry.metadata()?;
            let (want, path) = if m.is_dir() {
                subdirs.push(entry.path());
                (DIR_MODE, entry.path())
            } else {
                (FILE_MODE, entry.path())
            };
            if m.permissions().mode() & 0o077 != 0 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(want))?;
                *tightened += 1;
            }
        }
        Ok(subdirs)
    };
    let result = visit(dir, &mut tightened).and_then(|subdirs| {
        subdirs
            .iter()
            .try_for_each(|d| visit(d, &mut tightened).map(|_| ()))
    });
    match result {
        Ok(()) if tightened > 0 => tracing::info!(
            dir = %dir.display(),
            files = tightened,
            "made the database files private (mode 600)"
        ),
        Ok(()) => {}
        Err(e) => {
            tracing::warn!(dir = %dir.display(), error = %e, "could not make the database files private")
        }
    }
}

/// Compares what sled recovered with the commit record kept beside it (see `manifest`):
/// `seq` is sled's last round number, `accounts` the accounts it holds, `clean_count` the
/// client-profile count of its clean-stop marker, if it has one. Says what is missing.
pub(super) fn compare_with_record(
    record: Option<Record>,
    seq: u64,
    accounts: u64,
    clean_count: Option<u64>,
) -> Result<(), String> {
    let Some(r) = record else {
        return if seq > 0 {
            Err(format!(
                "its commit record {} is missing (the database has {seq} commits), so profiled cannot tell whether data was lost",
                manifest::FILE
            ))
        } else {
            // A new database, or one from a build that kept no record.
            Ok(())
        };
    };
    if seq < r.seq {
        return Err(format!(
            "the last {} commit(s) are missing: the database ends at commit {seq}, the commit record at {}{}",
            r.seq - seq,
            r.seq,
            if r.clean {
                format!(
                    " (stopped cleanly with {} admin profile(s) and {} client profile(s))",
                    r.accounts, r.client_profiles
                )
            } else {
                String::new()
            }
        ));
    }
    if accounts < r.accounts {
        return Err(format!(
            "{} admin profile(s) were committed, {accounts} are left",
            r.accounts
        ));
    }
    // A clean stop was the last thing written: sled must hold exactly what it recorded. (A
    // later round means the store was opened again since, which removed the marker.)
    if let Some(count) = clean_count.filter(|_| r.clean && seq == r.seq)
        && (accounts, count) != (r.accounts, r.client_profiles)
    {
        return Err(format!(
            "it was stopped cleanly with {} admin profile(s) and {} client profile(s), but holds {accounts} and {count}",
            r.accounts, r.client_profiles
        ));
    }
    Ok(())
}

impl Store {
    /// Opens (or creates) the database in `dir`, checks its schema version, makes sure the
    /// installation secret exists, upgrades an older layout, and — unless the last stop was
    /// clean — repairs what an unacknowledged write may have left. Starts building the search
    /// index in the background.
    pub fn open(dir: &Path, options: &StoreOptions) -> Result<(Store, RepairReport), OpenError> {
        let started = std::time::Instant::now();
        let (store, _) = Self::open_unrepaired(dir, options)?;
        let opened = started.elapsed();
        let unreadable = |cause: String| OpenError::Unreadable {
            dir: dir.to_path_buf(),
            cause,
        };
        let mut report = RepairReport::default();
        let loaded = store
            .prepare(&mut report)
            .map_err(|e| unreadable(e.to_string()))?;
        tracing::info!(
            sled_millis = opened.as_millis() as u64,
            prepare_millis = (started.elapsed() - opened).as_millis() as u64,
            client_profiles = store.client_profile_count(),
            search_index = if loaded { "loaded" } else { "building" },
            "database opened"
        );
        // Make the stamp, the secret, any repair and the marker's removal durable.
        store
            .inner
            .commit
            .flush_now()
            .map_err(|e| unreadable(e.to_string()))?;
        if !loaded {
            let search = store.inner.tables.client_profiles.search.clone();
            let records = store.inner.tables.client_profiles.table.records.clone();
            // Other nodes write too: their changes reach the index through the change feed,
            // started before the build reads the records so that nothing falls between.
            let feed = search.clone();
            store
                .inner
                .db
                .watch(
                    &records,
                    std::sync::Arc::new(move |id, now| {
                        if let Ok(id) = uuid::Uuid::from_slice(id) {
                            feed.refresh(&id, || Ok(now.map(super::engine::Value::from)), now);
                        }
                    }),
                )
                .map_err(|e| unreadable(e.to_string()))?;
            let builder = std::thread::Builder::new()
                .name("search-index".into())
                .spawn(move || search.build(&records))
                .map_err(|e| unreadable(e.to_string()))?;
            *store
                .inner
                .builder
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(builder);
        }
        Ok((store, report))
    }

    /// Start-up work before serving: the clean-shutdown marker (and the search index saved
    /// with it), or the full check and repair. Returns whether the search index was loaded.
    fn prepare(&self, report: &mut RepairReport) -> Result<bool, StoreError> {
        let meta = &self.inner.meta;
        let schema = match meta.get(META_SCHEMA)? {
            Some(v) => u64::from_be_bytes(v.as_ref().try_into().unwrap_or_default()),
            None => SCHEMA_VERSION,
        };
        let clean = meta.remove(META_CLEAN)?;
        let profiles = &self.inner.tables.client_profiles;
        let mut loaded = false;
        match clean {
            Some(m) if schema == SCHEMA_VERSION && (m.len() == 8 || m.len() == 24) => {
                let count = u64::from_be_bytes(m[..8].try_into().expect("8 bytes"));
                profiles.table.set_count(count);
                if let Ok(token) = <[u8; 16]>::try_from(&m[8..]) {
                    match profiles.search.load(&self.inner.dir, &token, count) {
                        Ok(()) => loaded = true,
                        Err(e) => tracing::warn!(
                            error = %e,
                            "the saved search index is not usable; building it from the records"
                        ),
                    }
                }
            }
            _ => {
                // Other nodes may be writing: report, never "repair" under their feet (the
                // engine's one-step writes leave nothing to repair).
                self.check(report, !self.inner.db.shared())?;
                if schema < SCHEMA_VERSION {
                    let n = profiles.upgrade_records()?;
                    meta.insert(META_SCHEMA, SCHEMA_VERSION.to_be_bytes())?;
                    tracing::info!(
                        from = schema,
                        to = SCHEMA_VERSION,
                        client_profiles = n,
                        "database layout upgraded"
                    );
                }
            }
        }
        // Used once at most: a later crash must not find it.
        match std::fs::remove_file(self.inner.dir.join(search::FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        }
        Ok(loaded)
    }

    /// Ends writing for good and records a clean stop (see `META_CLEAN`). Call it once, after
    /// the last request; multi-step writes after it fail with `Unavailable`.
    pub fn close_cleanly(&self) -> Result<(), StoreError> {
        let mut closed = self.inner.gate.write().unwrap_or_else(|p| p.into_inner());
        *closed = true;
        self.inner.commit.flush_now()?;
        if self.inner.db.shared() {
            // Other nodes go on writing: no marker can say what this stop left.
            return Ok(());
        }
        let mut marker = self.client_profile_count().to_be_bytes().to_vec();
        // The search index, saved so that the next open need not rebuild it (and named by
        // a token, so that a file from another stop is never taken for it).
        let mut token = [0u8; 16];
        if getrandom::fill(&mut token).is_ok() {
            let search = &self.inner.tables.client_profiles.search;
            match search.save(&self.inner.dir, &token) {
                Ok(true) => marker.extend_from_slice(&token),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "could not save the search index"),
            }
        }
        self.inner.meta.insert(META_CLEAN, marker)?;
        self.inner.commit.flush_now()?;
        // The commit record's last word: exactly this, stopped cleanly.
        self.inner.ledger.write_durably(&Record {
            seq: self.inner.commit.last_seq(),
            accounts: self.inner.tables.accounts.count(),
            client_profiles: self.client_profile_count(),
            clean: true,
        })?;
        Ok(())
    }
}

impl OpenError {
    /// The error for an I/O failure on `path` (permission denied, not a directory, …).
    pub fn from_io(path: &Path, e: std::io::Error) -> OpenError {
        io_error(path, e)
    }

    /// The same error about `dir` (for an error met in a copy of it).
    pub fn for_dir(self, dir: &Path) -> OpenError {
        let dir = dir.to_path_buf();
        match self {
            OpenError::PermissionDenied { .. } => OpenError::PermissionDenied { path: dir },
            OpenError::NotADirectory { .. } => OpenError::NotADirectory { path: dir },
            OpenError::Locked { .. } => OpenError::Locked { dir },
            OpenError::Foreign { .. } => OpenError::Foreign { dir },
            OpenError::Damaged { what, .. } => OpenError::Damaged { dir, what },
            OpenError::Unreadable { cause, .. } => OpenError::Unreadable { dir, cause },
            e @ (OpenError::NewerSchema { .. } | OpenError::Unreachable { .. }) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commit_record_catches_lost_commits_accounts_and_records() {
        let clean = Record {
            seq: 10,
            accounts: 3,
            client_profiles: 20,
            clean: true,
        };
        assert!(compare_with_record(Some(clean), 10, 3, Some(20)).is_ok());
        let e = compare_with_record(Some(clean), 8, 3, Some(20)).unwrap_err();
        assert!(e.contains("the last 2 commit(s) are missing"), "{e}");
        let e = compare_with_record(Some(clean), 10, 0, Some(20)).unwrap_err();
        assert!(
            e.contains("3 admin profile(s) were committed, 0 are left"),
            "{e}"
        );
        let e = compare_with_record(Some(clean), 10, 3, Some(17)).unwrap_err();
        assert!(e.contains("holds 3 and 17"), "{e}");
        // Opened again since the clean stop (which removed the marker): a crash's leftovers.
        assert!(compare_with_record(Some(clean), 12, 3, None).is_ok());
        // A round's record counts accounts before its flush: sled may hold more, never fewer.
        let round = Record {
            clean: false,
            ..clean
        };
        assert!(compare_with_record(Some(round), 11, 4, None).is_ok());
        assert!(compare_with_record(Some(round), 11, 2, None).is_err());
        // No record: fine for a new database, not for one with commits.
        assert!(compare_with_record(None, 0, 0, None).is_ok());
        let e = compare_with_record(None, 5, 1, None).unwrap_err();
        assert!(e.contains("profiled.commit is missing"), "{e}");
    }
}
