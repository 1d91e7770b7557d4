//! Login sessions: SHA-256 of the token → account and expiry. The token itself is never stored.
//! An account holds at most a configured number of sessions: a login beyond it ends the
//! account's oldest session.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use super::{Store, StoreError, decode, encode, engine};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub account_id: String,
    /// Unix milliseconds.
    pub created: i64,
    /// Unix milliseconds; the token is refused from then on.
    pub expires: i64,
    /// How far the sign-in has come; only a `Full` session may call the API.
    #[serde(default, skip_serializing_if = "Stage::is_full")]
    pub stage: Stage,
}

/// The steps of Appgate's multi-step sign-in: the password was right (`Authenticated`),
/// then also the one-time code (`MfaPassed`), then `GET /admin/authorization` made the
/// token a full one. Every other login opens a `Full` session at once.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub enum Stage {
    #[default]
    Full,
    Authenticated,
    MfaPassed,
}

impl Stage {
    pub fn is_full(&self) -> bool {
        *self == Stage::Full
    }
}

/// Each account's sessions as (created, token hash), oldest first: what the per-account cap
/// needs. Kept in memory, built from the tree on first use and kept in step by every change
/// of sessions below.
#[derive(Default)]
pub(crate) struct SessionIndex(Mutex<Option<Index>>);

type Index = HashMap<String, VecDeque<(i64, [u8; 32])>>;

impl SessionIndex {
    fn lock(&self) -> MutexGuard<'_, Option<Index>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets sessions removed from the tree (when the index is built at all).
    fn forget(&self, removed: &[(String, [u8; 32])]) {
        if removed.is_empty() {
            return;
        }
        if let Some(index) = self.lock().as_mut() {
            for (account_id, hash) in removed {
                if let Some(list) = index.get_mut(account_id) {
                    list.retain(|(_, h)| h != hash);
                    if list.is_empty() {
                        index.remove(account_id);
                    }
                }
            }
        }
    }
}

impl Store {
    fn build_session_index(&self) -> Result<Index, StoreError> {
        let mut index = Index::new();
        for entry in self.inner.sessions.iter() {
            let (k, v) = entry?;
            let (Ok(s), Ok(hash)) = (decode::<Session>(&v), <[u8; 32]>::try_from(k.as_ref()))
            else {
                continue;
            };
            index
                .entry(s.account_id)
                .or_default()
                .push_back((s.created, hash));
        }
        for list in index.values_mut() {
            list.make_contiguous().sort_unstable();
        }
        Ok(index)
    }

    /// Stores a session without waiting; the caller waits with `durable()` after its other
    /// writes of the same request. When the account then holds more than `max_per_account`
    /// sessions, its oldest ones end.
    pub(crate) fn put_session(
        &self,
        token_hash: &[u8; 32],
        session: &Session,
        max_per_account: usize,
    ) -> Result<(), StoreError> {
        self.writable()?;
        if let Some(lists) = &self.inner.session_lists {
            return self.put_shared_session(lists, token_hash, session, max_per_account);
        }
        let mut guard = self.inner.session_index.lock();
        let index = match guard.as_mut() {
            Some(index) => index,
            None => guard.insert(self.build_session_index()?),
        };
        // On etcd, under a lease that ends with the session: every node stops finding it then,
        // without a sweep.
        self.inner
            .sessions
            .insert_until(token_hash, encode(session), session.expires)?;
        let list = index.entry(session.account_id.clone()).or_default();
        list.push_back((session.created, *token_hash));
        while list.len() > max_per_account.max(1) {
            let (_, oldest) = list.pop_front().expect("longer than the cap");
            self.inner.sessions.remove(oldest)?;
        }
        Ok(())
    }

    /// `put_session` when several nodes share the store: the account's sessions are listed in
    /// the store (under a lease that ends with the last of them), so that the cap holds over
    /// every node's logins. The list drops the sessions that ended (expired, revoked, ended by
    /// another node's cap) each time, before it counts; it is changed by compare-and-swap.
    fn put_shared_session(
        &self,
        lists: &engine::Tree,
        token_hash: &[u8; 32],
        session: &Session,
        max_per_account: usize,
    ) -> Result<(), StoreError> {
        let sessions = &self.inner.sessions;
        sessions.insert_until(token_hash, encode(session), session.expires)?;
        let key = session.account_id.as_bytes();
        loop {
            let old = lists.get(key)?;
            // (created, expires, token hash), oldest first. One this build cannot read is
            // started again: the sessions themselves are untouched.
            let mut list: Vec<(i64, i64, [u8; 32])> = old
                .as_ref()
                .and_then(|v| serde_json::from_slice(v).ok())
                .unwrap_or_default();
            let hashes: Vec<&[u8]> = list.iter().map(|(_, _, h)| h.as_slice()).collect();
            let live = sessions.get_many(&hashes)?;
            let mut live = live.iter();
            list.retain(|_| live.next().is_some_and(Option::is_some));
            list.sort_unstable();
            // The oldest end; never the one just made (whatever the nodes' clocks say).
            let beyond = (list.len() + 1).saturating_sub(max_per_account.max(1));
            let ended: Vec<_> = list.drain(..beyond).collect();
            list.push((session.created, session.expires, *token_hash));
            let until = list
                .iter()
                .map(|(_, e, _)| *e)
                .max()
                .unwrap_or(session.expires);
            let new = serde_json::to_vec(&list).expect("a list serialises");
            if lists
                .compare_and_swap_until(key, old, Some(new), until)?
                .is_ok()
            {
                for (_, _, hash) in ended {
                    sessions.remove(hash)?;
                }
                return Ok(());
            }
        }
    }

    /// The account and expiry of a session (what authentication reads on every request),
    /// without copying the rest.
    pub fn session_holder(
        &self,
        token_hash: &[u8; 32],
    ) -> Result<Option<(String, i64, Stage)>, StoreError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Holder<'a> {
            #[serde(borrow)]
            account_id: Cow<'a, str>,
            expires: i64,
            #[serde(default)]
            stage: Stage,
        }
        let Some(record) = self.inner.sessions.get(token_hash)? else {
            return Ok(None);
        };
        let h: Holder =
            serde_json::from_slice(&record).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Some((h.account_id.into_owned(), h.expires, h.stage)))
    }

    /// Moves a session to `to` if it is still at `from`, and waits until durable. False when
    /// the session is gone or was moved meanwhile.
    pub async fn advance_session(
        &self,
        token_hash: &[u8; 32],
        from: Stage,
        to: Stage,
    ) -> Result<bool, StoreError> {
        self.writable()?;
        let Some(old) = self.inner.sessions.get(token_hash)? else {
            return Ok(false);
        };
        let mut session: Session = decode(&old)?;
        if session.stage != from {
            return Ok(false);
        }
        session.stage = to;
        let swapped =
            self.inner
                .sessions
                .compare_and_swap(token_hash, Some(old), Some(encode(&session)))?;
        if swapped.is_err() {
            return Ok(false);
        }
        self.durable().await?;
        Ok(true)
    }

    /// Revokes one session and waits until the revocation is durable.
    pub async fn revoke_session(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError> {
        self.writable()?;
        let old = self.inner.sessions.remove(token_hash)?;
        if let Some(s) = old.as_ref().and_then(|v| decode::<Session>(v).ok()) {
            self.inner
                .session_index
                .forget(&[(s.account_id, *token_hash)]);
        }
        self.durable().await?;
        Ok(old.is_some())
    }

    /// Revokes every session of an account except `keep` (deactivation, password change).
    /// Does not wait for durability: the caller's own write of the account does. A full scan,
    /// which is fine for something this rare.
    pub(crate) fn revoke_account_sessions(
        &self,
        account_id: &str,
        keep: Option<&[u8; 32]>,
    ) -> Result<usize, StoreError> {
        self.revoke_sessions_where(|holder| holder == account_id, keep)
    }

    /// Revokes every session whose holder passes `matches`, except `keep`; without waiting
    /// for durability. A full scan.
    pub(crate) fn revoke_sessions_where(
        &self,
        matches: impl Fn(&str) -> bool,
        keep: Option<&[u8; 32]>,
    ) -> Result<usize, StoreError> {
        let mut removed = Vec::new();
        for entry in self.inner.sessions.iter() {
            let (k, v) = entry?;
            if keep.is_some_and(|keep| k.as_ref() == keep.as_slice()) {
                continue;
            }
            if let Ok(s) = decode::<Session>(&v)
                && matches(&s.account_id)
            {
                self.inner.sessions.remove(&k)?;
                if let Ok(hash) = <[u8; 32]>::try_from(k.as_ref()) {
                    removed.push((s.account_id, hash));
                }
            }
        }
        self.inner.session_index.forget(&removed);
        Ok(removed.len())
    }

    /// Removes sessions that expired before `now_ms`; returns how many. Nothing to do on an
    /// engine whose keys expire on their own (etcd's leases end the sessions there).
    pub fn purge_expired_sessions(&self, now_ms: i64) -> Result<usize, StoreError> {
        if self.inner.sessions.expires() {
            return Ok(0);
        }
        let mut n = 0;
        let mut removed = Vec::new();
        for entry in self.inner.sessions.iter() {
            let (k, v) = entry?;
            let session = decode::<Session>(&v).ok();
            if session.as_ref().is_none_or(|s| s.expires <= now_ms) {
                self.inner.sessions.remove(&k)?;
                n += 1;
                if let (Some(s), Ok(hash)) = (session, <[u8; 32]>::try_from(k.as_ref())) {
                    removed.push((s.account_id, hash));
                }
            }
        }
        self.inner.session_index.forget(&removed);
        Ok(n)
    }
}
