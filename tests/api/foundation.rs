//! The HTTP core: version, Accept negotiation, routing errors, body limits, media types,
//! timeouts and the connection cap.

use std::time::{Duration, Instant};

use hyper::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

#[tokio::test]
async fn version_needs_no_login_and_no_vendor_accept() {
    let s = TestServer::start().await;
    for accept in [None, Some("application/json")] {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
        let r = s.request(Method::GET, "/admin/version", &headers, "").await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.json(),
            json!({"peerVersion": 23, "lowestPeerVersionSupported": 18})
        );
    }
    let r = s.request(Method::POST, "/admin/version", &[], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
}

fn not_acceptable(received: &str) -> serde_json::Value {
    json!({
        "id": "not acceptable",
        "message": format!("Invalid 'Accept' header. Current version: application/vnd.appgate.peer-v23+json, Received: {received}"),
        "minSupportedVersion": 18,
        "maxSupportedVersion": 23,
    })
}

#[tokio::test]
async fn wrong_accept_is_406_with_the_version_window_before_authentication() {
    let s = TestServer::start().await;
    let cases = [
        None,
        Some("*/*"),
        Some("application/json"),
        Some("application/vnd.appgate.peer-v5+json"),
        Some("application/vnd.appgate.peer-v0+json"),
        Some("application/vnd.appgate.peer-v17+json"),
        Some("application/vnd.appgate.peer-v24+json"),
        Some("application/vnd.appgate.peer-vX+json"),
    ];
    for accept in cases {
        for (method, path) in [
            (Method::POST, "/admin/login"),
            (Method::POST, "/admin/authentication/logout"),
            (Method::GET, "/admin/client-profiles"),
        ] {
            let headers: Vec<(&str, &str)> = accept.map(|a| ("accept", a)).into_iter().collect();
            // No token at all: the Accept check must come first.
            let r = s.request(method.clone(), path, &headers, "").await;
            assert_eq!(r.status, 406, "{accept:?} on {path}");
            assert_eq!(r.json(), not_acceptable(accept.unwrap_or("")), "{accept:?}");
        }
    }
}

#[tokio::test]
async fn every_version_in_the_window_is_accepted() {
    let s = TestServer::start().await;
    for v in 18..=23 {
        let accept = format!("application/vnd.appgate.peer-v{v}+json");
        let r = s
            .request(
                Method::POST,
                "/admin/authentication/logout",
                &[("accept", &accept)],
                "",
            )
            .await;
        // Past the Accept check, the missing token is what is refused.
        assert_eq!(r.status, 401, "v{v}");
    }
}

#[tokio::test]
async fn unknown_paths_are_404_and_wrong_methods_405_with_allow_in_each_dialect() {
    let s = TestServer::start().await;
    let r = s
        .appgate(Method::GET, "/admin/no-such-thing", None, None)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["id"], "not found");

    let r = s.appgate(Method::GET, "/admin/login", None, None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(r.json()["id"], "method not allowed");

    let r = s
        .occ(Method::GET, "/ccadmin/v1/no-such-thing", None, None)
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["errorCode"], "404");
    assert_eq!(r.json()["status"], "404");

    let r = s.occ(Method::DELETE, "/ccadmin/v1/login", None, None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST"));
    assert_eq!(r.json()["status"], "405");

    let r = s.request(Method::GET, "/elsewhere", &[], "").await;
    assert_eq!(r.status, 404);
    let r = s.request(Method::GET, "/administrator", &[], "").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn malformed_json_and_wrong_media_types_are_refused_in_the_dialect() {
    let s = TestServer::start().await;
    let r = s
        .request(
            Method::POST,
            "/admin/login",
            &[("accept", ACCEPT_V23), ("content-type", "application/json")],
            "{\"providerName\": ",
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["id"], "bad request");

    let r = s
        .request(
            Method::POST,
            "/admin/login",
            &[("accept", ACCEPT_V23), ("content-type", "text/plain")],
            "{}",
        )
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["id"], "unsupported media type");

    let r = s
        .request(
            Method::POST,
            "/ccadmin/v1/login",
            &[("content-type", "application/json")],
            "{}",
        )
        .await;
    assert_eq!(r.status, 415);
    assert_eq!(r.json()["errorCode"], "415");
}

#[tokio::test]
async fn bodies_over_64_kib_are_413_with_or_without_content_length() {
    let s = TestServer::start().await;
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(70 * 1024));
    let r = s
        .request(
            Method::POST,
            "/admin/login",
            &[("accept", ACCEPT_V23), ("content-type", "application/json")],
            big.clone(),
        )
        .await;
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["id"], "payload too large");

    // Chunked: no Content-Length to refuse up front, so the cap must hold while reading.
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    let head = "POST /ccadmin/v1/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    for _ in 0..20 {
        let chunk = "b".repeat(8 * 1024);
        let framed = format!("{:x}\r\n{chunk}\r\n", chunk.len());
        if stream.write_all(framed.as_bytes()).await.is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"errorCode\":\"413\""), "{answer}");
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    // The test configuration allows 2 s for headers.
    let s = TestServer::start().await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(b"GET /admin/version HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(8), stream.read(&mut buf))
        .await
        .expect("the server closes the connection before 8 s");
    // Closed (0 bytes), reset, or an error status: anything but a served request.
    if let Ok(n) = read {
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(n == 0 || !text.starts_with("HTTP/1.1 200"), "{text}");
    }
    assert!(start.elapsed() >= Duration::from_millis(1500));
}

#[tokio::test]
async fn a_body_that_never_arrives_gets_408() {
    let s = TestServer::start().await;
    let mut stream = TcpStream::connect(s.addr).await.unwrap();
    stream
        .write_all(
            b"POST /ccadmin/v1/login HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\ngrant_type",
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(8), async {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                break;
            }
        }
    })
    .await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"errorCode\":\"408\""), "{answer}");
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let s = TestServer::start_with(|c| c.max_connections = 1).await;
    // The first connection holds the only slot (keep-alive, idle).
    let mut first = TcpStream::connect(s.addr).await.unwrap();
    first
        .write_all(b"GET /admin/version HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = first.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    let second = tokio::spawn({
        let addr = s.addr;
        async move {
            send(
                addr,
                Method::GET,
                "/admin/version",
                &[],
                bytes::Bytes::new(),
            )
            .await
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!second.is_finished(), "served beyond the connection cap");
    drop(first);
    let r = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("served once the slot is free")
        .unwrap();
    assert_eq!(r.status, 200);
}
