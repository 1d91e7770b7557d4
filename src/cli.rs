//! Command-line flags and environment variables.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

const ENV_HELP: &str = "\
Environment:
  PROFILED_ADMIN_PASSWORD  Password of the administrator created on first start (at least 12
                           characters). Unset: a strong one is generated and written to
                           <data-dir>/initial-admin-password (mode 600), and shown on standard
                           error only when that is a terminal.
  NOTIFY_SOCKET            Set by systemd (Type=notify): READY=1 is sent there once serving.
  PROFILED_NEW_PASSWORD    The new password for `reset-password` (else read from stdin).
  RUST_LOG                 Log filter, e.g. `info` (default) or `profiled=debug`.
Every flag can also be set with the variable named in its help, and every flag of `serve` in
the file given with --config (TOML, keys as the flags' long names: `cache-mb = 64`); a flag
wins over its variable, the variable over the file.
Signals: SIGHUP re-reads the HTTPS certificate and key; SIGINT or SIGTERM stop gracefully.";

const RESET_HELP: &str = "\
Environment:
  PROFILED_NEW_PASSWORD  The new password (at least 12 characters). Unset: it is read from
                         standard input, one line (at a terminal it is not shown; finish it
                         with Enter).";

const IMPORT_HELP: &str = "\
Environment:
  PROFILED_BACKUP_PASSPHRASE  The passphrase of an encrypted backup, when --passphrase-file is
                              not given. Neither: it is asked for at a terminal (not shown).";

#[derive(Parser, Debug)]
#[command(
    name = "profiled",
    version,
    about = "Client and admin profiles in one binary: the Appgate SDP and Oracle Commerce admin APIs over an embedded database.",
    after_help = ENV_HELP,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

impl Cli {
    /// The log format the command asks for (only `serve` takes the flag).
    pub fn log_format(&self) -> LogFormat {
        match &self.command {
            None => self.serve.log_format,
            Some(Command::Serve(a)) => a.log_format,
            Some(_) => LogFormat::Text,
        }
    }
}

// Parsed once per process: the size of `serve`'s arguments does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
    /// Set a new password for an account, offline (stop the server first; with --store etcd
    /// the nodes may keep serving).
    #[command(after_help = RESET_HELP)]
    ResetPassword(ResetPasswordArgs),
    /// Verify the database offline (with --store etcd: the installation as it is at one etcd
    /// revision, while nodes serve); exit status 0 only when every invariant holds.
    Check(DataDirArgs),
    /// Write a backup of a stopped server's database (with --store etcd: of the installation
    /// at one etcd revision, while nodes serve) as JSON lines (to stdout or --output),
    /// encrypted as GET /admin/backup is when a backupPassphrase is set.
    Export(ExportArgs),
    /// Restore a backup (plain or encrypted) into an empty data directory (with --store etcd:
    /// a prefix that holds no key), rebuilding the indexes.
    #[command(after_help = IMPORT_HELP)]
    Import(ImportArgs),
}

#[derive(Args, Debug, Clone)]
pub struct DataDirArgs {
    /// Directory of the database (ignored with --store etcd://…).
    #[arg(long, env = "PROFILED_DATA_DIR", default_value = "data/db")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ExportArgs {
    #[command(flatten)]
    pub dir: DataDirArgs,
    /// File to write (default: standard output): written as FILE.tmp-<random> beside it
    /// (mode 600) and renamed over FILE only once complete, so a failed export leaves an
    /// existing FILE as it was.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    /// Write what can still be read of a damaged database (exit status 3, naming what is
    /// missing) instead of refusing: the last resort when there is no backup.
    #[arg(long)]
    pub salvage: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ImportArgs {
    #[command(flatten)]
    pub dir: DataDirArgs,
    /// The backup file (`-` for standard input).
    pub file: PathBuf,
    /// File holding the passphrase of an encrypted backup (one line).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// TOML file of settings keyed by these flags' long names (`listen = "0.0.0.0:8080"`,
    /// `cache-mb = 64`); flags and environment variables win over it.
    #[arg(long, env = "PROFILED_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on for plain HTTP: IP:PORT or HOST:PORT (e.g. localhost:8080), or
    /// `none` (HTTPS only, with --tls-listen).
    #[arg(long, env = "PROFILED_LISTEN", default_value = "127.0.0.1:8080", value_parser = parse_listen)]
    pub listen: Listen,
    /// Address to listen on for HTTPS, e.g. 0.0.0.0:8443 (where Appgate's clients look), or
    /// `none`: HTTPS is off unless this is given.
    #[arg(long, env = "PROFILED_TLS_LISTEN", default_value = "none", value_parser = parse_listen)]
    pub tls_listen: Listen,
    /// The HTTPS certificate chain (PEM, the server's own certificate first), with --tls-key;
    /// re-read on SIGHUP. Unset: a self-signed pair is generated into the data directory on the
    /// first start (tls-cert.pem, tls-key.pem) and reused after.
    #[arg(long, env = "PROFILED_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "PROFILED_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// A host name or IP address the generated certificate is for (repeat the flag, or
    /// separate with commas). Default: this machine's host name, localhost, 127.0.0.1, ::1.
    #[arg(
        long = "tls-hostname",
        env = "PROFILED_TLS_HOSTNAME",
        value_delimiter = ','
    )]
    pub tls_hostname: Vec<String>,
    /// Seconds a client has to complete the TLS handshake.
    #[arg(long, env = "PROFILED_TLS_HANDSHAKE_TIMEOUT", default_value_t = 10)]
    pub tls_handshake_timeout: u64,
    /// Directory of the database (created if missing).
    #[arg(long, env = "PROFILED_DATA_DIR", default_value = "data/db")]
    pub data_dir: PathBuf,
    /// E-mail (login name) of the administrator created on first start.
    #[arg(long, env = "PROFILED_ADMIN_EMAIL", default_value = "admin@localhost")]
    pub admin_email: String,
    /// Database page cache in MiB.
    #[arg(long, env = "PROFILED_CACHE_MB", default_value_t = 128, value_parser = parse_cache_mb)]
    pub cache_mb: u64,
    /// Open connections at most.
    #[arg(long, env = "PROFILED_MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,
    /// Seconds a client has to send its request headers (also the keep-alive idle limit).
    #[arg(long, env = "PROFILED_HEADER_TIMEOUT", default_value_t = 10)]
    pub header_timeout: u64,
    /// Seconds a client has to send its request body.
    #[arg(long, env = "PROFILED_BODY_TIMEOUT", default_value_t = 10)]
    pub body_timeout: u64,
    /// Seconds in-flight requests get to finish on SIGINT/SIGTERM.
    #[arg(long, env = "PROFILED_SHUTDOWN_TIMEOUT", default_value_t = 10)]
    pub shutdown_timeout: u64,
    /// CA certificate (PEM or DER) whose SHA-256 fingerprint exported profile URLs carry as
    /// `caFingerprint`; without it the field is left out.
    #[arg(long, env = "PROFILED_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Serve Prometheus metrics at GET /metrics (`--metrics false` turns them off).
    #[arg(long, env = "PROFILED_METRICS", default_value_t = true, action = ArgAction::Set)]
    pub metrics: bool,
    /// Log lines as text (for people) or one JSON object per line (for log collectors).
    #[arg(long, env = "PROFILED_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    // Hardening (README, "Security").
    /// Open connections one client address may hold (0: only --max-connections applies).
    #[arg(
        long,
        env = "PROFILED_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 256
    )]
    pub max_connections_per_address: usize,
    /// Failed logins one client address may make at once (0: no per-address limit).
    #[arg(long, env = "PROFILED_LOGIN_ADDRESS_BURST", default_value_t = 3)]
    pub login_address_burst: u32,
    /// Seconds after which an address that used its burst may fail one more login.
    #[arg(long, env = "PROFILED_LOGIN_ADDRESS_INTERVAL", default_value_t = 60)]
    pub login_address_interval: u64,
    /// Hold loopback clients (127.0.0.0/8, ::1) to the per-address login limit too.
    #[arg(long, env = "PROFILED_LOGIN_LIMIT_LOOPBACK")]
    pub login_limit_loopback: bool,
    /// Sessions one account may hold; a login beyond ends its oldest session.
    #[arg(long, env = "PROFILED_MAX_SESSIONS_PER_ACCOUNT", default_value_t = 100)]
    pub max_sessions_per_account: usize,

    // Password reset (README, "Oracle Commerce").
    /// SMTP server for password-reset mail: smtp://host:port, smtps://host:port (TLS),
    /// smtp://host:port?tls=required (STARTTLS), with user:password@ for AUTH. Unset: messages
    /// are written to <data-dir>/outbox/.
    #[arg(long, env = "PROFILED_SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<String>,
    /// Sender address of password-reset mail (required with --smtp-url).
    #[arg(long, env = "PROFILED_SMTP_FROM")]
    pub smtp_from: Option<String>,
    /// Minutes a password-reset token stays valid.
    #[arg(long, env = "PROFILED_PASSWORD_RESET_MINUTES", default_value_t = 60)]
    pub password_reset_minutes: u64,

    // The etcd backend (README, "Several nodes over etcd").
    #[command(flatten)]
    pub store: StoreArgs,
}

/// Where the data lives when it is not sled in --data-dir.
#[derive(Args, Debug, Clone, Default)]
pub struct StoreArgs {
    /// Keep the data in an etcd cluster instead of sled in --data-dir:
    /// etcd://HOST:PORT[,HOST:PORT…] (a build with the `etcd` cargo feature). etcd user and
    /// password come from PROFILED_STORE_USER and PROFILED_STORE_PASSWORD.
    #[arg(long = "store", env = "PROFILED_STORE", value_parser = parse_store)]
    pub url: Option<StoreUrl>,
    /// Every etcd key starts with this: installations sharing one cluster each use their own.
    #[arg(long, env = "PROFILED_STORE_PREFIX", default_value = "profiled")]
    pub store_prefix: String,
    /// PEM CA certificate of the etcd members: connect to them with TLS.
    #[arg(long, env = "PROFILED_STORE_CA_CERT")]
    pub store_ca_cert: Option<PathBuf>,
}

/// A parsed `--store` (only a build with the `etcd` feature can have one).
#[cfg(feature = "etcd")]
pub type StoreUrl = crate::store::EtcdOptions;
#[cfg(not(feature = "etcd"))]
pub type StoreUrl = std::convert::Infallible;

fn parse_store(s: &str) -> Result<StoreUrl, String> {
    #[cfg(feature = "etcd")]
    return crate::store::EtcdOptions::parse(s);
    #[cfg(not(feature = "etcd"))]
    Err(format!(
        "{s:?}: this profiled was built without the etcd backend (cargo build --features etcd)"
    ))
}

impl StoreArgs {
    /// The store an offline command works on when --store names one: `None` for sled in
    /// --data-dir (which is then ignored: the nodes' environment sets both, and the commands
    /// read the same environment).
    pub fn offline(&self) -> Option<crate::store::StoreOptions> {
        self.url.as_ref()?;
        let mut options = crate::store::StoreOptions::default();
        self.apply(&mut options);
        Some(options)
    }

    /// Sets the engine of `options` (sled unless --store names etcd).
    pub fn apply(&self, options: &mut crate::store::StoreOptions) {
        #[cfg(feature = "etcd")]
        if let Some(url) = &self.url {
            let mut etcd = url.clone();
            etcd.prefix = self.store_prefix.clone();
            etcd.ca_cert = self.store_ca_cert.clone();
            etcd.user = std::env::var("PROFILED_STORE_USER")
                .ok()
                .filter(|u| !u.is_empty());
            etcd.password = std::env::var("PROFILED_STORE_PASSWORD").ok();
            options.etcd = Some(etcd);
        }
        #[cfg(not(feature = "etcd"))]
        let _ = options;
    }
}

#[derive(Args, Debug, Clone)]
pub struct ResetPasswordArgs {
    /// Directory of the database (ignored with --store etcd://…).
    #[arg(long, env = "PROFILED_DATA_DIR", default_value = "data/db")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub store: StoreArgs,
    /// E-mail of the account.
    #[arg(long)]
    pub email: String,
    /// Also give the account the administrator role (`adminRole`) and reactivate it: the way
    /// back in when no administrator is left.
    #[arg(long)]
    pub make_admin: bool,
}

/// A listening address, or none (`none`: that listener is off).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(a) => write!(f, "{a}"),
            None => f.write_str("none"),
        }
    }
}

/// `IP:PORT` or `HOST:PORT` (a host name is resolved once, and its first address is used), or
/// `none`.
fn parse_listen(s: &str) -> Result<Listen, String> {
    use std::net::ToSocketAddrs;
    if s == "none" {
        return Ok(Listen(None));
    }
    if let Ok(a) = s.parse() {
        return Ok(Listen(Some(a)));
    }
    if s.rsplit_once(':')
        .is_none_or(|(_, port)| port.parse::<u16>().is_err())
    {
        return Err(format!(
            "{s:?} is not HOST:PORT (e.g. 127.0.0.1:8080 or localhost:8080) or none"
        ));
    }
    s.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {s:?}: {e}"))?
        .next()
        .map(|a| Listen(Some(a)))
        .ok_or_else(|| format!("{s:?} resolves to no address"))
}

/// sled needs a page cache: at least 1 MiB.
fn parse_cache_mb(s: &str) -> Result<u64, String> {
    match s.parse::<u64>() {
        Ok(0) => Err("the page cache must be at least 1 MiB".into()),
        Ok(n) if n <= u64::MAX / (1024 * 1024) => Ok(n),
        _ => Err(format!("{s:?} is not a number of MiB (at least 1)")),
    }
}

/// The configuration file given with `--config` (`PROFILED_CONFIG`), once read.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    /// The long names (`data-dir`) it sets.
    pub keys: Vec<String>,
}

/// Why the command line (with its configuration file) was not accepted.
#[derive(Debug)]
pub enum ParseError {
    /// With the configuration file whose values were in force, to name it.
    Clap(clap::Error, Option<ConfigFile>),
    /// The configuration file cannot be read, is not TOML, or has an unknown key or a value of
    /// the wrong type; the message names the file and the key.
    File(String),
}

/// Parses `args`. With `--config FILE` (or `PROFILED_CONFIG`) on the server's command line,
/// the file's values become the flags' defaults, so that a flag or an environment variable
/// still wins over the file, and the file over the built-in defaults.
pub fn parse(args: &[String]) -> Result<(clap::ArgMatches, Option<ConfigFile>), ParseError> {
    use clap::CommandFactory;
    let first = Cli::command()
        .try_get_matches_from(args)
        .map_err(|e| ParseError::Clap(e, None))?;
    let serve = match first.subcommand() {
        None => &first,
        Some(("serve", m)) => m,
        Some(_) => return Ok((first, None)),
    };
    let Some(path) = serve.get_one::<PathBuf>("config").cloned() else {
        return Ok((first, None));
    };
    let values = read_config_file(&path).map_err(ParseError::File)?;
    let mut cmd = Cli::command();
    for (id, _, value) in &values {
        cmd = cmd
            .mut_arg(id, |a| a.default_values(value.clone()))
            .mut_subcommand("serve", |s| {
                s.mut_arg(id, |a| a.default_values(value.clone()))
            });
    }
    let file = ConfigFile {
        path,
        keys: values.into_iter().map(|(_, key, _)| key).collect(),
    };
    match cmd.try_get_matches_from(args) {
        Ok(matches) => Ok((matches, Some(file))),
        Err(e) => Err(ParseError::Clap(e, Some(file))),
    }
}

/// The TOML type a flag's value has in the configuration file.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Boolean,
    Integer,
    String,
    /// A repeatable flag (`--tls-hostname`): an array of strings, or one string.
    Strings,
}

impl Kind {
    fn of(arg: &clap::Arg) -> Kind {
        use std::any::TypeId;
        let t = arg.get_value_parser().type_id();
        if matches!(arg.get_action(), ArgAction::Append) {
            Kind::Strings
        } else if t == TypeId::of::<bool>() {
            Kind::Boolean
        } else if [
            TypeId::of::<u64>(),
            TypeId::of::<u32>(),
            TypeId::of::<usize>(),
        ]
        .into_iter()
        .any(|i| t == i)
        {
            Kind::Integer
        } else {
            Kind::String
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Boolean => "a boolean (true or false)",
            Kind::Integer => "an integer",
            Kind::String => "a string",
            Kind::Strings => "an array of strings",
        }
    }
}

/// Reads a configuration file: each key must be the long name of one of `serve`'s flags (not
/// `config`), each value of that flag's type. Returns (argument id, key, values as on the
/// command line: one, or a repeatable flag's several).
type FileValues = Vec<(String, String, Vec<String>)>;

fn read_config_file(path: &std::path::Path) -> Result<FileValues, String> {
    use clap::CommandFactory;
    let file = path.display();
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the configuration file {file}: {e}"))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("configuration file {file}: {e}"))?;
    let cmd = Cli::command();
    let serve = cmd
        .find_subcommand("serve")
        .expect("the serve command exists");
    let settable = || {
        serve
            .get_arguments()
            .filter(|a| a.get_long().is_some_and(|l| l != "config"))
    };
    let mut values = Vec::new();
    for (key, value) in table {
        let Some(arg) = settable().find(|a| a.get_long() == Some(key.as_str())) else {
            let hint = if settable().any(|a| a.get_long() == Some(key.replace('_', "-").as_str())) {
                format!(
                    " (keys are written like the flags: `{}`)",
                    key.replace('_', "-")
                )
            } else {
                let known: Vec<&str> = settable().filter_map(|a| a.get_long()).collect();
                format!(" (known keys: {})", known.join(", "))
            };
            return Err(format!(
                "configuration file {file}: unknown key `{key}`{hint}"
            ));
        };
        let kind = Kind::of(arg);
        let wrong = |kind: Kind, found: &str| {
            format!(
                "configuration file {file}: `{key}` must be {}, found {found}",
                kind.name(),
            )
        };
        let text = match (kind, value) {
            (Kind::Boolean, toml::Value::Boolean(b)) => vec![b.to_string()],
            (Kind::Integer, toml::Value::Integer(i)) => vec![i.to_string()],
            (Kind::String | Kind::Strings, toml::Value::String(s)) => vec![s],
            (Kind::Strings, toml::Value::Array(items)) => items
                .into_iter()
                .map(|v| match v {
                    toml::Value::String(s) => Ok(s),
                    other => Err(wrong(
                        kind,
                        &format!("an array holding {}", other.type_str()),
                    )),
                })
                .collect::<Result<_, _>>()?,
            (kind, other) => {
                return Err(wrong(kind, other.type_str()));
            }
        };
        values.push((arg.get_id().to_string(), key, text));
    }
    Ok(values)
}

/// Where a value clap rejected came from, if not from the command line (clap's own message
/// names only the flag): a sentence naming the environment variable or the configuration file.
pub fn value_origin(
    error: &clap::Error,
    args: &[String],
    file: Option<&ConfigFile>,
) -> Option<String> {
    if let Some(var) = env_source(error, args) {
        return Some(format!(
            "The value comes from the environment variable {var}."
        ));
    }
    let file = file?;
    let arg = match error.get(clap::error::ContextKind::InvalidArg) {
        Some(clap::error::ContextValue::String(arg)) => arg,
        _ => return None,
    };
    let long = arg.split([' ', '=']).next()?.strip_prefix("--")?;
    let on_command_line = args
        .iter()
        .any(|a| a == &format!("--{long}") || a.starts_with(&format!("--{long}=")));
    (!on_command_line && file.keys.iter().any(|k| k == long)).then(|| {
        format!(
            "The value comes from the configuration file {}.",
            file.path.display()
        )
    })
}

/// The environment variable a rejected value came from, if it did not come from the command
/// line: clap's own message names only the flag.
pub fn env_source(error: &clap::Error, args: &[String]) -> Option<String> {
    use clap::CommandFactory;
    use clap::error::{ContextKind, ContextValue};
    let Some(ContextValue::String(arg)) = error.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.split([' ', '=']).next()?.strip_prefix("--")?;
    if args
        .iter()
        .any(|a| a == &format!("--{long}") || a.starts_with(&format!("--{long}=")))
    {
        return None;
    }
    let cmd = Cli::command();
    std::iter::once(&cmd)
        .chain(cmd.get_subcommands())
        .flat_map(|c| c.get_arguments())
        .find(|a| a.get_long() == Some(long))
        .and_then(|a| a.get_env())
        .map(|v| v.to_string_lossy().into_owned())
        .filter(|v| std::env::var_os(v).is_some())
}

impl ServeArgs {
    pub fn config(&self) -> crate::Config {
        let mut c = crate::Config::new(&self.data_dir);
        c.admin_email = self.admin_email.clone();
        c.admin_password = std::env::var("PROFILED_ADMIN_PASSWORD")
            .ok()
            .filter(|p| !p.is_empty());
        c.store.cache_capacity = self.cache_mb * 1024 * 1024;
        self.store.apply(&mut c.store);
        c.max_connections = self.max_connections;
        c.header_timeout = std::time::Duration::from_secs(self.header_timeout.max(1));
        c.body_timeout = std::time::Duration::from_secs(self.body_timeout.max(1));
        c.shutdown_timeout = std::time::Duration::from_secs(self.shutdown_timeout);
        c.ca_cert = self.ca_cert.clone();
        c.metrics = self.metrics;
        c.log_json = self.log_format == LogFormat::Json;

        c.max_connections_per_address = self.max_connections_per_address;
        c.login_address_burst = self.login_address_burst;
        c.login_address_interval =
            std::time::Duration::from_secs(self.login_address_interval.max(1));
        c.login_limit_loopback = self.login_limit_loopback;
        c.max_sessions_per_account = self.max_sessions_per_account.max(1);

        c.smtp_url = self
            .smtp_url
            .clone()
            .filter(|u| !u.is_empty())
            .map(crate::mail::SmtpUrl);
        c.smtp_from = self.smtp_from.clone().filter(|f| !f.is_empty());
        c.password_reset_lifetime =
            std::time::Duration::from_secs(self.password_reset_minutes.max(1) * 60);

        c.tls_cert = self.tls_cert.clone();
        c.tls_key = self.tls_key.clone();
        c.tls_hostnames = self
            .tls_hostname
            .iter()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .collect();
        c.tls_handshake_timeout = std::time::Duration::from_secs(self.tls_handshake_timeout.max(1));
        c
    }

    /// Listener and certificate settings that cannot work together: the sentence the start
    /// stops with.
    pub fn check_listeners(&self) -> Result<(), String> {
        if self.listen.0.is_none() && self.tls_listen.0.is_none() {
            return Err(
                "nothing to listen on: --listen none needs --tls-listen ADDRESS (HTTPS)".into(),
            );
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err("--tls-cert and --tls-key go together: give both, or neither for a generated self-signed certificate".into());
        }
        Ok(())
    }
}
