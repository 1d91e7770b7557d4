//! Tokens held by registered applications (Oracle's `grant_type=client_credentials`).
//!
//! An application's session is held by `app:<application id>:<key generation>`, which can
//! never be an account id (those are `iuser<number>`). Authentication tells the two apart by
//! that prefix alone, so account tokens pay one string comparison. A token acts with the
//! application's roles, and stops when the application is deleted, gets a new key (a new
//! generation), or its key expires.

use std::net::IpAddr;

use super::{Auth, Caller, Login, token_hash};
use crate::clock;
use crate::error::{ApiError, Kind};
use crate::store::{Account, Application, Stage};

/// The session holder prefix of application tokens.
pub const HOLDER_PREFIX: &str = "app:";

fn holder(app: &Application) -> String {
    format!("{HOLDER_PREFIX}{}:{}", app.id, app.key_generation)
}

/// What the caller's `account_of` answers for an application: it has no admin profile.
pub fn no_profile() -> ApiError {
    ApiError::new(
        Kind::Forbidden,
        "This token belongs to a registered application, which has no admin profile.",
    )
}

/// A refused application key: the same answer for an unknown, expired or missing key.
pub fn key_refused() -> ApiError {
    ApiError::new(Kind::LoginFailed, "Invalid or expired application key.")
}

impl Caller {
    /// `app:<id>:<generation>` when the token belongs to an application.
    pub fn application(&self) -> Option<&str> {
        self.account_id
            .starts_with(HOLDER_PREFIX)
            .then_some(self.account_id.as_str())
    }
}

/// What a `Login` carries for an application's token; never stored.
fn as_account(app: &Application, holder: String) -> Account {
    Account {
        id: holder,
        first_name: app.name.clone(),
        last_name: String::new(),
        email: String::new(),
        active: true,
        roles: app.roles.clone(),
        registration_date: app.created,
        roles_last_modified: app.created,
        last_login: None,
        created_by: app.created_by.clone(),
        external: false,
        tour_complete: false,
        password_hash: None,
        totp: None,
    }
}

impl Auth {
    /// The caller of an application session (`rest` is the holder without the prefix), or
    /// 401 when the application is gone, has another key now, or its key expired.
    pub(super) fn application_caller(
        &self,
        rest: &str,
        hash: [u8; 32],
    ) -> Result<Caller, ApiError> {
        let (id, generation) = rest
            .rsplit_once(':')
            .and_then(|(id, g)| Some((id, g.parse::<u64>().ok()?)))
            .ok_or_else(ApiError::unauthorized)?;
        let app = self
            .store
            .application(id)?
            .filter(|a| a.key_generation == generation)
            .filter(|a| a.key_valid_at(clock::millis(clock::now())))
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Caller {
            account_id: holder(&app),
            roles: app.roles,
            token_hash: hash,
        })
    }

    /// Exchanges an application key for an access token. Every refusal counts against the
    /// client address's failed-login budget, as a wrong password does.
    pub async fn application_login(
        &self,
        key: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Login, ApiError> {
        let address = self.reserve_address(peer).await?;
        let now = clock::millis(clock::now());
        let app = match key.and_then(token_hash) {
            Some(hash) => self.store.application_by_key(&hash)?,
            None => None,
        };
        let Some(app) = app.filter(|a| a.key_valid_at(now)) else {
            if let Some(a) = address {
                a.failed();
            }
            return Err(key_refused());
        };
        drop(address);
        self.store.writable()?;
        let login = self.issue_application_token(&app)?;
        self.store
            .mark_application_used(&app.id, app.key_generation)?;
        self.store.durable().await?;
        Ok(login)
    }

    /// A new token for an application's caller; the presented one is revoked.
    pub(super) async fn refresh_application(
        &self,
        holder: &str,
        caller: &Caller,
    ) -> Result<Login, ApiError> {
        let rest = holder.strip_prefix(HOLDER_PREFIX).unwrap_or(holder);
        let id = rest.rsplit_once(':').map_or(rest, |(id, _)| id);
        // The key may have changed since the caller was checked: its tokens end with it.
        let app = self
            .store
            .application(id)?
            .filter(|a| self::holder(a) == holder)
            .ok_or_else(ApiError::unauthorized)?;
        let login = self.issue_application_token(&app)?;
        self.store.revoke_session(&caller.token_hash).await?;
        Ok(login)
    }

    fn issue_application_token(&self, app: &Application) -> Result<Login, ApiError> {
        let holder = holder(app);
        let (token, session) = self.put_session(&holder, app.expires, Stage::Full)?;
        Ok(Login {
            token,
            expires: clock::from_millis(session.expires),
            lifetime_secs: ((session.expires - session.created + 999) / 1000).max(0),
            account: as_account(app, holder),
        })
    }
}
