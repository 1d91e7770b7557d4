//! The scale run: load N client profiles into profiled running as a child process, then
//! measure the database on disk, resident memory, the time to reopen, and read latencies at
//! that size.

use std::time::Duration;

use crate::client::{self, Report, Stop};
use crate::scenarios::{self, Pool};
use crate::servers::{self, Child};
use crate::{Flags, PASSWORD};

pub struct Figures {
    pub requested: u64,
    pub loaded: u64,
    pub load_errors: u64,
    pub load_first_error: Option<String>,
    pub load_secs: f64,
    /// Compact JSON of the stored objects, as the creates answered them.
    pub json_bytes: u64,
    /// (allocated, apparent) bytes of the data directory after the load.
    pub disk_after_load: (u64, u64),
    pub disk_after_reopen: (u64, u64),
    /// (VmRSS, VmHWM) KiB of the process that loaded, right after the load.
    pub mem_after_load: Option<(u64, u64)>,
    /// The same for the reopened process after the read scenarios.
    pub mem_after_reads: Option<(u64, u64)>,
    pub stop_secs: Option<f64>,
    /// Spawn to the first answered `GET /admin/version`.
    pub reopen_to_version: Option<Duration>,
    /// Spawn to the first answered authenticated list (with the token from before the restart).
    pub reopen_to_list: Option<Duration>,
    pub reads: Vec<(u8, &'static str, Report)>,
}

async fn start(dir: &std::path::Path) -> (Child, Result<Duration, String>) {
    let mut child = Child::spawn(&dir.join("db"), &dir.join("server.log"), PASSWORD);
    let ready = child.wait_ready(Duration::from_secs(120)).await;
    (child, ready)
}

pub async fn run(f: &Flags, tag: &str) -> Figures {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("db");
    eprintln!("scale run: loading {} profiles ...", f.scale);
    let (child, ready) = start(dir.path()).await;
    ready.expect("profiled starts as a child process");
    let creds = &f.creds;
    let mut token = scenarios::appgate_login(&child.target, creds)
        .await
        .unwrap_or_default();
    let pool = Pool::default();
    let load = client::run(
        &child.target,
        f.concurrency,
        Stop::Count(f.scale),
        &scenarios::create_profiles("scale", tag, &token, Some(pool.sink(100_000))),
    )
    .await;
    let mem_after_load = child.memory_kib();
    let disk_after_load = servers::disk_usage(&data);

    eprintln!("scale run: restarting ...");
    let stop_secs = child.terminate().ok().map(|d| d.as_secs_f64());
    let (child, ready) = start(dir.path()).await;
    let reopen_to_version = ready.ok();
    let mut reopen_to_list = None;
    if reopen_to_version.is_some() {
        let list = scenarios::list(&token, None);
        for _ in 0..2 {
            match client::once(&child.target, (list.build)(0, 0)).await {
                Ok((200, _)) => {
                    reopen_to_list = Some(child.spawned.elapsed());
                    break;
                }
                // Only if sessions did not survive the restart: log in again (counted).
                Ok((401, _)) => {
                    token = scenarios::appgate_login(&child.target, creds)
                        .await
                        .unwrap_or_default()
                }
                _ => break,
            }
        }
    }
    let disk_after_reopen = servers::disk_usage(&data);

    let mut reads = Vec::new();
    let stop = Stop::After(f.duration);
    let work: [(u8, &'static str, client::Workload); 3] = [
        (
            2,
            "get client profile by id",
            scenarios::get_by_id(&token, pool.snapshot()),
        ),
        (
            3,
            "list range=0-100, no query",
            scenarios::list(&token, None),
        ),
        (
            4,
            "list with query matching 1 %",
            scenarios::list(&token, Some(scenarios::NEEDLE)),
        ),
    ];
    for (n, label, w) in work {
        eprintln!("scale run: scenario {n} ...");
        let r = client::run(&child.target, f.concurrency, stop, &w).await;
        reads.push((n, label, r));
    }
    let mem_after_reads = child.memory_kib();
    let _ = child.terminate();
    Figures {
        requested: f.scale,
        loaded: load.ok,
        load_errors: load.errors,
        load_first_error: load.first_error,
        load_secs: load.secs,
        json_bytes: load.ok_body_bytes,
        disk_after_load,
        disk_after_reopen,
        mem_after_load,
        mem_after_reads,
        stop_secs,
        reopen_to_version,
        reopen_to_list,
        reads,
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn mem(m: Option<(u64, u64)>) -> String {
    m.map_or("unavailable".into(), |(rss, hwm)| {
        format!("{} (peak {})", mib(rss * 1024), mib(hwm * 1024))
    })
}

impl Figures {
    /// The largest disk figure, allocated bytes.
    pub fn disk(&self) -> u64 {
        self.disk_after_load.0.max(self.disk_after_reopen.0)
    }

    /// The largest resident memory seen, KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        [self.mem_after_load, self.mem_after_reads]
            .into_iter()
            .flatten()
            .map(|(_, hwm)| hwm)
            .max()
    }

    pub fn print(&self) {
        println!("\nscale run ({} profiles requested)", self.requested);
        println!(
            "  loaded                {} profiles in {:.1} s ({:.0}/s over HTTP creates), {} errors",
            self.loaded,
            self.load_secs,
            self.loaded as f64 / self.load_secs.max(1e-9),
            self.load_errors
        );
        if let Some(e) = &self.load_first_error {
            println!("  first load error      {e}");
        }
        println!("  records as JSON       {}", mib(self.json_bytes));
        let ratio = |d: u64| match self.json_bytes {
            0 => "no records loaded".to_string(),
            j => format!("{:.2}x the JSON", d as f64 / j as f64),
        };
        for (when, (alloc, apparent)) in [
            ("after load", self.disk_after_load),
            ("after reopen", self.disk_after_reopen),
        ] {
            println!(
                "  on disk {when:<13} {} allocated ({}), {} apparent",
                mib(alloc),
                ratio(alloc),
                mib(apparent)
            );
        }
        println!("  memory after load     {}", mem(self.mem_after_load));
        println!(
            "  memory after reopen + reads {}",
            mem(self.mem_after_reads)
        );
        let secs = |d: Option<Duration>| {
            d.map_or("failed".into(), |d| format!("{:.3} s", d.as_secs_f64()))
        };
        println!(
            "  graceful stop         {}",
            self.stop_secs
                .map_or("failed".into(), |s| format!("{s:.3} s"))
        );
        println!("  reopen → version      {}", secs(self.reopen_to_version));
        println!("  reopen → first list   {}", secs(self.reopen_to_list));
        println!("  reads at this size:");
        for (n, label, r) in &self.reads {
            println!("    {}", crate::report::line(*n, label, r, None));
            if let Some(e) = &r.first_error {
                println!("      first error: {e}");
            }
        }
    }
}
