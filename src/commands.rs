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
    store.flush().map_err(|e| e.to_string())?;
    Ok(account.id)
}
