//! Server configuration. `main` fills it from flags and environment; tests build it directly.

use std::path::PathBuf;
use std::time::Duration;

use crate::store::StoreOptions;

/// The login of the administrator created on first start, unless configured.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@localhost";

#[derive(Clone, Debug)]
pub struct Config {
    pub data_dir: PathBuf,
    /// E-mail of the administrator created on first start.
    pub admin_email: String,
    /// Their password; when `None` a strong one is generated and written to
    /// `<data-dir>/initial-admin-password` (0600), and shown on stderr at a terminal.
    pub admin_password: Option<String>,
    pub store: StoreOptions,
    /// Open connections at most; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// Time a client has to send its request headers (also bounds idle keep-alive).
    pub header_timeout: Duration,
    /// Time a client has to send its request body.
    pub body_timeout: Duration,
    /// Time in-flight requests get to finish after a shutdown signal.
    pub shutdown_timeout: Duration,
    /// How long an account stays locked after repeated failed logins.
    pub lockout: Duration,
    /// Password hashes computed at once.
    pub hash_concurrency: usize,
    /// The CA certificate (PEM or DER) whose fingerprint exported profile URLs carry.
    pub ca_cert: Option<PathBuf>,
    /// Whether `GET /metrics` is served.
    pub metrics: bool,
    /// One JSON object per log line instead of text.
    pub log_json: bool,

    // Hardening: per-address limits and caps (README, "Security").
    /// Open connections one client address may hold; 0: no limit beyond `max_connections`.
    pub max_connections_per_address: usize,
    /// When every connection slot is taken, a connection that has waited this long for a
    /// complete request head (idle keep-alive or slowloris) gives its slot to a new one.
    pub evict_idle_after: Duration,
    /// Failed logins a client address may make at once; 0 turns the per-address limit off.
    pub login_address_burst: u32,
    /// After its burst, an address may fail one more login per this interval.
    pub login_address_interval: Duration,
    /// Whether loopback clients are held to the per-address login limit.
    pub login_limit_loopback: bool,
    /// Sessions one account may hold; a login beyond ends its oldest.
    pub max_sessions_per_account: usize,

    // Password reset and its mail (README, "Oracle Commerce").
    /// SMTP server for password-reset mail; `None`: messages go to `<data-dir>/outbox/`.
    pub smtp_url: Option<crate::mail::SmtpUrl>,
    /// Sender address of that mail (required with `smtp_url`).
    pub smtp_from: Option<String>,
    /// Time one message may take to be sent.
    pub mail_timeout: Duration,
    /// How long a password-reset token stays valid.
    pub password_reset_lifetime: Duration,

    // HTTPS (README, "Operations"); served when the server is given a TLS listener.
    /// The server's certificate chain (PEM, its own first), with `tls_key`. `None` (both):
    /// the self-signed pair in the data directory, generated on the first start.
    pub tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Host names and addresses a generated certificate is for; empty: the machine's host
    /// name, `localhost`, `127.0.0.1` and `::1`.
    pub tls_hostnames: Vec<String>,
    /// Time a client has to complete the TLS handshake.
    pub tls_handshake_timeout: Duration,
}

impl Config {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            data_dir: data_dir.into(),
            admin_email: DEFAULT_ADMIN_EMAIL.into(),
            admin_password: None,
            store: StoreOptions::default(),
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            shutdown_timeout: Duration::from_secs(10),
            lockout: Duration::from_secs(60),
            hash_concurrency: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(2),
            ca_cert: None,
            metrics: true,
            log_json: false,

            max_connections_per_address: 256,
            evict_idle_after: Duration::from_secs(1),
            login_address_burst: 3,
            login_address_interval: Duration::from_secs(60),
            login_limit_loopback: false,
            max_sessions_per_account: 100,

            smtp_url: None,
            smtp_from: None,
            mail_timeout: Duration::from_secs(30),
            password_reset_lifetime: Duration::from_secs(60 * 60),

            tls_cert: None,
            tls_key: None,
            tls_hostnames: Vec::new(),
            tls_handshake_timeout: Duration::from_secs(10),
        }
    }
}
