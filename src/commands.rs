//! Offline commands that work on a data directory while the server is stopped.

use std::path::Path;

use crate::auth::password;
use crate::store::{Store, StoreError, StoreOptions};

/// Sets `email`'s password to `new_password`, clears nothing else. The account must exist.
pub fn reset_password(data_dir: &Path, email: &str, new_password: &str) -> Result<String, String> {
    password::check_strength(new_password)?;
    let (store, _) = Store::open(data_dir, &StoreOptions::default())
        .map_err(|e| format!("{e} (is the server still running? stop it first)"))?;
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
            Ok::<(), StoreError>(())
        }))
        .map_err(|e| e.to_string())?;
    store.close_cleanly().map_err(|e| e.to_string())?;
    Ok(account.id)
}

/// Verifies the store offline without changing it. Returns the report's lines and whether
/// everything holds.
pub fn check(data_dir: &Path) -> Result<(bool, Vec<String>), String> {
    if !data_dir.join("db").exists() {
        return Err(format!("{} holds no database", data_dir.display()));
    }
    let (store, _) = Store::open_unrepaired(data_dir, &StoreOptions::default())
        .map_err(|e| format!("{e} (is the server still running? stop it first)"))?;
    let mut report = crate::store::unique::RepairReport::default();
    store.check(&mut report, false).map_err(|e| e.to_string())?;
    let mut lines = Vec::new();
    lines.extend(report.removed.iter().map(|l| format!("stale: {l}")));
    lines.extend(report.restored.iter().map(|l| format!("missing: {l}")));
    lines.extend(report.unrepairable.iter().map(|l| format!("damaged: {l}")));
    Ok((report.is_clean(), lines))
}

/// Writes a backup of the (stopped) store to `out`.
pub fn export(data_dir: &Path, out: &mut impl std::io::Write) -> Result<(usize, usize), String> {
    if !data_dir.join("db").exists() {
        return Err(format!("{} holds no database", data_dir.display()));
    }
    let (store, _) = Store::open(data_dir, &StoreOptions::default())
        .map_err(|e| format!("{e} (is the server still running? use GET /admin/backup instead)"))?;
    let snapshot = store.snapshot().map_err(|e| e.to_string())?;
    let counts = snapshot.counts();
    for line in snapshot.into_lines() {
        out.write_all(&line).map_err(|e| e.to_string())?;
    }
    out.flush().map_err(|e| e.to_string())?;
    store.close_cleanly().map_err(|e| e.to_string())?;
    Ok(counts)
}

/// Restores a backup into an empty directory.
pub fn import(data_dir: &Path, input: impl std::io::BufRead) -> Result<(usize, usize), String> {
    crate::store::backup::import(data_dir, input)
}
