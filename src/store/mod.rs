//! The database: every tree (of the storage engine, see `engine`) is opened here, by name, and
//! nothing outside `store` knows a tree exists. Handlers see typed records and `StoreError`.

mod accounts;
mod applications;
pub mod backup;
mod client_profiles;
mod commit;
pub(crate) mod engine;
pub(crate) mod manifest;
mod open;
mod password_resets;
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
pub use applications::{Application, hex};
pub use client_profiles::{Direction, profile_json};
pub use password_resets::PasswordReset;
pub use profile_types::{ClientProfile, ProfileType, ProfileUrl, name_key};
pub use search::{Found, ProfileField, ProfileQuery};
pub use sessions::{Session, Stage};
pub use settings::{AdminMfa, AuditLogPersistenceMode, GlobalSettings, SpaMode};

#[cfg(feature = "etcd")]
pub use engine::etcd::EtcdOptions;

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
/// The number of the last group commit round (8 bytes, big-endian), written before its
/// flush; compared with the commit record outside sled at open (see `manifest`).
const META_COMMIT_SEQ: &[u8] = b"commit_seq";

/// Tree names say which way they map.
pub(crate) const TREE_ID_ACCOUNT: &str = "accountid_account";
pub(crate) const TREE_EMAIL_ACCOUNT: &str = "email_accountid";
pub(crate) const TREE_TOKENHASH_SESSION: &str = "tokenhash_session";
pub(crate) const TREE_SETTINGS: &str = "settings";
pub(crate) const TREE_ID_CLIENT_PROFILE: &str = "clientprofileid_clientprofile";
pub(crate) const TREE_NAME_CLIENT_PROFILE: &str = "name_clientprofileid";
pub(crate) const TREE_ID_APPLICATION: &str = "applicationid_application";
pub(crate) const TREE_KEYHASH_APPLICATION: &str = "appkeyhash_applicationid";
pub(crate) const TREE_TOKENHASH_PASSWORD_RESET: &str = "resettokenhash_passwordreset";
/// Failed-login counts shared by every node (etcd only; a single node keeps them in memory).
pub(crate) const TREE_LOGIN_FAILURES: &str = "loginkeyhash_failures";
/// Each account's sessions, for the per-account cap over every node (etcd only).
pub(crate) const TREE_ACCOUNTID_SESSIONS: &str = "accountid_sessions";

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
    /// The storage engine failed.
    Engine(engine::Error),
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
            StoreError::Engine(e) => write!(f, "{e}"),
            StoreError::Io(e) => write!(f, "io: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// What a failure of the database means for the request that met it, where it means more
/// than "something broke" (a 500): each is answered in its own way (see `error.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outage {
    /// The database cannot be reached, or cannot decide (etcd: no leader, timed out): the
    /// same request may succeed later without anyone doing anything.
    Unreachable,
    /// The database is full (etcd's quota): writes are refused until an operator frees space;
    /// reads keep working.
    Full,
    /// The write is larger than the database takes in one request (etcd's
    /// `--max-request-bytes`): the same request will never succeed.
    TooLarge,
}

impl StoreError {
    /// The outage behind this error, if it is one.
    pub fn outage(&self) -> Option<Outage> {
        match self {
            #[cfg(feature = "etcd")]
            StoreError::Engine(engine::Error::EtcdUnavailable(_)) => Some(Outage::Unreachable),
            #[cfg(feature = "etcd")]
            StoreError::Engine(engine::Error::EtcdNoSpace(_)) => Some(Outage::Full),
            #[cfg(feature = "etcd")]
            StoreError::Engine(engine::Error::EtcdTooLarge(_)) => Some(Outage::TooLarge),
            _ => None,
        }
    }
}

impl From<engine::Error> for StoreError {
    fn from(e: engine::Error) -> Self {
        StoreError::Engine(e)
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
    NewerSchema {
        found: u64,
    },
    PermissionDenied {
        path: PathBuf,
    },
    NotADirectory {
        path: PathBuf,
    },
    /// Another process holds sled's lock on the database file.
    Locked {
        dir: PathBuf,
    },
    /// Something is where the database should be that profiled did not write.
    Foreign {
        dir: PathBuf,
    },
    /// Data is missing or unreadable: never served, changed or set up anew.
    Damaged {
        dir: PathBuf,
        what: String,
    },
    Unreadable {
        dir: PathBuf,
        cause: String,
    },
    /// The etcd cluster did not answer (or refused the credentials).
    Unreachable {
        cause: String,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NewerSchema { found } => write!(
                f,
                "the database was written by a newer profiled (schema {found}, this build reads up to {SCHEMA_VERSION}); run that version or restore a backup made by this one"
            ),
            OpenError::PermissionDenied { path } => write!(
                f,
                "permission denied on {}: run profiled as the user that owns the data directory, or give that user access to it",
                path.display()
            ),
            OpenError::NotADirectory { path } => write!(
                f,
                "{} is not a directory: point --data-dir (PROFILED_DATA_DIR) at a directory",
                path.display()
            ),
            OpenError::Locked { dir } => write!(
                f,
                "the database in {} is locked: is another profiled running on this directory? Stop it first (a running server makes backups with GET /admin/backup)",
                dir.display()
            ),
            OpenError::Foreign { dir } => write!(
                f,
                "{} holds files but no profiled database: profiled leaves them alone. Point --data-dir at an empty or new directory",
                dir.display()
            ),
            OpenError::Damaged { dir, what } => write!(
                f,
                "the database in {} is damaged: {what}. profiled did not serve, change or set it up anew: restore it from a backup (profiled import) into an empty directory and point --data-dir at it",
                dir.display()
            ),
            OpenError::Unreachable { cause } => write!(
                f,
                "cannot use the etcd cluster: {cause}. Check --store (PROFILED_STORE), that a majority of its members runs, and the credentials"
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

impl Store {
    /// The engine `options` name: etcd when given, else sled in `dir`.
    fn engine(dir: &Path, options: &StoreOptions) -> Result<engine::Db, OpenError> {
        #[cfg(feature = "etcd")]
        if let Some(etcd) = &options.etcd {
            return engine::etcd::open(etcd).map_err(|e| OpenError::Unreachable {
                cause: e.to_string(),
            });
        }
        engine::sled::open(dir, options)
    }
}

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
    /// Open a database even when it lost data the commit record knows of (logged as an
    /// error): for `export --salvage`, on a private copy. Never for a server.
    pub salvage: bool,
    /// Keep the data in this etcd cluster instead of sled in the data directory.
    #[cfg(feature = "etcd")]
    pub etcd: Option<EtcdOptions>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_capacity: 128 * 1024 * 1024,
            salvage: false,
            #[cfg(feature = "etcd")]
            etcd: None,
        }
    }
}

impl StoreOptions {
    /// The store these options name when it is not sled in a data directory, for messages:
    /// `the etcd prefix "P/"`.
    pub fn describe(&self) -> String {
        #[cfg(feature = "etcd")]
        if let Some(etcd) = &self.etcd {
            return format!("the etcd prefix {:?}", format!("{}/", etcd.prefix));
        }
        "the store".into()
    }
}

/// A record as a `UniqueTable` keeps it: id, unique key, record.
pub(crate) type TableRow = (Vec<u8>, Vec<u8>, Vec<u8>);

/// Every uniquely indexed table, opened by name in one place (for the server and for import).
pub(crate) struct Tables {
    pub(crate) accounts: UniqueTable,
    pub(crate) client_profiles: ProfileTable,
}

impl Tables {
    /// With `indexed`, client-profile writes keep the search index in step (a server, not a
    /// restore).
    pub(crate) fn open(
        db: &engine::Db,
        gate: &unique::Gate,
        indexed: bool,
    ) -> engine::Result<Tables> {
        let mut tables = Tables {
            accounts: UniqueTable::counted(
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
        };
        if db.shared() {
            tables.accounts = tables.accounts.atomic(db);
            tables.client_profiles = tables.client_profiles.shared(db);
        }
        Ok(tables)
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

    /// A client profile in its backup form as the table keeps it (import).
    pub(crate) fn client_profile_row(backup_form: &[u8]) -> Result<TableRow, StoreError> {
        let profile: ClientProfile = decode(backup_form)?;
        Ok((
            profile.id.as_bytes().to_vec(),
            profile.name_key(),
            profile_record::encode(&profile),
        ))
    }
}

struct Inner {
    db: engine::Db,
    gate: unique::Gate,
    meta: engine::Tree,
    tables: Arc<Tables>,
    ledger: Arc<manifest::Ledger>,
    /// (accounts, client profiles) the commit record says a clean stop left, when nothing was
    /// committed since: a full scan must find exactly these.
    expected: Option<(u64, u64)>,
    account_floor: u64,
    sessions: engine::Tree,
    /// Each account's sessions, for the per-account cap.
    session_index: sessions::SessionIndex,
    settings: engine::Tree,
    /// Registered applications and their keys' hashes.
    applications: applications::ApplicationTrees,
    password_resets: engine::Tree,
    /// Failed-login counts, when several nodes share the store.
    login_failures: Option<engine::Tree>,
    /// Each account's sessions, when several nodes share the store (`session_index` is
    /// then unused: it would know this node's logins only).
    session_lists: Option<engine::Tree>,
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
    /// Opens without repairing anything (for `profiled check`). Refuses a database that lost
    /// commits the record outside sled knows of (see `manifest`), before writing anything.
    pub fn open_unrepaired(
        dir: &Path,
        options: &StoreOptions,
    ) -> Result<(Store, RepairReport), OpenError> {
        open::prepare_dir(dir)?;
        // sled treats a damaged log as a torn tail and may recover it as empty: a database file
        // with content but without profiled's stamp (written and flushed before a store ever
        // serves) is damaged, not new.
        let existed = std::fs::metadata(dir.join("db")).is_ok_and(|m| m.len() > 0);
        let db = Self::engine(dir, options)?;
        Self::open_on(dir, db, existed, options)
    }

    /// Opens an installation that exists, without repairing anything and without writing
    /// while it opens: the offline commands against etcd, while nodes may be serving. With
    /// `pinned`, every read is of the database as it was at the start (see
    /// `engine::Db::pinned`), and nothing can be written. `dir` is a private scratch
    /// directory (the engine keeps nothing there). `None`: the store holds no installation.
    pub fn open_existing(
        dir: &Path,
        options: &StoreOptions,
        pinned: bool,
    ) -> Result<Option<Store>, OpenError> {
        open::prepare_dir(dir)?;
        let mut db = Self::engine(dir, options)?;
        let failed = |e: engine::Error| engine::sled::open_error(dir, &e);
        if pinned {
            db = db.pinned().map_err(failed)?;
        }
        // Every installation is stamped with its schema before anything else is written.
        if db
            .open_tree(META)
            .and_then(|m| m.get(META_SCHEMA))
            .map_err(failed)?
            .is_none()
        {
            return Ok(None);
        }
        Self::open_on(dir, db, false, options).map(|(store, _)| Some(store))
    }

    /// `open_unrepaired` on an engine already open; `existed`: sled's file had content.
    fn open_on(
        dir: &Path,
        db: engine::Db,
        existed: bool,
        options: &StoreOptions,
    ) -> Result<(Store, RepairReport), OpenError> {
        let unreadable = |cause: String| OpenError::Unreadable {
            dir: dir.to_path_buf(),
            cause,
        };
        let damaged = |what: String| OpenError::Damaged {
            dir: dir.to_path_buf(),
            what,
        };
        let shared = db.shared();
        let existed = existed && !shared;
        // The commit record guards sled's own recovery; etcd acknowledges only what a majority
        // of its members has on disk, and several nodes write to it.
        let record = if shared {
            Ok(None)
        } else {
            manifest::read(dir)
        };
        let record = record.map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => OpenError::PermissionDenied {
                path: dir.join(manifest::FILE),
            },
            _ => damaged(e.to_string()),
        })?;
        open::tighten_files(dir);
        let tree = |name: &str| {
            db.open_tree(name)
                .map_err(|e| engine::sled::open_error(dir, &e))
        };
        let meta = tree(META)?;
        let u64_at = |key: &[u8]| -> Result<Option<u64>, OpenError> {
            match meta
                .get(key)
                .map_err(|e| engine::sled::open_error(dir, &e))?
            {
                None => Ok(None),
                Some(v) => v
                    .as_ref()
                    .try_into()
                    .map(|b| Some(u64::from_be_bytes(b)))
                    .map_err(|_| {
                        damaged(format!("{} is not 8 bytes", String::from_utf8_lossy(key)))
                    }),
            }
        };
        let gate = unique::Gate::default();
        let tables =
            Tables::open(&db, &gate, true).map_err(|e| engine::sled::open_error(dir, &e))?;
        let accounts = tables.accounts.records.len() as u64;
        tables.accounts.set_count(accounts);
        let seq = u64_at(META_COMMIT_SEQ)?.unwrap_or(0);
        let marker = meta
            .get(META_CLEAN)
            .map_err(|e| engine::sled::open_error(dir, &e))?
            .and_then(|m| {
                m.get(..8)
                    .map(|c| u64::from_be_bytes(c.try_into().expect("8")))
            });
        if let Err(missing) = open::compare_with_record(record, seq, accounts, marker) {
            if !options.salvage {
                return Err(damaged(missing));
            }
            tracing::error!(%missing, "salvaging what is left of a damaged database");
        }
        match u64_at(META_SCHEMA)? {
            Some(found) if found > SCHEMA_VERSION => {
                return Err(OpenError::NewerSchema { found });
            }
            Some(_) => {}
            None if existed || record.is_some() => {
                return Err(damaged(
                    "the database file exists but sled recovered no profiled data from it (or it was not written by profiled)".into(),
                ));
            }
            None => {}
        }
        // After a clean stop with nothing since, the exact counts every full scan must find.
        let expected = record
            .filter(|r| r.clean && r.seq == seq && !options.salvage)
            .map(|r| (r.accounts, r.client_profiles));
        // Nothing is written before this point.
        if u64_at(META_SCHEMA)?.is_none() {
            meta.insert(META_SCHEMA, SCHEMA_VERSION.to_be_bytes())
                .map_err(|e| unreadable(e.to_string()))?;
        }
        let secret = match meta
            .get(META_SECRET)
            .map_err(|e| unreadable(e.to_string()))?
        {
            Some(v) => v,
            None => {
                let mut s = [0u8; 32];
                getrandom::fill(&mut s).map_err(|e| unreadable(e.to_string()))?;
                // Nodes starting together on a new cluster: the first one's secret stands.
                match meta
                    .compare_and_swap(META_SECRET, None::<&[u8]>, Some(s))
                    .map_err(|e| unreadable(e.to_string()))?
                {
                    Ok(()) => engine::Value::from(&s[..]),
                    Err(taken) => taken.current.unwrap_or_default(),
                }
            }
        };
        let secret: [u8; 32] = secret
            .as_ref()
            .try_into()
            .map_err(|_| damaged("installation secret is not 32 bytes".into()))?;
        let account_floor = u64_at(META_ACCOUNT_FLOOR)?.unwrap_or(accounts::FIRST_ACCOUNT_NUMBER);
        let sessions = tree(TREE_TOKENHASH_SESSION)?;
        let settings = tree(TREE_SETTINGS)?;
        let applications =
            applications::ApplicationTrees::open(&db).map_err(|e| unreadable(e.to_string()))?;
        let password_resets = tree(TREE_TOKENHASH_PASSWORD_RESET)?;
        let (login_failures, session_lists) = if shared {
            (
                Some(tree(TREE_LOGIN_FAILURES)?),
                Some(tree(TREE_ACCOUNTID_SESSIONS)?),
            )
        } else {
            (None, None)
        };
        let tables = Arc::new(tables);
        let last_seq = seq.max(record.map_or(0, |r| r.seq));
        let ledger = Arc::new(
            manifest::Ledger::open(
                dir,
                manifest::Record {
                    seq: last_seq,
                    accounts,
                    client_profiles: marker.unwrap_or(0),
                    clean: false,
                },
            )
            .map_err(|e| unreadable(format!("cannot write {}: {e}", manifest::FILE)))?,
        );
        let commit = if shared {
            // etcd committed every write before answering it: the rounds have nothing to add.
            GroupCommit::start(&db, 0, |_| Ok(()), |_| Ok(()))
                .map_err(|e| unreadable(e.to_string()))?
        } else {
            let (meta, tables, ledger) = (meta.clone(), tables.clone(), ledger.clone());
            // Counted before the flush: every write counted is in sled already, so the counts
            // recorded are never more than what the round made durable.
            let counted = Arc::new(std::sync::Mutex::new((0, 0)));
            let after_counts = counted.clone();
            GroupCommit::start(
                &db,
                last_seq,
                move |n| {
                    *counted.lock().unwrap_or_else(|p| p.into_inner()) = (
                        tables.accounts.count(),
                        tables.client_profiles.table.count(),
                    );
                    meta.insert(META_COMMIT_SEQ, n.to_be_bytes())?;
                    Ok(())
                },
                move |n| {
                    let (accounts, client_profiles) =
                        *after_counts.lock().unwrap_or_else(|p| p.into_inner());
                    ledger.write(&manifest::Record {
                        seq: n,
                        accounts,
                        client_profiles,
                        clean: false,
                    })?;
                    Ok(())
                },
            )
            .map_err(|e| unreadable(e.to_string()))?
        };
        let store = Store {
            inner: Arc::new(Inner {
                db,
                gate,
                meta,
                tables,
                ledger,
                expected,
                account_floor,
                sessions,
                session_index: Default::default(),
                settings,
                applications,
                password_resets,
                login_failures,
                session_lists,
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
        self.check_applications(report, fix)?;
        if let Err(e) = self.admin_mfa() {
            report
                .unrepairable
                .push(format!("the Admin MFA settings: {e}"));
        }
        // An authenticator seed that cannot be read would lock its account out of MFA.
        for item in self.inner.tables.accounts.records.iter() {
            let (_, value) = item?;
            if let Ok(a) = decode::<Account>(&value)
                && let Some(t) = &a.totp
                && crate::auth::totp::from_base32(&t.secret).is_none_or(|k| k.len() < 10)
            {
                report.unrepairable.push(format!(
                    "account {}: its authenticator seed is unreadable",
                    a.id
                ));
            }
        }
        let found = (
            self.inner.tables.accounts.count(),
            self.client_profile_count(),
        );
        if let Some(missing) = self.missing(found) {
            report.unrepairable.push(missing);
        }
        Ok(())
    }

    /// Whether (accounts, client profiles) found by a full scan fall short of what the commit
    /// record says a clean stop left; says what is missing.
    pub fn missing(&self, found: (u64, u64)) -> Option<String> {
        let expected = self.inner.expected?;
        (found != expected).then(|| {
            format!(
                "the database was stopped cleanly with {} admin profile(s) and {} client profile(s), but {} and {} can be read",
                expected.0, expected.1, found.0, found.1
            )
        })
    }

    /// Waits until every write this task made before the call is on disk (group commit).
    pub async fn durable(&self) -> Result<(), StoreError> {
        self.inner.commit.wait().await
    }

    /// Fails fast when a previous flush failed, before anything is written.
    /// Refuses every later write, as after a failed flush (tests of `/readyz` and the 503s).
    #[doc(hidden)]
    pub fn refuse_writes_as_after_a_failed_flush(&self) {
        self.inner.commit.refuse_writes();
    }

    pub fn writable(&self) -> Result<(), StoreError> {
        self.inner.commit.check()
    }

    /// Whether the store accepts writes, asking the database itself too (etcd: a member
    /// answers for the cluster, and no NOSPACE alarm is raised). For `/readyz`: `writable`,
    /// which every write checks, costs no request.
    pub fn ready(&self) -> Result<(), StoreError> {
        self.writable()?;
        Ok(self.inner.db.ready()?)
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

    /// Whether other nodes share this store (etcd).
    pub fn shared(&self) -> bool {
        self.inner.db.shared()
    }

    /// Where every node counts failed logins, when several share the store (etcd).
    pub(crate) fn login_failures(&self) -> Option<&engine::Tree> {
        self.inner.login_failures.as_ref()
    }

    pub(crate) fn db(&self) -> &engine::Db {
        &self.inner.db
    }

    pub(crate) fn meta(&self) -> &engine::Tree {
        &self.inner.meta
    }
}
