//! Load bench: drives profiled over real HTTP/1.1 keep-alive connections for a fixed time per
//! scenario, next to a minimal hyper baseline, then loads a large store into a child process
//! for its size, memory, reopen time and read latencies. See docs/benchmarks.md.
//!
//! `cargo bench --bench load -- [--duration 10] [--concurrency 64] [--scenarios 1,2,...]
//!  [--scale 1000000] [--quick] [--url http://host:port --email E --password P]`

mod client;
mod floor;
mod report;
mod scale;
mod scenarios;
mod servers;

use std::time::{Duration, Instant};

use client::{Stop, Target};
use report::{Row, Targets};
use scenarios::{Creds, Pool};

// The allocator the `profiled` binary ships with, so that the in-process server runs as
// deployed; the baseline and the client use it too, which keeps the ratios like for like.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PASSWORD: &str = "bench-password-0123456789";
const USAGE: &str = "\
flags (after `cargo bench --bench load --`):
  --duration SECS     per scenario (default 10)
  --concurrency N     connections (default 64)
  --scenarios LIST    e.g. 1,2,3 (default 1-8; with 1, row 9 is the floor: see floor.rs)
  --scale N           profiles in the scale run, 0 skips it (default 1000000)
  --quick             --duration 2 --scale 20000 unless given (smoke runs)
  --url URL           target a running server (http://host:port); no scale run
  --email E --password P   its administrator (default admin@localhost)";

pub struct Flags {
    pub duration: Duration,
    pub concurrency: usize,
    pub scenarios: Vec<u8>,
    pub scale: u64,
    pub url: Option<String>,
    pub creds: Creds,
}

fn flags() -> Flags {
    let (mut duration, mut scale, mut quick) = (None, None, false);
    let mut f = Flags {
        duration: Duration::from_secs(10),
        concurrency: 64,
        scenarios: (1..=8).collect(),
        scale: 1_000_000,
        url: None,
        creds: Creds {
            email: "admin@localhost".into(),
            password: PASSWORD.into(),
        },
    };
    let mut args = std::env::args().skip(1);
    let bad = |what: &str| -> ! {
        eprintln!("load: {what}\n{USAGE}");
        std::process::exit(2)
    };
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| bad(&format!("{arg} needs a value")))
        };
        let number = |v: String| -> u64 {
            v.parse()
                .unwrap_or_else(|_| bad(&format!("not a number: {v}")))
        };
        match arg.as_str() {
            "--duration" => duration = Some(number(value()).max(1)),
            "--concurrency" => f.concurrency = number(value()).max(1) as usize,
            "--scale" => scale = Some(number(value())),
            "--scenarios" => {
                f.scenarios = value()
                    .split(',')
                    .map(|s| match s.trim().parse() {
                        Ok(n @ 1..=8) => n,
                        _ => bad(&format!("no scenario {s}")),
                    })
                    .collect()
            }
            "--url" => f.url = Some(value()),
            "--email" => f.creds.email = value(),
            "--password" => f.creds.password = value(),
            "--quick" => quick = true,
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0)
            }
            // cargo bench appends `--bench`.
            "--bench" => {}
            other => bad(&format!("unknown flag {other}")),
        }
    }
    f.duration = Duration::from_secs(duration.unwrap_or(if quick { 2 } else { 10 }));
    f.scale = scale.unwrap_or(if quick { 20_000 } else { 1_000_000 });
    f
}

fn main() {
    let f = flags();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("client runtime");
    rt.block_on(run(f));
}

/// `http://host:port` (a path is ignored) as a socket address and a Host header.
async fn resolve(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs are supported")?;
    let host = rest.split('/').next().unwrap_or(rest);
    let with_port = if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:80")
    };
    let addr = tokio::net::lookup_host(&with_port)
        .await
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    Ok(Target {
        addr,
        host: host.to_string(),
    })
}

/// Waits until `GET /admin/version` answers 200.
pub async fn wait_answering(target: &Target, limit: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    loop {
        if let Ok((200, _)) = client::once(target, client::Call::get("/admin/version")).await {
            return Ok(t0.elapsed());
        }
        if t0.elapsed() > limit {
            return Err(format!("{} did not answer within {limit:?}", target.addr));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs the fixed-JSON hyper server in this process and drives it like the scenarios.
async fn baseline(conc: usize, stop: Stop) -> client::Report {
    let server = servers::baseline();
    eprintln!("running baseline ...");
    let r = client::run(&server.target, conc, stop, &scenarios::baseline()).await;
    server.stop();
    r
}

async fn run(f: Flags) {
    report::machine(&f);
    let tag = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let conc = f.concurrency;
    let stop = Stop::After(f.duration);
    let mut rows = Vec::new();
    let mut targets = Targets::default();

    let first = baseline(conc, stop).await;
    rows.push(Row::new(0, "baseline (before): hyper, fixed JSON", first));

    let tmp = tempfile::tempdir().expect("temp dir");
    let (server, target) = match &f.url {
        Some(url) => (
            None,
            resolve(url).await.unwrap_or_else(|e| panic!("--url: {e}")),
        ),
        None => {
            let s = servers::profiled_in_process(&tmp.path().join("db"), PASSWORD);
            let t = s.target.clone();
            wait_answering(&t, Duration::from_secs(60))
                .await
                .expect("profiled starts");
            (Some(s), t)
        }
    };
    let token = scenarios::appgate_login(&target, &f.creds)
        .await
        .unwrap_or_else(|e| {
            println!("Appgate login failed: {e} (scenarios that need a token will show errors)");
            String::new()
        });
    let occ_token = scenarios::occ_login(&target, &f.creds)
        .await
        .unwrap_or_else(|e| {
            println!("Oracle login failed: {e}; using the Appgate token");
            token.clone()
        });

    let pool = Pool::default();
    // Reads, updates and the 409 need existing profiles when scenario 1 did not run first.
    let mut seeded = false;
    for &n in &f.scenarios {
        if matches!(n, 2..=6) && pool.len() == 0 && !seeded {
            seeded = true;
            let seed = scenarios::create_profiles("seed", &tag, &token, Some(pool.sink(100_000)));
            let r = client::run(&target, conc, Stop::Count(1000), &seed).await;
            println!(
                "seeded {} profiles for the read scenarios ({} errors{})",
                r.ok,
                r.errors,
                r.first_error
                    .map(|e| format!(", first: {e}"))
                    .unwrap_or_default()
            );
        }
        let (label, work) = match n {
            1 => (
                "create client profile (durable)",
                scenarios::create_profiles("bench", &tag, &token, Some(pool.sink(100_000))),
            ),
            2 => (
                "get client profile by id",
                scenarios::get_by_id(&token, pool.snapshot()),
            ),
            3 => ("list range=0-100, no query", scenarios::list(&token, None)),
            4 => (
                "list with query matching 1 %",
                scenarios::list(&token, Some(scenarios::NEEDLE)),
            ),
            5 => (
                "update (PUT) client profile",
                scenarios::update(&token, pool.snapshot()),
            ),
            6 => {
                let taken = pool.snapshot().first().map(|p| p.name.clone());
                let taken = taken.unwrap_or_else(|| format!("bench-{tag}-never-created"));
                (
                    "create with a taken name (409)",
                    scenarios::create_taken(&token, &taken),
                )
            }
            7 => (
                "create admin profile (Oracle)",
                scenarios::create_admins(&tag, &occ_token),
            ),
            _ => ("login (Argon2id)", scenarios::logins(&f.creds)),
        };
        eprintln!("running scenario {n}: {label} ...");
        let r = client::run(&target, conc, stop, &work).await;
        rows.push(Row::new(n, label, r));
    }
    drop(server);
    if f.scenarios.contains(&1) {
        // The same create requests against the floor of the stack (see floor.rs).
        let floor_dir = tempfile::tempdir().expect("temp dir");
        let floor = floor::start(floor_dir.path());
        let work = scenarios::create_profiles("floor", &tag, "", None);
        eprintln!("running the floor of a durable create ...");
        let r = client::run(&floor.target, conc, stop, &work).await;
        floor.stop();
        rows.push(Row::new(9, "floor: hyper + 2 CAS + group commit", r));
    }
    // A second baseline after the scenarios: on a shared machine the load changes during a
    // run, and the ratios use the mean of both.
    let last = baseline(conc, stop).await;
    rows.push(Row::new(0, "baseline (after)", last));
    let base: Vec<f64> = rows
        .iter()
        .filter(|r| r.number == 0)
        .map(|r| r.report.rate())
        .collect();
    let baseline_rate = base.iter().sum::<f64>() / base.len() as f64;
    report::table(&rows, baseline_rate);
    targets.check_rows(&rows, baseline_rate);

    if f.scale > 0 {
        if f.url.is_some() {
            println!("\nscale run skipped: it needs a child server of its own (no --url)");
        } else {
            let figures = scale::run(&f, &tag).await;
            figures.print();
            targets.check_scale(&figures, f.scale);
        }
    }
    targets.print(conc);
}
