//! Unique secondary keys on raw sled 0.34.7 under concurrent load: compare-and-swap
//! reservations (what `src/store/unique.rs` does) against one multi-tree transaction per
//! create, both acknowledged through the same group commit as `src/store/commit.rs`.
//!
//! `cargo bench --bench uniqueness -- [--threads 64] [--duration 5] [--rounds 20] [--repeat 1]`
//!
//! Each mode gets a fresh database. The throughput phase creates unique keys for a fixed time;
//! the same-key phase then has every thread create one key at once, round after round, and
//! asserts that exactly one create wins each round and that no loser left a record or an
//! index entry behind.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sled::Tree;
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Cas,
    Transaction,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Cas => "compare-and-swap",
            Mode::Transaction => "multi-tree transaction",
        }
    }
}

struct Flags {
    threads: usize,
    duration: Duration,
    rounds: usize,
    repeat: usize,
}

fn flags() -> Flags {
    let mut f = Flags {
        threads: 64,
        duration: Duration::from_secs(5),
        rounds: 20,
        repeat: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> u64 {
            args.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} takes a number"))
        };
        match arg.as_str() {
            "--threads" => f.threads = value("--threads").max(2) as usize,
            "--duration" => f.duration = Duration::from_secs(value("--duration").max(1)),
            "--rounds" => f.rounds = value("--rounds").max(1) as usize,
            "--repeat" => f.repeat = value("--repeat").max(1) as usize,
            "--quick" => {
                f.duration = Duration::from_secs(2);
                f.rounds = 5;
            }
            // cargo bench appends `--bench`; other harness flags mean nothing here.
            _ => {}
        }
    }
    f
}

/// The group commit of `src/store/commit.rs` for plain threads: writers take a ticket after
/// their writes and block until one flusher round (`flush` + `fdatasync`) covers it. The
/// server's writers wait on a `tokio::sync::watch`; a condvar is the same hand-off here.
struct GroupCommit {
    tickets: AtomicU64,
    rounds: AtomicU64,
    state: Mutex<CommitState>,
    wake: Condvar,
    done: Condvar,
}

#[derive(Default)]
struct CommitState {
    pending: bool,
    stop: bool,
    durable: u64,
}

impl GroupCommit {
    fn start(db: sled::Db, dir: &Path) -> (Arc<GroupCommit>, JoinHandle<()>) {
        let file = File::open(dir.join("db")).expect("sled keeps its log in <dir>/db");
        let gc = Arc::new(GroupCommit {
            tickets: AtomicU64::new(0),
            rounds: AtomicU64::new(0),
            state: Mutex::new(CommitState::default()),
            wake: Condvar::new(),
            done: Condvar::new(),
        });
        let worker = gc.clone();
        let thread = std::thread::spawn(move || worker.run(&db, &file));
        (gc, thread)
    }

    fn run(&self, db: &sled::Db, file: &File) {
        loop {
            {
                let mut s = self.state.lock().unwrap();
                while !s.pending && !s.stop {
                    s = self.wake.wait(s).unwrap();
                }
                if s.stop {
                    return;
                }
                s.pending = false;
            }
            let target = self.tickets.load(Ordering::SeqCst);
            db.flush().expect("flush");
            file.sync_data().expect("fdatasync");
            self.rounds.fetch_add(1, Ordering::Relaxed);
            let mut s = self.state.lock().unwrap();
            s.durable = s.durable.max(target);
            self.done.notify_all();
        }
    }

    /// Blocks until every write this thread made before the call is on disk.
    fn wait(&self) {
        let ticket = self.tickets.fetch_add(1, Ordering::SeqCst) + 1;
        let mut s = self.state.lock().unwrap();
        s.pending = true;
        self.wake.notify_one();
        while s.durable < ticket {
            s = self.done.wait(s).unwrap();
        }
    }

    fn stop(&self) {
        self.state.lock().unwrap().stop = true;
        self.wake.notify_one();
    }
}

struct Db {
    db: sled::Db,
    records: Tree,
    index: Tree,
    commit: Arc<GroupCommit>,
}

impl Db {
    /// Creates `id` → `record` if no record holds `key` yet; false when the key is taken.
    fn create(&self, mode: Mode, key: &[u8], id: &[u8], record: &[u8]) -> bool {
        let created = match mode {
            Mode::Cas => self.create_cas(key, id, record),
            Mode::Transaction => self.create_tx(key, id, record),
        };
        if created {
            self.commit.wait();
        }
        created
    }

    /// The order of `UniqueTable::insert`: reserve the key, then the record, release on failure.
    fn create_cas(&self, key: &[u8], id: &[u8], record: &[u8]) -> bool {
        let none = None as Option<&[u8]>;
        if self
            .index
            .compare_and_swap(key, none, Some(id))
            .expect("sled")
            .is_err()
        {
            return false;
        }
        match self
            .records
            .compare_and_swap(id, none, Some(record))
            .expect("sled")
        {
            Ok(()) => true,
            Err(_) => {
                let _ = self.index.compare_and_swap(key, Some(id), none);
                false
            }
        }
    }

    fn create_tx(&self, key: &[u8], id: &[u8], record: &[u8]) -> bool {
        let result = (&self.records, &self.index).transaction(|(records, index)| {
            if index.get(key)?.is_some() {
                return Err(ConflictableTransactionError::Abort(()));
            }
            index.insert(key, id)?;
            records.insert(id, record)?;
            Ok(())
        });
        match result {
            Ok(()) => true,
            Err(TransactionError::Abort(())) => false,
            Err(TransactionError::Storage(e)) => panic!("sled: {e}"),
        }
    }

    /// The id is taken before any transaction: `generate_id` inside one blocks (sled #1139).
    fn next_id(&self) -> [u8; 8] {
        self.db.generate_id().expect("sled id").to_be_bytes()
    }
}

fn record(key: &str, id: &[u8; 8]) -> Vec<u8> {
    format!(
        r#"{{"id":"{:016x}","name":"{key}","notes":"","tags":["bench"],"type":"Profile","spaKeyName":"{key}","identityProviderName":"local","created":"2024-05-20T13:35:31.836392Z","updated":"2024-05-20T13:35:31.836392Z"}}"#,
        u64::from_be_bytes(*id)
    )
    .into_bytes()
}

struct Outcome {
    mode: Mode,
    ops: u64,
    secs: f64,
    p50_us: u32,
    p99_us: u32,
    ops_per_sync: f64,
    rounds_won_once: usize,
    rounds: usize,
}

fn run_mode(mode: Mode, f: &Flags) -> Outcome {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = sled::Config::new()
        .path(dir.path())
        .cache_capacity(128 * 1024 * 1024)
        .open()
        .expect("sled opens");
    let (commit, flusher) = GroupCommit::start(db.clone(), dir.path());
    let store = Arc::new(Db {
        records: db.open_tree("id_record").expect("tree"),
        index: db.open_tree("key_id").expect("tree"),
        db,
        commit: commit.clone(),
    });

    // Throughput: unique keys for a fixed time.
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let workers: Vec<_> = (0..f.threads)
        .map(|t| {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(64 * 1024);
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("bench-{t}-{seq}");
                    let id = store.next_id();
                    let rec = record(&key, &id);
                    let t0 = Instant::now();
                    assert!(
                        store.create(mode, key.as_bytes(), &id, &rec),
                        "{key} is unique"
                    );
                    lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    seq += 1;
                }
                lat
            })
        })
        .collect();
    let rounds_before = commit.rounds.load(Ordering::Relaxed);
    std::thread::sleep(f.duration);
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<u32> = workers
        .into_iter()
        .flat_map(|w| w.join().expect("worker"))
        .collect();
    let secs = start.elapsed().as_secs_f64();
    let syncs = commit.rounds.load(Ordering::Relaxed) - rounds_before;
    lat.sort_unstable();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
    let ops = lat.len() as u64;

    // Invariant: all threads create one key at once; exactly one may win.
    let barrier = Arc::new(Barrier::new(f.threads));
    let wins: Arc<Vec<AtomicUsize>> =
        Arc::new((0..f.rounds).map(|_| AtomicUsize::new(0)).collect());
    let rounds = f.rounds;
    let racers: Vec<_> = (0..f.threads)
        .map(|_| {
            let (store, barrier, wins) = (store.clone(), barrier.clone(), wins.clone());
            std::thread::spawn(move || {
                for (round, won) in wins.iter().enumerate().take(rounds) {
                    let key = format!("same-key-{round}");
                    let id = store.next_id();
                    let rec = record(&key, &id);
                    barrier.wait();
                    if store.create(mode, key.as_bytes(), &id, &rec) {
                        won.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for r in racers {
        r.join().expect("racer");
    }
    let mut rounds_won_once = 0;
    for (round, won) in wins.iter().enumerate() {
        let n = won.load(Ordering::SeqCst);
        assert_eq!(
            n,
            1,
            "{}: round {round}: {n} concurrent creates of one key succeeded",
            mode.label()
        );
        let key = format!("same-key-{round}");
        let owner = store
            .index
            .get(&key)
            .expect("sled")
            .expect("the winner's index entry");
        let rec = store
            .records
            .get(&owner)
            .expect("sled")
            .expect("the winner's record");
        assert!(String::from_utf8_lossy(&rec).contains(&format!("\"name\":\"{key}\"")));
        rounds_won_once += 1;
    }
    // No loser left a record or an index entry: one of each per successful create.
    let expected = ops as usize + f.rounds;
    assert_eq!(store.records.len(), expected, "{}: records", mode.label());
    assert_eq!(
        store.index.len(),
        expected,
        "{}: index entries",
        mode.label()
    );

    commit.stop();
    flusher.join().expect("flusher");
    Outcome {
        mode,
        ops,
        secs,
        p50_us: pct(50),
        p99_us: pct(99),
        ops_per_sync: ops as f64 / syncs.max(1) as f64,
        rounds_won_once,
        rounds: f.rounds,
    }
}

fn ms(us: u32) -> String {
    format!("{:.2}", us as f64 / 1000.0)
}

fn main() {
    let f = flags();
    println!(
        "uniqueness: raw sled 0.34.7, group commit (flush + fdatasync), {} writer threads, {} s per mode, {} same-key rounds, {} repeat(s)",
        f.threads,
        f.duration.as_secs(),
        f.rounds,
        f.repeat
    );
    let mut results = Vec::new();
    for _ in 0..f.repeat {
        for mode in [Mode::Cas, Mode::Transaction] {
            let r = run_mode(mode, &f);
            println!(
                "  {}: {} creates in {:.1} s; same-key: exactly one winner in {}/{} rounds",
                r.mode.label(),
                r.ops,
                r.secs,
                r.rounds_won_once,
                r.rounds
            );
            results.push(r);
        }
    }
    println!();
    println!(
        "{:<24} {:>10} {:>9} {:>9} {:>10} {:>22}",
        "mode", "creates/s", "p50 ms", "p99 ms", "ops/sync", "same-key: one winner"
    );
    for r in &results {
        println!(
            "{:<24} {:>10.0} {:>9} {:>9} {:>10.1} {:>22}",
            r.mode.label(),
            r.ops as f64 / r.secs,
            ms(r.p50_us),
            ms(r.p99_us),
            r.ops_per_sync,
            format!("{}/{} rounds", r.rounds_won_once, r.rounds)
        );
    }
    let rate = |m: Mode| {
        let (ops, secs) = results
            .iter()
            .filter(|r| r.mode == m)
            .fold((0u64, 0f64), |(o, s), r| (o + r.ops, s + r.secs));
        ops as f64 / secs
    };
    let (cas, tx) = (rate(Mode::Cas), rate(Mode::Transaction));
    println!();
    println!(
        "ratio compare-and-swap / transaction: {:.2}x ({cas:.0} vs {tx:.0} creates/s); invariant held in both modes",
        cas / tx
    );
}
