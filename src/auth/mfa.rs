//! Administrator MFA: who must give a one-time code, Appgate's multi-step sign-in (a token
//! that is not yet authorized, the code, the authorization), and the password-and-code login
//! of Oracle's `/mfalogin`. One seed per account serves both dialects.

use std::net::IpAddr;

use hyper::header::HeaderMap;
use uuid::Uuid;

use super::{Auth, Login, bearer, token_hash, totp};
use crate::clock;
use crate::error::ApiError;
use crate::store::{Account, AdminMfa, Stage, StoreError, Totp};

/// The one MFA provider: the built-in TOTP one (a fixed id, as `providerId` names it).
pub const BUILTIN_TOTP_PROVIDER: Uuid = Uuid::from_u128(0x9f1c_62e4_5b2d_4a57_8e0f_2c3d_7a6b_1e90);

/// A token of the multi-step sign-in (or a full one), as presented, and whose it is.
pub struct Partial {
    pub account: Account,
    /// The token as the client sent it: the same token is handed back at each step.
    pub token: String,
    pub token_hash: [u8; 32],
    pub stage: Stage,
    pub expires: i64,
}

/// What `otp/initialize` found.
pub enum Seed {
    /// A seed whose first code has been accepted: it is not shown again.
    AlreadySeeded,
    /// A seed to set up (new, or handed out before and never used), in base32.
    Secret(String),
}

/// Whether an exemption entry names this account: `CN=<e-mail>,OU=local` (Appgate's
/// distinguished name of a local user) or the bare e-mail, ignoring case.
fn exempts(entry: &str, username: &str) -> bool {
    let entry = entry.trim();
    entry.eq_ignore_ascii_case(username.trim())
        || entry.eq_ignore_ascii_case(&format!("CN={},OU=local", username.trim()))
}

impl AdminMfa {
    pub fn enabled(&self) -> bool {
        self.provider_id.is_some()
    }

    /// Whether `username` must give a one-time code to sign in.
    pub fn requires(&self, username: &str) -> bool {
        self.enabled() && !self.exempted_users.iter().any(|e| exempts(e, username))
    }
}

impl Auth {
    /// Whether `username` must give a one-time code: administrator MFA is on and it is not
    /// exempted. Decided on the name alone, so the answer says nothing of the account.
    pub fn mfa_required(&self, username: &str) -> Result<bool, ApiError> {
        Ok(self.store.admin_mfa()?.requires(username))
    }

    /// The first step of Appgate's multi-step sign-in: the password, then a token that opens
    /// nothing but the next steps.
    pub async fn authenticate_password(
        &self,
        username: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<Login, ApiError> {
        let account = self.check_password(username, password, peer).await?;
        self.open_session(&account.id, true, Stage::Authenticated)
            .await
    }

    /// The request's token at any stage of the sign-in, with its account (active), or 401.
    pub fn authenticate_partial(&self, headers: &HeaderMap) -> Result<Partial, ApiError> {
        let token = bearer(headers).ok_or_else(ApiError::unauthorized)?;
        self.partial_of(token)
    }

    /// A token (at any stage of a sign-in) given in a body rather than a header, or 401.
    pub fn partial_of(&self, token: &str) -> Result<Partial, ApiError> {
        let hash = token_hash(token).ok_or_else(ApiError::unauthorized)?;
        let (account_id, expires, stage) = self
            .store
            .session_holder(&hash)?
            .ok_or_else(ApiError::unauthorized)?;
        if expires <= clock::millis(clock::now()) {
            return Err(ApiError::unauthorized());
        }
        let account = self
            .store
            .account(&account_id)?
            .filter(|a| a.active)
            .ok_or_else(ApiError::unauthorized)?;
        Ok(Partial {
            account,
            token: token.to_string(),
            token_hash: hash,
            stage,
            expires,
        })
    }

    /// The last step: the token becomes a full one, unless the account still owes its
    /// one-time code (412). A full token is answered as it is (sdpctl asks twice, and checks
    /// a stored token this way).
    pub async fn authorize(&self, p: &Partial) -> Result<(), ApiError> {
        match p.stage {
            Stage::Full => Ok(()),
            Stage::Authenticated if self.mfa_required(&p.account.email)? => {
                Err(ApiError::mfa_required())
            }
            from => {
                if self
                    .store
                    .advance_session(&p.token_hash, from, Stage::Full)
                    .await?
                {
                    Ok(())
                } else {
                    // Revoked or moved by another request meanwhile: look again.
                    let again = self.store.session_holder(&p.token_hash)?;
                    match again {
                        Some((_, _, Stage::Full)) => Ok(()),
                        _ => Err(ApiError::unauthorized()),
                    }
                }
            }
        }
    }

    /// Hands out the account's seed to set up, or says it is set up already.
    pub async fn seed(&self, account: &Account) -> Result<Seed, ApiError> {
        let mut seed = None;
        let updated = self
            .store
            .update_account(&account.id, |a: &mut Account| {
                seed = match &a.totp {
                    Some(t) if t.confirmed => Some(Seed::AlreadySeeded),
                    Some(t) => Some(Seed::Secret(t.secret.clone())),
                    None => {
                        let secret = totp::new_secret();
                        a.totp = Some(Totp {
                            secret: secret.clone(),
                            confirmed: false,
                            last_step: 0,
                        });
                        Some(Seed::Secret(secret))
                    }
                };
                Ok::<(), StoreError>(())
            })
            .await;
        match updated {
            Ok(_) => Ok(seed.expect("the change ran")),
            Err(StoreError::NotFound) => Err(ApiError::unauthorized()),
            Err(e) => Err(e.into()),
        }
    }

    /// Forgets the account's seed: its next sign-in with MFA sets up a new one.
    pub async fn reset_seed(&self, account_id: &str) -> Result<(), StoreError> {
        self.store
            .update_account(account_id, |a: &mut Account| {
                a.totp = None;
                Ok::<(), StoreError>(())
            })
            .await
            .map(|_| ())
    }

    /// Checks a one-time code of the account (counted against its lockout, like a password)
    /// and accepts it once: the seed becomes set up, and this code and older ones are spent.
    /// 401 for a wrong, replayed or missing-seed code.
    pub async fn check_code(&self, account: &Account, code: &str) -> Result<(), ApiError> {
        let slot = self.reserve_account(&account.email).await?;
        let now_step = totp::step_of(clock::now().unix_timestamp());
        let mut accepted = false;
        let result = self
            .store
            .update_account(&account.id, |a: &mut Account| {
                accepted = false;
                if let Some(t) = a.totp.as_mut()
                    && let Some(step) = totp::verify(&t.secret, code, now_step)
                    && step > t.last_step
                {
                    t.last_step = step;
                    t.confirmed = true;
                    accepted = true;
                }
                Ok::<(), StoreError>(())
            })
            .await;
        match result {
            Ok(_) if accepted => {
                slot.succeeded();
                Ok(())
            }
            Ok(_) | Err(StoreError::NotFound) => {
                slot.failed();
                Err(ApiError::new(
                    crate::error::Kind::LoginFailed,
                    "Invalid one-time password.",
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Appgate's `POST /authentication/otp`: the code, then the token may be authorized.
    pub async fn pass_mfa(&self, p: &Partial, code: &str) -> Result<(), ApiError> {
        self.check_code(&p.account, code).await?;
        if p.stage == Stage::Authenticated {
            self.store
                .advance_session(&p.token_hash, Stage::Authenticated, Stage::MfaPassed)
                .await?;
        }
        Ok(())
    }

    /// Oracle's `/mfalogin`: password and code in one request. An account with a seed (the
    /// first good code sets it up), or one that MFA requires, must give a good code; MFA
    /// required without a seed is refused with the way to get one. An account with neither
    /// signs in with its password, as on `/login`.
    pub async fn login_with_code(
        &self,
        username: &str,
        password: &str,
        code: &str,
        peer: Option<IpAddr>,
    ) -> Result<Login, ApiError> {
        let account = self.check_password(username, password, peer).await?;
        if account.totp.is_some() || self.mfa_required(username)? {
            if account.totp.is_none() {
                return Err(ApiError::new(
                    crate::error::Kind::LoginFailed,
                    "No authenticator is set up for this account: get one with POST /ccadmin/v1/adminProfiles/getAuthenticatorInfo.",
                ));
            }
            self.check_code(&account, code).await?;
        }
        self.open_session(&account.id, true, Stage::Full).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exemptions_match_the_e_mail_or_appgate_s_distinguished_name() {
        let mfa = AdminMfa {
            provider_id: Some(BUILTIN_TOTP_PROVIDER),
            exempted_users: vec![
                "CN=api@example.com,OU=local".into(),
                "Ops@Example.com".into(),
            ],
        };
        assert!(!mfa.requires("api@example.com"));
        assert!(!mfa.requires("API@EXAMPLE.COM"));
        assert!(!mfa.requires("ops@example.com"));
        assert!(mfa.requires("admin@localhost"));
        assert!(mfa.requires("CN=admin@localhost,OU=local"));
        let off = AdminMfa::default();
        assert!(!off.requires("admin@localhost"));
    }
}
