//! The embedded database: every sled tree is opened here, by name, and nothing outside
//! `store` knows a tree exists. Handlers see typed records and `StoreError`.

mod accounts;
pub mod backup;
mod client_profiles;
mod commit;
mod open;
mod profile_record;
mod profile_types;
mod record_cache;
mod search;
mod sessions;
mod settings;
pub mod unique;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

pub use accounts::{Account, NewAccount, Totp, administers, email_key};
pub use client_profiles::{Direction, profile_json};
pub use profile_types::{ClientProfile, ProfileType, ProfileUrl, name_key};
pub use search::{Found, ProfileField, ProfileQuery};
pub use sessions::{Session, Stage};
pub use settings::{AdminMfa, AuditLogPersistenceMode, GlobalSettings, SpaMode};

use client_profiles::ProfileTable;
use commit::GroupCommit;
use unique::{RepairReport, UniqueTable};

/// The on-disk layout this build writes. A database stamped with a larger number was written
/// by a newer profiled and is refused rather than misread; a smaller one is upgraded on open.
/// 2: client profiles are stored as their public JSON (`profile_record`).
pub const SCHEMA_VERSION: u64 = 2;

const META: &str = "meta";
const META_SCHEMA: &[u8] = b"schema_version";
const META_SECRET: &[u8] = b"installation_secret";
const META_COLLECTIVE: &[u8] = b"collective_id";
/// Account numbers start here; an import raises it above every restored id.
const META_ACCOUNT_FLOOR: &[u8] = b"account_number_floor";
/// Written by a clean shutdown, after the last flush: the number of client profiles (8 bytes,
/// big-endian), then the token of the saved search index if one was saved (16 bytes). Its
/// presence at open means nothing can be half-written (every multi-step write runs without a
/// pause and the gate was closed before it was written), so the full check is skipped. Open
/// removes it, durably, before serving: a crash later leaves no marker behind.
const META_CLEAN: &[u8] = b"clean_shutdown";

/// Tree names say which way they map.
pub(crate) const TREE_ID_ACCOUNT: &str = "accountid_account";
pub(crate) const TREE_EMAIL_ACCOUNT: &str = "email_accountid";
pub(crate) const TREE_TOKENHASH_SESSION: &str = "tokenhash_session";
pub(crate) const TREE_SETTINGS: &str = "settings";
pub(crate) const TREE_ID_CLIENT_PROFILE: &str = "clientprofileid_clientprofile";
pub(crate) const TREE_NAME_CLIENT_PROFILE: &str = "name_clientprofileid";

/// Errors of the storage layer. Expected outcomes (conflicts, absence) are typed apart from
/// failures of the database itself, which are logged where they are turned into a 500.
#[derive(Debug)]
pub enum StoreError {
    /// A unique key (name, email) belongs to another record.
    KeyTaken,
    /// A record with this id already exists.
    IdTaken,
    NotFound,
    /// The write would leave no active administrator.
    LastAdministrator,
    /// Writes are refused because a flush failed: nothing written since is known to be durable.
    Unavailable,
    /// The database holds something this build cannot read.
    Corrupt(String),
    Sled(sled::Error),
    Io(std::io::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::KeyTaken => f.write_str("unique key already taken"),
            StoreError::IdTaken => f.write_str("id already taken"),
            StoreError::NotFound => f.write_str("not found"),
            StoreError::LastAdministrator => f.write_str("no active administrator would remain"),
            StoreError::Unavailable => f.write_str("store refuses writes after a failed flush"),
            StoreError::Corrupt(m) => write!(f, "database content is not readable: {m}"),
            StoreError::Sled(e) => write!(f, "sled: {e}"),
            StoreError::Io(e) => write!(f, "io: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Sled(e)
    }
}

impl From<std::io::Error> for StoreError {
    fn from(e: std::io::Error) -> Self {
        StoreError::Io(e)
    }
}

/// Why a data directory could not be opened. Shown to the operator as is.
#[derive(Debug)]
pub enum OpenError {
    NewerSchema { found: u64 },
    Unreadable { dir: PathBuf, cause: String },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NewerSchema { found } => write!(
                f,
                "the database was written by a newer profiled (schema {found}, this build reads up to {SCHEMA_VERSION}); run that version or restore a backup made by this one"
            ),
            OpenError::Unreadable { dir, cause } => write!(
                f,
                "cannot open the database in {}: {cause}. If it was damaged by a crash, restore it from a backup (profiled import) into an empty directory",
                dir.display()
            ),
        }
    }
}

impl std::error::Error for OpenError {}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("records are plain data and always serialise")
}

/// Options for opening a data directory.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// sled's page cache, in bytes. sled's own default (1 GiB) is too much for an appliance.
    pub cache_capacity: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_capacity: 128 * 1024 * 1024,
        }
    }
}

/// Every uniquely indexed table, opened by name in one place (for the server and for import).
pub(crate) struct Tables {
    pub(crate) accounts: UniqueTable,
    pub(crate) client_profiles: ProfileTable,
}

impl Tables {
    /// With `indexed`, client-profile writes keep the search index in step (a server, not a
    /// restore).
    pub(crate) fn open(db: &sled::Db, gate: &unique::Gate, indexed: bool) -> sled::Result<Tables> {
        Ok(Tables {
            accounts: UniqueTable::new(
                db.open_tree(TREE_ID_ACCOUNT)?,
                db.open_tree(TREE_EMAIL_ACCOUNT)?,
                gate.clone(),
            ),
            client_profiles: ProfileTable::new(
                db.open_tree(TREE_ID_CLIENT_PROFILE)?,
                db.open_tree(TREE_NAME_CLIENT_PROFILE)?,
                gate.clone(),
                indexed,
            ),
        })
    }

    /// Each table with the name of its key and how to read that key from a record.
    fn each(&self) -> [(&'static str, &UniqueTable, unique::KeyOf); 2] {
        [
            ("email", &self.accounts, accounts::email_key_of),
            (
                "name",
                &self.client_profiles.table,
                client_profiles::name_key_of,
            ),
        ]
    }

    /// Inserts a client profile in its backup form (import).
    pub(crate) fn insert_client_profile_raw(&self, backup_form: &[u8]) -> Result<(), StoreError> {
        let profile: ClientProfile = decode(backup_form)?;
        self.client_profiles.table.insert(
            profile.id.as_bytes(),
            &profile.name_key(),
            profile_record::encode(&profile),
        )
    }
}

struct Inner {
    db: sled::Db,
    gate: unique::Gate,
    meta: sled::Tree,
    tables: Tables,
    account_floor: u64,
    sessions: sled::Tree,
    /// Each account's sessions, for the per-account cap.
    session_index: sessions::SessionIndex,
    settings: sled::Tree,
    secret: [u8; 32],
    commit: GroupCommit,
    dir: PathBuf,
    /// The thread building the search index after open.
    builder: Mutex<Option<JoinHandle<()>>>,
    /// Held by each guarded account write: its checks and the write are one step.
    account_gate: Mutex<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The build holds the records tree, and so the database and its file lock: stop it
        // before this handle is gone, so that the directory can be opened again at once.
        self.tables.client_profiles.search.cancel();
        if let Some(t) = self
            .builder
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let _ = t.join();
        }
    }
}

/// A cheap handle to the open database; clone it freely.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl Store {
    /// Opens without repairing anything (for `profiled check`).
    pub fn open_unrepaired(
        dir: &Path,
        options: &StoreOptions,
    ) -> Result<(Store, RepairReport), OpenError> {
        let unreadable = |cause: String| OpenError::Unreadable {
            dir: dir.to_path_buf(),
            cause,
        };
        std::fs::create_dir_all(dir).map_err(|e| unreadable(e.to_string()))?;
        // sled treats a damaged log as a torn tail and may recover it as empty: a database file
        // with content but without profiled's stamp (written and flushed before a store ever
        // serves) is damaged, not new.
        let existed = std::fs::metadata(dir.join("db")).is_ok_and(|m| m.len() > 0);
        let db = open::open_sled(dir, options).map_err(|e| unreadable(e.to_string()))?;
        let tree = |name: &str| db.open_tree(name).map_err(|e| unreadable(e.to_string()));
        let meta = tree(META)?;
        match meta
            .get(META_SCHEMA)
            .map_err(|e| unreadable(e.to_string()))?
        {
            Some(v) => {
                let found = u64::from_be_bytes(
                    v.as_ref()
                        .try_into()
                        .map_err(|_| unreadable("schema version is not 8 bytes".into()))?,
                );
                if found > SCHEMA_VERSION {
                    return Err(OpenError::NewerSchema { found });
                }
            }
            None if existed => {
                return Err(unreadable(
                    "the database file exists but sled recovered no profiled data from it: it is damaged (or was not written by profiled)".into(),
                ));
            }
            None => {
                meta.insert(META_SCHEMA, &SCHEMA_VERSION.to_be_bytes())
                    .map_err(|e| unreadable(e.to_string()))?;
            }
        }
        let secret = match meta
            .get(META_SECRET)
            .map_err(|e| unreadable(e.to_string()))?
        {
            Some(v) => v
                .as_ref()
                .try_into()
                .map_err(|_| unreadable("installation secret is not 32 bytes".into()))?,
            None => {
                let mut s = [0u8; 32];
                getrandom::fill(&mut s).map_err(|e| unreadable(e.to_string()))?;
                meta.insert(META_SECRET, &s)
                    .map_err(|e| unreadable(e.to_string()))?;
                s
            }
        };
        let gate = unique::Gate::default();
        let tables = Tables::open(&db, &gate, true).map_err(|e| unreadable(e.to_string()))?;
        let account_floor = match meta
            .get(META_ACCOUNT_FLOOR)
            .map_err(|e| unreadable(e.to_string()))?
        {
            Some(v) => u64::from_be_bytes(
                v.as_ref()
                    .try_into()
                    .map_err(|_| unreadable("account number floor is not 8 bytes".into()))?,
            ),
            None => accounts::FIRST_ACCOUNT_NUMBER,
        };
        let sessions = tree(TREE_TOKENHASH_SESSION)?;
        let settings = tree(TREE_SETTINGS)?;
        let commit = GroupCommit::start(&db, dir).map_err(|e| unreadable(e.to_string()))?;
        let store = Store {
            inner: Arc::new(Inner {
                db,
                gate,
                meta,
                tables,
                account_floor,
                sessions,
                session_index: Default::default(),
                settings,
                secret,
                commit,
                dir: dir.to_path_buf(),
                builder: Mutex::new(None),
                account_gate: Mutex::new(()),
            }),
        };
        Ok((store, RepairReport::default()))
    }

    /// Verifies every invariant the store keeps: each index entry points to a record that
    /// carries its key, each record is reachable through its index entries, no two records
    /// share a key, every record, session and the settings can be read. With `fix`, removes
    /// what an unacknowledged write can leave behind (stale index entries, missing entries for
    /// a record, unreadable sessions); what cannot be fixed safely is only reported.
    pub fn check(&self, report: &mut RepairReport, fix: bool) -> Result<(), StoreError> {
        for (what, table, key_of) in self.inner.tables.each() {
            table.check(report, what, key_of, fix)?;
        }
        for entry in self.inner.sessions.iter() {
            let (k, v) = entry?;
            if decode::<Session>(&v).is_err() {
                report.removed.push("an unreadable session".into());
                if fix {
                    self.inner.sessions.remove(k)?;
                }
            }
        }
        if let Err(e) = self.settings() {
            report
                .unrepairable
                .push(format!("the global settings: {e}"));
        }
        Ok(())
    }

    /// Waits until every write this task made before the call is on disk (group commit).
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.inner.commit.wait().await
    }

    /// Fails fast when a previous flush failed, before anything is written.
    pub fn writable(&self) -> Result<(), StoreError> {
        self.inner.commit.check()
    }

    /// Flushes synchronously; for shutdown and offline commands.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.commit.flush_now()
    }

    /// The per-installation secret (32 random bytes, generated on first open).
    pub fn secret(&self) -> &[u8; 32] {
        &self.inner.secret
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    pub(crate) fn db(&self) -> &sled::Db {
        &self.inner.db
    }

    pub(crate) fn meta(&self) -> &sled::Tree {
        &self.inner.meta
    }
}
