//! The crash test: the real binary under concurrent client-profile and admin-profile writes
//! (with deliberate name and e-mail collisions) is killed with SIGKILL at random moments,
//! restarted on the same directory, and checked against every acknowledged answer.
//!
//! Seeded: the seed is printed, and `PROFILED_CRASH_SEED=<n>` replays the same choices
//! (`PROFILED_CRASH_ROUNDS` changes the number of rounds, default 20). The clients, the model
//! and its verification are shared with the same test against etcd (`etcd_commands`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// splitmix64: small, seedable, good enough to pick operations.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const CLIENTS: usize = 12;
const PROFILES_PER_CLIENT: usize = 6;
const ACCOUNTS_PER_CLIENT: usize = 2;
/// Names and e-mails come from small pools so that clients collide.
const NAME_POOL: u64 = 30;
const EMAIL_POOL: u64 = 20;

/// What a client profile looks like for this test: absent, or its name and notes.
type Cp = Option<(String, String)>;

struct Profile {
    id: String,
    acked: Cp,
    /// The outcome of a write that got no answer: it may or may not have happened.
    pending: Option<Cp>,
    exported_acked: bool,
}

#[derive(Clone, Debug, PartialEq)]
struct Acct {
    email: String,
    first: String,
}

struct Account {
    id: Option<String>,
    acked: Option<Acct>,
    pending: Option<Acct>,
}

pub(crate) struct Client {
    rng: Rng,
    profiles: Vec<Profile>,
    accounts: Vec<Account>,
}

fn appgate_headers(auth: &str) -> Vec<(&str, &str)> {
    vec![
        ("accept", ACCEPT_V23),
        ("authorization", auth),
        ("content-type", "application/json"),
    ]
}

fn pick_name(rng: &mut Rng) -> String {
    let n = rng.below(NAME_POOL);
    // Same name in other letter case: the index compares case-insensitively.
    if rng.below(2) == 0 {
        format!("Crash-{n}")
    } else {
        format!("crash-{n}")
    }
}

fn pick_email(rng: &mut Rng) -> String {
    let n = rng.below(EMAIL_POOL);
    if rng.below(2) == 0 {
        format!("User{n}@Example.com")
    } else {
        format!("user{n}@example.com")
    }
}

/// One client's work until the server dies under it.
pub(crate) async fn drive(
    mut c: Client,
    addr: std::net::SocketAddr,
    token: String,
    dead: Arc<AtomicBool>,
) -> Client {
    let auth = format!("Bearer {token}");
    while !dead.load(Ordering::Relaxed) {
        if c.rng.below(4) == 0 {
            let i = c.rng.below(c.accounts.len() as u64) as usize;
            account_op(&mut c, i, addr, &auth).await;
        } else {
            let i = c.rng.below(c.profiles.len() as u64) as usize;
            profile_op(&mut c, i, addr, &auth).await;
        }
        if c.profiles.iter().any(|p| p.pending.is_some())
            || c.accounts.iter().any(|a| a.pending.is_some())
        {
            // An unanswered write: the server is gone.
            break;
        }
    }
    c
}

async fn profile_op(c: &mut Client, i: usize, addr: std::net::SocketAddr, auth: &str) {
    let roll = c.rng.below(10);
    let name = pick_name(&mut c.rng);
    let notes = format!("n{}", c.rng.below(1000));
    let p = &mut c.profiles[i];
    let path = format!("/admin/client-profiles/{}", p.id);
    let headers = appgate_headers(auth);
    match &p.acked {
        None => {
            let body =
                json!({"id": p.id, "name": name, "notes": notes, "identityProviderName": "local"});
            let after = Some((name, notes));
            match try_send(
                addr,
                Method::POST,
                "/admin/client-profiles",
                &headers,
                Bytes::from(body.to_string()),
            )
            .await
            {
                None => p.pending = Some(after),
                Some(r) if r.status == 200 => {
                    p.acked = after;
                    p.exported_acked = false;
                }
                Some(r) => assert_eq!(
                    r.status,
                    409,
                    "create: {:?}",
                    String::from_utf8_lossy(&r.body)
                ),
            }
        }
        Some(_) if roll < 5 => {
            let body = json!({"name": name, "notes": notes, "identityProviderName": "local"});
            let after = Some((name, notes));
            match try_send(
                addr,
                Method::PUT,
                &path,
                &headers,
                Bytes::from(body.to_string()),
            )
            .await
            {
                None => p.pending = Some(after),
                Some(r) if r.status == 200 => p.acked = after,
                Some(r) => assert_eq!(
                    r.status,
                    409,
                    "rename: {:?}",
                    String::from_utf8_lossy(&r.body)
                ),
            }
        }
        Some(_) if roll < 7 => {
            match try_send(addr, Method::DELETE, &path, &headers, Bytes::new()).await {
                None => p.pending = Some(None),
                Some(r) => {
                    assert_eq!(r.status, 204, "delete");
                    p.acked = None;
                    p.exported_acked = false;
                }
            }
        }
        Some(_) => {
            let url = format!("{path}/url");
            match try_send(addr, Method::GET, &url, &headers, Bytes::new()).await {
                // An export that got no answer changes nothing this test compares.
                None => p.pending = Some(p.acked.clone()),
                Some(r) => {
                    assert_eq!(
                        r.status,
                        200,
                        "export: {:?}",
                        String::from_utf8_lossy(&r.body)
                    );
                    p.exported_acked = true;
                }
            }
        }
    }
}

async fn account_op(c: &mut Client, i: usize, addr: std::net::SocketAddr, auth: &str) {
    let email = pick_email(&mut c.rng);
    let first = format!("F{}", c.rng.below(1000));
    let a = &mut c.accounts[i];
    let after = Acct {
        email: email.clone(),
        first: first.clone(),
    };
    let headers = vec![
        ("authorization", auth),
        ("content-type", "application/json"),
    ];
    match &a.id {
        None => {
            let body = json!({"firstName": first, "lastName": "Crash", "email": email, "roles": ["clientProfileViewerRole"]});
            match try_send(
                addr,
                Method::POST,
                "/ccadmin/v1/adminProfiles",
                &headers,
                Bytes::from(body.to_string()),
            )
            .await
            {
                None => a.pending = Some(after),
                Some(r) if r.status == 200 => {
                    a.id = Some(r.json()["id"].as_str().unwrap().to_string());
                    a.acked = Some(after);
                }
                Some(r) => assert_eq!(
                    r.status,
                    409,
                    "account create: {:?}",
                    String::from_utf8_lossy(&r.body)
                ),
            }
        }
        Some(id) => {
            let body = json!({"firstName": first, "email": email});
            let path = format!("/ccadmin/v1/adminProfiles/{id}");
            match try_send(
                addr,
                Method::PUT,
                &path,
                &headers,
                Bytes::from(body.to_string()),
            )
            .await
            {
                None => a.pending = Some(after),
                Some(r) if r.status == 200 => a.acked = Some(after),
                Some(r) => assert_eq!(
                    r.status,
                    409,
                    "account update: {:?}",
                    String::from_utf8_lossy(&r.body)
                ),
            }
        }
    }
}

async fn get(addr: std::net::SocketAddr, auth: &str, path: &str, appgate: bool) -> TestResponse {
    let mut headers = vec![("authorization", auth)];
    if appgate {
        headers.push(("accept", ACCEPT_V23));
    }
    send(addr, Method::GET, path, &headers, Bytes::new()).await
}

/// Checks the restarted server against the model and adopts what it finds.
pub(crate) async fn verify(
    clients: &mut [Client],
    addr: std::net::SocketAddr,
    token: &str,
    round: usize,
) {
    let auth = format!("Bearer {token}");
    let mut names = HashSet::new();
    let mut ids = HashSet::new();
    for c in clients.iter_mut() {
        for p in &mut c.profiles {
            let r = get(
                addr,
                &auth,
                &format!("/admin/client-profiles/{}", p.id),
                true,
            )
            .await;
            let actual: Cp = match r.status {
                200 => {
                    let v = r.json();
                    if p.exported_acked && p.pending.is_none() {
                        assert!(
                            v["exported"].is_string(),
                            "round {round}: acknowledged export lost for {}",
                            p.id
                        );
                    }
                    Some((
                        v["name"].as_str().unwrap().into(),
                        v["notes"].as_str().unwrap().into(),
                    ))
                }
                404 => None,
                s => panic!("round {round}: GET {} answered {s}", p.id),
            };
            assert!(
                actual == p.acked || Some(&actual) == p.pending.as_ref(),
                "round {round}: profile {} is {actual:?}; acknowledged {:?}, unanswered {:?}",
                p.id,
                p.acked,
                p.pending
            );
            if actual != p.acked {
                p.exported_acked = false;
            }
            p.acked = actual;
            p.pending = None;
            if let Some((name, _)) = &p.acked {
                assert!(
                    names.insert(name.to_lowercase()),
                    "round {round}: name {name} held twice"
                );
                ids.insert(p.id.clone());
            }
        }
    }
    // The list agrees: exactly the profiles that exist, no name twice.
    let r = get(addr, &auth, "/admin/client-profiles?range=0-100000", true).await;
    assert_eq!(r.status, 200);
    let listed: HashSet<String> = r.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        listed, ids,
        "round {round}: the list disagrees with the records"
    );

    // Accounts: page through all of them.
    let mut all: Vec<Value> = Vec::new();
    loop {
        let r = get(
            addr,
            &auth,
            &format!("/ccadmin/v1/adminProfiles?limit=250&offset={}", all.len()),
            false,
        )
        .await;
        assert_eq!(r.status, 200);
        let items = r.json()["items"].as_array().unwrap().clone();
        let n = items.len();
        all.extend(items);
        if n < 250 {
            break;
        }
    }
    let mut emails = HashSet::new();
    for a in &all {
        let e = a["email"].as_str().unwrap().to_lowercase();
        assert!(
            emails.insert(e.clone()),
            "round {round}: e-mail {e} held twice"
        );
    }
    let by_id: HashMap<&str, &Value> = all.iter().map(|a| (a["id"].as_str().unwrap(), a)).collect();
    let mut known: HashSet<String> = clients
        .iter()
        .flat_map(|c| c.accounts.iter().filter_map(|a| a.id.clone()))
        .collect();
    for c in clients.iter_mut() {
        for a in &mut c.accounts {
            if let Some(id) = &a.id {
                let v = by_id
                    .get(id.as_str())
                    .unwrap_or_else(|| panic!("round {round}: acknowledged account {id} is gone"));
                let actual = Acct {
                    email: v["email"].as_str().unwrap().into(),
                    first: v["firstName"].as_str().unwrap().into(),
                };
                assert!(
                    Some(&actual) == a.acked.as_ref() || Some(&actual) == a.pending.as_ref(),
                    "round {round}: account {id} is {actual:?}; acknowledged {:?}, unanswered {:?}",
                    a.acked,
                    a.pending
                );
                a.acked = Some(actual);
            } else if let Some(p) = a.pending.take() {
                // An unanswered create may have happened: adopt the account if it is there.
                if let Some(v) = all.iter().find(|v| {
                    !known.contains(v["id"].as_str().unwrap())
                        && v["email"] == p.email.as_str()
                        && v["firstName"] == p.first.as_str()
                }) {
                    let id = v["id"].as_str().unwrap().to_string();
                    known.insert(id.clone());
                    a.id = Some(id);
                    a.acked = Some(p);
                }
            }
            a.pending = None;
        }
    }
    // Every account is the administrator or one the model knows.
    for a in &all {
        let id = a["id"].as_str().unwrap();
        assert!(
            known.contains(id) || a["email"] == ADMIN_EMAIL,
            "round {round}: unexpected account {a}"
        );
    }
}

fn offline_check(dir: &std::path::Path, must_be_clean: bool) {
    let out = offline_check_output(dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!stdout.contains("damaged:"), "{stdout}");
    if must_be_clean {
        assert!(out.status.success(), "{stdout}");
    }
}

/// The client profiles the model holds as existing.
pub(crate) fn existing(clients: &[Client]) -> usize {
    clients
        .iter()
        .flat_map(|c| &c.profiles)
        .filter(|p| p.acked.is_some())
        .count()
}

/// The seed of this run: `PROFILED_CRASH_SEED`, else the clock.
pub(crate) fn seed() -> u64 {
    std::env::var("PROFILED_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// The clients of a run, each with its own random choices, and nothing acknowledged yet.
pub(crate) fn new_clients(seed: u64) -> Vec<Client> {
    (0..CLIENTS)
        .map(|k| Client {
            rng: Rng(seed ^ (k as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D)),
            profiles: (0..PROFILES_PER_CLIENT)
                .map(|_| Profile {
                    id: uuid::Uuid::new_v4().to_string(),
                    acked: None,
                    pending: None,
                    exported_acked: false,
                })
                .collect(),
            accounts: (0..ACCOUNTS_PER_CLIENT)
                .map(|_| Account {
                    id: None,
                    acked: None,
                    pending: None,
                })
                .collect(),
        })
        .collect()
}

/// Exports need a host: sets `profileHostname` through the server at `addr`.
pub(crate) async fn set_profile_hostname(addr: std::net::SocketAddr, token: &str) {
    let auth = format!("Bearer {token}");
    let r = send(
        addr,
        Method::GET,
        "/admin/global-settings",
        &appgate_headers(&auth),
        Bytes::new(),
    )
    .await;
    let mut s = r.json();
    s["profileHostname"] = json!("crash.example.com");
    let r = send(
        addr,
        Method::PUT,
        "/admin/global-settings",
        &appgate_headers(&auth),
        Bytes::from(s.to_string()),
    )
    .await;
    assert_eq!(r.status, 204);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_writes_survive_kill_9() {
    let seed = seed();
    let rounds: usize = std::env::var("PROFILED_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    eprintln!("crash test: seed {seed}, {rounds} rounds (replay with PROFILED_CRASH_SEED={seed})");
    let mut rng = Rng(seed);
    let dir = tempfile::tempdir().unwrap();
    let mut clients = new_clients(seed);
    let mut settings_done = false;
    for round in 0..rounds {
        let p = Process::start(dir.path(), Some(ADMIN_PASSWORD));
        let token = p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        assert_eq!(
            token.status, 200,
            "round {round}: the server answers after a restart"
        );
        let token = token.json()["access_token"].as_str().unwrap().to_string();
        if !settings_done {
            set_profile_hostname(p.addr, &token).await;
            settings_done = true;
        }
        verify(&mut clients, p.addr, &token, round).await;

        let dead = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = clients
            .drain(..)
            .map(|c| tokio::spawn(drive(c, p.addr, token.clone(), dead.clone())))
            .collect();
        tokio::time::sleep(Duration::from_millis(50 + rng.below(400))).await;
        p.signal("-KILL");
        dead.store(true, Ordering::Relaxed);
        for t in tasks {
            clients.push(t.await.unwrap());
        }
        p.wait();
        offline_check(dir.path(), false);
    }
    // Last round: verify, stop cleanly, and every invariant must hold offline.
    let p = Process::start(dir.path(), Some(ADMIN_PASSWORD));
    let token = p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.json()["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    verify(&mut clients, p.addr, &token, rounds).await;
    p.signal("-TERM");
    let (status, _) = p.wait();
    assert!(status.success());
    offline_check(dir.path(), true);
    let existing = existing(&clients);
    eprintln!("crash test: {rounds} kills survived; {existing} client profiles at the end");
}
