//! Consistent snapshots as JSON lines: the backup endpoint, `profiled export` and
//! `profiled import` all use this format.
//!
//! ```text
//! {"kind":"header","format":"profiled-backup","formatVersion":1,"schemaVersion":1,"created":"…"}
//! {"kind":"secret","value":"<64 hex>"}
//! {"kind":"collectiveId","value":"<uuid>"}
//! {"kind":"settings","value":{…}}              (absent when the settings are the defaults;
//!                                               the backup key is a public key, see
//!                                               `backup_crypt`)
//! {"kind":"adminMfa","value":{…}}              (absent when administrator MFA was never set)
//! {"kind":"account","value":{…}}               (one per account, with its password hash and
//!                                               its authenticator seed)
//! {"kind":"clientProfile","value":{…}}         (one per client profile)
//! {"kind":"application","value":{…}}           (one per registered application, with the
//!                                               SHA-256 of its key, never the key)
//! {"kind":"passwordReset","tokenHash":"<64 hex>","value":{…}}   (one per pending reset)
//! {"kind":"end","accounts":N,"clientProfiles":M}
//! ```
//! Sessions are not part of a backup: after a restore everybody logs in again.

use std::io::BufRead;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

use super::engine::{self, Value as IVec};
use serde_json::{Value, json};

use super::{
    META, META_COLLECTIVE, META_SCHEMA, META_SECRET, SCHEMA_VERSION, Store, StoreError,
    TREE_SETTINGS, accounts, decode, encode,
};

const FORMAT: &str = "profiled-backup";
const FORMAT_VERSION: u64 = 1;

/// Everything a backup holds, copied out while no multi-step write is in progress.
pub struct Snapshot {
    secret: [u8; 32],
    collective_id: Option<IVec>,
    settings: Option<IVec>,
    admin_mfa: Option<IVec>,
    accounts: Vec<IVec>,
    client_profiles: Vec<IVec>,
    applications: Vec<IVec>,
    /// (SHA-256 of the token, record).
    password_resets: Vec<(IVec, IVec)>,
}

impl Store {
    /// Copies the store's content. Blocks writers of uniquely indexed records only for the
    /// duration of the copy (in memory), so the copy never holds half of a rename. Over etcd,
    /// where other nodes write too and this gate cannot stop them, every tree is read at one
    /// revision instead (each record and its index keys were written in one transaction, so
    /// that revision holds no half of a write either).
    pub fn snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut snapshot = if self.shared() {
            let db = self.db().pinned()?;
            let tree = |name: &str| db.open_tree(name);
            let settings = tree(TREE_SETTINGS)?;
            self.copy(
                &tree(META)?,
                &settings,
                &tree(super::TREE_ID_ACCOUNT)?,
                &tree(super::TREE_ID_CLIENT_PROFILE)?,
                &tree(super::TREE_ID_APPLICATION)?,
                &tree(super::TREE_TOKENHASH_PASSWORD_RESET)?,
            )?
        } else {
            let _exclusive = self.inner.gate.write().unwrap_or_else(|p| p.into_inner());
            self.copy(
                self.meta(),
                &self.inner.settings,
                &self.inner.tables.accounts.records,
                &self.inner.tables.client_profiles.table.records,
                self.application_records(),
                &self.inner.password_resets,
            )?
        };
        // A backup keeps client profiles in their schema-1 form, which every version reads.
        for record in &mut snapshot.client_profiles {
            *record = IVec::from(encode(&super::profile_record::decode(record)?));
        }
        Ok(snapshot)
    }

    /// Reads everything a backup holds from these trees.
    fn copy(
        &self,
        meta: &engine::Tree,
        settings: &engine::Tree,
        accounts: &engine::Tree,
        client_profiles: &engine::Tree,
        applications: &engine::Tree,
        password_resets: &engine::Tree,
    ) -> Result<Snapshot, StoreError> {
        let values = |t: &engine::Tree| -> Result<Vec<IVec>, StoreError> {
            t.iter()
                .values()
                .map(|v| v.map_err(StoreError::from))
                .collect()
        };
        Ok(Snapshot {
            secret: self.inner.secret,
            collective_id: meta.get(META_COLLECTIVE)?,
            settings: settings.get(super::settings::KEY)?,
            admin_mfa: settings.get(super::settings::MFA_KEY)?,
            accounts: values(accounts)?,
            client_profiles: values(client_profiles)?,
            applications: values(applications)?,
            password_resets: password_resets
                .iter()
                .map(|e| e.map_err(StoreError::from))
                .collect::<Result<_, _>>()?,
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Snapshot {
    pub fn counts(&self) -> (usize, usize) {
        (self.accounts.len(), self.client_profiles.len())
    }

    /// The backup, line by line (each ends with `\n`), produced lazily.
    pub fn into_lines(self) -> impl Iterator<Item = Vec<u8>> + Send + 'static {
        let head = {
            let mut v = vec![
                json!({"kind": "header", "format": FORMAT, "formatVersion": FORMAT_VERSION,
                       "schemaVersion": SCHEMA_VERSION, "created": crate::clock::appgate(crate::clock::now())}),
                json!({"kind": "secret", "value": hex(&self.secret)}),
            ];
            if let Some(id) = self
                .collective_id
                .as_ref()
                .and_then(|b| uuid::Uuid::from_slice(b).ok())
            {
                v.push(json!({"kind": "collectiveId", "value": id.to_string()}));
            }
            v.into_iter().map(|l| line(&l))
        };
        let end = line(&json!({"kind": "end", "accounts": self.accounts.len(),
                               "clientProfiles": self.client_profiles.len()}));
        let settings = self
            .settings
            .into_iter()
            .map(|raw| raw_line("settings", &raw))
            .chain(
                self.admin_mfa
                    .into_iter()
                    .map(|raw| raw_line("adminMfa", &raw)),
            );
        let accounts = self
            .accounts
            .into_iter()
            .map(|raw| raw_line("account", &raw));
        let profiles = self
            .client_profiles
            .into_iter()
            .map(|raw| raw_line("clientProfile", &raw));
        let applications = self
            .applications
            .into_iter()
            .map(|raw| raw_line("application", &raw));
        let resets = self.password_resets.into_iter().map(|(hash, raw)| {
            let mut l = format!(
                "{{\"kind\":\"passwordReset\",\"tokenHash\":\"{}\",\"value\":",
                hex(&hash)
            )
            .into_bytes();
            l.extend_from_slice(&raw);
            l.extend_from_slice(b"}\n");
            l
        });
        head.chain(settings)
            .chain(accounts)
            .chain(profiles)
            .chain(applications)
            .chain(resets)
            .chain(std::iter::once(end))
    }
}

fn line(v: &Value) -> Vec<u8> {
    let mut l = serde_json::to_vec(v).expect("plain JSON");
    l.push(b'\n');
    l
}

/// Records in their backup form are compact JSON already: embed them without re-encoding.
fn raw_line(kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut l = Vec::with_capacity(raw.len() + 32);
    l.extend_from_slice(b"{\"kind\":\"");
    l.extend_from_slice(kind.as_bytes());
    l.extend_from_slice(b"\",\"value\":");
    l.extend_from_slice(raw);
    l.extend_from_slice(b"}\n");
    l
}

/// Restores a backup into `dir`, which must be empty or missing, rebuilding every index.
/// Returns (accounts, client profiles) restored. The restore is built in a private directory
/// beside `dir` and renamed into place only once complete and verified: a failed import
/// leaves nothing behind that could be taken for a database.
pub fn import(dir: &Path, input: impl BufRead) -> Result<(usize, usize), String> {
    match std::fs::metadata(dir) {
        Ok(m) if !m.is_dir() => {
            return Err(super::OpenError::NotADirectory {
                path: dir.to_path_buf(),
            }
            .to_string());
        }
        Ok(_) => {
            let mut entries = std::fs::read_dir(dir)
                .map_err(|e| super::OpenError::from_io(dir, e).to_string())?;
            if entries.next().is_some() {
                return Err(format!(
                    "{} is not empty: import only restores into an empty directory",
                    dir.display()
                ));
            }
        }
        Err(_) => {}
    }
    let name = dir
        .file_name()
        .ok_or_else(|| format!("{} cannot be a data directory", dir.display()))?;
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&parent)
        .map_err(|e| super::OpenError::from_io(&parent, e).to_string())?;
    let staging = parent.join(format!(
        ".{}.importing-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(|e| format!("{}: {e}", staging.display()))?;
    }
    let result = import_into(&staging, input).and_then(|counts| {
        if dir.exists() {
            std::fs::remove_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::rename(&staging, dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        std::fs::File::open(&parent)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("{}: {e}", parent.display()))?;
        Ok(counts)
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    result
}

/// The import itself, into the new directory `dir`.
fn import_into(dir: &Path, input: impl BufRead) -> Result<(usize, usize), String> {
    super::open::prepare_dir(dir).map_err(|e| e.to_string())?;
    let db = engine::sled::open(dir, &super::StoreOptions::default()).map_err(|e| e.to_string())?;
    let result = restore(&db, input);
    db.flush().map_err(|e| e.to_string())?;
    drop(db);
    let counts = result?;
    // Opening runs the full consistency check; a restored store must pass it cleanly.
    let (store, report) =
        Store::open(dir, &super::StoreOptions::default()).map_err(|e| e.to_string())?;
    let mut report2 = super::unique::RepairReport::default();
    store
        .check(&mut report2, false)
        .map_err(|e| e.to_string())?;
    if !report.is_clean() || !report2.is_clean() {
        return Err(format!(
            "the restored store is inconsistent: {report:?} {report2:?}"
        ));
    }
    store.close_cleanly().map_err(|e| e.to_string())?;
    Ok(counts)
}

/// Restores a backup into the installation `options` names (etcd), which must hold no key
/// yet, rebuilding every index as the sled import does. Each record is written with its index
/// key in one transaction of four operations, far below etcd's limits (128 operations, 1.5
/// MiB). `scratch` is a private directory for the store's node-local files. The restore is
/// verified like the sled one; a failed import removes every key it wrote, so the prefix is
/// empty again. Start the nodes once it has finished: a node started on the prefix meanwhile
/// would see half an installation.
pub fn import_store(
    scratch: &Path,
    options: &super::StoreOptions,
    input: impl BufRead,
) -> Result<(usize, usize), String> {
    let db = Store::engine(scratch, options).map_err(|e| e.to_string())?;
    if !db.is_empty().map_err(|e| e.to_string())? {
        return Err(format!(
            "{} is not empty: import only restores into a prefix that holds nothing (choose a new --store-prefix); nothing was written",
            options.describe()
        ));
    }
    let result = restore(&db, input).and_then(|counts| {
        let store = Store::open_existing(scratch, options, true)
            .map_err(|e| e.to_string())?
            .ok_or("the restored installation has no schema stamp")?;
        let mut report = super::unique::RepairReport::default();
        store.check(&mut report, false).map_err(|e| e.to_string())?;
        if !report.is_clean() {
            return Err(format!("the restored store is inconsistent: {report:?}"));
        }
        Ok(counts)
    });
    if let Err(e) = &result {
        return Err(match db.clear() {
            Ok(_) => format!("{e} (what was written is removed again)"),
            Err(c) => format!(
                "{e}; what was written could not be removed ({c}): remove the keys under {} before importing again",
                options.describe()
            ),
        });
    }
    result
}

/// At most this many records go into one transaction of an import into etcd: two conditions
/// and two writes each, so 64 of the 128 operations etcd allows by default.
const BATCH_RECORDS: usize = 32;
/// And at most about this many bytes (etcd refuses requests over 1.5 MiB by default).
const BATCH_BYTES: usize = 512 * 1024;

/// A record of an import not written yet: its line, table, id, unique key, record, and what
/// an error about it starts with.
type Row<'a> = (
    usize,
    &'a super::unique::UniqueTable,
    Vec<u8>,
    Vec<u8>,
    Vec<u8>,
    String,
);

/// Records of an import into etcd, written `BATCH_RECORDS` to a transaction guarded, as each
/// write of a node is, by "the id and the key are free": a restore of 2,000 client profiles
/// took 23 s one transaction per record.
struct Batch<'a> {
    db: &'a engine::Db,
    rows: Vec<Row<'a>>,
    bytes: usize,
}

impl<'a> Batch<'a> {
    fn add(
        &mut self,
        line: usize,
        table: &'a super::unique::UniqueTable,
        id: Vec<u8>,
        key: Vec<u8>,
        record: Vec<u8>,
        what: String,
    ) -> Result<(), String> {
        self.bytes += 2 * (id.len() + key.len()) + record.len();
        self.rows.push((line, table, id, key, record, what));
        if self.rows.len() >= BATCH_RECORDS || self.bytes >= BATCH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), String> {
        let rows = std::mem::take(&mut self.rows);
        self.bytes = 0;
        let (mut checks, mut writes) = (Vec::new(), Vec::new());
        for (_, t, id, key, record, _) in &rows {
            checks.push(engine::Check {
                tree: &t.records,
                key: id,
                holds: None,
            });
            checks.push(engine::Check {
                tree: &t.index,
                key,
                holds: None,
            });
            writes.push(engine::Write {
                tree: &t.records,
                key: id,
                value: Some(record),
            });
            writes.push(engine::Write {
                tree: &t.index,
                key,
                value: Some(id),
            });
        }
        // etcd refuses a transaction that writes one key twice (a backup naming one name
        // twice): such a batch goes record by record at once.
        let mut seen = std::collections::HashSet::new();
        let twice = rows.iter().any(|(_, t, id, key, ..)| {
            let t = std::ptr::from_ref(*t) as usize;
            !seen.insert((t, false, id.as_slice())) || !seen.insert((t, true, key.as_slice()))
        });
        if rows.is_empty()
            || (!twice && matches!(self.db.transact(&checks, &writes), Ok(Some(true))))
        {
            return Ok(());
        }
        // A conflict or a refused request: each record on its own, to say which line fails
        // and why.
        for (line, t, id, key, record, what) in rows {
            t.insert(&id, &key, record)
                .map_err(|e| format!("line {line}: {what}{e}"))?;
        }
        Ok(())
    }
}

fn restore(db: &engine::Db, input: impl BufRead) -> Result<(usize, usize), String> {
    let err = |n: usize, m: &str| format!("line {n}: {m}");
    let meta = db.open_tree(META).map_err(|e| e.to_string())?;
    let settings = db.open_tree(TREE_SETTINGS).map_err(|e| e.to_string())?;
    let tree = |name: &str| db.open_tree(name).map_err(|e| e.to_string());
    let (app_records, app_keys) = (
        tree(super::TREE_ID_APPLICATION)?,
        tree(super::TREE_KEYHASH_APPLICATION)?,
    );
    let resets = tree(super::TREE_TOKENHASH_PASSWORD_RESET)?;
    let tables = super::Tables::open(db, &super::unique::Gate::default(), false)
        .map_err(|e| e.to_string())?;
    // Over etcd, records go to the cluster many to a transaction.
    let mut batch = db.shared().then(|| Batch {
        db,
        rows: Vec::new(),
        bytes: 0,
    });
    let (mut accounts, mut profiles, mut ended, mut max_account) = (0usize, 0usize, false, None);
    for (i, l) in input.lines().enumerate() {
        let n = i + 1;
        let l = l.map_err(|e| err(n, &e.to_string()))?;
        if l.trim().is_empty() {
            continue;
        }
        if ended {
            return Err(err(n, "content after the end line"));
        }
        let v: Value = serde_json::from_str(&l).map_err(|e| err(n, &e.to_string()))?;
        let kind = v["kind"].as_str().unwrap_or("");
        if n == 1 && (kind != "header" || v["format"] != FORMAT) {
            return Err(err(n, "not a profiled backup (no header line)"));
        }
        let value = &v["value"];
        match kind {
            "header" => {
                let fv = v["formatVersion"].as_u64().unwrap_or(u64::MAX);
                let sv = v["schemaVersion"].as_u64().unwrap_or(u64::MAX);
                if fv > FORMAT_VERSION || sv > SCHEMA_VERSION {
                    return Err(err(
                        n,
                        "written by a newer profiled; import it with that version",
                    ));
                }
                meta.insert(META_SCHEMA, SCHEMA_VERSION.to_be_bytes())
                    .map_err(|e| e.to_string())?;
            }
            "secret" => {
                let s = value.as_str().and_then(unhex).filter(|s| s.len() == 32);
                let s = s.ok_or_else(|| err(n, "the secret is not 64 hex digits"))?;
                meta.insert(META_SECRET, s).map_err(|e| e.to_string())?;
            }
            "collectiveId" => {
                let id = value.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok());
                let id = id.ok_or_else(|| err(n, "collectiveId is not a UUID"))?;
                meta.insert(META_COLLECTIVE, id.as_bytes())
                    .map_err(|e| e.to_string())?;
            }
            "settings" => {
                let mut bytes = serde_json::to_vec(value).expect("plain JSON");
                let mut s: super::GlobalSettings =
                    decode(&bytes).map_err(|e| err(n, &e.to_string()))?;
                // A backup by a version that kept the passphrase in clear: only its key is
                // restored.
                if let Some(p) = s.legacy_backup_passphrase.take() {
                    s.backup_key = Some(crate::backup_crypt::BackupKey::from_passphrase(&p)?);
                    bytes = encode(&s);
                }
                settings
                    .insert(super::settings::KEY, bytes)
                    .map_err(|e| e.to_string())?;
            }
            "adminMfa" => {
                let bytes = serde_json::to_vec(value).expect("plain JSON");
                decode::<super::AdminMfa>(&bytes).map_err(|e| err(n, &e.to_string()))?;
                settings
                    .insert(super::settings::MFA_KEY, bytes)
                    .map_err(|e| e.to_string())?;
            }
            "account" => {
                let bytes = serde_json::to_vec(value).expect("plain JSON");
                let a: accounts::Account = decode(&bytes).map_err(|e| err(n, &e.to_string()))?;
                let number = accounts::account_number(&a.id)
                    .ok_or_else(|| err(n, "account id is not iuser<number>"))?;
                max_account = max_account.max(Some(number));
                let key = accounts::email_key(&a.email);
                let what = format!("account {}: ", a.id);
                match &mut batch {
                    Some(b) => b.add(n, &tables.accounts, a.id.into_bytes(), key, bytes, what)?,
                    None => tables
                        .accounts
                        .insert(a.id.as_bytes(), &key, bytes)
                        .map_err(|e| err(n, &format!("{what}{e}")))?,
                }
                accounts += 1;
            }
            "application" => {
                let bytes = serde_json::to_vec(value).expect("plain JSON");
                let a: super::Application = decode(&bytes).map_err(|e| err(n, &e.to_string()))?;
                app_records
                    .insert(a.id.as_bytes(), bytes)
                    .map_err(|e| e.to_string())?;
                if let Some(h) = &a.key_hash {
                    app_keys
                        .insert(h.as_bytes(), a.id.as_bytes())
                        .map_err(|e| e.to_string())?;
                }
            }
            "passwordReset" => {
                let hash = v["tokenHash"]
                    .as_str()
                    .and_then(unhex)
                    .filter(|h| h.len() == 32);
                let hash = hash.ok_or_else(|| err(n, "tokenHash is not 64 hex digits"))?;
                let bytes = serde_json::to_vec(value).expect("plain JSON");
                decode::<super::password_resets::PasswordReset>(&bytes)
                    .map_err(|e| err(n, &e.to_string()))?;
                resets.insert(hash, bytes).map_err(|e| e.to_string())?;
            }
            "clientProfile" => {
                let bytes = serde_json::to_vec(value).expect("plain JSON");
                let (id, key, record) = super::Tables::client_profile_row(&bytes)
                    .map_err(|e| err(n, &e.to_string()))?;
                match &mut batch {
                    Some(b) => {
                        b.add(n, &tables.client_profiles.table, id, key, record, "".into())?
                    }
                    None => tables
                        .client_profiles
                        .table
                        .insert(&id, &key, record)
                        .map_err(|e| err(n, &e.to_string()))?,
                }
                profiles += 1;
            }
            "end" => {
                let expected = (v["accounts"].as_u64(), v["clientProfiles"].as_u64());
                if expected != (Some(accounts as u64), Some(profiles as u64)) {
                    return Err(err(
                        n,
                        "the counts in the end line do not match: the backup is damaged",
                    ));
                }
                ended = true;
            }
            other => return Err(err(n, &format!("unknown kind {other:?}"))),
        }
    }
    if let Some(b) = &mut batch {
        b.flush()?;
    }
    if !ended {
        return Err("the backup has no end line: it is truncated".into());
    }
    if let Some(max) = max_account {
        meta.insert(super::META_ACCOUNT_FLOOR, (max + 1).to_be_bytes())
            .map_err(|e| e.to_string())?;
    }
    Ok((accounts, profiles))
}
