//! Outgoing mail (password-reset messages): by SMTP when `--smtp-url` and `--smtp-from` are
//! set, else written into `<data-dir>/outbox/`, one file per message, readable only by the
//! server's user. Sending happens off the request path, bounded in time and in how many run
//! at once; a failure is logged without the message, which holds a secret.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use tokio::sync::Semaphore;

use crate::config::Config;

/// An SMTP server URL (`smtp://host:port`, `smtps://host:port` for TLS, `smtp://host:port?tls=required`
/// for STARTTLS; `user:password@` for AUTH). It may hold a password, so it never shows in a
/// log or in `Debug` output.
#[derive(Clone)]
pub struct SmtpUrl(pub String);

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SmtpUrl(…)")
    }
}

/// Messages being sent at once at most; more are dropped (and logged), so a flood of reset
/// requests cannot pile up connections or tasks.
const MAX_IN_FLIGHT: usize = 16;

/// The sender used for outbox files when no `--smtp-from` is set.
const OUTBOX_FROM: &str = "profiled@localhost";

#[derive(Clone)]
enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Outbox(PathBuf),
}

#[derive(Clone)]
pub struct Mailer {
    transport: Transport,
    from: Mailbox,
    timeout: Duration,
    in_flight: Arc<Semaphore>,
}

impl Mailer {
    /// From the configuration; an error says what is wrong with it.
    pub fn new(config: &Config) -> Result<Mailer, String> {
        let from = |s: &str| {
            s.parse::<Mailbox>()
                .map_err(|e| format!("--smtp-from '{s}' is not an e-mail address: {e}"))
        };
        let (transport, from) = match (&config.smtp_url, &config.smtp_from) {
            (Some(url), Some(sender)) => {
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&url.0)
                    .map_err(|e| format!("--smtp-url is not usable: {e}"))?;
                (
                    Transport::Smtp(builder.timeout(Some(config.mail_timeout)).build()),
                    from(sender)?,
                )
            }
            (Some(_), None) => return Err("--smtp-url needs --smtp-from (the sender)".into()),
            (None, sender) => {
                let dir = config.data_dir.join("outbox");
                private_dir(&dir).map_err(|e| format!("cannot prepare {}: {e}", dir.display()))?;
                (
                    Transport::Outbox(dir),
                    from(sender.as_deref().unwrap_or(OUTBOX_FROM))?,
                )
            }
        };
        Ok(Mailer {
            transport,
            from,
            timeout: config.mail_timeout,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
        })
    }

    /// Where messages go, for the start-up log (no credentials).
    pub fn describe(&self) -> String {
        match &self.transport {
            Transport::Smtp(_) => "smtp".into(),
            Transport::Outbox(dir) => format!("outbox {}", dir.display()),
        }
    }

    /// Sends a plain-text message in the background and returns at once. `what` names the
    /// kind of message in the log.
    pub fn send(&self, what: &'static str, to: &str, subject: &str, body: String) {
        let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
            tracing::warn!(what, "too many messages being sent: this one is dropped");
            return;
        };
        let message = match to.parse::<Mailbox>().map(|to| {
            Message::builder()
                .from(self.from.clone())
                .to(to)
                .subject(subject)
                .header(ContentType::TEXT_PLAIN)
                .body(body)
        }) {
            Ok(Ok(m)) => m,
            Ok(Err(e)) => {
                tracing::warn!(what, error = %e, "the message could not be built");
                return;
            }
            Err(e) => {
                tracing::warn!(what, error = %e, "the recipient is not an address mail can go to");
                return;
            }
        };
        let transport = self.transport.clone();
        let timeout = self.timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let sent = tokio::time::timeout(timeout, deliver(transport, message)).await;
            match sent {
                Ok(Ok(via)) => tracing::info!(what, via, "message sent"),
                Ok(Err(e)) => tracing::warn!(what, error = %e, "the message could not be sent"),
                Err(_) => tracing::warn!(
                    what,
                    timeout_secs = timeout.as_secs(),
                    "the message could not be sent in time"
                ),
            }
        });
    }
}

async fn deliver(transport: Transport, message: Message) -> Result<&'static str, String> {
    match transport {
        Transport::Smtp(smtp) => smtp
            .send(message)
            .await
            .map(|_| "smtp")
            .map_err(|e| e.to_string()),
        Transport::Outbox(dir) => {
            let bytes = message.formatted();
            tokio::task::spawn_blocking(move || write_private(&dir, &bytes))
                .await
                .map_err(|e| e.to_string())?
                .map(|_| "outbox")
                .map_err(|e| e.to_string())
        }
    }
}

/// Creates `dir` (0700) or makes an existing one 0700.
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Writes one message as a new 0600 file, named by time and a random id so that files sort
/// by arrival and never overwrite each other.
fn write_private(dir: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let name = format!(
        "{}-{}.eml",
        crate::clock::millis(crate::clock::now()),
        crate::ids::new_v7().simple()
    );
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dir.join(name))?;
    file.write_all(bytes)?;
    file.sync_all()
}
