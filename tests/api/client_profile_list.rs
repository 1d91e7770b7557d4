//! `GET /admin/client-profiles`: paging, ordering, queries, filters and the envelope.

use hyper::Method;
use serde_json::{Value, json};

use crate::client_profiles::{PROFILES, create};
use crate::helpers::*;

async fn list(s: &TestServer, t: &str, query: &str) -> Value {
    let r = s
        .appgate(Method::GET, &format!("{PROFILES}{query}"), Some(t), None)
        .await;
    assert_eq!(r.status, 200, "{query}: {:?}", r.json());
    r.json()
}

fn names(list: &Value) -> Vec<&str> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

/// Five profiles, created out of name order.
async fn five(s: &TestServer, t: &str) {
    for (name, tags, idp, notes) in [
        ("delta", json!(["aws", "prod"]), "ldap", "fourth"),
        ("Bravo", json!(["gcp"]), "local", "second"),
        ("echo", json!([]), "local", "fifth, for AWS users"),
        ("alpha", json!(["aws"]), "local", "first"),
        ("Charlie", json!(["azure"]), "ldap", "third"),
    ] {
        create(
            s,
            t,
            json!({"name": name, "tags": tags, "identityProviderName": idp, "notes": notes}),
        )
        .await;
    }
}

#[tokio::test]
async fn an_empty_list() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    assert_eq!(
        list(&s, &t, "").await,
        json!({"data": [], "range": "0-0/0", "orderBy": "name", "descending": false, "queries": [], "totalCount": 0, "filterBy": []})
    );
    assert_eq!(list(&s, &t, "?range=0-10").await["range"], "0-0/0");
    assert_eq!(list(&s, &t, "?query=x&range=0-10").await["range"], "0-0/0");
}

#[tokio::test]
async fn paging_and_ordering() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    five(&s, &t).await;
    let all = list(&s, &t, "").await;
    assert_eq!(names(&all), ["alpha", "Bravo", "Charlie", "delta", "echo"]);
    assert_eq!(all["range"], "0-5/5");
    assert_eq!(all["totalCount"], 5);
    assert_eq!(
        all["data"][0]["type"], "Profile",
        "items are whole profiles"
    );

    let first = list(&s, &t, "?range=0-2").await;
    assert_eq!(names(&first), ["alpha", "Bravo"]);
    assert_eq!(first["range"], "0-2/5");
    let second = list(&s, &t, "?range=2-4").await;
    assert_eq!(names(&second), ["Charlie", "delta"]);
    assert_eq!(second["range"], "2-4/5");
    let past = list(&s, &t, "?range=4-10").await;
    assert_eq!(names(&past), ["echo"]);
    assert_eq!(past["range"], "4-5/5");
    assert_eq!(list(&s, &t, "?range=9-12").await["range"], "5-5/5");

    let desc = list(&s, &t, "?descending=true&range=0-2").await;
    assert_eq!(names(&desc), ["echo", "delta"]);
    assert_eq!(desc["descending"], true);
    assert_eq!(desc["range"], "0-2/5");
    assert_eq!(
        names(&list(&s, &t, "?descending=true&range=3-5").await),
        ["Bravo", "alpha"]
    );
    assert_eq!(list(&s, &t, "?descending=false").await["descending"], false);

    let by_created = list(&s, &t, "?orderBy=created").await;
    assert_eq!(by_created["orderBy"], "created");
    assert_eq!(
        names(&by_created),
        ["delta", "Bravo", "echo", "alpha", "Charlie"]
    );
    let by_idp = list(
        &s,
        &t,
        "?orderBy=identityProviderName&descending=true&range=0-3",
    )
    .await;
    assert_eq!(
        names(&by_idp),
        ["echo", "Bravo", "alpha"],
        "ties go by name"
    );
    assert_eq!(by_idp["range"], "0-3/5");
    let unknown = list(&s, &t, "?orderBy=colour").await;
    assert_eq!(
        unknown["orderBy"], "name",
        "an unknown field falls back to name"
    );
    assert_eq!(names(&unknown), names(&all));
    assert_eq!(
        names(&list(&s, &t, "?range=oops").await).len(),
        5,
        "a malformed range is ignored"
    );
}

#[tokio::test]
async fn queries_narrow_and_filters_match_substrings() {
    let s = TestServer::start().await;
    let t = s.admin_token().await;
    five(&s, &t).await;
    let aws = list(&s, &t, "?query=AWS").await;
    assert_eq!(
        names(&aws),
        ["alpha", "delta", "echo"],
        "tags and notes, any case"
    );
    assert_eq!(aws["queries"], json!(["AWS"]));
    assert_eq!(aws["range"], "0-3/3");
    assert_eq!(aws["totalCount"], 5, "totalCount ignores the query");
    let narrower = list(&s, &t, "?query=aws&query=ldap").await;
    assert_eq!(names(&narrower), ["delta"]);
    assert_eq!(narrower["queries"], json!(["aws", "ldap"]));
    // terraform looks a profile up by name this way.
    let tf = list(&s, &t, "?query=charlie&orderBy=name&range=0-10").await;
    assert_eq!(names(&tf), ["Charlie"]);
    assert_eq!(tf["range"], "0-1/1");
    let paged = list(&s, &t, "?query=aws&range=1-2").await;
    assert_eq!(names(&paged), ["delta"]);
    assert_eq!(paged["range"], "1-2/3");

    let filtered = list(&s, &t, "?tags=aw&identityProviderName=LOC&colour=red").await;
    assert_eq!(names(&filtered), ["alpha"]);
    assert_eq!(
        filtered["filterBy"],
        json!([{"name": "tags", "value": "aw"}, {"name": "identityProviderName", "value": "LOC"}]),
        "unknown keys are ignored"
    );
    assert_eq!(filtered["range"], "0-1/1");
    assert_eq!(filtered["totalCount"], 5);
    assert_eq!(
        names(&list(&s, &t, "?name=a&descending=true").await),
        ["delta", "Charlie", "Bravo", "alpha"]
    );
    assert_eq!(names(&list(&s, &t, "?query=zzz").await), Vec::<&str>::new());
}
