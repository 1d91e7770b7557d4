//! Damage must never be silent: 16 bytes corrupted in a cleanly stopped database, at offsets
//! chosen from a fixed list of seeds (replayable), and no run of `check`, `export` or `serve`
//! may report "ok", export or serve with fewer records than were committed. `check` and
//! `export` must not change the directory they inspect.

use std::path::Path;

use bytes::Bytes;
use hyper::Method;

use crate::helpers::*;

const ACCOUNTS: usize = 2;
const PROFILES: usize = 20;
/// The administrator and the accounts created.
const ALL_ACCOUNTS: u64 = ACCOUNTS as u64 + 1;
/// The cases run by default; `PROFILED_DAMAGE_SEEDS=a-b` runs seeds a to b instead.
const SEEDS: [u64; 10] = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

fn seeds() -> Vec<u64> {
    let Ok(range) = std::env::var("PROFILED_DAMAGE_SEEDS") else {
        return SEEDS.to_vec();
    };
    let (a, b) = range.split_once('-').unwrap_or((&range, &range));
    (a.parse().unwrap()..=b.parse().unwrap()).collect()
}

/// splitmix64, as in the crash test.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Flips 16 bytes of the log at an offset within what sled wrote; returns the offset.
fn corrupt(dir: &Path, seed: u64) -> usize {
    let path = dir.join("db");
    let mut bytes = std::fs::read(&path).unwrap();
    let used = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    let offset = match seed {
        // The segment's start and the end of the log (where a clean stop writes last).
        1 => 0,
        2 => used.saturating_sub(16),
        _ => (mix(seed) % (used.saturating_sub(16) as u64)) as usize,
    };
    for (i, b) in bytes[offset..offset + 16].iter_mut().enumerate() {
        *b ^= (mix(seed ^ i as u64) as u8) | 1;
    }
    std::fs::write(&path, bytes).unwrap();
    offset
}

/// What sled itself recovers from a copy of `dir`: (accounts, client profiles), `None` when it
/// cannot read them.
fn recoverable(dir: &Path) -> Option<(u64, u64)> {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    std::panic::catch_unwind(|| {
        let db = sled::Config::new()
            .path(copy.path())
            .segment_size(2 * 1024 * 1024)
            .open()
            .ok()?;
        let count = |name: &str| -> Option<u64> {
            let tree = db.open_tree(name).ok()?;
            let mut n = 0;
            for entry in tree.iter() {
                entry.ok()?;
                n += 1;
            }
            Some(n)
        };
        Some((
            count("accountid_account")?,
            count("clientprofileid_clientprofile")?,
        ))
    })
    .ok()
    .flatten()
}

/// Serves `dir`, lists client and admin profiles as the administrator and stops: the two
/// answers and the log, or the log of a server that refused to start.
async fn serve(dir: &Path) -> Result<(TestResponse, TestResponse, String), String> {
    // The listener is bound before the database is opened: a refusal to open ends the
    // connection, or answers a request that was waiting for the open with 503.
    let p = Process::try_start(dir, Some(ADMIN_PASSWORD), &[], &[])?;
    let form = format!("grant_type=password&username={ADMIN_EMAIL}&password={ADMIN_PASSWORD}");
    let login = try_send(
        p.addr,
        Method::POST,
        "/ccadmin/v1/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        Bytes::from(form),
    )
    .await;
    let Some(login) = login.filter(|l| l.status != 503) else {
        let (status, err) = p.wait();
        assert!(!status.success(), "{err}");
        return Err(err);
    };
    assert_eq!(login.status, 200);
    let auth = format!("Bearer {}", login.json()["access_token"].as_str().unwrap());
    let get = |path: &'static str, appgate: bool| {
        let auth = auth.clone();
        async move {
            let mut headers = vec![("authorization", auth.as_str())];
            if appgate {
                headers.push(("accept", ACCEPT_V23));
            }
            send(p.addr, Method::GET, path, &headers, Bytes::new()).await
        }
    };
    let list = get("/admin/client-profiles?range=0-1000", true).await;
    let accounts = get("/ccadmin/v1/adminProfiles", false).await;
    p.signal("-TERM");
    let (_, err) = p.wait();
    Ok((list, accounts, err))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_is_never_served_exported_or_reported_as_ok() {
    let pristine = populated_dir(ACCOUNTS, PROFILES).await;
    let committed = (ALL_ACCOUNTS, PROFILES as u64);
    let mut refused = 0;
    let seeds = seeds();
    for &seed in &seeds {
        let case = tempfile::tempdir().unwrap();
        copy_dir(pristine.path(), case.path());
        let offset = corrupt(case.path(), seed);
        let intact = recoverable(case.path()) == Some(committed);
        let what = format!("seed {seed} (offset {offset}, sled recovers all: {intact})");
        let before = dir_contents(case.path());
        eprintln!("damage test: {what}");

        let check = offline_check_output(case.path());
        let check_out = String::from_utf8_lossy(&check.stdout).into_owned();
        if check.status.success() {
            assert!(
                intact,
                "{what}: check says ok on a damaged database: {check_out}"
            );
        } else {
            refused += 1;
        }

        let data_dir = case.path().to_str().unwrap();
        let export = run_bin(&["export", "--data-dir", data_dir], &[]);
        let stdout = String::from_utf8_lossy(&export.stdout);
        if export.status.success() {
            let end: serde_json::Value =
                serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
            assert_eq!(
                (end["accounts"].as_u64(), end["clientProfiles"].as_u64()),
                (Some(committed.0), Some(committed.1)),
                "{what}: export succeeded with records missing"
            );
        } else {
            let err = String::from_utf8_lossy(&export.stderr);
            assert!(
                err.contains("damaged") || err.contains("cannot"),
                "{what}: {err}"
            );
        }
        assert!(
            before == dir_contents(case.path()),
            "{what}: check or export changed the database they inspected"
        );

        match serve(case.path()).await {
            Err(err) => {
                assert!(
                    err.contains("damaged"),
                    "{what}: refused without saying why: {err}"
                );
                assert!(
                    !err.contains("created the first administrator"),
                    "{what}: {err}"
                );
            }
            Ok((list, accounts, err)) => {
                assert!(
                    !err.contains("created the first administrator"),
                    "{what}: a fresh administrator on a database that had accounts\n{err}"
                );
                if list.status == 200 {
                    assert_eq!(
                        list.json()["data"].as_array().unwrap().len() as u64,
                        committed.1,
                        "{what}: served with client profiles missing"
                    );
                }
                if accounts.status == 200 {
                    assert_eq!(
                        accounts.json()["items"].as_array().unwrap().len() as u64,
                        committed.0,
                        "{what}: served with admin profiles missing"
                    );
                }
            }
        }
    }
    // Not vacuous: most of these offsets hit live data.
    assert!(
        refused >= SEEDS.len() / 2,
        "only {refused} damaged cases were found"
    );
}

#[tokio::test]
async fn a_database_emptied_behind_profileds_back_is_refused_and_gets_no_new_administrator() {
    let dir = populated_dir(0, 3).await;
    // Everything sled had, gone; the commit record beside it remains.
    for name in ["db", "conf"] {
        std::fs::remove_file(dir.path().join(name)).unwrap();
    }
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with("snap.") {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    let err = match serve(dir.path()).await {
        Ok(_) => panic!("served an emptied database"),
        Err(e) => e,
    };
    assert!(err.contains("damaged"), "{err}");
    assert!(err.contains("missing"), "{err}");
    assert!(!err.contains("created the first administrator"), "{err}");
}

#[tokio::test]
async fn a_foreign_file_where_the_database_should_be_is_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db"), b"my thesis, chapter 1").unwrap();
    let err = match serve(dir.path()).await {
        Ok(_) => panic!("served a foreign file"),
        Err(e) => e,
    };
    assert!(err.contains("no profiled database"), "{err}");
    assert_eq!(
        std::fs::read(dir.path().join("db")).unwrap(),
        b"my thesis, chapter 1"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("notes.txt"), b"keep me").unwrap();
    let err = match serve(other.path()).await {
        Ok(_) => panic!("created a database among foreign files"),
        Err(e) => e,
    };
    assert!(err.contains("no profiled database"), "{err}");
    assert_eq!(std::fs::read_dir(other.path()).unwrap().count(), 1);
}

#[tokio::test]
async fn export_salvage_writes_what_is_left_and_says_so() {
    let dir = populated_dir(0, PROFILES).await;
    // Cut the log: sled keeps a prefix and opens it without a word.
    let path = dir.path().join("db");
    let bytes = std::fs::read(&path).unwrap();
    let used = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    std::fs::write(&path, &bytes[..used * 3 / 5]).unwrap();
    let data_dir = dir.path().to_str().unwrap();

    let out = run_bin(&["export", "--data-dir", data_dir], &[]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("damaged") && err.contains("missing"), "{err}");

    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("salvaged.jsonl");
    let out = run_bin(
        &[
            "export",
            "--salvage",
            "--data-dir",
            data_dir,
            "-o",
            file.to_str().unwrap(),
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(err.contains("holds only what could be read"), "{err}");
    // What is left restores into a working database.
    let restored = root.path().join("restored");
    let out = run_bin(
        &[
            "import",
            "--data-dir",
            restored.to_str().unwrap(),
            file.to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
