//! Appgate's global settings, stored as one record. `collectiveId` is generated on first use
//! and survives a reset.

use serde::{Deserialize, Serialize};
use serde_json::Number;
use uuid::Uuid;

use super::{META_COLLECTIVE, Store, StoreError, decode, encode};

pub(super) const KEY: &[u8] = b"global";
/// Appgate's Admin MFA settings, a record of their own: a reset of the global settings
/// leaves them alone.
pub(super) const MFA_KEY: &[u8] = b"adminMfa";

/// Who must give a one-time code to sign in: every account but the exempted ones, while a
/// provider is set. The only provider is the built-in TOTP one.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdminMfa {
    /// `None`: administrator MFA is off.
    pub provider_id: Option<Uuid>,
    /// As given (`CN=<e-mail>,OU=local` or the bare e-mail); compared ignoring case.
    pub exempted_users: Vec<String>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum SpaMode {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP-TCP")]
    UdpTcp,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum AuditLogPersistenceMode {
    #[default]
    Default,
    Guaranteed,
    Performance,
}

/// The settings record, field for field as in the vendor's `global_settings.yml`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GlobalSettings {
    pub claims_token_expiration: Number,
    pub entitlement_token_expiration: Number,
    /// Minutes a login token lives.
    pub administration_token_expiration: Number,
    pub vpn_certificate_expiration: Number,
    pub registered_device_expiration_days: Number,
    pub spa_mode: SpaMode,
    pub spa_time_window_seconds: Number,
    pub login_banner_message: String,
    pub message_of_the_day: String,
    pub backup_api_enabled: bool,
    /// What is kept of the write-only `backupPassphrase`: its public key (never the
    /// passphrase, nor anything that decrypts a backup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_key: Option<crate::backup_crypt::BackupKey>,
    /// A passphrase stored in clear by versions before encrypted backups: read only to be
    /// replaced by its key at start-up, never written.
    #[serde(default, rename = "backupPassphrase", skip_serializing)]
    pub legacy_backup_passphrase: Option<String>,
    pub geo_ip_updates: bool,
    pub audit_log_persistence_mode: AuditLogPersistenceMode,
    /// Host of exported profile URLs; empty when unset.
    pub profile_hostname: String,
    pub collective_name: String,
    pub collective_id: Uuid,
}

impl GlobalSettings {
    pub fn defaults(collective_id: Uuid) -> Self {
        GlobalSettings {
            claims_token_expiration: 1440.into(),
            entitlement_token_expiration: 180.into(),
            administration_token_expiration: 720.into(),
            vpn_certificate_expiration: 525_600.into(),
            registered_device_expiration_days: 90.into(),
            spa_mode: SpaMode::Tcp,
            spa_time_window_seconds: 600.into(),
            login_banner_message: String::new(),
            message_of_the_day: String::new(),
            backup_api_enabled: false,
            backup_key: None,
            legacy_backup_passphrase: None,
            geo_ip_updates: false,
            audit_log_persistence_mode: AuditLogPersistenceMode::Default,
            profile_hostname: String::new(),
            collective_name: String::new(),
            collective_id,
        }
    }

    /// Token lifetime in milliseconds (the setting is in minutes and may be fractional).
    pub fn token_lifetime_ms(&self) -> i64 {
        let minutes = self
            .administration_token_expiration
            .as_f64()
            .unwrap_or(720.0);
        // Capped so that an expiry time can always be computed and shown.
        const TEN_YEARS_MS: f64 = 10.0 * 366.0 * 24.0 * 3_600_000.0;
        (minutes * 60_000.0).clamp(1.0, TEN_YEARS_MS) as i64
    }
}

impl Store {
    pub fn settings(&self) -> Result<GlobalSettings, StoreError> {
        match self.inner.settings.get(KEY)? {
            Some(v) => decode(&v),
            None => Ok(GlobalSettings::defaults(self.collective_id()?)),
        }
    }

    /// Replaces the settings (keeping `collectiveId`) and waits until durable.
    pub async fn put_settings(&self, mut settings: GlobalSettings) -> Result<(), StoreError> {
        self.writable()?;
        settings.collective_id = self.collective_id()?;
        self.inner.settings.insert(KEY, encode(&settings))?;
        self.durable().await
    }

    /// Back to defaults (same `collectiveId`), durably.
    pub async fn reset_settings(&self) -> Result<(), StoreError> {
        self.writable()?;
        self.inner.settings.remove(KEY)?;
        self.durable().await
    }

    pub fn admin_mfa(&self) -> Result<AdminMfa, StoreError> {
        match self.inner.settings.get(MFA_KEY)? {
            Some(v) => decode(&v),
            None => Ok(AdminMfa::default()),
        }
    }

    /// Replaces the Admin MFA settings (`None`: back to off) and waits until durable.
    pub async fn put_admin_mfa(&self, mfa: Option<&AdminMfa>) -> Result<(), StoreError> {
        self.writable()?;
        match mfa {
            Some(m) => self.inner.settings.insert(MFA_KEY, encode(m))?,
            None => self.inner.settings.remove(MFA_KEY)?,
        };
        self.durable().await
    }

    /// Generated once per installation, kept in the meta tree so a reset cannot change it.
    fn collective_id(&self) -> Result<Uuid, StoreError> {
        if let Some(v) = self.meta().get(META_COLLECTIVE)? {
            return Uuid::from_slice(&v).map_err(|e| StoreError::Corrupt(e.to_string()));
        }
        let id = Uuid::new_v4();
        match self.meta().compare_and_swap(
            META_COLLECTIVE,
            None as Option<&[u8]>,
            Some(id.as_bytes()),
        )? {
            Ok(()) => Ok(id),
            Err(cur) => Uuid::from_slice(&cur.current.unwrap_or_default())
                .map_err(|e| StoreError::Corrupt(e.to_string())),
        }
    }
}
