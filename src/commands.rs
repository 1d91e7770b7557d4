//! Offline commands that work on a data directory while the server is stopped.
//!
//! `check` and `export` never change the database they inspect: sled may rewrite a damaged
//! log while it recovers it, so they work on a private copy, taken while holding sled's lock
//! on the original (so that no server can start on it meanwhile).

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
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| e.to_string())?;
    let copy = Inspection {
        dir: std::env::temp_dir().join(format!(
            "profiled-inspect-{}-{:016x}",
            std::process::id(),
            u64::from_ne_bytes(random)
        )),
    };
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&copy.dir)
        .map_err(|e| format!("cannot make a private copy in {}: {e}", copy.dir.display()))?;
    copy_tree(data_dir, &copy.dir)
        .map_err(|e| format!("cannot make a private copy in {}: {e}", copy.dir.display()))?;
    Ok(copy)
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
    let write = |out: &mut dyn std::io::Write, chunk: Vec<u8>| {
        out.write_all(&chunk).map_err(|e| e.to_string())
    };
    match key {
        None => snapshot.into_lines().try_for_each(|l| write(out, l))?,
        Some(key) => crate::backup_crypt::encrypt_lines(&key, snapshot.into_lines())?
            .try_for_each(|c| write(out, c))?,
    }
    out.flush().map_err(|e| e.to_string())?;
    Ok((counts, missing))
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
    mut input: impl std::io::BufRead,
    passphrase: impl FnOnce() -> Result<zeroize::Zeroizing<String>, String>,
) -> Result<(usize, usize), String> {
    use std::io::Read;
    let mut start = Vec::with_capacity(crate::backup_crypt::MAGIC.len());
    (&mut input)
        .take(crate::backup_crypt::MAGIC.len() as u64)
        .read_to_end(&mut start)
        .map_err(|e| e.to_string())?;
    let encrypted = crate::backup_crypt::is_encrypted(&start);
    let input = std::io::Cursor::new(start).chain(input);
    if !encrypted {
        return crate::store::backup::import(data_dir, input);
    }
    let plain = crate::backup_crypt::decrypt(input, &passphrase()?)?;
    crate::store::backup::import(data_dir, std::io::BufReader::new(plain))
}
