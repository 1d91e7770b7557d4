//! Who is calling and what they may do: logins, opaque bearer tokens, and the caller's
//! privileges. Shared by both dialects: a token from either login works everywhere.

pub mod applications;
pub mod lockout;
mod mfa;
pub mod password;
pub mod roles;
pub mod shared_lockout;
pub mod totp;

use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::header::{AUTHORIZATION, HeaderMap};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::clock;
use crate::config::Config;
use crate::error::ApiError;
use crate::store::{Account, Session, Stage, Store, StoreError};
use lockout::{AccountPolicy, Accounts, AddressPolicy, Addresses, address_key};
pub use mfa::{BUILTIN_TOTP_PROVIDER, Partial, Seed};
use password::Passwords;
pub use roles::Privilege;
use shared_lockout::{SharedAccounts, SharedAddresses};

/// The authenticated caller of one request, re-read from the store on every request so that
/// deactivation and role changes apply at once. Only what every request needs is read; a
/// handler that needs the whole account asks `Auth::account_of`.
#[derive(Clone, Debug)]
pub struct Caller {
    pub account_id: String,
    pub roles: Vec<String>,
    pub token_hash: [u8; 32],
}

impl Caller {
    pub fn can(&self, privilege: Privilege) -> bool {
        privileges(&self.roles).any(|p| p == privilege)
    }

    /// 403 unless the caller's roles grant `privilege`.
    pub fn require(&self, privilege: Privilege) -> Result<(), ApiError> {
        if self.can(privilege) {
            Ok(())
        } else {
            Err(ApiError::forbidden())
        }
    }
}

/// Every privilege the given role ids grant (unknown ids grant nothing).
pub fn privileges(role_ids: &[String]) -> impl Iterator<Item = Privilege> + '_ {
    role_ids
        .iter()
        .filter_map(|id| roles::role(id))
        .flat_map(|r| r.privileges.iter().copied())
}

/// A new opaque token: 32 bytes from the OS, standard base64, and the hash that is stored.
pub(crate) fn new_token() -> (String, [u8; 32]) {
    let mut raw = [0u8; 32];
    getrandom::fill(&mut raw).expect("the OS random source is available");
    let token = STANDARD.encode(raw);
    (token, Sha256::digest(raw).into())
}

/// The stored hash of a presented token, or `None` when it cannot be one of ours. Tokens are
/// looked up by this hash, so no comparison of the secret itself ever happens.
pub(crate) fn token_hash(token: &str) -> Option<[u8; 32]> {
    let raw = STANDARD.decode(token.trim()).ok()?;
    if raw.len() != 32 {
        return None;
    }
    Some(Sha256::digest(&raw).into())
}

pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
}

/// A successful login.
pub struct Login {
    pub token: String,
    pub expires: OffsetDateTime,
    pub lifetime_secs: i64,
    pub account: Account,
}

/// One reserved check of a password or a one-time code, in whichever table counts it (this
/// node's memory, or the store several nodes share). Say how it ended with `failed` or
/// `succeeded`; dropped without either, it gives its slot back without counting.
pub(crate) enum Slot<'a> {
    Account(lockout::Reservation<'a, Accounts>),
    Address(lockout::Reservation<'a, Addresses>),
    SharedAccount(lockout::Reservation<'a, SharedAccounts>),
    SharedAddress(lockout::Reservation<'a, SharedAddresses>),
}

impl Slot<'_> {
    pub(crate) fn failed(self) {
        match self {
            Slot::Account(r) => r.failed(),
            Slot::Address(r) => r.failed(),
            Slot::SharedAccount(r) => r.failed(),
            Slot::SharedAddress(r) => r.failed(),
        }
    }

    pub(crate) fn succeeded(self) {
        match self {
            Slot::Account(r) => r.succeeded(),
            Slot::Address(r) => r.succeeded(),
            Slot::SharedAccount(r) => r.succeeded(),
            Slot::SharedAddress(r) => r.succeeded(),
        }
    }
}

/// Longest user name a login accepts: the longest e-mail address there can be. Longer ones
/// are refused before anything is looked up or remembered.
pub const MAX_USERNAME_CHARS: usize = 254;

pub struct Auth {
    store: Store,
    passwords: Passwords,
    /// Failed logins per account (see `lockout`).
    accounts: Accounts,
    /// Failed logins per client address; `None` when that limit is off.
    addresses: Option<Addresses>,
    /// With several nodes on one store (etcd), the two limits are counted there instead, by
    /// every node (`shared_lockout`); the tables above are then unused.
    shared_accounts: Option<SharedAccounts>,
    shared_addresses: Option<SharedAddresses>,
    /// Whether loopback clients are held to the per-address limit.
    limit_loopback: bool,
    max_sessions: usize,
}

impl Auth {
    pub fn new(store: Store, config: &Config) -> Self {
        let account_policy = || AccountPolicy {
            window: config.lockout,
            lockout: config.lockout,
        };
        let address_policy = || AddressPolicy {
            burst: config.login_address_burst,
            interval: config.login_address_interval,
        };
        let limit_addresses = config.login_address_burst > 0;
        Auth {
            shared_accounts: SharedAccounts::new(&store, account_policy(), b'a'),
            shared_addresses: SharedAddresses::new(&store, address_policy(), b'i')
                .filter(|_| limit_addresses),
            store,
            passwords: Passwords::new(config.hash_concurrency),
            accounts: Accounts::new(account_policy()),
            addresses: limit_addresses.then(|| Addresses::new(address_policy())),
            limit_loopback: config.login_limit_loopback,
            max_sessions: config.max_sessions_per_account.max(1),
        }
    }

    /// Entries and bytes held by the account and address lockout tables.
    pub fn lockout_usage(&self) -> [(usize, usize); 2] {
        [
            self.accounts.usage(),
            self.addresses.as_ref().map_or((0, 0), |a| a.usage()),
        ]
    }

    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// Resolves the request's bearer token to a caller, or 401.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let hash = bearer(headers)
            .and_then(token_hash)
            .ok_or_else(ApiError::unauthorized)?;
        self.caller_of(&hash)
    }

    /// The caller holding the token with this hash, as the store has it now, or 401: the
    /// session expired or was revoked, or the account is gone or inactive.
    pub fn caller_of(&self, hash: &[u8; 32]) -> Result<Caller, ApiError> {
        let hash = *hash;
        let (account_id, expires, stage) = self
            .store
            .session_holder(&hash)?
            .ok_or_else(ApiError::unauthorized)?;
        // A token still in the middle of a multi-step sign-in opens nothing else.
        if !stage.is_full() || expires <= clock::millis(clock::now()) {
            return Err(ApiError::unauthorized());
        }
        if let Some(holder) = account_id.strip_prefix(applications::HOLDER_PREFIX) {
            return self.application_caller(holder, hash);
        }
        let account = self
            .store
            .account_access(&account_id)?
            .filter(|a| a.active)
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Caller {
            account_id: account.id,
            roles: account.roles,
            token_hash: hash,
        })
    }

    /// The caller's whole account, for the few requests that show or check more than its
    /// roles. Read again, so it is as current as the authentication.
    pub fn account_of(&self, caller: &Caller) -> Result<Account, ApiError> {
        if caller.application().is_some() {
            return Err(applications::no_profile());
        }
        self.store
            .account(&caller.account_id)?
            .filter(|a| a.active)
            .ok_or_else(ApiError::unauthorized)
    }

    /// Checks credentials (with the per-address limit and the account lockout) and opens a
    /// session. The same 401 answers a wrong password, an unknown or inactive account and an
    /// account without a password. `peer` is the client's address. While administrator MFA
    /// is on, an account that is not exempted must sign in with a one-time code instead
    /// (refused before its password is looked at).
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<Login, ApiError> {
        if self.mfa_required(username)? {
            return Err(ApiError::mfa_required());
        }
        let account = self.check_password(username, password, peer).await?;
        self.open_session(&account.id, true, Stage::Full).await
    }

    /// The active account whose password this is (counted against the per-address limit
    /// and the account lockout), or the one 401 for every kind of failure.
    pub(crate) async fn check_password(
        &self,
        username: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<Account, ApiError> {
        if username.chars().count() > MAX_USERNAME_CHARS {
            return Err(ApiError::field(
                "username",
                format!("must have at most {MAX_USERNAME_CHARS} characters"),
            ));
        }
        // The address first: a source over its limit never reaches the account's budget.
        let address = self.reserve_address(peer).await?;
        let slot = self.reserve_account(username).await?;
        let account = self.store.account_by_email(username)?;
        let hash = account
            .as_ref()
            .filter(|a| a.active)
            .and_then(|a| a.password_hash.clone());
        let ok = self.passwords.verify(password.to_owned(), hash).await;
        let account = match account {
            Some(a) if ok => a,
            _ => {
                slot.failed();
                if let Some(a) = address {
                    a.failed();
                }
                return Err(ApiError::login_failed());
            }
        };
        slot.succeeded();
        // The address's budget is not given back by a success: failures stay paid for.
        drop(address);
        Ok(account)
    }

    /// A slot in the failed-login budget of the client's address, when that limit applies
    /// to it (429 when the budget is spent).
    async fn reserve_address(&self, peer: Option<IpAddr>) -> Result<Option<Slot<'_>>, ApiError> {
        let Some(ip) = peer.filter(|ip| self.limit_loopback || !ip.to_canonical().is_loopback())
        else {
            return Ok(None);
        };
        let key = address_key(ip);
        Ok(match (&self.shared_addresses, &self.addresses) {
            (Some(shared), _) => Some(Slot::SharedAddress(
                shared.reserve(&shared_lockout::address_name(key)).await?,
            )),
            (None, Some(table)) => Some(Slot::Address(
                table
                    .reserve(key)
                    .await
                    .map_err(ApiError::too_many_requests)?,
            )),
            (None, None) => None,
        })
    }

    /// A slot in the failed-login budget of the account with this user name (429 when the
    /// budget is spent).
    async fn reserve_account(&self, username: &str) -> Result<Slot<'_>, ApiError> {
        let key = lockout::account_key(username);
        Ok(match &self.shared_accounts {
            Some(shared) => Slot::SharedAccount(shared.reserve(key.as_bytes()).await?),
            None => Slot::Account(
                self.accounts
                    .reserve(key)
                    .await
                    .map_err(ApiError::too_many_requests)?,
            ),
        })
    }

    /// Checks an account's own password before it changes it. Failures count towards the
    /// login lockout, so a stolen token cannot be used to guess the password quickly.
    pub async fn check_own_password(
        &self,
        account: &Account,
        password: &str,
    ) -> Result<bool, ApiError> {
        let slot = self.reserve_account(&account.email).await?;
        let ok = self
            .passwords
            .verify(password.to_owned(), account.password_hash.clone())
            .await;
        if ok {
            slot.succeeded();
        } else {
            slot.failed();
        }
        Ok(ok)
    }

    /// A new token for the caller; the presented one is revoked (Oracle's `/refresh`).
    pub async fn refresh(&self, caller: &Caller) -> Result<Login, ApiError> {
        self.store.writable()?;
        if let Some(holder) = caller.application() {
            return self.refresh_application(holder, caller).await;
        }
        let login = self.open_session_nowait(&caller.account_id, false, Stage::Full)?;
        self.store.revoke_session(&caller.token_hash).await?;
        Ok(login)
    }

    pub async fn logout(&self, caller: &Caller) -> Result<(), ApiError> {
        self.store.revoke_session(&caller.token_hash).await?;
        Ok(())
    }

    async fn open_session(
        &self,
        account_id: &str,
        stamp_login: bool,
        stage: Stage,
    ) -> Result<Login, ApiError> {
        let login = self.open_session_nowait(account_id, stamp_login, stage)?;
        self.store.durable().await?;
        Ok(login)
    }

    fn open_session_nowait(
        &self,
        account_id: &str,
        stamp_login: bool,
        stage: Stage,
    ) -> Result<Login, ApiError> {
        let now = clock::now();
        let (token, session) = self.put_session(account_id, None, stage)?;
        let account = if stamp_login {
            self.store
                .update_account_nowait(account_id, &mut |a: &mut Account| {
                    a.last_login = Some(now);
                    Ok::<(), StoreError>(())
                })?
        } else {
            self.store
                .account(account_id)?
                .ok_or_else(ApiError::unauthorized)?
        };
        Ok(Login {
            token,
            expires: clock::from_millis(session.expires),
            lifetime_secs: (session.expires - session.created + 999) / 1000,
            account,
        })
    }

    /// Stores a new session for `holder` (without waiting), living the configured token
    /// lifetime but never past `until` (Unix ms); its token.
    fn put_session(
        &self,
        holder: &str,
        until: Option<i64>,
        stage: Stage,
    ) -> Result<(String, Session), ApiError> {
        let lifetime_ms = self.store.settings()?.token_lifetime_ms();
        let now = clock::millis(clock::now());
        let (token, hash) = new_token();
        let session = Session {
            account_id: holder.to_string(),
            created: now,
            expires: until.map_or(now + lifetime_ms, |u| u.min(now + lifetime_ms)),
            stage,
        };
        self.store.put_session(&hash, &session, self.max_sessions)?;
        Ok((token, session))
    }
}
