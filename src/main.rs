//! The `profiled` binary: flags, logging, the listener and signals. Everything else is in the
//! library.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::process::ExitCode;

use clap::{FromArgMatches, parser::ValueSource};
use profiled::cli::{Cli, Command, ParseError, ServeArgs};
use tracing_subscriber::EnvFilter;

// sled copies a node on every write and hyper, serde_json and the handlers allocate per
// request; glibc's malloc took a fifth of the server's CPU under load (docs/benchmarks.md).
// Built without transparent huge pages (`no_thp`): with them, resident memory after a scan
// of 100,000 profiles was three times glibc's; without, it is within 15 %.
mod notify;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // Everything profiled and sled create (the data directory, the database files, sled's
    // later snapshots, exports) is for this user only: they hold password hashes and the
    // installation secret. Set for the whole process, before any file exists, so that no file
    // is ever readable by others, not even for a moment.
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let args: Vec<String> = std::env::args().collect();
    let (matches, config_file) = match profiled::cli::parse(&args) {
        Ok(parsed) => parsed,
        Err(ParseError::Clap(e, file)) => {
            let _ = e.print();
            // Which variable or file a rejected value came from: clap names only the flag.
            if let Some(origin) = profiled::cli::value_origin(&e, &args, file.as_ref()) {
                eprintln!("{origin}");
            }
            return ExitCode::from(e.exit_code() as u8);
        }
        Err(ParseError::File(message)) => {
            eprintln!("profiled: {message}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // Which variable or file the listening addresses came from, to name it in an error.
    let serve_matches = matches.subcommand_matches("serve").unwrap_or(&matches);
    let origin = |id: &str, var: &str| match serve_matches.value_source(id) {
        Some(ValueSource::EnvVariable) => Some(var.to_string()),
        Some(ValueSource::DefaultValue) => config_file
            .as_ref()
            .filter(|f| f.keys.iter().any(|k| k == &id.replace('_', "-")))
            .map(|f| f.path.display().to_string()),
        _ => None,
    };
    let origins = Origins {
        listen: origin("listen", "PROFILED_LISTEN"),
        tls_listen: origin("tls_listen", "PROFILED_TLS_LISTEN"),
    };
    // One line per request is written by a thread of its own, so that a slow stderr (a pipe
    // to a journal, a terminal) never holds up a request; lines are batched while requests
    // keep coming and flushed as soon as the queue is empty. Not lossy: when the queue is
    // full, requests wait rather than lines going missing. The guard flushes what is left
    // when `main` returns.
    let (log_writer, _log_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(log_writer);
    match cli.log_format() {
        // One JSON object per line, the event's fields flattened beside time and level.
        profiled::cli::LogFormat::Json => logs
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
        // Colour codes only for a person at a terminal, not in a journal or a file.
        profiled::cli::LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
    }
    match cli.command {
        None => serve(cli.serve, origins),
        Some(Command::Serve(args)) => serve(args, origins),
        Some(Command::ResetPassword(args)) => {
            let password = match std::env::var("PROFILED_NEW_PASSWORD") {
                Ok(p) if !p.is_empty() => {
                    if let Err(e) = profiled::auth::password::check_strength(&p) {
                        eprintln!("profiled: PROFILED_NEW_PASSWORD is not accepted: {e}");
                        return ExitCode::FAILURE;
                    }
                    p
                }
                _ => match read_new_password(&args.email) {
                    Ok(p) => p,
                    Err(e) => {
                        eprintln!("profiled: cannot read the password: {e}");
                        return ExitCode::FAILURE;
                    }
                },
            };
            let options = profiled::commands::ResetOptions {
                make_admin: args.make_admin,
            };
            let reset = match args.store.offline() {
                Some(store) => profiled::commands::reset_password_in_store(
                    &store,
                    &args.email,
                    &password,
                    options,
                ),
                None => profiled::commands::reset_password(
                    &args.data_dir,
                    &args.email,
                    &password,
                    options,
                ),
            };
            match reset {
                Ok(id) => {
                    eprintln!("profiled: the password of {} ({id}) was reset", args.email);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("profiled: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some(Command::Check(args)) => {
            let store = args.store.offline();
            let checked = match &store {
                Some(store) => profiled::commands::check_store(store),
                None => profiled::commands::check(&args.data_dir),
            };
            match checked {
                Ok((true, _)) => {
                    println!("ok: every invariant holds");
                    ExitCode::SUCCESS
                }
                Ok((false, lines)) => {
                    for l in &lines {
                        println!("{l}");
                    }
                    // etcd writes each record with its index keys in one transaction, and
                    // nodes sharing it never repair: nothing a crash leaves needs repairing.
                    let advice = if store.is_some() {
                        "etcd keeps a record and its index keys in one transaction, so these were changed outside profiled or damaged; restore a backup into a new prefix (profiled import --store-prefix …)"
                    } else {
                        "Stale and missing entries are repaired when the server starts; damaged data needs a restore from backup."
                    };
                    println!("{} problem(s). {advice}", lines.len());
                    ExitCode::FAILURE
                }
                Err(e) => {
                    eprintln!("profiled: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Some(Command::Export(args)) if args.salvage && args.dir.store.offline().is_some() => {
            eprintln!(
                "profiled: --salvage is for a damaged data directory; etcd keeps its own copies on every member"
            );
            ExitCode::from(2)
        }
        Some(Command::Export(args)) => {
            let store = args.dir.store.offline();
            let export = |w: &mut dyn std::io::Write| match &store {
                Some(store) => profiled::commands::export_store(store, &mut &mut *w)
                    .map(|counts| (counts, None)),
                None => profiled::commands::export(&args.dir.data_dir, &mut &mut *w, args.salvage),
            };
            let result = match &args.output {
                // Private (it holds the password hashes and the secret), written beside the
                // target and renamed over it only once complete: a failed export never
                // destroys an earlier backup, and a partial one never passes for one.
                Some(path) => profiled::commands::write_file_atomically(path, |w| export(w)),
                None => export(&mut std::io::stdout().lock()),
            };
            match result {
                Ok((counts, Some(missing))) => {
                    report_counts("salvaged", Ok(counts));
                    eprintln!(
                        "profiled: the database is damaged ({missing}): this export holds only what could be read"
                    );
                    ExitCode::from(3)
                }
                other => report_counts("exported", other.map(|(counts, _)| counts)),
            }
        }
        Some(Command::Import(args)) => {
            let from_stdin = args.file.as_os_str() == "-";
            let passphrase = || backup_passphrase(args.passphrase_file.as_deref(), from_stdin);
            let store = args.dir.store.offline();
            let import = |input: &mut dyn BufRead| match &store {
                Some(store) => profiled::commands::import_store(store, input, passphrase),
                None => profiled::commands::import(&args.dir.data_dir, input, passphrase),
            };
            let result = if from_stdin {
                import(&mut std::io::stdin().lock())
            } else {
                std::fs::File::open(&args.file)
                    .map_err(|e| format!("{}: {e}", args.file.display()))
                    .and_then(|f| import(&mut BufReader::new(f)))
            };
            report_counts("imported", result)
        }
    }
}

fn report_counts(what: &str, result: Result<(usize, usize), String>) -> ExitCode {
    match result {
        Ok((accounts, profiles)) => {
            eprintln!(
                "profiled: {what} {accounts} admin profile(s) and {profiles} client profile(s)"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("profiled: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The passphrase of an encrypted backup being imported: from `--passphrase-file`, else
/// PROFILED_BACKUP_PASSPHRASE, else asked at the terminal (not shown as typed).
fn backup_passphrase(
    file: Option<&std::path::Path>,
    backup_on_stdin: bool,
) -> Result<zeroize::Zeroizing<String>, String> {
    let passphrase = if let Some(file) = file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?,
        );
        // One line; its line end is no part of the passphrase.
        let line = text.strip_suffix('\n').unwrap_or(&text);
        zeroize::Zeroizing::new(line.strip_suffix('\r').unwrap_or(line).to_string())
    } else if let Some(p) = std::env::var_os("PROFILED_BACKUP_PASSPHRASE") {
        zeroize::Zeroizing::new(
            p.into_string()
                .map_err(|_| "PROFILED_BACKUP_PASSPHRASE is not valid UTF-8".to_string())?,
        )
    } else if !backup_on_stdin && std::io::stdin().is_terminal() {
        let mut line = zeroize::Zeroizing::new(String::new());
        read_hidden_line(
            "Passphrase of the encrypted backup (it is not shown as you type; finish with Enter): ",
            &mut line,
        )
        .map_err(|e| format!("cannot read the passphrase: {e}"))?;
        zeroize::Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_string())
    } else {
        return Err("the backup is encrypted: give its passphrase with --passphrase-file FILE or PROFILED_BACKUP_PASSPHRASE (or run at a terminal to be asked)".into());
    };
    if passphrase.is_empty() {
        return Err("the passphrase is empty".into());
    }
    Ok(passphrase)
}

/// Reads one line from the terminal on standard input without showing it.
fn read_hidden_line(prompt: &str, line: &mut String) -> std::io::Result<()> {
    let stdin = std::io::stdin();
    eprint!("{prompt}");
    std::io::stderr().flush()?;
    let saved = rustix::termios::tcgetattr(&stdin)?;
    let mut quiet = saved.clone();
    quiet.local_modes.remove(rustix::termios::LocalModes::ECHO);
    rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Flush, &quiet)?;
    let read = stdin.lock().read_line(line);
    rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Flush, &saved)?;
    eprintln!();
    read.map(drop)
}

/// Reads the new password from standard input: one line. At a terminal the prompt says how to
/// finish, and what is typed is not shown.
fn read_new_password(email: &str) -> std::io::Result<String> {
    let stdin = std::io::stdin();
    let mut line = String::new();
    if stdin.is_terminal() {
        read_hidden_line(
            &format!("New password for {email} (it is not shown as you type; finish with Enter): "),
            &mut line,
        )?;
    } else {
        eprintln!("Reading the new password for {email} from standard input (one line)");
        stdin.lock().read_line(&mut line)?;
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Where `--listen` and `--tls-listen` came from when not from the command line: the
/// environment variable's name or the configuration file's path.
struct Origins {
    listen: Option<String>,
    tls_listen: Option<String>,
}

fn serve(args: ServeArgs, origins: Origins) -> ExitCode {
    if let Err(e) = args.check_listeners() {
        eprintln!("profiled: {e}");
        return ExitCode::from(2);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    runtime.block_on(async {
        // Registered before anything else, so a signal during start-up is not lost (nor does
        // SIGHUP's default action end the process).
        let (shutdown, reload) = match shutdown_signal().and_then(|s| {
            let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
            Ok((s, hup))
        }) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("profiled: cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let mut listeners = profiled::Listeners {
            plain: None,
            tls: None,
        };
        for (flag, addr, from, slot) in [
            ("--listen", args.listen.0, &origins.listen, &mut listeners.plain),
            ("--tls-listen", args.tls_listen.0, &origins.tls_listen, &mut listeners.tls),
        ] {
            let Some(addr) = addr else { continue };
            let listener = match tokio::net::TcpListener::bind(addr).await {
                Ok(l) => l,
                Err(e) => {
                    let from = from
                        .as_ref()
                        .map(|v| format!(" (from {v})"))
                        .unwrap_or_default();
                    eprintln!("profiled: cannot listen on {addr} ({flag}){from}: {e}");
                    return ExitCode::FAILURE;
                }
            };
            let bound = listener.local_addr().ok();
            let tls = flag == "--tls-listen";
            tracing::info!(
                addr = %bound.map(|a| a.to_string()).unwrap_or_default(),
                scheme = %if tls { "https" } else { "http" },
                data_dir = %args.data_dir.display(),
                "listening"
            );
            if !tls && !addr.ip().is_loopback() {
                tracing::warn!(
                    %addr,
                    "plain HTTP on an address other machines reach: passwords, tokens and backups cross the network unencrypted; serve them over HTTPS (--tls-listen) and keep --listen on 127.0.0.1, or set it to none"
                );
            }
            *slot = Some(listener);
        }
        if listeners.tls.is_none()
            && (args.tls_cert.is_some() || !args.tls_hostname.is_empty())
        {
            tracing::warn!("--tls-cert, --tls-key and --tls-hostname do nothing without --tls-listen");
        }
        let shutdown = notify::around_shutdown(notify::Notifier::from_env(), shutdown);
        match profiled::serve_on(args.config(), listeners, shutdown, Some(reload)).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("profiled: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Resolves on the first SIGINT or SIGTERM.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt())?;
    let mut term = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        tracing::info!("signal received");
    })
}
