//! The application state every handler receives, and what happens on first start.

use std::sync::Arc;

use std::io::IsTerminal;

use base64::Engine;

use crate::auth::Auth;
use crate::auth::password::{self, hash_blocking};
use crate::auth::roles::ADMIN_ROLE;
use crate::config::Config;
use crate::store::{NewAccount, OpenError, Store};

pub struct Inner {
    pub store: Store,
    pub auth: Auth,
    pub config: Config,
    /// Lowercase hex SHA-256 of the configured CA certificate, read once at start-up.
    pub ca_fingerprint: Option<String>,
    /// Where password-reset messages go.
    pub mailer: crate::mail::Mailer,
}

#[derive(Clone)]
pub struct App(Arc<Inner>);

impl std::ops::Deref for App {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl App {
    /// Opens the store (repairing leftovers of unacknowledged writes) and creates the first
    /// administrator when there is no account yet.
    pub async fn open(config: Config) -> Result<App, StartError> {
        let ca_fingerprint = match &config.ca_cert {
            Some(path) => Some(
                crate::certs::ca_fingerprint(path)
                    .map_err(|e| StartError::CaCert(format!("{}: {e}", path.display())))?,
            ),
            None => None,
        };
        // Tests of what answers while the store opens (debug builds only).
        #[cfg(debug_assertions)]
        if let Some(ms) = std::env::var("PROFILED_TEST_OPEN_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        let (store, report) =
            Store::open(&config.data_dir, &config.store).map_err(StartError::Open)?;
        // After the store: the outbox lives in the data directory, which opening checks
        // holds nothing but a database.
        let mailer = crate::mail::Mailer::new(&config).map_err(StartError::Mail)?;
        for fixed in report.removed.iter().chain(&report.restored) {
            tracing::warn!(%fixed, "repaired at start-up");
        }
        if !report.unrepairable.is_empty() {
            return Err(StartError::Damaged(report.unrepairable));
        }
        match crate::appgate::seal_legacy_passphrase(&store).await {
            Ok(false) => {}
            Ok(true) => tracing::warn!(
                "the backup passphrase stored in clear by an older version was replaced by its public key"
            ),
            Err(e) => tracing::error!(
                status = e.status(crate::error::Dialect::Appgate).as_u16(),
                "the backup passphrase stored in clear by an older version could not be replaced"
            ),
        }
        if store.account_count() == 0 {
            first_admin(&store, &config).await?;
        } else {
            // Both only shape the first administrator, which exists.
            if config.admin_password.is_some() {
                tracing::warn!(
                    "PROFILED_ADMIN_PASSWORD is ignored: the database has accounts already (change a password with `profiled reset-password`)"
                );
            }
            // The default is no choice of the operator's: only a chosen address is reported.
            if config.admin_email != crate::config::DEFAULT_ADMIN_EMAIL
                && matches!(store.account_by_email(&config.admin_email), Ok(None))
            {
                tracing::warn!(
                    admin_email = %config.admin_email,
                    "--admin-email (PROFILED_ADMIN_EMAIL) is ignored: the database has accounts already, and none with this e-mail"
                );
            }
        }
        let auth = Auth::new(store.clone(), &config);
        tracing::info!(to = %mailer.describe(), "password-reset mail");
        Ok(App(Arc::new(Inner {
            store,
            auth,
            config,
            ca_fingerprint,
            mailer,
        })))
    }
}

async fn first_admin(store: &Store, config: &Config) -> Result<(), StartError> {
    let (password, generated) = match &config.admin_password {
        Some(p) => {
            password::check_strength(p).map_err(StartError::WeakPassword)?;
            (p.clone(), false)
        }
        None => {
            let mut raw = [0u8; 18];
            getrandom::fill(&mut raw).expect("the OS random source is available");
            (
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw),
                true,
            )
        }
    };
    // Stored before the account exists: an administrator whose password was lost on the way
    // would need `profiled reset-password`.
    let file = config.data_dir.join(INITIAL_PASSWORD_FILE);
    if generated {
        write_private(&file, &format!("{password}\n"))
            .map_err(|e| StartError::Store(format!("cannot write {}: {e}", file.display())))?;
    }
    let to_hash = password.clone();
    let hash = tokio::task::spawn_blocking(move || hash_blocking(&to_hash))
        .await
        .expect("hashing does not panic");
    let created = store
        .create_account(NewAccount {
            first_name: "Admin".into(),
            last_name: "Administrator".into(),
            email: config.admin_email.clone(),
            active: true,
            roles: vec![ADMIN_ROLE.into()],
            created_by: None,
            password_hash: Some(hash),
        })
        .await;
    let account = match created {
        Ok(a) => a,
        Err(e) => {
            if generated {
                let _ = std::fs::remove_file(&file);
            }
            // Nodes of one cluster starting together: another one created it first.
            if matches!(e, crate::store::StoreError::KeyTaken) && store.shared() {
                tracing::info!("another node created the first administrator");
                return Ok(());
            }
            return Err(StartError::Store(e.to_string()));
        }
    };
    tracing::info!(id = %account.id, email = %account.email, "created the first administrator");
    if generated {
        // The log (a journal, kept and shipped) names only the file, never the password.
        tracing::info!(
            file = %file.display(),
            "the generated password of the first administrator is in this file (readable by this user only); delete it once you have changed or stored the password"
        );
        // A person at a terminal sees it at once; a service manager's journal never does.
        if std::io::stderr().is_terminal() {
            eprintln!(
                "\n  profiled created the administrator {} with this generated password:\n\n      {password}\n\n  It is also in {} (mode 600). Set PROFILED_ADMIN_PASSWORD to choose it, or\n  use `profiled reset-password` to set a new one.\n",
                account.email,
                file.display()
            );
        }
    }
    Ok(())
}

/// The file in the data directory that holds the generated password of the first
/// administrator. profiled never reads or deletes it: the operator deletes it.
pub const INITIAL_PASSWORD_FILE: &str = "initial-admin-password";

/// Writes `text` to a new file only this user can read (0600), replacing an older one.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()
}

/// Why the server could not start; each says what the operator should do.
#[derive(Debug)]
pub enum StartError {
    Open(OpenError),
    Damaged(Vec<String>),
    WeakPassword(String),
    Store(String),
    CaCert(String),
    Mail(String),
    /// The TLS certificate or key cannot be generated or loaded.
    Tls(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Open(e) => write!(f, "{e}"),
            StartError::Damaged(problems) => write!(
                f,
                "the database is inconsistent in a way start-up cannot repair ({}). Run `profiled check` for the full list and restore from a backup",
                problems.join("; ")
            ),
            StartError::WeakPassword(m) => {
                write!(f, "PROFILED_ADMIN_PASSWORD is not accepted: {m}")
            }
            StartError::Store(m) => write!(f, "could not create the first administrator: {m}"),
            StartError::CaCert(m) => write!(f, "--ca-cert: cannot use the CA certificate {m}"),
            StartError::Mail(m) => write!(f, "password-reset mail: {m}"),
            StartError::Tls(m) => write!(f, "HTTPS (--tls-listen): {m}"),
        }
    }
}

impl std::error::Error for StartError {}
