//! Hardening (issue 15): concurrent guesses, the lockout table's memory, per-address login
//! limits, the session cap, per-address connection limits, slowloris eviction and the cap on
//! request heads.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::helpers::*;

const OTHER_CLIENT: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// Sends all `passwords` for the administrator at once, each on its own connection, in order;
/// returns the statuses in the same order.
async fn burst(s: &TestServer, passwords: Vec<String>) -> Vec<u16> {
    burst_at(s.addr, passwords, tokio::sync::mpsc::unbounded_channel().0).await
}

/// `burst`, also reporting each status on `done` as it comes.
async fn burst_at(
    addr: std::net::SocketAddr,
    passwords: Vec<String>,
    done: tokio::sync::mpsc::UnboundedSender<u16>,
) -> Vec<u16> {
    let tasks: Vec<_> = passwords
        .into_iter()
        .map(|p| {
            let body = serde_json::json!({"providerName": "local", "deviceId": DEVICE_ID, "username": ADMIN_EMAIL, "password": p});
            let done = done.clone();
            tokio::spawn(async move {
                let status = send(
                    addr,
                    Method::POST,
                    "/admin/login",
                    &[("accept", ACCEPT_V23), ("content-type", "application/json")],
                    serde_json::to_vec(&body).unwrap().into(),
                )
                .await
                .status;
                let _ = done.send(status);
                status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simultaneous_wrong_passwords_check_at_most_five_and_lock_the_account() {
    let s = TestServer::start().await;
    let statuses = burst(&s, vec!["wrong-password-1".to_string(); 100]).await;
    let checked = statuses.iter().filter(|&&st| st == 401).count();
    let refused = statuses.iter().filter(|&&st| st == 429).count();
    assert_eq!(checked, 5, "{statuses:?}");
    assert_eq!(refused, 95, "{statuses:?}");
    let r = s.appgate_login_response(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_right_password_after_a_burst_of_wrong_ones_is_refused() {
    let s = TestServer::start().await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let wrong = tokio::spawn(burst_at(
        s.addr,
        vec!["wrong-password-1".to_string(); 39],
        tx,
    ));
    // The first wrong guess has been checked: the burst has arrived and holds the slots.
    assert_eq!(rx.recv().await, Some(401));
    let r = s.appgate_login_response(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 429, "{:?}", r.json());
    let statuses = wrong.await.unwrap();
    assert_eq!(
        statuses.iter().filter(|&&st| st == 401).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&st| st == 429).count(),
        34,
        "{statuses:?}"
    );
}

#[tokio::test]
async fn an_over_long_user_name_is_refused_in_each_dialect_before_anything_is_remembered() {
    let s = TestServer::start().await;
    let long = format!("{}@example.com", "a".repeat(243));
    assert_eq!(long.chars().count(), 255);
    for _ in 0..6 {
        let r = s.appgate_login_response(&long, "wrong-password-1").await;
        assert_eq!(r.status, 422, "{:?}", r.json());
        assert_eq!(r.json()["errors"][0]["field"], "username");
        let r = s.occ_login_response(&long, "wrong-password-1").await;
        assert_eq!(r.status, 400, "{:?}", r.json());
        assert_eq!(r.json()["o:errorPath"], "username");
    }
    assert_eq!(s.app.auth.lockout_usage()[0].0, 0);
    // 254 characters is still a user name: a plain failed login.
    let r = s
        .appgate_login_response(&long[1..], "wrong-password-1")
        .await;
    assert_eq!(r.status, 401);
}

#[tokio::test]
async fn failed_logins_are_forgotten_once_their_window_has_passed() {
    // A window long enough for ten failed checks on a loaded machine (with 500 ms the
    // first entries could expire before the count under a full parallel test run).
    let s = TestServer::start_with(|c| c.lockout = Duration::from_millis(3000)).await;
    for i in 0..10 {
        let r = s
            .appgate_login_response(&format!("ghost{i}@example.com"), "wrong-password-1")
            .await;
        assert_eq!(r.status, 401);
    }
    // (Some may be gone already on a slow machine.)
    let (entries, bytes) = s.app.auth.lockout_usage()[0];
    assert!(entries > 0 && bytes > 0, "{entries} {bytes}");
    // Past the window and the sweep interval, the next failure sweeps them out.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let r = s
        .appgate_login_response("ghost-last@example.com", "wrong-password-1")
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(s.app.auth.lockout_usage()[0].0, 1);
}

#[tokio::test]
async fn one_address_is_slowed_before_it_can_lock_an_account_others_use() {
    let s = TestServer::start_with(|c| c.login_limit_loopback = true).await;
    let attacker: IpAddr = "127.0.0.1".parse().unwrap();
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let r = s
            .appgate_login_from(attacker, ADMIN_EMAIL, "wrong-password-1")
            .await;
        if r.status == 429 {
            let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
        }
        statuses.push(r.status);
    }
    // The default burst of 3, then 429 for this address.
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
    // The account is not locked: another client logs in.
    let r = s
        .appgate_login_from(OTHER_CLIENT, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    assert_eq!(r.status, 200);
    // And the address stays limited for any account, even with a right password.
    let r = s
        .appgate_login_from(attacker, ADMIN_EMAIL, ADMIN_PASSWORD)
        .await;
    assert_eq!(r.status, 429);
}

#[tokio::test]
async fn loopback_is_not_held_to_the_per_address_login_limit_by_default() {
    let s = TestServer::start().await;
    for _ in 0..4 {
        let r = s
            .appgate_login_response("ghost@example.com", "wrong-password-1")
            .await;
        assert_eq!(r.status, 401);
    }
    // The fourth failure did not block the address: other accounts still log in.
    assert_eq!(
        s.appgate_login_response(ADMIN_EMAIL, ADMIN_PASSWORD)
            .await
            .status,
        200
    );
}

async fn verify(s: &TestServer, token: &str) -> u16 {
    s.occ(Method::POST, "/ccadmin/v1/verify", Some(token), None)
        .await
        .status
}

#[tokio::test]
async fn an_account_holds_at_most_the_configured_sessions_and_the_oldest_ends_first() {
    assert_eq!(profiled::Config::new("x").max_sessions_per_account, 100);
    let s = TestServer::start_with(|c| c.max_sessions_per_account = 3).await;
    let mut tokens = Vec::new();
    for _ in 0..4 {
        tokens.push(s.admin_token().await);
    }
    assert_eq!(verify(&s, &tokens[0]).await, 401, "the oldest ended");
    for t in &tokens[1..] {
        assert_eq!(verify(&s, t).await, 200);
    }
    // A logged-out session frees its place: the next login ends nothing.
    let r = s
        .occ(Method::POST, "/ccadmin/v1/logout", Some(&tokens[1]), None)
        .await;
    assert_eq!(r.status, 200);
    tokens.push(s.occ_login(ADMIN_EMAIL, ADMIN_PASSWORD).await);
    for t in &tokens[2..] {
        assert_eq!(verify(&s, t).await, 200);
    }
    // After a restart the sessions are counted again from the database.
    let s = s.restart().await;
    let newest = s.admin_token().await;
    assert_eq!(verify(&s, &tokens[2]).await, 401);
    for t in [&tokens[3], &tokens[4], &newest] {
        assert_eq!(verify(&s, t).await, 200);
    }
}

/// A connection from `local` that sends an unfinished request head and then nothing.
async fn slowloris(local: IpAddr, addr: std::net::SocketAddr) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind((local, 0).into()).ok()?;
    let mut stream = socket.connect(addr).await.ok()?;
    stream
        .write_all(b"GET /admin/version HTTP/1.1\r\nhost: x\r\n")
        .await
        .ok()?;
    Some(stream)
}

async fn timed_version(local: IpAddr, addr: std::net::SocketAddr) -> (u16, Duration) {
    let start = Instant::now();
    let r = send_from(
        local,
        addr,
        Method::GET,
        "/admin/version",
        &[],
        bytes::Bytes::new(),
    )
    .await;
    (r.status, start.elapsed())
}

#[tokio::test]
async fn eleven_hundred_slowloris_sockets_from_one_address_leave_room_for_others() {
    // Defaults: 1024 connections, 256 per address.
    let s = TestServer::start().await;
    let attacker: IpAddr = "127.0.0.1".parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..1100 {
        held.extend(slowloris(attacker, s.addr).await);
    }
    // Let the server accept (and refuse) them all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, took) = timed_version(OTHER_CLIENT, s.addr).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "{took:?}");
    drop(held);
}

#[tokio::test]
async fn when_full_a_connection_without_a_request_head_gives_up_its_slot() {
    let s = TestServer::start_with(|c| {
        c.max_connections = 8;
        c.max_connections_per_address = 0;
        c.evict_idle_after = Duration::from_millis(300);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(
            slowloris("127.0.0.1".parse().unwrap(), s.addr)
                .await
                .unwrap(),
        );
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (status, took) = timed_version("127.0.0.1".parse().unwrap(), s.addr).await;
    assert_eq!(status, 200);
    // The test configuration's header timeout (2 s) would have freed a slot much later.
    assert!(took < Duration::from_secs(1), "{took:?}");
    // Exactly one slowloris lost its slot.
    let mut closed = 0;
    for mut stream in held {
        let mut buf = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(20), stream.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 1);
}

#[tokio::test]
async fn a_request_head_over_16_kib_is_431_and_a_smaller_one_is_served() {
    let s = TestServer::start().await;
    let filler = "a".repeat(12 * 1024);
    let r = s
        .request(Method::GET, "/admin/version", &[("x-filler", &filler)], "")
        .await;
    assert_eq!(r.status, 200);

    // Complete, but too large.
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let head = format!(
        "GET /admin/version HTTP/1.1\r\nhost: x\r\nx-filler: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");

    // Unfinished: refused as soon as 16 KiB have come, not kept until the header timeout.
    let start = Instant::now();
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let _ = stream
        .write_all(
            format!(
                "GET /admin/version HTTP/1.1\r\nx-filler: {}",
                "b".repeat(32 * 1024)
            )
            .as_bytes(),
        )
        .await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert!(start.elapsed() < Duration::from_secs(1));
}
