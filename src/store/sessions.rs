//! Login sessions: SHA-256 of the token → account and expiry. The token itself is never stored.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, decode, encode};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub account_id: String,
    /// Unix milliseconds.
    pub created: i64,
    /// Unix milliseconds; the token is refused from then on.
    pub expires: i64,
}

impl Store {
    /// Stores a session without waiting; the caller waits with `durable()` after its other
    /// writes of the same request.
    pub(crate) fn put_session(
        &self,
        token_hash: &[u8; 32],
        session: &Session,
    ) -> Result<(), StoreError> {
        self.writable()?;
        self.inner.sessions.insert(token_hash, encode(session))?;
        Ok(())
    }

    /// The account and expiry of a session (what authentication reads on every request),
    /// without copying the rest.
    pub fn session_holder(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<(String, i64)>, StoreError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Holder<'a> {
            #[serde(borrow)]
            account_id: Cow<'a, str>,
            expires: i64,
        }
        let Some(record) = self.inner.sessions.get(token_hash)? else {
            return Ok(None);
        };
        let h: Holder =
            serde_json::from_slice(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some((h.account_id.into_owned(), h.expires)))
    }

    /// Revokes one session and waits until the revocation is durable.
    pub async fn revoke_session(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError> {
        self.writable()?;
        let existed = self.inner.sessions.remove(token_hash)?.is_some();
        self.durable().await?;
        Ok(existed)
    }

    /// Revokes every session of an account except `keep` (deactivation, password change).
    /// Does not wait for durability: the caller's own write of the account does. A full scan,
    /// which is fine for something this rare.
    pub(crate) fn revoke_account_sessions(
        &self,
        account_id: &str,
        keep: Option<&[u8; 32]>,
    ) -> Result<usize, StoreError> {
        let mut n = 0;
        for entry in self.inner.sessions.iter() {
            let (k, v) = entry?;
            if keep.is_some_and(|keep| k.as_ref() == keep.as_slice()) {
                continue;
            }
            if decode::<Session>(&v).is_ok_and(|s| s.account_id == account_id) {
                self.inner.sessions.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Removes sessions that expired before `now_ms`; returns how many.
    pub fn purge_expired_sessions(&self, now_ms: i64) -> Result<usize, StoreError> {
        let mut n = 0;
        for entry in self.inner.sessions.iter() {
            let (k, v) = entry?;
            let expired = decode::<Session>(&v)
                .map(|s| s.expires <= now_ms)
                .unwrap_or(true);
            if expired {
                self.inner.sessions.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }
}
