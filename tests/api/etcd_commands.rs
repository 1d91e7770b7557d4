//! The offline commands against etcd (`check`, `export`, `import`, `reset-password` with
//! `--store etcd://…`), `GET /admin/backup` on an etcd node, and the crash test's invariants
//! checked on the cluster after a node was killed mid-traffic. Each test starts its own
//! 3-member cluster (`etcd_cluster::Cluster`); built with `--features etcd`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::Method;

use crate::backup::enable_backup_api;
use crate::client_profiles::{PROFILES, profile};
use crate::crash;
use crate::etcd_cluster::Cluster;
use crate::helpers::*;

/// `profiled ARGS --store etcd://… --store-prefix PREFIX`, run to completion.
fn command(
    cluster: &Cluster,
    prefix: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> std::process::Output {
    let flags = cluster.flags(prefix);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(flags.iter().map(String::as_str));
    run_bin(&all, env)
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `profiled check` on the installation finds every invariant holding.
fn assert_checks_clean_on(cluster: &Cluster, prefix: &str) {
    let out = command(cluster, prefix, &["check"], &[]);
    assert!(
        out.status.success() && stdout(&out).contains("ok: every invariant holds"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

/// etcdctl against the cluster; its standard output.
fn etcdctl(cluster: &Cluster, args: &[&str]) -> String {
    let out = std::process::Command::new("etcdctl")
        .arg("--endpoints")
        .arg(&cluster.endpoints)
        .args(args)
        .env("ETCDCTL_API", "3")
        .output()
        .expect("etcdctl runs");
    assert!(out.status.success(), "etcdctl {args:?}: {}", stderr(&out));
    stdout(&out)
}

/// Every key under `prefix/`.
fn keys(cluster: &Cluster, prefix: &str) -> Vec<String> {
    etcdctl(
        cluster,
        &["get", "--prefix", &format!("{prefix}/"), "--keys-only"],
    )
    .lines()
    .filter(|l| !l.is_empty())
    .map(String::from)
    .collect()
}

async fn create(s: &TestServer, token: &str, name: &str) -> TestResponse {
    s.appgate(Method::POST, PROFILES, Some(token), Some(profile(name)))
        .await
}

/// Every client profile, in name order.
async fn all_profiles(s: &TestServer, token: &str) -> serde_json::Value {
    let r = s
        .appgate(
            Method::GET,
            &format!("{PROFILES}?orderBy=name&range=0-1000"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    r.json()["data"].clone()
}

/// (id, e-mail) of every admin profile.
async fn all_accounts(s: &TestServer, token: &str) -> Vec<(String, String)> {
    let r = s
        .occ(
            Method::GET,
            "/ccadmin/v1/adminProfiles?limit=250",
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let mut all: Vec<_> = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["id"].as_str().unwrap().to_string(),
                a["email"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    all.sort();
    all
}

/// The crash test's invariants on etcd: a node is killed with SIGKILL under concurrent
/// creates, renames, deletes and account writes (with name and e-mail collisions); every
/// acknowledged write is then read through the other node, and `profiled check` on the
/// cluster is clean, also while the other node takes writes (it reads one revision).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_a_node_killed_mid_traffic() {
    const ROUNDS: usize = 4;
    let cluster = Cluster::start();
    let flags = cluster.flags("crash");
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let token = |p: &Process| {
        let addr = p.addr;
        async move {
            let (path, headers, form) = occ_login_request(ADMIN_EMAIL, ADMIN_PASSWORD);
            let r = send(addr, Method::POST, path, headers, form.into()).await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            r.json()["access_token"].as_str().unwrap().to_string()
        }
    };
    let b = Process::try_start(dir_b.path(), Some(ADMIN_PASSWORD), &flags, &[]).unwrap();
    let token_b = token(&b).await;
    crash::set_profile_hostname(b.addr, &token_b).await;
    let seed = crash::seed();
    eprintln!("etcd crash test: seed {seed} (replay with PROFILED_CRASH_SEED={seed})");
    let mut rng = crash::Rng(seed);
    let mut clients = crash::new_clients(seed);
    for round in 0..ROUNDS {
        let a = Process::try_start(dir_a.path(), Some(ADMIN_PASSWORD), &flags, &[]).unwrap();
        let token_a = token(&a).await;
        let dead = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = clients
            .drain(..)
            .map(|c| tokio::spawn(crash::drive(c, a.addr, token_a.clone(), dead.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(150 + rng.below(400))).await;
        a.signal("-KILL");
        dead.store(true, Ordering::Relaxed);
        for t in tasks {
            clients.push(t.await.unwrap());
        }
        a.wait();
        // Every acknowledged write of the killed node, read through the other one.
        crash::verify(&mut clients, b.addr, &token_b, round).await;
        assert_checks_clean_on(&cluster, "crash");
    }
    // The check while the surviving node takes writes: one revision, so clean all the same.
    let dead = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = clients
        .drain(..)
        .map(|c| tokio::spawn(crash::drive(c, b.addr, token_b.clone(), dead.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let args: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        let mut all = vec!["check"];
        all.extend(args.iter().map(String::as_str));
        run_bin(&all, &[])
    })
    .await
    .unwrap();
    dead.store(true, Ordering::Relaxed);
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    crash::verify(&mut clients, b.addr, &token_b, ROUNDS).await;
    let existing = crash::existing(&clients);
    assert!(existing > 0, "the clients wrote nothing");
    eprintln!("etcd crash test: {ROUNDS} kills survived; {existing} client profiles at the end");
}

/// `export` of one prefix and `import` into another: the same records, counts and logins,
/// encrypted when a backup passphrase is set; a prefix that holds any key is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn export_and_import_move_an_installation_to_another_prefix() {
    let cluster = Cluster::start();
    let source = TestServer::start_with(cluster.node("source")).await;
    let token = source.admin_token().await;
    for i in 0..30 {
        assert_eq!(
            create(&source, &token, &format!("moved {i}")).await.status,
            200
        );
    }
    add_account(&source, "amber@example.com", "clientProfileViewerRole").await;
    // With a passphrase, the export is encrypted as GET /admin/backup would be.
    enable_backup_api(&source, &token, Some("a long backup passphrase")).await;
    let backup = tempfile::tempdir().unwrap();
    let file = backup.path().join("backup.jsonl.enc");
    let file = file.to_str().unwrap();
    let out = command(&cluster, "source", &["export", "--output", file], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exported 2 admin profile(s) and 30 client profile(s)"),
        "{}",
        stderr(&out)
    );
    assert!(profiled::backup_crypt::is_encrypted(
        &std::fs::read(file).unwrap()
    ));

    let pass = [("PROFILED_BACKUP_PASSPHRASE", "a long backup passphrase")];
    let out = command(&cluster, "restored", &["import", file], &pass);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("imported 2 admin profile(s) and 30 client profile(s)"),
        "{}",
        stderr(&out)
    );
    assert_checks_clean_on(&cluster, "restored");

    // The new prefix serves the same records, and its accounts log in.
    let restored = TestServer::start_with(cluster.node("restored")).await;
    let restored_token = restored.admin_token().await;
    assert_eq!(
        all_profiles(&source, &token).await,
        all_profiles(&restored, &restored_token).await
    );
    assert_eq!(
        all_accounts(&source, &token).await,
        all_accounts(&restored, &restored_token).await
    );
    restored.login("amber@example.com", ACCOUNT_PASSWORD).await;
    // The name index came along: a restored name is taken.
    assert_eq!(
        create(&restored, &restored_token, "moved 7").await.status,
        409
    );
    // Account numbers go on above every restored one.
    let new = add_account(&restored, "new@example.com", "clientProfileViewerRole").await;
    assert!(
        all_accounts(&source, &token)
            .await
            .iter()
            .all(|(id, _)| id.as_str() < new.as_str()),
        "{new}"
    );

    // Into a prefix that holds any key: refused, and nothing is written.
    etcdctl(&cluster, &["put", "stray/left-over", "x"]);
    for prefix in ["stray", "restored"] {
        let before = keys(&cluster, prefix);
        let out = command(&cluster, prefix, &["import", file], &pass);
        assert!(!out.status.success());
        assert!(
            stderr(&out).contains(&format!(
                "the etcd prefix \"{prefix}/\" is not empty: import only restores into a prefix that holds nothing"
            )),
            "{}",
            stderr(&out)
        );
        assert_eq!(keys(&cluster, prefix), before);
    }
    // A truncated backup restores nothing: what was written before the end is taken back.
    let truncated = backup.path().join("truncated.jsonl");
    std::fs::write(
        &truncated,
        format!(
            "{{\"kind\":\"header\",\"format\":\"profiled-backup\",\"formatVersion\":1,\"schemaVersion\":2}}\n{{\"kind\":\"secret\",\"value\":\"{}\"}}\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let out = command(
        &cluster,
        "truncated",
        &["import", truncated.to_str().unwrap()],
        &[],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(
            "the backup has no end line: it is truncated (what was written is removed again)"
        ),
        "{}",
        stderr(&out)
    );
    assert!(keys(&cluster, "truncated").is_empty());
}

/// `check` on the cluster reports what it finds (a stray index key planted with etcdctl, a
/// record whose index key was removed), repairs nothing, and exits non-zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn check_reports_a_planted_inconsistency() {
    let cluster = Cluster::start();
    let node = TestServer::start_with(cluster.node("planted")).await;
    let token = node.admin_token().await;
    assert_eq!(create(&node, &token, "kept").await.status, 200);
    assert_checks_clean_on(&cluster, "planted");

    etcdctl(
        &cluster,
        &["put", "planted/name_clientprofileid/ghost", "nobody"],
    );
    etcdctl(
        &cluster,
        &["del", "planted/email_accountid/admin@localhost"],
    );
    let out = command(&cluster, "planted", &["check"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(
        report.contains("stale: name index entry \"ghost\" (no record holds it)"),
        "{report}"
    );
    assert!(
        report.contains("missing: email index entry \"admin@localhost\" for record \"iuser"),
        "{report}"
    );
    assert!(
        report.contains("2 problem(s). etcd keeps a record and its index keys in one transaction"),
        "{report}"
    );
    // Nothing was repaired.
    assert_eq!(
        etcdctl(
            &cluster,
            &[
                "get",
                "planted/name_clientprofileid/ghost",
                "--print-value-only"
            ]
        )
        .trim(),
        "nobody"
    );
    assert!(keys(&cluster, "planted/email_accountid").is_empty());

    // --salvage is for sled's files.
    let out = command(&cluster, "planted", &["export", "--salvage"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--salvage is for a damaged data directory"),
        "{}",
        stderr(&out)
    );

    // A prefix without an installation: an error, exit status 2.
    let out = command(&cluster, "nothing-here", &["check"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("the etcd prefix \"nothing-here/\" holds no profiled installation"),
        "{}",
        stderr(&out)
    );
}

/// `reset-password` against etcd while a node serves: the new password works on that node at
/// once, the old one no longer; the account's sessions are kept, as with sled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reset_password_lets_the_account_in_on_a_running_node() {
    let cluster = Cluster::start();
    let node = TestServer::start_with(cluster.node("reset")).await;
    add_account(&node, "amber@example.com", "clientProfileViewerRole").await;
    let before = node.login("amber@example.com", ACCOUNT_PASSWORD).await;
    let new = "a brand new password";
    let out = command(
        &cluster,
        "reset",
        &["reset-password", "--email", "amber@example.com"],
        &[("PROFILED_NEW_PASSWORD", new)],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    node.login("amber@example.com", new).await;
    let old = node
        .appgate_login_response("amber@example.com", ACCOUNT_PASSWORD)
        .await;
    assert_eq!(old.status, 401);
    let r = node
        .appgate(Method::GET, PROFILES, Some(&before), None)
        .await;
    assert_eq!(r.status, 200, "the session from before is kept");

    let out = command(
        &cluster,
        "reset",
        &["reset-password", "--email", "nobody@example.com"],
        &[("PROFILED_NEW_PASSWORD", new)],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no account with e-mail nobody@example.com"),
        "{}",
        stderr(&out)
    );
    let out = command(
        &cluster,
        "elsewhere",
        &["reset-password", "--email", "amber@example.com"],
        &[("PROFILED_NEW_PASSWORD", new)],
    );
    assert!(
        stderr(&out).contains("holds no profiled installation"),
        "{}",
        stderr(&out)
    );
    assert!(keys(&cluster, "elsewhere").is_empty(), "nothing written");
}

/// `GET /admin/backup` on an etcd node while another node creates profiles: one revision,
/// which `import` restores into a new prefix and verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_backup_endpoint_reads_one_revision_while_another_node_writes() {
    let cluster = Cluster::start();
    let a = TestServer::start_with(cluster.node("served")).await;
    let b = TestServer::start_with(cluster.node("served")).await;
    let (ta, tb) = (a.admin_token().await, b.admin_token().await);
    for i in 0..20 {
        assert_eq!(create(&a, &ta, &format!("before {i}")).await.status, 200);
    }
    enable_backup_api(&a, &ta, None).await;
    let writes = async {
        for i in 0..40 {
            assert_eq!(create(&b, &tb, &format!("during {i}")).await.status, 200);
        }
    };
    let (r, ()) = tokio::join!(
        a.appgate(Method::GET, "/admin/backup", Some(&ta), None),
        writes
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let profiles = text.matches("\"kind\":\"clientProfile\"").count();
    assert!((20..=60).contains(&profiles), "{profiles}");
    let end: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(end["clientProfiles"], profiles);

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.jsonl");
    std::fs::write(&file, &r.body).unwrap();
    let out = command(
        &cluster,
        "served-copy",
        &["import", file.to_str().unwrap()],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("and {profiles} client profile(s)")),
        "{}",
        stderr(&out)
    );

    // A backup naming one name twice: refused at its line, and nothing is left behind.
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let at: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("\"kind\":\"clientProfile\""))
        .collect();
    let first: serde_json::Value = serde_json::from_str(&lines[at[0]]).unwrap();
    let mut second: serde_json::Value = serde_json::from_str(&lines[at[1]]).unwrap();
    second["value"]["name"] = first["value"]["name"].clone();
    lines[at[1]] = second.to_string();
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = command(&cluster, "twice", &["import", file.to_str().unwrap()], &[]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!(
            "line {}: unique key already taken (what was written is removed again)",
            at[1] + 1
        )),
        "{}",
        stderr(&out)
    );
    assert!(keys(&cluster, "twice").is_empty());
}
