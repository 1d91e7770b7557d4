//! What the bench prints: the machine, one table of scenarios against the baseline, and a
//! PASS/FAIL line per target of the issue.

use crate::Flags;
use crate::client::Report;
use crate::scale::Figures;

pub struct Row {
    pub number: u8,
    pub label: &'static str,
    pub report: Report,
}

impl Row {
    pub fn new(number: u8, label: &'static str, report: Report) -> Row {
        Row {
            number,
            label,
            report,
        }
    }
}

pub fn machine(f: &Flags) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        })
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or("unknown".into(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1048576.0)
        });
    println!("machine: {cpus} CPUs ({model}), {mem} RAM");
    println!(
        "load: {} connections, {} s per scenario, scale run {} profiles, target {}",
        f.concurrency,
        f.duration.as_secs(),
        f.scale,
        f.url
            .as_deref()
            .unwrap_or("profiled in-process on a temporary directory")
    );
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

/// One table line; `baseline` adds the ratio column.
pub fn line(n: u8, label: &str, r: &Report, baseline: Option<f64>) -> String {
    let ratio = baseline.map_or(String::new(), |b| format!("{:>8.3}", r.rate() / b));
    format!(
        "{n} {label:<34} {:>9.0} {ratio} {:>8} {:>8} {:>7}",
        r.rate(),
        ms(r.percentile_ms(50)),
        ms(r.percentile_ms(99)),
        r.errors
    )
}

pub fn table(rows: &[Row], baseline: f64) {
    println!("\nx base: requests/s over the mean of the two baselines ({baseline:.0}/s)");
    println!(
        "  {:<34} {:>9} {:>8} {:>8} {:>8} {:>7}",
        "scenario", "req/s", "x base", "p50 ms", "p99 ms", "errors"
    );
    for row in rows.iter().filter(|r| r.number != 8) {
        println!(
            "{}",
            line(row.number, row.label, &row.report, Some(baseline))
        );
    }
    if let Some(row) = rows.iter().find(|r| r.number == 8) {
        println!("  -- another scale: one Argon2id verification per request --");
        println!(
            "{}",
            line(row.number, row.label, &row.report, Some(baseline))
        );
    }
    for row in rows.iter().filter(|r| r.report.first_error.is_some()) {
        println!(
            "  scenario {} first error: {}",
            row.number,
            row.report.first_error.as_deref().unwrap_or_default()
        );
    }
}

/// Each target of the issue with what was measured and its verdict.
#[derive(Default)]
pub struct Targets(Vec<(String, String, &'static str)>);

impl Targets {
    fn push(&mut self, target: &str, measured: String, pass: Option<bool>) {
        let verdict = match pass {
            Some(true) => "PASS",
            Some(false) => "FAIL",
            None => "not measured",
        };
        self.0.push((target.into(), measured, verdict));
    }

    /// A verdict counts only if the scenario answered without errors.
    fn scenario(
        &mut self,
        target: &str,
        r: Option<&Report>,
        check: impl Fn(&Report) -> (String, bool),
    ) {
        match r {
            None => self.push(target, "scenario not run".into(), None),
            Some(r) if r.ok == 0 => self.push(
                target,
                format!("no successful request ({} errors)", r.errors),
                None,
            ),
            Some(r) => {
                let (measured, ok) = check(r);
                let measured = if r.errors > 0 {
                    format!("{measured}, {} errors", r.errors)
                } else {
                    measured
                };
                self.push(target, measured, Some(ok && r.errors == 0));
            }
        }
    }

    pub fn check_rows(&mut self, rows: &[Row], baseline: f64) {
        let find = |n: u8| rows.iter().find(|r| r.number == n).map(|r| &r.report);
        self.scenario(
            "durable create >= 0.30 x baseline, p99 <= 25 ms",
            find(1),
            |r| {
                let (x, p99) = (r.rate() / baseline, r.percentile_ms(99).unwrap_or(f64::MAX));
                (
                    format!("{x:.3} x, p99 {p99:.2} ms"),
                    x >= 0.30 && p99 <= 25.0,
                )
            },
        );
        self.scenario("get by id >= 0.60 x baseline", find(2), |r| {
            let x = r.rate() / baseline;
            (format!("{x:.3} x"), x >= 0.60)
        });
    }

    pub fn check_scale(&mut self, s: &Figures, n: u64) {
        let at = if n == 1_000_000 {
            String::new()
        } else {
            format!(" [at {n} profiles; the target is set at 1000000]")
        };
        let read = |k: u8| s.reads.iter().find(|(m, ..)| *m == k).map(|(_, _, r)| r);
        self.scenario(
            &format!("list 0-100 no query p99 <= 10 ms{at}"),
            read(3),
            |r| {
                let p99 = r.percentile_ms(99).unwrap_or(f64::MAX);
                (format!("p99 {p99:.2} ms"), p99 <= 10.0)
            },
        );
        self.scenario(
            &format!("list with query p99 <= 300 ms{at}"),
            read(4),
            |r| {
                let p99 = r.percentile_ms(99).unwrap_or(f64::MAX);
                (format!("p99 {p99:.2} ms"), p99 <= 300.0)
            },
        );
        let loaded = s.loaded > 0 && s.load_errors == 0;
        match s.peak_rss_kib() {
            Some(kib) => self.push(
                &format!("server RSS <= 512 MiB{at}"),
                format!("peak {:.1} MiB", kib as f64 / 1024.0),
                loaded.then_some(kib <= 512 * 1024),
            ),
            None => self.push("server RSS <= 512 MiB", "unavailable".into(), None),
        }
        let ratio = s.disk() as f64 / s.json_bytes.max(1) as f64;
        self.push(
            &format!("on disk <= 3 x compact JSON{at}"),
            if loaded {
                format!("{ratio:.2} x")
            } else {
                "no complete load".into()
            },
            loaded.then_some(ratio <= 3.0),
        );
        match s.reopen_to_version {
            Some(d) => self.push(
                &format!("reopen <= 3 s to first answer{at}"),
                format!("{:.3} s", d.as_secs_f64()),
                loaded.then_some(d.as_secs_f64() <= 3.0),
            ),
            None => self.push(
                "reopen <= 3 s to first answer",
                "did not restart".into(),
                Some(false),
            ),
        }
    }

    pub fn print(&self, connections: usize) {
        println!("\ntargets (the issue sets them at 64 connections; this run used {connections})");
        for (target, measured, verdict) in &self.0 {
            println!("  {verdict:<12} {target:<70} {measured}");
        }
    }
}
