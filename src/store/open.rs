//! Opening and closing the database: sled's parameters, the start-up check and repair, and the
//! clean-shutdown marker that lets the next start skip them.

use std::path::Path;

use super::unique::RepairReport;
use super::{
    META_CLEAN, META_SCHEMA, OpenError, SCHEMA_VERSION, Store, StoreError, StoreOptions, search,
};

/// Size of sled's log segments (and write buffers) for a new database. sled frees space a
/// segment at a time, once at most half of it is live: with its default of 512 KiB a store of
/// client profiles took 2.8–3.1 × the JSON of its records, with 2 MiB 2.2 × (see
/// docs/benchmarks.md).
pub(super) const SEGMENT_SIZE: usize = 2 * 1024 * 1024;

/// The segment size the database in `dir` was created with (sled refuses any other), read
/// from the file where sled keeps its creation parameters (text lines, then a checksum).
pub(super) fn created_segment_size(dir: &Path) -> Option<usize> {
    let conf = std::fs::read(dir.join("conf")).ok()?;
    String::from_utf8_lossy(&conf)
        .lines()
        .find_map(|l| l.strip_prefix("segment_size:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Opens sled, waiting up to two seconds for its file lock: sled releases the lock from a
/// background thread shortly after the last handle is dropped, so a reopen in the same process
/// (restart in tests, `import`) can find it still held. Another running server keeps it, and
/// then the error stands.
pub(super) fn open_sled(dir: &Path, options: &StoreOptions) -> sled::Result<sled::Db> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_capacity)
            .segment_size(created_segment_size(dir).unwrap_or(SEGMENT_SIZE))
            .open()
        {
            // sled reports the lock as `Other`, with the cause in the message.
            Err(sled::Error::Io(e))
                if (e.kind() == std::io::ErrorKind::WouldBlock
                    || e.to_string().contains("could not acquire lock"))
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
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
                self.check(report, true)?;
                if schema < SCHEMA_VERSION {
                    let n = profiles.upgrade_records()?;
                    meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())?;
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
        self.inner.commit.flush_now()
    }
}
