//! etcd's limits and failures as clients see them, each against a real cluster started with a
//! small limit (`.ci/etcd-cluster start DIR -- FLAG…`): the database quota (507 for writes,
//! reads served, writes again once space is freed), the request size (413), the operations
//! per transaction, and a cluster that stops and comes back (503 with Retry-After). Built with
//! `--features etcd`; needs etcd and etcdctl on the PATH.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::{Value, json};

use crate::admin_profiles::BASE as ADMIN_PROFILES;
use crate::client_profiles::{PROFILES, get, profile};
use crate::etcd_cluster::{Cluster, script};
use crate::helpers::*;

/// etcdctl against every member of `cluster`, with `stdin` as its input.
fn etcdctl(cluster: &Cluster, args: &[&str], stdin: Option<&[u8]>) -> Output {
    use std::io::Write;
    let mut child = Command::new("etcdctl")
        .arg("--endpoints")
        .arg(&cluster.endpoints)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("etcdctl runs");
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or_default()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

#[track_caller]
fn etcdctl_ok(cluster: &Cluster, args: &[&str]) -> String {
    let out = etcdctl(cluster, args, None);
    assert!(
        out.status.success(),
        "etcdctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `.ci/etcd-cluster CMD` on the cluster's directory.
fn cluster_script(cluster: &Cluster, cmd: &str) {
    let out = Command::new(script())
        .arg(cmd)
        .arg(cluster.dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "etcd-cluster {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn create(s: &TestServer, token: &str, body: Value) -> TestResponse {
    s.appgate(Method::POST, PROFILES, Some(token), Some(body))
        .await
}

/// The names the client-profile list holds.
async fn names(s: &TestServer, token: &str) -> Vec<String> {
    let r = s
        .appgate(
            Method::GET,
            &format!("{PROFILES}?range=0-1000"),
            Some(token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

async fn readyz(s: &TestServer) -> TestResponse {
    s.request(Method::GET, "/readyz", &[], "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_database_refuses_writes_keeps_reads_and_writes_again_once_freed() {
    // 4 MiB: filled in a few puts; etcd's default is 2 GiB.
    let cluster = Cluster::start_with(&["--quota-backend-bytes", "4194304"]);
    let s = TestServer::start_with(cluster.node("quota")).await;
    let token = s.admin_token().await;
    let mut kept = Vec::new();
    for i in 0..5 {
        let r = create(&s, &token, profile(&format!("kept {i}"))).await;
        assert_eq!(r.status, 200, "{:?}", r.json());
        kept.push(r.json()["id"].as_str().unwrap().to_string());
    }
    let occ_token = s.occ_login(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    // Another installation's data (another prefix) fills the database until etcd raises its
    // NOSPACE alarm.
    let filler = vec![b'x'; 900 * 1024];
    let mut full = false;
    for i in 0..20 {
        let out = etcdctl(&cluster, &["put", &format!("filler/{i}")], Some(&filler));
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("database space exceeded"), "{err}");
            full = true;
            break;
        }
    }
    assert!(full, "the quota was never reached");
    assert!(etcdctl_ok(&cluster, &["alarm", "list"]).contains("NOSPACE"));

    // Writes are refused, in each dialect's format: 507, no Retry-After (nothing changes by
    // waiting), nothing of etcd in the body.
    let r = create(&s, &token, profile("refused")).await;
    assert_eq!(r.status, 507, "{:?}", r.body);
    assert_eq!(r.json()["id"], "insufficient storage");
    assert!(r.header("retry-after").is_none());
    assert!(!r.json().to_string().contains("etcd"), "{:?}", r.json());
    let body = json!({"firstName": "A", "lastName": "B", "email": "refused@example.com", "roles": ["adminRole"]});
    let r = s
        .occ(Method::POST, ADMIN_PROFILES, Some(&occ_token), Some(body))
        .await;
    assert_eq!(r.status, 507, "{:?}", r.body);
    assert_eq!(r.json()["errorCode"], "507");
    assert_eq!(r.json()["status"], "507");
    // A sign-in is a write too (its session).
    let r = s.appgate_login_response(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 507, "{:?}", r.body);

    // Reads keep working, in both dialects, and every acknowledged write is there.
    for id in &kept {
        assert_eq!(get(&s, &token, id).await.status, 200, "{id}");
    }
    let listed = names(&s, &token).await;
    assert_eq!(listed.len(), 5, "{listed:?}");
    assert!(!listed.contains(&"refused".to_string()));
    let r = s
        .occ(Method::GET, ADMIN_PROFILES, Some(&occ_token), None)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(!String::from_utf8_lossy(&r.body).contains("refused@example.com"));
    let r = readyz(&s).await;
    assert_eq!(r.status, 503);
    assert!(
        r.json()["reason"].as_str().unwrap().contains("NOSPACE"),
        "{:?}",
        r.json()
    );

    // The operator frees space: removes data, compacts, defragments every member, disarms
    // the alarm. Writes work again, without restarting profiled.
    etcdctl_ok(&cluster, &["del", "--prefix", "filler/"]);
    let status = etcdctl_ok(&cluster, &["endpoint", "status", "-w", "json"]);
    let status: Value = serde_json::from_str(&status).unwrap();
    let revision = status[0]["Status"]["header"]["revision"].as_i64().unwrap();
    etcdctl_ok(&cluster, &["compact", &revision.to_string()]);
    etcdctl_ok(&cluster, &["defrag"]);
    etcdctl_ok(&cluster, &["alarm", "disarm"]);
    let r = create(&s, &token, profile("after the disarm")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(readyz(&s).await.status, 200);
    assert_eq!(names(&s, &token).await.len(), 6);
    assert!(!s.admin_token().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_larger_than_etcd_takes_is_413_and_stores_nothing() {
    // 8 KiB, under profiled's own body limit (64 KiB); etcd's default is 1.5 MiB, above it.
    let cluster = Cluster::start_with(&["--max-request-bytes", "8192"]);
    let s = TestServer::start_with(cluster.node("request-size")).await;
    let token = s.admin_token().await;
    let mut big = profile("big");
    big["notes"] = json!("n".repeat(4000));
    big["tags"] = (0..50)
        .map(|i| json!(format!("{i:03}{}", "t".repeat(97))))
        .collect::<Value>();
    let body = big.to_string();
    assert!(
        body.len() > 8 * 1024 && body.len() < 64 * 1024,
        "{}",
        body.len()
    );
    let r = create(&s, &token, big).await;
    assert_eq!(
        r.status,
        413,
        "{}",
        String::from_utf8_lossy(&r.body[..200.min(r.body.len())])
    );
    assert_eq!(r.json()["id"], "payload too large");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("Nothing was changed")
    );
    assert!(names(&s, &token).await.is_empty());
    // The name was not taken: a small profile of that name is created.
    let r = create(&s, &token, profile("big")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(names(&s, &token).await, ["big"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_that_stops_answers_503_and_is_served_again_when_back() {
    let cluster = Cluster::start();
    let s = TestServer::start_with(cluster.node("outage")).await;
    let token = s.admin_token().await;
    let occ_token = s.occ_login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let r = create(&s, &token, profile("before")).await;
    assert_eq!(r.status, 200);
    let id = r.json()["id"].as_str().unwrap().to_string();

    cluster_script(&cluster, "stop");
    let r = create(&s, &token, profile("during")).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.json()["id"], "service unavailable");
    assert!(!r.json().to_string().contains("etcd"), "{:?}", r.json());
    let r = get(&s, &token, &id).await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.header("retry-after"), Some("5"));
    let r = s
        .occ(Method::GET, ADMIN_PROFILES, Some(&occ_token), None)
        .await;
    assert_eq!(r.status, 503, "{:?}", r.body);
    assert_eq!(r.header("retry-after"), Some("5"));
    assert_eq!(r.json()["errorCode"], "503");
    assert!(!r.json().to_string().contains("etcd"), "{:?}", r.json());
    let r = readyz(&s).await;
    assert_eq!(r.status, 503);
    assert!(
        r.json()["reason"]
            .as_str()
            .unwrap()
            .contains("cannot be reached")
    );

    // The members start again: the same profiled serves again.
    cluster_script(&cluster, "resume");
    let deadline = Instant::now() + Duration::from_secs(30);
    let created = loop {
        let r = create(&s, &token, profile("after")).await;
        if r.status == 200 || Instant::now() > deadline {
            break r;
        }
        assert_eq!(r.status, 503, "{:?}", r.body);
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(created.status, 200, "{:?}", created.body);
    assert_eq!(get(&s, &token, &id).await.status, 200);
    let listed = names(&s, &token).await;
    assert!(listed.contains(&"after".to_string()), "{listed:?}");
    assert!(!listed.contains(&"during".to_string()), "{listed:?}");
    let r = s
        .occ(Method::GET, ADMIN_PROFILES, Some(&occ_token), None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(readyz(&s).await.status, 200);
}

/// A client profile and an admin profile each created and renamed (a rename is the largest
/// transaction), the client profile then deleted, on a new installation on `cluster`; the
/// statuses, in order.
async fn every_write(cluster: &Cluster, prefix: &str) -> Vec<u16> {
    let s = TestServer::start_with(cluster.node(prefix)).await;
    let token = s.admin_token().await;
    let occ_token = s.occ_login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let mut statuses = Vec::new();
    let r = create(&s, &token, profile("first name")).await;
    statuses.push(r.status);
    let id = r.json()["id"].as_str().unwrap_or_default().to_string();
    let mut renamed = get(&s, &token, &id).await.json();
    renamed["name"] = json!("second name");
    let path = format!("{PROFILES}/{id}");
    let r = s
        .appgate(Method::PUT, &path, Some(&token), Some(renamed))
        .await;
    statuses.push(r.status);
    let r = s.appgate(Method::DELETE, &path, Some(&token), None).await;
    statuses.push(r.status);
    let body = json!({"firstName": "A", "lastName": "B", "email": "one@example.com", "roles": ["adminRole"]});
    let r = s
        .occ(Method::POST, ADMIN_PROFILES, Some(&occ_token), Some(body))
        .await;
    statuses.push(r.status);
    let account = r.json()["id"].as_str().unwrap_or_default().to_string();
    let path = format!("{ADMIN_PROFILES}/{account}");
    let r = s
        .occ(
            Method::PUT,
            &path,
            Some(&occ_token),
            Some(json!({"email": "two@example.com"})),
        )
        .await;
    statuses.push(r.status);
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_write_fits_in_three_operations_per_transaction() {
    // profiled's largest transaction is a rename: 2 conditions, 3 writes (see
    // `unique::MOST_TXN_OPS`); etcd's default allows 128.
    let cluster = Cluster::start_with(&["--max-txn-ops", "3"]);
    assert_eq!(
        every_write(&cluster, "txn-ops-3").await,
        [200, 200, 204, 200, 200]
    );
    drop(cluster);
    // One fewer: the renames are refused (a 500, logged), and nothing else.
    let cluster = Cluster::start_with(&["--max-txn-ops", "2"]);
    assert_eq!(
        every_write(&cluster, "txn-ops-2").await,
        [200, 500, 204, 200, 500]
    );
}
