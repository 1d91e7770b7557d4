//! Registered applications (Oracle's application ids) and their keys: the record by id, and
//! the SHA-256 of each application's current key → its id. The key itself is never stored.
//!
//! Writes are rare and pass one gate, so a key change and the sessions it ends are one step.
//! Steps are ordered so that a crash can only leave a key entry that points to a record that
//! no longer carries that key; lookups check the record, so such an entry opens nothing.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::{Store, StoreError, decode, encode};

/// A registered application as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Application {
    pub id: String,
    pub name: String,
    /// `application` (has a key and logs in) or `extension` (an id only).
    #[serde(rename = "type")]
    pub kind: String,
    /// Lowercase hex SHA-256 of the current key; `None` for extensions.
    #[serde(default)]
    pub key_hash: Option<String>,
    /// Counts the keys issued: a token carries the generation of the key it came from, so a
    /// new key ends every token of the old one.
    pub key_generation: u64,
    /// Days a new key lives: -1 for ever, 0 not at all (cannot log in), at most 365.
    pub lifetime_days: i64,
    /// Unix milliseconds at which the current key stops; `None`: never.
    #[serde(default)]
    pub expires: Option<i64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    #[serde(default)]
    pub created_by: Option<String>,
    /// The roles its tokens act with (profiled's extension; `adminRole` unless narrowed).
    pub roles: Vec<String>,
    /// Whether the current key has been used to log in.
    #[serde(default)]
    pub in_use: bool,
}

impl Application {
    /// Whether the current key may log in at `now_ms`.
    pub fn key_valid_at(&self, now_ms: i64) -> bool {
        self.key_hash.is_some() && self.expires.is_none_or(|e| now_ms < e)
    }
}

/// Lowercase hex of a hash, as records keep it.
pub fn hex(hash: &[u8; 32]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

pub(crate) struct ApplicationTrees {
    records: super::engine::Tree,
    keys: super::engine::Tree,
    gate: Mutex<()>,
}

impl ApplicationTrees {
    pub(crate) fn open(db: &super::engine::Db) -> super::engine::Result<Self> {
        Ok(ApplicationTrees {
            records: db.open_tree(super::TREE_ID_APPLICATION)?,
            keys: db.open_tree(super::TREE_KEYHASH_APPLICATION)?,
            gate: Mutex::new(()),
        })
    }
}

/// The session holder prefix of an application's tokens, for every key generation.
fn holder_prefix(id: &str) -> String {
    format!("{}{id}:", crate::auth::applications::HOLDER_PREFIX)
}

impl Store {
    fn apps(&self) -> &ApplicationTrees {
        &self.inner.applications
    }

    /// Stores a new application (and its key's entry) and waits until it is durable.
    pub async fn create_application(&self, app: &Application) -> Result<(), StoreError> {
        self.writable()?;
        {
            let t = self.apps();
            let _gate = t.gate.lock().unwrap_or_else(|p| p.into_inner());
            if t.records
                .compare_and_swap(app.id.as_bytes(), None as Option<&[u8]>, Some(encode(app)))?
                .is_err()
            {
                return Err(StoreError::IdTaken);
            }
            if let Some(h) = &app.key_hash {
                t.keys.insert(h.as_bytes(), app.id.as_bytes())?;
            }
        }
        self.durable().await
    }

    /// Checks the applications for `profiled check` and start-up: every record readable, every
    /// key entry pointing to the record that carries that key (a crash between the steps of a
    /// key change can leave an old entry, which opens nothing; `fix` removes it), and every
    /// pending password reset readable.
    pub(crate) fn check_applications(
        &self,
        report: &mut super::unique::RepairReport,
        fix: bool,
    ) -> Result<(), StoreError> {
        let t = self.apps();
        for item in t.records.iter() {
            let (k, v) = item?;
            if decode::<Application>(&v).is_err() {
                report.unrepairable.push(format!(
                    "application {}: its record is unreadable",
                    String::from_utf8_lossy(&k)
                ));
            }
        }
        for item in t.keys.iter() {
            let (hash, id) = item?;
            let holds = self
                .application(&String::from_utf8_lossy(&id))
                .ok()
                .flatten()
                .is_some_and(|a| a.key_hash.as_deref().map(str::as_bytes) == Some(hash.as_ref()));
            if !holds {
                report.removed.push(format!(
                    "a key entry of application {} that its record no longer carries",
                    String::from_utf8_lossy(&id)
                ));
                if fix {
                    t.keys.remove(hash)?;
                }
            }
        }
        for item in self.inner.password_resets.iter() {
            let (k, v) = item?;
            if decode::<super::password_resets::PasswordReset>(&v).is_err() {
                report
                    .removed
                    .push("an unreadable password-reset token".into());
                if fix {
                    self.inner.password_resets.remove(k)?;
                }
            }
        }
        Ok(())
    }

    /// The records tree, for backups.
    pub(crate) fn application_records(&self) -> &super::engine::Tree {
        &self.apps().records
    }

    pub fn application(&self, id: &str) -> Result<Option<Application>, StoreError> {
        self.apps()
            .records
            .get(id.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Every application, in id order (ids are time-ordered: oldest first).
    pub fn applications(&self) -> Result<Vec<Application>, StoreError> {
        self.apps()
            .records
            .iter()
            .values()
            .map(|v| decode(&v?))
            .collect()
    }

    /// The application whose current key has this hash.
    pub fn application_by_key(
        &self,
        key_hash: &[u8; 32],
    ) -> Result<Option<Application>, StoreError> {
        let hex = hex(key_hash);
        let Some(id) = self.apps().keys.get(hex.as_bytes())? else {
            return Ok(None);
        };
        Ok(self
            .application(&String::from_utf8_lossy(&id))?
            .filter(|a| a.key_hash.as_deref() == Some(hex.as_str())))
    }

    /// Applies `change` and writes the record back, waiting until it is durable. When the
    /// change issues a new key (a new `key_generation`), the old key's entry goes and every
    /// token of the application ends, in the same acknowledged write.
    pub async fn update_application<E: From<StoreError>>(
        &self,
        id: &str,
        change: impl FnOnce(&mut Application) -> Result<(), E>,
    ) -> Result<Application, E> {
        self.writable()?;
        let app = {
            let t = self.apps();
            let _gate = t.gate.lock().unwrap_or_else(|p| p.into_inner());
            let mut app = self.application(id)?.ok_or(StoreError::NotFound)?;
            let old = app.clone();
            change(&mut app)?;
            app.id = old.id.clone();
            if app.key_hash != old.key_hash
                && let Some(h) = &app.key_hash
            {
                t.keys
                    .insert(h.as_bytes(), app.id.as_bytes())
                    .map_err(StoreError::from)?;
            }
            t.records
                .insert(id.as_bytes(), encode(&app))
                .map_err(StoreError::from)?;
            if app.key_hash != old.key_hash
                && let Some(h) = &old.key_hash
            {
                t.keys.remove(h.as_bytes()).map_err(StoreError::from)?;
            }
            if app.key_generation != old.key_generation {
                let prefix = holder_prefix(id);
                self.revoke_sessions_where(|holder| holder.starts_with(&prefix), None)?;
            }
            app
        };
        self.durable().await?;
        Ok(app)
    }

    /// Marks the key of `generation` as used (once: later logins write nothing).
    pub fn mark_application_used(&self, id: &str, generation: u64) -> Result<(), StoreError> {
        let t = self.apps();
        let _gate = t.gate.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(mut app) = self.application(id)?
            && app.key_generation == generation
            && !app.in_use
        {
            app.in_use = true;
            t.records.insert(id.as_bytes(), encode(&app))?;
        }
        Ok(())
    }

    /// Removes an application, its key and every token it holds; waits until durable.
    /// `false` when there was none.
    pub async fn delete_application(&self, id: &str) -> Result<bool, StoreError> {
        self.writable()?;
        {
            let t = self.apps();
            let _gate = t.gate.lock().unwrap_or_else(|p| p.into_inner());
            let Some(old) = t.records.remove(id.as_bytes())? else {
                return Ok(false);
            };
            if let Some(h) = decode::<Application>(&old)?.key_hash {
                t.keys.remove(h.as_bytes())?;
            }
            let prefix = holder_prefix(id);
            self.revoke_sessions_where(|holder| holder.starts_with(&prefix), None)?;
        }
        self.durable().await?;
        Ok(true)
    }
}
