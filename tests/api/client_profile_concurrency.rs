//! Name uniqueness under concurrent creates and renames.

use std::sync::Arc;

use hyper::Method;
use serde_json::json;

use crate::client_profiles::{PROFILES, create, profile};
use crate::helpers::*;

const N: usize = 32;

fn tally(statuses: &[u16]) -> (usize, usize) {
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 409),
        "{statuses:?}"
    );
    let ok = statuses.iter().filter(|s| **s == 200).count();
    (ok, statuses.len() - ok)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_of_one_name() {
    let s = Arc::new(TestServer::start().await);
    let t = Arc::new(s.admin_token().await);
    let tasks: Vec<_> = (0..N)
        .map(|i| {
            let (s, t) = (s.clone(), t.clone());
            // Different spellings of one name, each with its own id.
            let name = if i % 2 == 0 { "Contested" } else { "CONTESTED" };
            tokio::spawn(async move {
                s.appgate(Method::POST, PROFILES, Some(&t), Some(profile(name)))
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(tally(&statuses), (1, N - 1));
    let list = s
        .appgate(Method::GET, PROFILES, Some(&t), None)
        .await
        .json();
    assert_eq!(list["totalCount"], 1);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["range"], "0-1/1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_renames_to_one_name() {
    let s = Arc::new(TestServer::start().await);
    let t = Arc::new(s.admin_token().await);
    let mut ids = Vec::new();
    for i in 0..N {
        ids.push(
            create(&s, &t, profile(&format!("p{i}"))).await["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    let tasks: Vec<_> = ids
        .iter()
        .map(|id| {
            let (s, t, path) = (s.clone(), t.clone(), format!("{PROFILES}/{id}"));
            tokio::spawn(async move {
                s.appgate(Method::PUT, &path, Some(&t), Some(profile("Target")))
                    .await
                    .status
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(tally(&statuses), (1, N - 1));
    let list = s
        .appgate(
            Method::GET,
            &format!("{PROFILES}?name=target"),
            Some(&t),
            None,
        )
        .await
        .json();
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list}");
    let all = s
        .appgate(Method::GET, PROFILES, Some(&t), None)
        .await
        .json();
    assert_eq!(all["totalCount"], N);
    assert_eq!(
        all["data"].as_array().unwrap().len(),
        N,
        "every profile is still listed once"
    );
    // The losers kept their names; the winner's old name is free again.
    let winner = list["data"][0]["id"].as_str().unwrap();
    let old = ids.iter().position(|id| id == winner).unwrap();
    let r = s
        .appgate(
            Method::POST,
            PROFILES,
            Some(&t),
            Some(json!({"name": format!("P{old}"), "identityProviderName": "l"})),
        )
        .await;
    assert_eq!(r.status, 200);
    let loser = (old + 1) % N;
    let r = s
        .appgate(
            Method::POST,
            PROFILES,
            Some(&t),
            Some(profile(&format!("p{loser}"))),
        )
        .await;
    assert_eq!(r.status, 409);
}
