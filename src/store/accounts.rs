//! Accounts (Oracle's admin profiles): records by id, unique by e-mail (case-insensitive).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::unique::Swap;
use super::{Store, StoreError, decode, encode};
use crate::auth::roles::ADMIN_ROLE;

/// Whether the account can administer: active, with the administrator role. The store
/// refuses any account write that would leave none.
pub fn administers(a: &Account) -> bool {
    a.active && a.roles.iter().any(|r| r == ADMIN_ROLE)
}

/// An account as stored. Ids look like `iuser10060`; the number only grows.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub id: String,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub active: bool,
    pub roles: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub registration_date: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub roles_last_modified: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub last_login: Option<OffsetDateTime>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub external: bool,
    #[serde(default)]
    pub tour_complete: bool,
    /// Argon2id PHC string; `None` until a password is set (the account cannot log in).
    #[serde(default)]
    pub password_hash: Option<String>,
    /// The account's authenticator seed, once one was handed out. Never shown again after
    /// its first code was accepted, never logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<Totp>,
}

/// An authenticator (TOTP) seed and what has been done with it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Totp {
    /// Base32, as authenticator apps take it.
    pub secret: String,
    /// A code was accepted: the seed is set up and is not handed out again.
    #[serde(default)]
    pub confirmed: bool,
    /// The step of the last accepted code: a code is accepted once.
    #[serde(default)]
    pub last_step: u64,
}

/// What authentication needs of an account, which every authenticated request re-reads.
#[derive(Clone, Debug, PartialEq)]
pub struct AccountAccess {
    pub id: String,
    pub active: bool,
    pub roles: Vec<String>,
}

/// The same three fields borrowed from the stored record: the other members (dates in
/// RFC 3339, names, the password hash) are skipped without being parsed or copied.
#[derive(Deserialize)]
struct AccessView<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    active: bool,
    #[serde(borrow)]
    roles: Vec<Cow<'a, str>>,
}

/// What a caller supplies to create an account; the store fills in id and dates.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub active: bool,
    pub roles: Vec<String>,
    pub created_by: Option<String>,
    pub password_hash: Option<String>,
}

/// The index key of an e-mail address: compared case-insensitively, stored as given.
pub fn email_key(email: &str) -> Vec<u8> {
    email.trim().to_lowercase().into_bytes()
}

pub(super) fn email_key_of(record: &[u8]) -> Option<Vec<u8>> {
    decode::<Account>(record).ok().map(|a| email_key(&a.email))
}

/// First number handed out; the first administrator is `iuser10000` on a fresh store.
pub(super) const FIRST_ACCOUNT_NUMBER: u64 = 10_000;

/// The number of an `iuser<number>` id.
pub(super) fn account_number(id: &str) -> Option<u64> {
    id.strip_prefix("iuser")?.parse().ok()
}

impl Store {
    /// Creates an account and waits until it is durable.
    pub async fn create_account(&self, new: NewAccount) -> Result<Account, StoreError> {
        self.writable()?;
        let number = self.inner.account_floor + self.db().generate_id()?;
        let now = crate::clock::now();
        let account = Account {
            id: format!("iuser{number}"),
            first_name: new.first_name,
            last_name: new.last_name,
            email: new.email,
            active: new.active,
            roles: new.roles,
            registration_date: now,
            roles_last_modified: now,
            last_login: None,
            created_by: new.created_by,
            external: false,
            tour_complete: false,
            password_hash: new.password_hash,
            totp: None,
        };
        self.inner.tables.accounts.insert(
            account.id.as_bytes(),
            &email_key(&account.email),
            encode(&account),
        )?;
        self.durable().await?;
        Ok(account)
    }

    pub fn account(&self, id: &str) -> Result<Option<Account>, StoreError> {
        self.inner
            .tables
            .accounts
            .get(id.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    /// The account's id, state and roles, without decoding the rest of the record.
    pub fn account_access(&self, id: &str) -> Result<Option<AccountAccess>, StoreError> {
        let Some(record) = self.inner.tables.accounts.get(id.as_bytes())? else {
            return Ok(None);
        };
        let view: AccessView =
            serde_json::from_slice(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some(AccountAccess {
            id: view.id.into_owned(),
            active: view.active,
            roles: view.roles.into_iter().map(Cow::into_owned).collect(),
        }))
    }

    pub fn account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError> {
        let Some(id) = self.inner.tables.accounts.lookup(&email_key(email))? else {
            return Ok(None);
        };
        // The entry may be a reservation of a write in flight: trust only a record that agrees.
        Ok(self
            .account(&String::from_utf8_lossy(&id))?
            .filter(|a| email_key(&a.email) == email_key(email)))
    }

    /// All accounts in id order (there are few).
    pub fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        self.inner
            .tables
            .accounts
            .records
            .iter()
            .values()
            .map(|v| decode(&v?))
            .collect()
    }

    pub fn account_count(&self) -> usize {
        self.inner.tables.accounts.records.len()
    }

    /// Applies `change` to the stored account and writes it back atomically, moving the
    /// e-mail index entry when the address changes. `change` may run more than once when
    /// another writer got there first, so it must only modify the account it is given.
    /// Waits until the result is durable.
    ///
    /// An account that is inactive before or after the change keeps no sessions: they are
    /// revoked in the same acknowledged write, so a deactivated account's tokens are dead
    /// once the caller hears back (and a login that raced the deactivation cannot come back
    /// to life on reactivation).
    pub async fn update_account<E: From<StoreError>>(
        &self,
        id: &str,
        change: impl FnMut(&mut Account) -> Result<(), E>,
    ) -> Result<Account, E> {
        self.update_account_ending_sessions(id, None, || Ok(()), change)
            .await
    }

    /// `update_account` that also revokes every other session of the account (all but
    /// `keep`, when given) in the same acknowledged write: for a password change.
    ///
    /// Account writes through here take one gate, so that what they check and what they
    /// write are one step: `precondition` (the caller is still allowed to write) runs under
    /// it, and a change that would leave no active administrator is refused with
    /// `LastAdministrator` — two administrators demoting each other at once cannot both pass.
    pub async fn update_account_ending_sessions<E: From<StoreError>>(
        &self,
        id: &str,
        keep: Option<&[u8; 32]>,
        precondition: impl FnOnce() -> Result<(), E>,
        mut change: impl FnMut(&mut Account) -> Result<(), E>,
    ) -> Result<Account, E> {
        self.writable()?;
        let mut was_active = true;
        let account = {
            let _gate = self.account_gate();
            precondition()?;
            let account = self.update_account_nowait(id, &mut |a: &mut Account| {
                was_active = a.active;
                // Looked at before the change: the gate, not the order, is what keeps it true.
                let last = administers(a) && !self.another_administrator(id)?;
                change(a)?;
                if last && !administers(a) {
                    return Err(E::from(StoreError::LastAdministrator));
                }
                Ok::<(), E>(())
            })?;
            if !(was_active && account.active) {
                self.revoke_account_sessions(id, None)?;
            } else if let Some(keep) = keep {
                self.revoke_account_sessions(id, Some(keep))?;
            }
            account
        };
        self.durable().await?;
        Ok(account)
    }

    /// The gate every guarded account write holds while it checks and writes.
    pub(super) fn account_gate(&self) -> std::sync::MutexGuard<'_, ()> {
        self.inner
            .account_gate
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether an account other than `id` is an active administrator.
    fn another_administrator(&self, id: &str) -> Result<bool, StoreError> {
        for item in self.inner.tables.accounts.records.iter() {
            let (key, value) = item?;
            if key.as_ref() != id.as_bytes() && administers(&decode::<Account>(&value)?) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// `update_account` without waiting for durability; for callers that batch several writes.
    pub(crate) fn update_account_nowait<E: From<StoreError>>(
        &self,
        id: &str,
        change: &mut impl FnMut(&mut Account) -> Result<(), E>,
    ) -> Result<Account, E> {
        let table = &self.inner.tables.accounts;
        loop {
            let old = table.get(id.as_bytes())?.ok_or(StoreError::NotFound)?;
            let mut account: Account = decode(&old)?;
            let old_key = email_key(&account.email);
            change(&mut account)?;
            account.id = id.to_string();
            let new_key = email_key(&account.email);
            match table.update(id.as_bytes(), &old, &old_key, &new_key, encode(&account))? {
                Swap::Done => return Ok(account),
                Swap::Changed => continue,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::store::StoreOptions;

    fn admin(email: &str) -> NewAccount {
        NewAccount {
            first_name: "A".into(),
            last_name: "B".into(),
            email: email.into(),
            active: true,
            roles: vec![ADMIN_ROLE.into()],
            created_by: None,
            password_hash: None,
        }
    }

    /// Two administrators deactivate each other, and each change dawdles inside the write:
    /// without the gate both checks run while the other is still active, both writes land,
    /// and nobody is left.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_demotions_at_once_cannot_both_pass_the_last_administrator_check() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = Store::open(dir.path(), &StoreOptions::default()).unwrap();
        let a = store.create_account(admin("a@x")).await.unwrap().id;
        let b = store.create_account(admin("b@x")).await.unwrap().id;
        let deactivate = |target: String| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .update_account(&target, |acc: &mut Account| {
                        std::thread::sleep(Duration::from_millis(200));
                        acc.active = false;
                        Ok::<(), StoreError>(())
                    })
                    .await
            })
        };
        let (ra, rb) = tokio::join!(deactivate(b.clone()), deactivate(a.clone()));
        let (ra, rb) = (ra.unwrap(), rb.unwrap());
        assert!(
            ra.is_ok() != rb.is_ok(),
            "exactly one may pass: {ra:?} / {rb:?}"
        );
        let loser = if ra.is_ok() { rb } else { ra };
        assert!(matches!(loser, Err(StoreError::LastAdministrator)));
        let left = store.accounts().unwrap();
        assert_eq!(left.iter().filter(|x| administers(x)).count(), 1);
    }
}
