//! The etcd backend against a real 3-member cluster on loopback (`.ci/etcd-cluster`): two
//! profiled nodes on one cluster, and a member killed mid-traffic. Built with `--features etcd`
//! (CI); needs etcd and etcdctl on the PATH.

use std::path::PathBuf;

use hyper::Method;
use serde_json::json;

use crate::helpers::*;

/// A 3-member cluster in a temporary directory, stopped when dropped.
pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    /// HOST:PORT of each member, comma-separated (what `etcd://` takes).
    pub(crate) endpoints: String,
}

pub(crate) fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".ci/etcd-cluster")
}

impl Cluster {
    pub(crate) fn start() -> Cluster {
        Cluster::start_with(&[])
    }

    /// The same, with `flags` added to each member's etcd command.
    pub(crate) fn start_with(flags: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(script())
            .arg("start")
            .arg(dir.path())
            .arg("--")
            .args(flags)
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

impl Cluster {
    /// Runs etcdctl against the cluster; its standard output.
    fn etcdctl(&self, args: &[&str]) -> String {
        let out = std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(&self.endpoints)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "etcdctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The leases of the keys under `prefix` (0: none), from `etcdctl get -w json`.
    fn leases_under(&self, prefix: &str) -> Vec<i64> {
        let out = self.etcdctl(&["get", "--prefix", prefix, "-w", "json"]);
        let got: serde_json::Value = serde_json::from_str(&out).unwrap();
        got["kvs"]
            .as_array()
            .map(|kvs| {
                kvs.iter()
                    .map(|kv| kv["lease"].as_i64().unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Two nodes of one installation whose configuration `adjust` changes too.
async fn two_nodes_with(
    cluster: &Cluster,
    prefix: &str,
    adjust: impl Fn(&mut profiled::Config),
) -> (TestServer, TestServer) {
    let node = |c: &mut profiled::Config| {
        cluster.node(prefix)(c);
        adjust(c);
    };
    let a = TestServer::start_with(node).await;
    let b = TestServer::start_with(node).await;
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failed_logins_are_counted_by_every_node() {
    let cluster = Cluster::start();
    let (a, b) = two_nodes_with(&cluster, "lockout", |c| {
        c.lockout = std::time::Duration::from_secs(30);
    })
    .await;
    let email = "guessed@example.com";
    add_account(&a, email, "adminRole").await;

    // Wrong passwords taking turns over the two nodes: the fifth locks the account on both,
    // for the right password too.
    for i in 0..5 {
        let node = if i % 2 == 0 { &a } else { &b };
        let r = node
            .appgate_login_response(email, &format!("wrong password {i}"))
            .await;
        assert_eq!(r.status, 401, "guess {i}: {:?}", r.body);
    }
    for node in [&a, &b] {
        let r = node.appgate_login_response(email, ACCOUNT_PASSWORD).await;
        assert_eq!(r.status, 429, "{:?}", r.body);
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=30).contains(&wait), "{wait}");
        let r = node.occ_login_response(email, ACCOUNT_PASSWORD).await;
        assert_eq!(r.status, 429, "{:?}", r.body);
    }

    // Many guesses at once, spread over both nodes: no more passwords are checked than the
    // budget allows, whichever node they reach.
    let raced = "raced@example.com";
    add_account(&b, raced, "adminRole").await;
    let guesses: Vec<_> = (0..16)
        .map(|i| {
            let node = if i % 2 == 0 { &a } else { &b };
            node.appgate_login_response(raced, "not the password")
        })
        .collect();
    let statuses: Vec<u16> = futures_util::future::join_all(guesses)
        .await
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 401).count(),
        5,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 401 || s == 429),
        "{statuses:?}"
    );
    assert_eq!(
        a.appgate_login_response(raced, ACCOUNT_PASSWORD)
            .await
            .status,
        429
    );

    // The counts live in etcd, under keys that are HMACs: no user name typed is stored.
    let stored = cluster.etcdctl(&["get", "--prefix", "lockout/loginkeyhash_failures/"]);
    assert!(!stored.contains("guessed"), "{stored}");
    assert!(!stored.contains("raced"), "{stored}");
    // Each under a lease that ends with what it remembers.
    let leases = cluster.leases_under("lockout/loginkeyhash_failures/");
    assert_eq!(leases.len(), 2, "{leases:?}");
    assert!(leases.iter().all(|&l| l != 0), "{leases:?}");

    // A success starts over for everyone: another account is not affected at all.
    b.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_address_has_one_budget_over_every_node() {
    let cluster = Cluster::start();
    let (a, b) = two_nodes_with(&cluster, "addresses", |c| {
        c.login_limit_loopback = true;
        c.login_address_burst = 3;
        c.login_address_interval = std::time::Duration::from_secs(60);
    })
    .await;
    // Three failures for three different names on A spend this address's budget …
    for i in 0..3 {
        let r = a
            .appgate_login_response(&format!("nobody{i}@example.com"), "wrong password")
            .await;
        assert_eq!(r.status, 401, "{:?}", r.body);
    }
    // … on B too, even for a fourth name and the right password.
    let r = b.appgate_login_response(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 429, "{:?}", r.body);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_end_with_their_etcd_lease() {
    let cluster = Cluster::start();
    let (a, b) = two_nodes(&cluster, "leases").await;
    let ta = a.admin_token().await;
    let sessions = "leases/tokenhash_session/";
    // Every session is written under a lease.
    let leases = cluster.leases_under(sessions);
    assert!(!leases.is_empty());
    assert!(leases.iter().all(|&l| l != 0), "{leases:?}");
    // A lease ends a little after its session: 12 hours (the default), within a minute.
    let lease = format!("{:x}", leases[0]);
    let ttl = cluster.etcdctl(&["lease", "timetolive", &lease, "-w", "json"]);
    let ttl: serde_json::Value = serde_json::from_str(&ttl).unwrap();
    let remaining = ttl["ttl"].as_i64().unwrap();
    assert!(
        (12 * 3600 - 10..=12 * 3600 + 70).contains(&remaining),
        "{ttl}"
    );

    // Sessions of three seconds: etcd removes them soon after, though no node sweeps.
    let path = "/admin/global-settings";
    let mut settings = a.appgate(Method::GET, path, Some(&ta), None).await.json();
    settings["administrationTokenExpiration"] = json!(0.05);
    let r = a
        .appgate(Method::PUT, path, Some(&ta), Some(settings))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let before = cluster.leases_under(sessions).len();
    let short = b.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(cluster.leases_under(sessions).len(), before + 1);
    assert_eq!(
        get(&a, &short, "00000000-0000-0000-0000-000000000000")
            .await
            .status,
        404
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while cluster.leases_under(sessions).len() > before {
        assert!(
            std::time::Instant::now() < deadline,
            "the short session is still in etcd"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(
        get(&b, &short, "00000000-0000-0000-0000-000000000000")
            .await
            .status,
        401
    );
    // The long sessions are still there and work.
    const NONE: &str = "00000000-0000-0000-0000-000000000000";
    assert_eq!(get(&b, &ta, NONE).await.status, 404);

    // Leases revoked by an operator: their sessions end on every node, and the next logins
    // (whose lease the node had handed out already) get new ones.
    let mut settings = a.appgate(Method::GET, path, Some(&ta), None).await.json();
    settings["administrationTokenExpiration"] = json!(720);
    let r = a
        .appgate(Method::PUT, path, Some(&ta), Some(settings))
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let revoked = cluster.leases_under(sessions);
    for lease in &revoked {
        cluster.etcdctl(&["lease", "revoke", &format!("{lease:x}")]);
    }
    assert_eq!(get(&b, &ta, NONE).await.status, 401);
    for node in [&a, &b] {
        let token = node.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(get(node, &token, NONE).await.status, 404);
    }
    let leases = cluster.leases_under(sessions);
    assert_eq!(leases.len(), 2, "{leases:?}");
    assert!(
        leases.iter().all(|l| *l != 0 && !revoked.contains(l)),
        "{leases:?} {revoked:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn name_ordered_lists_page_through_etcd_from_either_end() {
    let cluster = Cluster::start();
    let (a, b) = two_nodes(&cluster, "pages").await;
    let (ta, tb) = (a.admin_token().await, b.admin_token().await);
    // More than the first pages the engine reads (128, then 256), written over both nodes.
    let names: Vec<String> = (0..420).map(|i| format!("page {i:04}")).collect();
    for chunk in names.chunks(30) {
        let creates: Vec<_> = chunk
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let (s, t) = if i % 2 == 0 { (&a, &ta) } else { (&b, &tb) };
                create(s, t, n)
            })
            .collect();
        for r in futures_util::future::join_all(creates).await {
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
    }
    let listed = |s: &'static str| {
        let (a, ta) = (&a, &ta);
        async move {
            let r = a
                .appgate(Method::GET, &format!("{PROFILES}?{s}"), Some(ta), None)
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let j = r.json();
            assert_eq!(j["totalCount"], 420, "{j}");
            j["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["name"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        }
    };
    let mut descending = names.clone();
    descending.reverse();
    assert_eq!(listed("range=0-100").await, names[..100]);
    assert_eq!(listed("range=120-140").await, names[120..140]);
    assert_eq!(listed("range=380-420").await, names[380..]);
    assert_eq!(listed("range=0-500").await, names);
    assert_eq!(
        listed("descending=true&range=0-100").await,
        descending[..100]
    );
    assert_eq!(
        listed("descending=true&range=250-420").await,
        descending[250..]
    );
}

/// One etcd member serving its clients over TLS (a certificate of a CA made here), with
/// authentication on: `root` and a user `profiled` allowed only the keys under `tls/`.
struct TlsMember {
    dir: tempfile::TempDir,
    endpoint: String,
    child: std::process::Child,
}

impl TlsMember {
    fn start() -> TlsMember {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "profiled test etcd CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let server = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        let path = |n: &str| dir.path().join(n);
        std::fs::write(path("ca.pem"), ca_cert.pem()).unwrap();
        std::fs::write(path("server.pem"), server.pem()).unwrap();
        std::fs::write(path("server-key.pem"), key.serialize_pem()).unwrap();
        let ports: Vec<u16> = (0..2)
            .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
            .collect::<Vec<_>>()
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        let endpoint = format!("127.0.0.1:{}", ports[0]);
        let peer = format!("http://127.0.0.1:{}", ports[1]);
        let child = std::process::Command::new("etcd")
            .args(["--name", "tls0", "--data-dir"])
            .arg(path("member"))
            .arg("--listen-client-urls")
            .arg(format!("https://{endpoint}"))
            .arg("--advertise-client-urls")
            .arg(format!("https://{endpoint}"))
            .args([
                "--listen-peer-urls",
                &peer,
                "--initial-advertise-peer-urls",
                &peer,
            ])
            .arg("--initial-cluster")
            .arg(format!("tls0={peer}"))
            .arg("--cert-file")
            .arg(path("server.pem"))
            .arg("--key-file")
            .arg(path("server-key.pem"))
            .args(["--log-level", "warn"])
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(path("member.log")).unwrap())
            .spawn()
            .unwrap();
        let member = TlsMember {
            dir,
            endpoint,
            child,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !member.etcdctl_ok(&["endpoint", "health"]) {
            assert!(
                std::time::Instant::now() < deadline,
                "etcd over TLS did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        for args in [
            &["user", "add", "root:root-password-1"][..],
            &["role", "add", "profiled"],
            &[
                "role",
                "grant-permission",
                "profiled",
                "--prefix=true",
                "readwrite",
                "tls/",
            ],
            &["user", "add", "profiled:etcd-password-1"],
            &["user", "grant-role", "profiled", "profiled"],
            &["auth", "enable"],
        ] {
            assert!(member.etcdctl_ok(args), "etcdctl {args:?}");
        }
        member
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn etcdctl_ok(&self, args: &[&str]) -> bool {
        std::process::Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg("--endpoints")
            .arg(format!("https://{}", self.endpoint))
            .arg("--cacert")
            .arg(self.ca())
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    }

    fn options(&self, user: &str, password: &str, ca: bool) -> profiled::store::EtcdOptions {
        let mut etcd =
            profiled::store::EtcdOptions::parse(&format!("etcd://{}", self.endpoint)).unwrap();
        etcd.prefix = "tls".into();
        etcd.user = Some(user.into());
        etcd.password = Some(password.into());
        etcd.ca_cert = ca.then(|| self.ca());
        etcd
    }
}

impl Drop for TlsMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_reaches_etcd_over_tls_as_a_user_limited_to_its_prefix() {
    let member = TlsMember::start();
    // A user allowed only the installation's prefix, over TLS verified against the CA: the
    // whole API works (records, sessions and their leases, the failed-login counts, ids).
    let etcd = member.options("profiled", "etcd-password-1", true);
    let node = TestServer::start_with(move |c| c.store.etcd = Some(etcd)).await;
    let token = node.admin_token().await;
    let created = create(&node, &token, "over tls").await;
    assert_eq!(created.status, 200, "{:?}", created.body);
    let id = created.json()["id"].as_str().unwrap().to_string();
    assert_eq!(get(&node, &token, &id).await.json()["name"], "over tls");
    let r = node
        .appgate_login_response(ADMIN_EMAIL, "not the password")
        .await;
    assert_eq!(r.status, 401);
    add_account(&node, "second@example.com", "adminRole").await;
    let r = node
        .appgate(
            Method::GET,
            "/admin/client-profiles?query=tls",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.json()["data"][0]["id"], id.as_str(), "{:?}", r.body);
    let r = node.request(Method::GET, "/readyz", &[], "").await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // Refused, with a message that names the cause and never the password: a wrong password,
    // and a connection that does not trust the member's certificate.
    let open = |etcd: profiled::store::EtcdOptions| {
        let dir = tempfile::tempdir().unwrap();
        let options = profiled::store::StoreOptions {
            etcd: Some(etcd),
            ..Default::default()
        };
        profiled::store::Store::open(dir.path(), &options)
            .err()
            .expect("refused")
            .to_string()
    };
    let wrong = open(member.options("profiled", "wrong-password-9", true));
    assert!(!wrong.contains("wrong-password-9"), "{wrong}");
    assert!(
        wrong.contains("authentication failed") || wrong.contains("invalid"),
        "{wrong}"
    );
    let untrusted = open(member.options("profiled", "etcd-password-1", false));
    assert!(!untrusted.contains("etcd-password-1"), "{untrusted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_session_cap_holds_over_every_node() {
    const NONE: &str = "00000000-0000-0000-0000-000000000000";
    let cluster = Cluster::start();
    let (a, b) = two_nodes_with(&cluster, "cap", |c| c.max_sessions_per_account = 2).await;
    let email = "capped@example.com";
    add_account(&a, email, "adminRole").await;
    let works = |token: String| {
        let (a, b) = (&a, &b);
        async move {
            let on_a = get(a, &token, NONE).await.status;
            let on_b = get(b, &token, NONE).await.status;
            assert_eq!(on_a, on_b, "the nodes disagree");
            on_a == 404
        }
    };
    // Logins taking turns over the nodes: the third ends the oldest, wherever it was made.
    let first = a.login(email, ACCOUNT_PASSWORD).await;
    let second = b.login(email, ACCOUNT_PASSWORD).await;
    let third = a.login(email, ACCOUNT_PASSWORD).await;
    assert!(!works(first).await);
    assert!(works(second.clone()).await);
    assert!(works(third.clone()).await);
    // A session that ended otherwise (a logout on B) leaves its place to the next login.
    let r = b.appgate(Method::POST, LOGOUT, Some(&second), None).await;
    assert_eq!(r.status, 204);
    let fourth = b.login(email, ACCOUNT_PASSWORD).await;
    assert!(works(third.clone()).await);
    assert!(works(fourth.clone()).await);
    let fifth = a.login(email, ACCOUNT_PASSWORD).await;
    assert!(!works(third).await);
    assert!(works(fourth).await);
    assert!(works(fifth).await);
}
