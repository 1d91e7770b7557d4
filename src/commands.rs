//! Offline commands: on a data directory while its server is stopped, or on an etcd
//! installation while its nodes serve.
//!
//! `check` and `export` never change the database they inspect: sled may rewrite a damaged
//! log while it recovers it, so they work on a private copy, taken while holding sled's lock
//! on the original (so that no server can start on it meanwhile). Against etcd they read the
//! installation as it was at one revision (`Store::open_existing`, pinned), so that what they
//! see is consistent however long they read while nodes go on writing; they write nothing.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use crate::auth::password;
use crate::auth::roles::ADMIN_ROLE;
use crate::store::{OpenError, Store, StoreError, StoreOptions};

/// What `reset_password` changes besides the password.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResetOptions {
    /// Give the account `adminRole` (keeping its other roles) and reactivate it: the way back
    /// in when no administrator is left.
    pub make_admin: bool,
}

/// Sets `email`'s password to `new_password`. The account must exist. With `make_admin`, the
/// account also gets `adminRole` and is made active.
pub fn reset_password(
    data_dir: &Path,
    email: &str,
    new_password: &str,
    options: ResetOptions,
) -> Result<String, String> {
    password::check_strength(new_password)?;
    if !data_dir.join("db").exists() {
        return Err(format!("{} holds no database", data_dir.display()));
    }
    let (store, report) =
        Store::open(data_dir, &StoreOptions::default()).map_err(|e| e.to_string())?;
    if !report.unrepairable.is_empty() {
        return Err(crate::StartError::Damaged(report.unrepairable).to_string());
    }
    reset_in(&store, email, new_password, options)
}

/// `reset_password` in the installation `store` names (etcd), while its nodes may serve: the
/// account is changed in one conditional write like any other, and every node reads it from
/// etcd at its next login. As with sled, an active account keeps its sessions, and one that
/// `make_admin` reactivates loses any it still had (`Store::update_account`).
pub fn reset_password_in_store(
    store: &StoreOptions,
    email: &str,
    new_password: &str,
    options: ResetOptions,
) -> Result<String, String> {
    password::check_strength(new_password)?;
    let scratch = private_dir()?;
    let store = Store::open_existing(&scratch.dir, store, false)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| no_installation(store))?;
    reset_in(&store, email, new_password, options)
}

fn reset_in(
    store: &Store,
    email: &str,
    new_password: &str,
    options: ResetOptions,
) -> Result<String, String> {
    let account = store
        .account_by_email(email)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no account with e-mail {email}"))?;
    let hash = password::hash_blocking(new_password);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime
        .block_on(store.update_account(&account.id, |a| {
            a.password_hash = Some(hash.clone());
            if options.make_admin {
                a.active = true;
                if !a.roles.iter().any(|r| r == ADMIN_ROLE) {
                    a.roles.push(ADMIN_ROLE.into());
                    a.roles_last_modified = crate::clock::now();
                }
            }
            Ok::<(), StoreError>(())
        }))
        .map_err(|e| e.to_string())?;
    store.close_cleanly().map_err(|e| e.to_string())?;
    Ok(account.id)
}

/// The error for a store that holds no installation.
fn no_installation(options: &StoreOptions) -> String {
    format!(
        "{} holds no profiled installation (check --store-prefix, PROFILED_STORE_PREFIX)",
        options.describe()
    )
}

/// The installation `options` names, opened read-only at one revision.
fn open_pinned(options: &StoreOptions) -> Result<(Store, Inspection), String> {
    let scratch = private_dir()?;
    let store = Store::open_existing(&scratch.dir, options, true)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| no_installation(options))?;
    Ok((store, scratch))
}

/// A private copy of a stopped server's data directory, removed when dropped.
struct Inspection {
    dir: PathBuf,
}

impl Drop for Inspection {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Copies `data_dir` into a new private directory under the system's temporary directory
/// (`TMPDIR`), holding sled's lock on the original while copying.
fn inspect(data_dir: &Path) -> Result<Inspection, String> {
    let db = data_dir.join("db");
    let original = std::fs::File::open(&db).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{} holds no database", data_dir.display()),
        _ => OpenError::from_io(data_dir, e).to_string(),
    })?;
    // The lock sled takes (flock): a running server holds it.
    if let Err(std::fs::TryLockError::WouldBlock) = original.try_lock() {
        return Err(OpenError::Locked {
            dir: data_dir.to_path_buf(),
        }
        .to_string());
    }
    let copy = private_dir()?;
    copy_tree(data_dir, &copy.dir)
        .map_err(|e| format!("cannot make a private copy in {}: {e}", copy.dir.display()))?;
    Ok(copy)
}

/// A new private directory under the system's temporary directory (`TMPDIR`).
fn private_dir() -> Result<Inspection, String> {
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| e.to_string())?;
    let dir = Inspection {
        dir: std::env::temp_dir().join(format!(
            "profiled-inspect-{}-{:016x}",
            std::process::id(),
            u64::from_ne_bytes(random)
        )),
    };
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir.dir)
        .map_err(|e| format!("cannot make a private copy in {}: {e}", dir.dir.display()))?;
    Ok(dir)
}

fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            std::fs::DirBuilder::new().mode(0o700).create(&target)?;
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// Verifies the store offline without changing it. Returns the report's lines and whether
/// everything holds; damage found while opening is a `damaged:` line.
pub fn check(data_dir: &Path) -> Result<(bool, Vec<String>), String> {
    let copy = inspect(data_dir)?;
    let store = match Store::open_unrepaired(&copy.dir, &StoreOptions::default()) {
        Ok((store, _)) => store,
        Err(OpenError::Damaged { what, .. }) => {
            return Ok((false, vec![format!("damaged: {what}")]));
        }
        Err(e) => return Err(e.for_dir(data_dir).to_string()),
    };
    checked(&store)
}

/// `check` on the installation `options` names (etcd), read at one revision while its nodes
/// may serve. Nothing is repaired: each record and its index keys are written in one
/// transaction, so any problem found is real damage (or a key written by hand).
pub fn check_store(options: &StoreOptions) -> Result<(bool, Vec<String>), String> {
    let (store, _scratch) = open_pinned(options)?;
    checked(&store)
}

/// Runs the store's consistency check without repairing: whether it is clean, and its lines.
fn checked(store: &Store) -> Result<(bool, Vec<String>), String> {
    let mut report = crate::store::unique::RepairReport::default();
    store.check(&mut report, false).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    lines.extend(report.removed.iter().map(|l| format!("stale: {l}")));
    lines.extend(report.restored.iter().map(|l| format!("missing: {l}")));
    lines.extend(report.unrepairable.iter().map(|l| format!("damaged: {l}")));
    Ok((report.is_clean(), lines))
}

/// Writes a backup of the (stopped) store to `out`. Refuses a damaged store, unless
/// `salvage`: then it writes what can still be read and returns what is missing as well.
pub fn export(
    data_dir: &Path,
    out: &mut impl std::io::Write,
    salvage: bool,
) -> Result<((usize, usize), Option<String>), String> {
    let copy = inspect(data_dir)?;
    let damaged = |what: String| {
        OpenError::Damaged {
            dir: data_dir.to_path_buf(),
            what,
        }
        .to_string()
    };
    let (store, report, mut missing) = match Store::open(&copy.dir, &StoreOptions::default()) {
        Ok((store, report)) => (store, report, None),
        Err(OpenError::Damaged { what, .. }) if salvage => {
            let options = StoreOptions {
                salvage: true,
                ..StoreOptions::default()
            };
            let (store, report) =
                Store::open(&copy.dir, &options).map_err(|e| e.for_dir(data_dir).to_string())?;
            (store, report, Some(what))
        }
        Err(e) => return Err(e.for_dir(data_dir).to_string()),
    };
    if !report.unrepairable.is_empty() {
        let what = report.unrepairable.join("; ");
        if !salvage {
            return Err(damaged(what));
        }
        missing.get_or_insert(what);
    }
    let snapshot = store.snapshot().map_err(|e| e.to_string())?;
    let counts = snapshot.counts();
    if let Some(what) = store.missing((counts.0 as u64, counts.1 as u64)) {
        if !salvage {
            return Err(damaged(what));
        }
        missing.get_or_insert(what);
    }
    // Encrypted as `GET /admin/backup` would be when a passphrase is set. Salvaging a store
    // whose settings are unreadable writes in clear (the database itself is not encrypted).
    let key = match store.settings() {
        Ok(s) => s.backup_key,
        Err(e) if salvage => {
            missing.get_or_insert(format!("the settings ({e}): written unencrypted"));
            None
        }
        Err(e) => return Err(damaged(e.to_string())),
    };
    write_backup(snapshot, key, out)?;
    Ok((counts, missing))
}

/// `export` of the installation `options` names (etcd): every tree read at one revision, so
/// the backup is the installation as it was at one moment while its nodes go on writing.
pub fn export_store(
    options: &StoreOptions,
    out: &mut impl std::io::Write,
) -> Result<(usize, usize), String> {
    let (store, _scratch) = open_pinned(options)?;
    let snapshot = store.snapshot().map_err(|e| e.to_string())?;
    let counts = snapshot.counts();
    let key = store.settings().map_err(|e| e.to_string())?.backup_key;
    write_backup(snapshot, key, out)?;
    Ok(counts)
}

/// Writes `snapshot` to `out`, encrypted to `key` when there is one (as `GET /admin/backup`).
fn write_backup(
    snapshot: crate::store::backup::Snapshot,
    key: Option<crate::backup_crypt::BackupKey>,
    out: &mut impl std::io::Write,
) -> Result<(), String> {
    let write = |out: &mut dyn std::io::Write, chunk: Vec<u8>| {
        out.write_all(&chunk).map_err(|e| e.to_string())
    };
    match key {
        None => snapshot.into_lines().try_for_each(|l| write(out, l))?,
        Some(key) => crate::backup_crypt::encrypt_lines(&key, snapshot.into_lines())?
            .try_for_each(|c| write(out, c))?,
    }
    out.flush().map_err(|e| e.to_string())
}

/// Writes `path` through a private temporary file beside it (mode 0600), synced and renamed
/// over `path` only once `write` succeeded: a failure leaves an existing `path` untouched and
/// no temporary file behind.
pub fn write_file_atomically<T>(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> Result<T, String>,
) -> Result<T, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let name = path
        .file_name()
        .ok_or_else(|| format!("{} is not a file name", path.display()))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| e.to_string())?;
    let mut temp_name = name.to_os_string();
    temp_name.push(format!(".tmp-{:016x}", u64::from_ne_bytes(random)));
    let temp = dir.join(temp_name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| format!("{}: {e}", temp.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let result = write(&mut w).and_then(|value| {
        let file = w.into_inner().map_err(|e| e.to_string())?;
        file.sync_all().map_err(|e| e.to_string())?;
        drop(file);
        std::fs::rename(&temp, path).map_err(|e| format!("{}: {e}", path.display()))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(value)
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    result
}

/// Restores a backup into an empty directory. An encrypted backup asks `passphrase` for its
/// passphrase; a wrong one, or any altered or missing byte, restores nothing.
pub fn import(
    data_dir: &Path,
    input: impl std::io::BufRead,
    passphrase: impl FnOnce() -> Result<zeroize::Zeroizing<String>, String>,
) -> Result<(usize, usize), String> {
    crate::store::backup::import(data_dir, plain(input, passphrase)?)
}

/// `import` into the installation `options` names (etcd), which must hold no key yet.
pub fn import_store(
    options: &StoreOptions,
    input: impl std::io::BufRead,
    passphrase: impl FnOnce() -> Result<zeroize::Zeroizing<String>, String>,
) -> Result<(usize, usize), String> {
    let scratch = private_dir()?;
    crate::store::backup::import_store(&scratch.dir, options, plain(input, passphrase)?)
}

/// The backup's JSON lines: `input` itself, or decrypted when it is encrypted.
fn plain<'a>(
    mut input: impl std::io::BufRead + 'a,
    passphrase: impl FnOnce() -> Result<zeroize::Zeroizing<String>, String>,
) -> Result<Box<dyn std::io::BufRead + 'a>, String> {
    use std::io::Read;
    let mut start = Vec::with_capacity(crate::backup_crypt::MAGIC.len());
    (&mut input)
        .take(crate::backup_crypt::MAGIC.len() as u64)
        .read_to_end(&mut start)
        .map_err(|e| e.to_string())?;
    let encrypted = crate::backup_crypt::is_encrypted(&start);
    let input = std::io::Cursor::new(start).chain(input);
    if !encrypted {
        return Ok(Box::new(input));
    }
    let plain = crate::backup_crypt::decrypt(input, &passphrase()?)?;
    Ok(Box::new(std::io::BufReader::new(plain)))
}
