//! The binary's request log: one line per request, written by a thread of its own, complete
//! when the process stops, and without secrets.

use bytes::Bytes;
use hyper::Method;

use crate::helpers::*;

#[tokio::test]
async fn every_request_has_one_line_and_the_last_ones_survive_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let p = Process::start(dir.path(), Some(ADMIN_PASSWORD));
    let r = p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(r.status, 200);
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let auth = format!("Bearer {token}");
    const N: usize = 200;
    for i in 0..N {
        let r = send(
            p.addr,
            Method::GET,
            &format!("/admin/log-probe-{i:04}"),
            &[("accept", ACCEPT_V23), ("authorization", &auth)],
            Bytes::new(),
        )
        .await;
        assert_eq!(r.status, 404);
    }
    let id = "0b6a4d57-3ad5-4c39-9d39-3e2f6c7e6a10";
    let r = send(
        p.addr,
        Method::GET,
        &format!("/admin/client-profiles/{id}"),
        &[("accept", ACCEPT_V23), ("authorization", &auth)],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 404);
    // Stopped right after the last answer: what is still queued must be written out.
    p.signal("-TERM");
    let (status, err) = p.wait();
    assert!(status.success(), "{err}");
    // Lines name the route, never the path: the probes' paths are nowhere in the log.
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("route=appgate.unmatched") && l.contains("status=404"))
        .collect();
    assert_eq!(lines.len(), N, "{lines:?}");
    assert!(
        !err.contains("/admin/log-probe-"),
        "a raw path reached the log"
    );
    assert!(
        err.lines()
            .any(|l| l.contains("route=appgate.client_profiles.get") && l.contains("status=404")),
        "{err}"
    );
    assert!(!err.contains(id), "an id from a path reached the log");
    assert!(!err.contains(&token), "the token reached the log");
    assert!(
        !err.contains(ADMIN_PASSWORD),
        "the password reached the log"
    );
}
