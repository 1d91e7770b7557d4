//! The etcd backend against a real 3-member cluster on loopback (`.ci/etcd-cluster`): two
//! profiled nodes on one cluster, and a member killed mid-traffic. Built with `--features etcd`
//! (CI); needs etcd and etcdctl on the PATH.

use std::path::PathBuf;

use hyper::Method;
use serde_json::json;

use crate::helpers::*;

/// A 3-member cluster in a temporary directory, stopped when dropped.
pub(crate) struct Cluster {
    dir: tempfile::TempDir,
    /// HOST:PORT of each member, comma-separated (what `etcd://` takes).
    pub(crate) endpoints: String,
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/etcd-cluster")
}

impl Cluster {
    pub(crate) fn start() -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(script())
            .arg("start")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "etcd cluster: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let endpoints = std::fs::read_to_string(dir.path().join("endpoints"))
            .unwrap()
            .trim()
            .to_string();
        Cluster { dir, endpoints }
    }

    /// A node's configuration on this cluster, with the installation's key prefix.
    pub(crate) fn node(&self, prefix: &str) -> impl FnOnce(&mut profiled::Config) {
        let mut etcd =
            profiled::store::EtcdOptions::parse(&format!("etcd://{}", self.endpoints)).unwrap();
        etcd.prefix = prefix.to_string();
        move |c: &mut profiled::Config| c.store.etcd = Some(etcd)
    }

    /// `--store etcd://… --store-prefix PREFIX`: the flags of the binary for this cluster.
    pub(crate) fn flags(&self, prefix: &str) -> Vec<String> {
        vec![
            "--store".into(),
            format!("etcd://{}", self.endpoints),
            "--store-prefix".into(),
            prefix.into(),
        ]
    }

    /// Kills member `n` (SIGKILL, by its PID).
    pub(crate) fn kill(&self, n: usize) {
        let pid = std::fs::read_to_string(self.dir.path().join(format!("member-{n}.pid"))).unwrap();
        let ok = std::process::Command::new("kill")
            .args(["-9", pid.trim()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
    }
}

use crate::client_profiles::{PROFILES, get, profile};

async fn create(s: &TestServer, token: &str, name: &str) -> TestResponse {
    s.appgate(Method::POST, PROFILES, Some(token), Some(profile(name)))
        .await
}

const LOGOUT: &str = "/admin/authentication/logout";

/// Two nodes over one cluster (one installation: one key prefix).
async fn two_nodes(cluster: &Cluster, prefix: &str) -> (TestServer, TestServer) {
    let a = TestServer::start_with(cluster.node(prefix)).await;
    let b = TestServer::start_with(cluster.node(prefix)).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_names_records_and_sessions() {
    let cluster = Cluster::start();
    let (a, b) = two_nodes(&cluster, "two-nodes").await;
    let (ta, tb) = (a.admin_token().await, b.admin_token().await);

    // Concurrent creates of one name, spread over both nodes: exactly one wins.
    for round in 0..5 {
        let name = format!("contested {round}");
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (s, t) = if i % 2 == 0 { (&a, &ta) } else { (&b, &tb) };
                create(s, t, &name)
            })
            .collect();
        let statuses: Vec<u16> = futures_util::future::join_all(tasks)
            .await
            .iter()
            .map(|r| r.status)
            .collect();
        assert_eq!(
            statuses.iter().filter(|&&s| s == 200).count(),
            1,
            "{statuses:?}"
        );
        assert!(
            statuses.iter().all(|&s| s == 200 || s == 409),
            "{statuses:?}"
        );
    }

    // Written on A, read on B at once: by id, and in B's list.
    let created = create(&a, &ta, "written on a").await;
    assert_eq!(created.status, 200);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let r = get(&b, &tb, &id).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["name"], "written on a");
    // In B's search index too (a list with a query), at once.
    let found = b
        .appgate(
            Method::GET,
            &format!("{PROFILES}?query=written"),
            Some(&tb),
            None,
        )
        .await;
    assert_eq!(found.status, 200);
    assert_eq!(
        found.json()["data"][0]["name"],
        "written on a",
        "{:?}",
        found.json()
    );
    // Changed on B, read on A.
    let r = get(&b, &tb, &id).await;
    let mut changed = r.json();
    changed["notes"] = json!("changed on b");
    let r = b
        .appgate(
            Method::PUT,
            &format!("{PROFILES}/{id}"),
            Some(&tb),
            Some(changed),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    assert_eq!(get(&a, &ta, &id).await.json()["notes"], "changed on b");
    let r = a
        .appgate(
            Method::GET,
            &format!("{PROFILES}?query=changed"),
            Some(&ta),
            None,
        )
        .await;
    assert_eq!(r.json()["data"][0]["id"], id.as_str(), "{:?}", r.json());
    // The name is taken on both nodes.
    assert_eq!(create(&b, &tb, "written on a").await.status, 409);

    // A token issued by A works on B; a logout on A is refused on B at once.
    let token = a.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(get(&b, &token, &id).await.status, 200);
    let r = a.appgate(Method::POST, LOGOUT, Some(&token), None).await;
    assert_eq!(r.status, 204);
    assert_eq!(get(&b, &token, &id).await.status, 401);

    // An account deactivated through B: its token from A is refused on A at once, and its
    // login fails on both; reactivated through A, it logs in on B again.
    let amber = add_account(&a, "amber@example.com", "adminRole").await;
    let amber_token = a.login("amber@example.com", ACCOUNT_PASSWORD).await;
    assert_eq!(get(&a, &amber_token, &id).await.status, 200);
    let path = format!("/ccadmin/v1/adminProfiles/{amber}");
    let r = b
        .occ(
            Method::PUT,
            &path,
            Some(&tb),
            Some(json!({"active": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(get(&a, &amber_token, &id).await.status, 401);
    assert_eq!(get(&b, &amber_token, &id).await.status, 401);
    for node in [&a, &b] {
        let r = node
            .appgate_login_response("amber@example.com", ACCOUNT_PASSWORD)
            .await;
        assert_eq!(r.status, 401, "{:?}", r.body);
    }
    let r = a
        .occ(Method::PUT, &path, Some(&ta), Some(json!({"active": true})))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    b.login("amber@example.com", ACCOUNT_PASSWORD).await;

    // A node stops: the other keeps serving everything written through either.
    let (_dir, _) = a.stop().await;
    let r = get(&b, &tb, &id).await;
    assert_eq!(r.status, 200);
    assert_eq!(create(&b, &tb, "after a stopped").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn installations_with_other_prefixes_do_not_see_each_other() {
    let cluster = Cluster::start();
    let one = TestServer::start_with(cluster.node("one")).await;
    let two = TestServer::start_with(cluster.node("two")).await;
    let (t1, t2) = (one.admin_token().await, two.admin_token().await);
    assert_eq!(create(&one, &t1, "same name").await.status, 200);
    assert_eq!(create(&two, &t2, "same name").await.status, 200);
    // Each installation has its own secret: a token of one is not valid on the other.
    assert_eq!(
        get(&two, &t1, "00000000-0000-0000-0000-000000000000")
            .await
            .status,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_killed_mid_traffic_loses_no_acknowledged_write() {
    let cluster = Cluster::start();
    let (a, b) = two_nodes(&cluster, "member-kill").await;
    let (ta, tb) = (a.admin_token().await, b.admin_token().await);
    let mut acknowledged = Vec::new();
    let mut refused = 0;
    for i in 0..60 {
        if i == 20 {
            cluster.kill(0);
        }
        let (s, t) = if i % 2 == 0 { (&a, &ta) } else { (&b, &tb) };
        let r = create(s, t, &format!("kept {i}")).await;
        match r.status {
            200 => acknowledged.push(r.json()["id"].as_str().unwrap().to_string()),
            // A request in flight when its member died may fail; it was never acknowledged.
            _ => refused += 1,
        }
    }
    // Two of three members keep a majority: the service kept answering.
    assert!(
        acknowledged.len() >= 55,
        "{} acknowledged, {refused} refused",
        acknowledged.len()
    );
    for id in &acknowledged {
        assert_eq!(get(&a, &ta, id).await.status, 200, "{id} lost");
        assert_eq!(get(&b, &tb, id).await.status, 200, "{id} lost");
    }
    // The store's invariants (each index entry points to a record carrying its key, each
    // record is reachable, no two records share a key) hold in etcd after the run.
    let mut report = profiled::store::unique::RepairReport::default();
    b.app.store.check(&mut report, false).unwrap();
    assert!(report.is_clean(), "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_on_a_new_cluster_share_one_administrator() {
    let cluster = Cluster::start();
    let (a, b) = tokio::join!(
        TestServer::start_with(cluster.node("together")),
        TestServer::start_with(cluster.node("together"))
    );
    // Both serve, with one installation secret: a token of either works on both.
    let (ta, tb) = (a.admin_token().await, b.admin_token().await);
    let created = create(&a, &tb, "from b's token on a").await;
    assert_eq!(created.status, 200);
    let id = created.json()["id"].as_str().unwrap().to_string();
    assert_eq!(get(&b, &ta, &id).await.status, 200);
    assert_eq!(a.app.store.account_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_creates_on_two_nodes_all_answer() {
    let cluster = Cluster::start();
    let (a, b) = two_nodes(&cluster, "busy").await;
    let (ta, tb) = (a.admin_token().await, b.admin_token().await);
    // Each node's change feed applies the other's creates while its own writers refresh the
    // same search index: neither may wait for the other.
    let names: Vec<String> = (0..96).map(|i| format!("busy {i}")).collect();
    let tasks: Vec<_> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let (s, t) = if i % 2 == 0 { (&a, &ta) } else { (&b, &tb) };
            tokio::time::timeout(std::time::Duration::from_secs(20), create(s, t, name))
        })
        .collect();
    for r in futures_util::future::join_all(tasks).await {
        assert_eq!(r.expect("answered within 20 s").status, 200);
    }
    let found = a
        .appgate(
            Method::GET,
            &format!("{PROFILES}?query=busy&range=0-200"),
            Some(&ta),
            None,
        )
        .await;
    assert_eq!(found.json()["data"].as_array().unwrap().len(), 96);
}
