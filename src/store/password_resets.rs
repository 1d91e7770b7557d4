//! Password-reset tokens: SHA-256 of the token → account and expiry. The token itself is
//! never stored. An account has at most one: asking again replaces it. A token is used up by
//! the password change it allows, in the same step.

use serde::{Deserialize, Serialize};

use super::{Account, Store, StoreError, decode, email_key, encode};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordReset {
    pub account_id: String,
    /// Unix milliseconds.
    pub created: i64,
    /// Unix milliseconds; refused from then on.
    pub expires: i64,
}

impl Store {
    /// Stores a reset token for an account, ending the account's earlier ones (and any expired
    /// token of anyone), and waits until it is durable.
    pub async fn put_password_reset(
        &self,
        token_hash: &[u8; 32],
        reset: &PasswordReset,
    ) -> Result<(), StoreError> {
        self.writable()?;
        {
            let _gate = self.account_gate();
            let tree = &self.inner.password_resets;
            for entry in tree.iter() {
                let (k, v) = entry?;
                if decode::<PasswordReset>(&v).is_ok_and(|old| {
                    old.account_id != reset.account_id && old.expires > reset.created
                }) {
                    continue;
                }
                tree.remove(k)?;
            }
            tree.insert_until(token_hash, encode(reset), reset.expires)?;
        }
        self.durable().await
    }

    /// The unexpired reset token with this hash.
    pub fn password_reset(
        &self,
        token_hash: &[u8; 32],
        now_ms: i64,
    ) -> Result<Option<PasswordReset>, StoreError> {
        Ok(self
            .inner
            .password_resets
            .get(token_hash)?
            .map(|v| decode::<PasswordReset>(&v))
            .transpose()?
            .filter(|r| r.expires > now_ms))
    }

    /// Sets the password that a reset token allows, in one step under the account gate: the
    /// token must be unexpired and belong to the active account with this e-mail; the token is
    /// used up and every session of the account ends. Waits until durable. `None` (and
    /// nothing written) when the token does not allow it.
    pub async fn reset_password(
        &self,
        token_hash: &[u8; 32],
        email: &str,
        password_hash: String,
        now_ms: i64,
    ) -> Result<Option<Account>, StoreError> {
        self.writable()?;
        let account = {
            let _gate = self.account_gate();
            let Some(raw) = self.inner.password_resets.get(token_hash)? else {
                return Ok(None);
            };
            let reset: PasswordReset = decode(&raw)?;
            if reset.expires <= now_ms {
                return Ok(None);
            }
            let fits = self
                .account(&reset.account_id)?
                .is_some_and(|a| a.active && email_key(&a.email) == email_key(email));
            if !fits {
                return Ok(None);
            }
            // Used up first, by compare-and-swap: with several nodes (etcd) the gate above is
            // this node's only, and a token must still set a password once.
            if self
                .inner
                .password_resets
                .compare_and_swap(token_hash, Some(raw), None::<&[u8]>)?
                .is_err()
            {
                return Ok(None);
            }
            let account =
                self.update_account_nowait(&reset.account_id, &mut |a: &mut Account| {
                    a.password_hash = Some(password_hash.clone());
                    Ok::<(), StoreError>(())
                })?;
            self.revoke_account_sessions(&account.id, None)?;
            account
        };
        self.durable().await?;
        Ok(Some(account))
    }
}
