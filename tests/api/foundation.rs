//! The foundation: version, Accept negotiation, logins in both dialects, tokens, lockout,
//! limits, routing errors, shutdown and restart.

use hyper::Method;
use serde_json::json;

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
}
