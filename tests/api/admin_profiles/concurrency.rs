//! E-mail uniqueness under concurrent creates and updates.

use hyper::Method;
use serde_json::json;
use tokio::task::JoinSet;

use super::*;
use crate::helpers::*;

const N: usize = 32;

/// `n` spellings of one address that differ only in letter case.
fn spellings(email: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            email
                .chars()
                .enumerate()
                .map(|(j, c)| {
                    if i >> (j % 6) & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect()
        })
        .collect()
}

/// Counts 200s and 409-with-22006s; anything else fails the test.
async fn tally(mut set: JoinSet<TestResponse>) -> (usize, usize) {
    let (mut ok, mut taken) = (0, 0);
    while let Some(r) = set.join_next().await {
        let r = r.expect("request task");
        match r.status {
            200 => ok += 1,
            _ => {
                assert_error(&r, 409, "22006");
                taken += 1;
            }
        }
    }
    (ok, taken)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_creates_with_one_email() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let (token, _) = admin(&s).await;
    let emails = spellings("race@example.com", N);
    assert_eq!(
        emails
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        N
    );
    let mut set = JoinSet::new();
    for email in emails {
        let (s, token) = (s.clone(), token.clone());
        set.spawn(async move {
            let body =
                json!({"firstName": "R", "lastName": "C", "email": email, "roles": ["adminRole"]});
            create(&s, &token, body).await
        });
    }
    assert_eq!(tally(set).await, (1, N - 1));
    let q = format!(
        "?queryFormat=SCIM&q={}",
        urlencode(r#"email eq "RACE@example.com""#)
    );
    let list = s
        .occ(Method::GET, &format!("{BASE}{q}"), Some(&token), None)
        .await
        .json();
    assert_eq!(list["total"], 1);
    assert_eq!(
        s.occ(Method::GET, BASE, Some(&token), None).await.json()["total"],
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn simultaneous_updates_to_one_email() {
    let s = std::sync::Arc::new(TestServer::start().await);
    let (token, _) = admin(&s).await;
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(
            new_profile(
                &s,
                &token,
                &format!("user{i}@example.com"),
                &["adminRole"],
                None,
            )
            .await,
        );
    }
    let mut set = JoinSet::new();
    for (id, email) in ids.iter().cloned().zip(spellings("target@example.com", N)) {
        let (s, token) = (s.clone(), token.clone());
        set.spawn(async move { put(&s, &token, &id, json!({"email": email})).await });
    }
    assert_eq!(tally(set).await, (1, N - 1));

    // Exactly one holds the address; the winner's old address is free, the others' are kept.
    let mut winners = 0;
    for (i, id) in ids.iter().enumerate() {
        let email = get(&s, &token, id).await.json()["email"]
            .as_str()
            .unwrap()
            .to_lowercase();
        let old = format!("user{i}@example.com");
        let again =
            json!({"firstName": "A", "lastName": "B", "email": old, "roles": ["adminRole"]});
        if email == "target@example.com" {
            winners += 1;
            assert_eq!(create(&s, &token, again).await.status, 200);
        } else {
            assert_eq!(email, old);
            assert_error(&create(&s, &token, again).await, 409, "22006");
        }
    }
    assert_eq!(winners, 1);
}
