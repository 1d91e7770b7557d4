//! The `profiled` binary: flags, logging, the listener and signals. Everything else is in the
//! library.

use std::io::{BufReader, IsTerminal, Read};
use std::process::ExitCode;

use clap::Parser;
use profiled::cli::{Cli, Command, ServeArgs};
use tracing_subscriber::EnvFilter;

// sled copies a node on every write and hyper, serde_json and the handlers allocate per
// request; glibc's malloc took a fifth of the server's CPU under load (docs/benchmarks.md).
// Built without transparent huge pages (`no_thp`): with them, resident memory after a scan
// of 100,000 profiles was three times glibc's; without, it is within 15 %.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // One line per request is written by a thread of its own, so that a slow stderr (a pipe
    // to a journal, a terminal) never holds up a request; lines are batched while requests
    // keep coming and flushed as soon as the queue is empty. Not lossy: when the queue is
    // full, requests wait rather than lines going missing. The guard flushes what is left
    // when `main` returns.
    let (log_writer, _log_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("log-writer")
        .finish(std::io::BufWriter::new(std::io::stderr()));
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(log_writer)
        // Colour codes only for a person at a terminal, not in a journal or a file.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match cli.command {
        None => serve(cli.serve),
        Some(Command::Serve(args)) => serve(args),
        Some(Command::ResetPassword(args)) => {
            let password = match std::env::var("PROFILED_NEW_PASSWORD") {
                Ok(p) if !p.is_empty() => p,
                _ => {
                    eprintln!("New password (then Enter or end of input):");
                    let mut s = String::new();
                    if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                        eprintln!("profiled: cannot read the password: {e}");
                        return ExitCode::FAILURE;
                    }
                    s.trim_end_matches(['\r', '\n']).to_string()
                }
            };
            match profiled::commands::reset_password(&args.data_dir, &args.email, &password) {
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
        Some(Command::Check(args)) => match profiled::commands::check(&args.data_dir) {
            Ok((clean, lines)) => {
                for l in &lines {
                    println!("{l}");
                }
                if clean {
                    println!("ok: every invariant holds");
                    ExitCode::SUCCESS
                } else {
                    println!(
                        "{} problem(s). Stale and missing entries are repaired when the server starts; damaged data needs a restore from backup.",
                        lines.len()
                    );
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("profiled: {e}");
                ExitCode::from(2)
            }
        },
        Some(Command::Export(args)) => {
            let result = match &args.output {
                Some(path) => std::fs::File::create(path)
                    .map_err(|e| format!("{}: {e}", path.display()))
                    .and_then(|f| {
                        let mut w = std::io::BufWriter::new(f);
                        let counts = profiled::commands::export(&args.dir.data_dir, &mut w)?;
                        w.into_inner()
                            .map_err(|e| e.to_string())?
                            .sync_all()
                            .map_err(|e| e.to_string())?;
                        Ok(counts)
                    }),
                None => {
                    profiled::commands::export(&args.dir.data_dir, &mut std::io::stdout().lock())
                }
            };
            report_counts("exported", result)
        }
        Some(Command::Import(args)) => {
            let result = if args.file.as_os_str() == "-" {
                profiled::commands::import(&args.dir.data_dir, std::io::stdin().lock())
            } else {
                std::fs::File::open(&args.file)
                    .map_err(|e| format!("{}: {e}", args.file.display()))
                    .and_then(|f| profiled::commands::import(&args.dir.data_dir, BufReader::new(f)))
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

fn serve(args: ServeArgs) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts");
    runtime.block_on(async {
        // Registered before anything else, so a signal during start-up is not lost.
        let shutdown = match shutdown_signal() {
            Ok(f) => f,
            Err(e) => {
                eprintln!("profiled: cannot install signal handlers: {e}");
                return ExitCode::FAILURE;
            }
        };
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("profiled: cannot listen on {}: {e}", args.listen);
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(
            addr = %listener.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            data_dir = %args.data_dir.display(),
            "listening"
        );
        match profiled::serve(args.config(), listener, shutdown).await {
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
