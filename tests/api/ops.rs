//! What an operator's tools see: `/healthz`, `/readyz` (flipping to 503 when the store refuses
//! writes), `/metrics` parsed by Prometheus's own text parser, `--metrics false`, and JSON log
//! lines.

use bytes::Bytes;
use hyper::Method;
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn health_and_readiness_need_no_token_and_readiness_follows_the_store() {
    let s = TestServer::start().await;
    let r = s.request(Method::GET, "/healthz", &[], "").await;
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    let r = s.request(Method::GET, "/readyz", &[], "").await;
    assert_eq!((r.status, r.json()), (200, json!({"status": "ready"})));
    let t = s.admin_token().await;
    // As after a failed flush: writes are refused, and /readyz says so; /healthz does not.
    s.app.store.refuse_writes_as_after_a_failed_flush();
    let r = s.request(Method::GET, "/readyz", &[], "").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["status"], "unavailable");
    assert!(r.json()["reason"].as_str().unwrap().contains("flush"));
    let r = s
        .appgate(
            Method::POST,
            "/admin/client-profiles",
            Some(&t),
            Some(json!({"name": "n", "identityProviderName": "local"})),
        )
        .await;
    assert_eq!(r.status, 503);
    assert_eq!(
        s.request(Method::GET, "/healthz", &[], "").await.status,
        200
    );
    assert_eq!(
        s.request(Method::POST, "/healthz", &[], "").await.status,
        405
    );
    assert_eq!(
        s.request(Method::GET, "/nowhere", &[], "").await.status,
        404
    );
}

/// Parses an OpenMetrics scrape with the Prometheus project's Python client; the samples as
/// (name, labels, value) lines.
fn parse_with_prometheus(text: &str) -> Vec<(String, Value, f64)> {
    const PARSER: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value])
print(json.dumps(out))
"#;
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args(["-c", PARSER])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the Prometheus parser refused the scrape: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let samples: Vec<(String, Value, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    samples
}

fn value(samples: &[(String, Value, f64)], name: &str, labels: Value) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name
                && labels
                    .as_object()
                    .unwrap()
                    .iter()
                    .all(|(k, v)| l.get(k) == Some(v))
        })
        .map(|(_, _, v)| *v)
}

#[tokio::test]
async fn a_scrape_parses_and_its_labels_hold_no_ids_names_or_e_mails() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    let r = s
        .appgate(
            Method::POST,
            "/admin/client-profiles",
            Some(&t),
            Some(json!({"name": "Secret Office Name", "identityProviderName": "local"})),
        )
        .await;
    let id = r.json()["id"].as_str().unwrap().to_string();
    s.appgate(
        Method::GET,
        &format!("/admin/client-profiles/{id}"),
        Some(&t),
        None,
    )
    .await;
    assert_eq!(
        s.appgate_login_response(ADMIN_EMAIL, "wrong-password-1")
            .await
            .status,
        401
    );
    let r = s.request(Method::GET, "/metrics", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = String::from_utf8_lossy(&r.body).to_string();
    for secret in [id.as_str(), "Secret Office Name", ADMIN_EMAIL, &t] {
        assert!(!text.contains(secret), "{secret} in the scrape");
    }
    let samples = parse_with_prometheus(&text);
    let get = |name: &str, labels: Value| value(&samples, name, labels);
    assert!(
        get(
            "profiled_http_requests_total",
            json!({"route": "appgate.client_profiles.get", "method": "GET", "status": "200"})
        )
        .is_some_and(|v| v >= 1.0)
    );
    assert!(
        get(
            "profiled_http_request_duration_seconds_count",
            json!({"route": "appgate.client_profiles.create"})
        )
        .is_some_and(|v| v >= 1.0)
    );
    assert!(
        get(
            "profiled_logins_total",
            json!({"dialect": "appgate", "outcome": "failure"})
        )
        .is_some_and(|v| v >= 1.0)
    );
    assert!(get("profiled_group_commit_rounds_total", json!({})).is_some_and(|v| v >= 1.0));
    assert!(
        get("profiled_group_commit_writes_per_round_count", json!({})).is_some_and(|v| v >= 1.0)
    );
    assert!(get("profiled_group_commit_flush_seconds_count", json!({})).is_some_and(|v| v >= 1.0));
    assert_eq!(get("profiled_client_profiles", json!({})), Some(1.0));
    assert_eq!(get("profiled_accounts", json!({})), Some(1.0));
    assert!(get("profiled_open_connections", json!({})).is_some_and(|v| v >= 1.0));
    assert!(get("profiled_process_resident_memory_bytes", json!({})).is_some_and(|v| v > 1e6));
    assert!(get("profiled_lockouts_total", json!({})).is_some());
}

#[tokio::test]
async fn metrics_can_be_turned_off() {
    let s = TestServer::start_with(|c| c.metrics = false).await;
    assert_eq!(
        s.request(Method::GET, "/metrics", &[], "").await.status,
        404
    );
    assert_eq!(
        s.request(Method::GET, "/healthz", &[], "").await.status,
        200
    );
}

#[tokio::test]
async fn json_log_lines_carry_the_route_status_latency_client_and_account() {
    let dir = tempfile::tempdir().unwrap();
    let p = Process::try_start(
        dir.path(),
        Some(ADMIN_PASSWORD),
        &["--log-format", "json", "--metrics", "false"],
        &[],
    )
    .unwrap();
    let r = p.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let token = r.json()["access_token"].as_str().unwrap().to_string();
    let r = send(
        p.addr,
        Method::GET,
        "/ccadmin/v1/adminProfiles/current",
        &[("authorization", &format!("Bearer {token}"))],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, 200);
    let me = r.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        send(p.addr, Method::GET, "/metrics", &[], Bytes::new())
            .await
            .status,
        404
    );
    p.signal("-TERM");
    let (status, err) = p.wait();
    assert!(status.success(), "{err}");
    let lines: Vec<Value> = err
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let request = lines
        .iter()
        .find(|l| l["route"] == "occ.admin_profiles.current.get")
        .expect("a line for the request");
    assert_eq!(request["target"], "profiled::request");
    assert_eq!(request["status"], 200);
    assert!(request["micros"].as_u64().is_some());
    assert_eq!(request["client"], "127.0.0.1");
    assert_eq!(request["account"], me.as_str());
    assert!(!err.contains(&token) && !err.contains(ADMIN_PASSWORD));
}

#[tokio::test]
async fn while_the_store_opens_health_answers_readiness_says_why_and_api_requests_wait() {
    let dir = tempfile::tempdir().unwrap();
    // A debug-build hook holds the open for 3 s (as the index check after a crash does).
    let p = Process::start_with_env(
        &dir.path().join("db"),
        Some(ADMIN_PASSWORD),
        &[("PROFILED_TEST_OPEN_DELAY_MS", "3000")],
    );
    let started = std::time::Instant::now();
    // An API request sent now waits for the open store instead of failing.
    let version = tokio::spawn(send(
        p.addr,
        Method::GET,
        "/admin/version",
        &[],
        Bytes::new(),
    ));

    let health = send(p.addr, Method::GET, "/healthz", &[], Bytes::new()).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json(), json!({"status": "ok"}));
    let ready = send(p.addr, Method::GET, "/readyz", &[], Bytes::new()).await;
    assert_eq!(
        ready.status,
        503,
        "{}",
        String::from_utf8_lossy(&ready.body)
    );
    assert_eq!(
        ready.json(),
        json!({"status": "unavailable", "reason": "opening the database"})
    );
    assert_eq!(ready.header("retry-after"), Some("1"));
    assert_eq!(ready.header("connection"), Some("close"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "the probes waited for the open: {:?}",
        started.elapsed()
    );

    let version = version.await.unwrap();
    assert_eq!(
        version.status,
        200,
        "{}",
        String::from_utf8_lossy(&version.body)
    );
    assert!(started.elapsed() >= std::time::Duration::from_secs(2));
    let ready = send(p.addr, Method::GET, "/readyz", &[], Bytes::new()).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json(), json!({"status": "ready"}));
}
