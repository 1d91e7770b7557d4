//! `GET /adminProfiles` (envelope, paging, sorting, fields, SCIM filters) and `/adminRoles`.

use std::time::Duration;

use hyper::Method;
use serde_json::{Value, json};

use super::*;
use crate::helpers::*;

/// The administrator plus five profiles; returns the token and the ids (admin first).
async fn setup(s: &TestServer) -> (String, Vec<String>) {
    let (token, admin_id) = admin(s).await;
    let mut ids = vec![admin_id];
    for (email, first, last, active) in [
        ("carol@example.com", "Mia", "Zeta", true),
        ("Bob@example.com", "bob", "Young", false),
        ("alice@example.com", "Zara", "Xavier", true),
        ("dave@example.com", "Dave", "Alpha", true),
        ("erin@example.com", "erin", "Young", true),
    ] {
        // Registration dates are shown in milliseconds: keep them apart.
        tokio::time::sleep(Duration::from_millis(3)).await;
        let body = json!({"firstName": first, "lastName": last, "email": email,
                          "active": active, "roles": ["clientProfileViewerRole"]});
        let r = create(s, &token, body).await;
        ids.push(r.json()["id"].as_str().unwrap().to_string());
    }
    (token, ids)
}

async fn list(s: &TestServer, token: &str, query: &str) -> TestResponse {
    s.occ(Method::GET, &format!("{BASE}{query}"), Some(token), None)
        .await
}

/// The items' ids as indexes into `ids` (0 = the administrator).
fn order(body: &Value, ids: &[String]) -> Vec<usize> {
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|i| ids.iter().position(|id| *id == i["id"]).unwrap())
        .collect()
}

fn scim(filter: &str) -> String {
    format!("?queryFormat=SCIM&q={}", urlencode(filter))
}

#[tokio::test]
async fn the_envelope_paging_and_fields() {
    let s = TestServer::start().await;
    let (token, ids) = setup(&s).await;
    let body = list(&s, &token, "").await.json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "total",
            "totalResults",
            "offset",
            "limit",
            "sort",
            "items",
            "links"
        ]
    );
    assert_eq!(
        (body["total"].clone(), body["totalResults"].clone()),
        (json!(6), json!(6))
    );
    assert_eq!(
        (body["offset"].clone(), body["limit"].clone()),
        (json!(0), json!(250))
    );
    assert_eq!(body["sort"], json!([{"property": "id", "order": "asc"}]));
    assert_eq!(order(&body, &ids), [0, 1, 2, 3, 4, 5]);
    assert_eq!(body["items"][1], get(&s, &token, &ids[1]).await.json());
    assert_eq!(
        body["links"],
        json!([{"rel": "self", "href": format!("http://{}{BASE}", s.addr)}])
    );

    let query = "?limit=2&offset=2&totalResults=false&x-extra=%20y";
    let body = list(&s, &token, query).await.json();
    assert_eq!(order(&body, &ids), [2, 3]);
    assert_eq!(
        (
            body["total"].clone(),
            body["offset"].clone(),
            body["limit"].clone()
        ),
        (json!(6), json!(2), json!(2))
    );
    assert!(body.get("totalResults").is_none());
    assert_eq!(
        body["links"][0]["href"],
        json!(format!("http://{}{BASE}{query}", s.addr))
    );

    let body = list(&s, &token, "?limit=999&offset=5").await.json();
    assert_eq!(
        (body["limit"].clone(), order(&body, &ids)),
        (json!(250), vec![5])
    );
    let body = list(&s, &token, "?offset=100").await.json();
    assert_eq!(
        (body["total"].clone(), body["items"].clone()),
        (json!(6), json!([]))
    );

    let body = list(&s, &token, "?fields=id,email,nonesuch&limit=1")
        .await
        .json();
    assert_eq!(
        body["items"],
        json!([{"id": ids[0], "email": "admin@localhost"}])
    );

    for (query, path) in [
        ("?limit=abc", "limit"),
        ("?limit=-1", "limit"),
        ("?offset=1.5", "offset"),
        ("?totalResults=maybe", "totalResults"),
        ("?sort=password", "sort"),
        ("?sort=email:upwards", "sort"),
        ("?sort=,", "sort"),
    ] {
        let e = assert_error(&list(&s, &token, query).await, 400, "22007");
        assert_eq!(e["o:errorPath"], path, "{query}");
    }
}

#[tokio::test]
async fn every_sort_property_both_ways() {
    let s = TestServer::start().await;
    let (token, ids) = setup(&s).await;
    for (property, asc) in [
        ("id", vec![0, 1, 2, 3, 4, 5]),
        ("email", vec![0, 3, 2, 1, 4, 5]),
        ("firstName", vec![0, 2, 4, 5, 1, 3]),
        ("lastName", vec![0, 4, 3, 2, 5, 1]),
        ("registrationDate", vec![0, 1, 2, 3, 4, 5]),
    ] {
        let body = list(&s, &token, &format!("?sort={property}:asc"))
            .await
            .json();
        assert_eq!(order(&body, &ids), asc, "{property} asc");
        assert_eq!(
            body["sort"],
            json!([{"property": property, "order": "asc"}])
        );
        let body = list(&s, &token, &format!("?sort={property}:DESC"))
            .await
            .json();
        let mut desc = asc.clone();
        desc.reverse();
        if property == "lastName" {
            // Ties (two "Young") stay in id order.
            desc = vec![1, 2, 5, 3, 4, 0];
        }
        assert_eq!(order(&body, &ids), desc, "{property} desc");
        assert_eq!(
            body["sort"],
            json!([{"property": property, "order": "desc"}])
        );
    }
    // No order means asc; several keys; names are matched without regard to case.
    let body = list(&s, &token, "?sort=LASTNAME,firstName:desc")
        .await
        .json();
    assert_eq!(order(&body, &ids), [0, 4, 3, 5, 2, 1]);
    assert_eq!(
        body["sort"],
        json!([{"property": "lastName", "order": "asc"}, {"property": "firstName", "order": "desc"}])
    );
}

#[tokio::test]
async fn scim_filters() {
    let s = TestServer::start().await;
    let (token, ids) = setup(&s).await;
    let date3 = get(&s, &token, &ids[3]).await.json()["registrationDate"].clone();
    let cases: Vec<(String, Vec<usize>)> = vec![
        (r#"email eq "BOB@example.com""#.into(), vec![2]),
        (r#"email co "example""#.into(), vec![1, 2, 3, 4, 5]),
        (r#"firstName sw "E""#.into(), vec![5]),
        (r#"lastName ew "NG""#.into(), vec![2, 5]),
        (r#"lastName ne "young""#.into(), vec![0, 1, 3, 4]),
        ("active eq false".into(), vec![2]),
        ("not (active eq true)".into(), vec![2]),
        (format!("registrationDate ge {date3}"), vec![3, 4, 5]),
        (format!("registrationDate lt {date3}"), vec![0, 1, 2]),
        (format!(r#"id eq "{}""#, ids[4]), vec![4]),
        (r#"firstName pr and email sw "a""#.into(), vec![0, 3]),
        // and binds tighter than or; parentheses change that.
        (
            r#"firstName eq "Mia" or lastName eq "Young" and active eq false"#.into(),
            vec![1, 2],
        ),
        (
            r#"(firstName eq "Mia" or lastName eq "Young") and active eq false"#.into(),
            vec![2],
        ),
        // not binds tighter than and.
        (
            r#"not active eq false and lastName eq "Young""#.into(),
            vec![5],
        ),
        (
            r#"not (active eq false and lastName eq "Young")"#.into(),
            vec![0, 1, 3, 4, 5],
        ),
        (r#"email eq "quote\"d\\@example.com""#.into(), vec![]),
    ];
    for (filter, want) in cases {
        let body = list(&s, &token, &scim(&filter)).await.json();
        assert_eq!(order(&body, &ids), want, "{filter}");
        assert_eq!(body["total"], json!(want.len()));
    }
    // Filter, sort and page together; an empty q filters nothing.
    let q = format!("{}&sort=email:desc&limit=2", scim(r#"email co "example""#));
    let body = list(&s, &token, &q).await.json();
    assert_eq!(
        (order(&body, &ids), body["total"].clone()),
        (vec![5, 4], json!(5))
    );
    assert_eq!(
        list(&s, &token, "?q=&queryFormat=SCIM").await.json()["total"],
        6
    );

    // Bad filters: 400 22007 naming the position; hostile ones too, and the server lives on.
    let e = assert_error(&list(&s, &token, &scim("email eq")).await, 400, "22007");
    assert_eq!(e["o:errorPath"], "q");
    assert!(e["message"].as_str().unwrap().contains("position 8"), "{e}");
    for (filter, needle) in [
        (r#"nickname eq "x""#.to_string(), "position 0"),
        (r#"email eq "x" or"#.to_string(), "position 15"),
        (r#"email eq "unterminated"#.to_string(), "position 9"),
        ("(".repeat(5000), "longer than"),
        (
            format!("{}active eq true{}", "(".repeat(40), ")".repeat(40)),
            "nested",
        ),
        ("not ".repeat(100) + "active eq true", "nested"),
        (
            format!("email eq \"{}\"", "x".repeat(10_000)),
            "longer than",
        ),
    ] {
        let r = list(&s, &token, &scim(&filter)).await;
        let e = assert_error(&r, 400, "22007");
        assert!(e["message"].as_str().unwrap().contains(needle), "{e}");
    }
    let e = assert_error(
        &list(&s, &token, &format!("?q={}", urlencode("active eq true"))).await,
        400,
        "22007",
    );
    assert_eq!(e["o:errorPath"], "queryFormat");
    assert_eq!(list(&s, &token, "").await.status, 200);
}

#[tokio::test]
async fn the_role_catalogue() {
    let s = TestServer::start().await;
    let (token, _) = admin(&s).await;
    let body = s
        .occ(Method::GET, "/ccadmin/v1/adminRoles", Some(&token), None)
        .await
        .json();
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "total",
            "totalResults",
            "offset",
            "limit",
            "sort",
            "items",
            "links"
        ]
    );
    assert_eq!(body["total"], 15);
    let ids: Vec<&str> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    for want in [
        "adminRole",
        "clientProfileManagerRole",
        "clientProfileExporterRole",
        "clientProfileViewerRole",
        "catalogRole",
        "publishingRole",
    ] {
        assert!(ids.contains(&want), "{want}");
    }
    let role = |id: &str| {
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == id)
            .unwrap()
            .clone()
    };
    let admin_role = role("adminRole");
    assert_eq!(admin_role["repositoryId"], "adminRole");
    assert!(admin_role["name"].is_string() && admin_role["description"].is_string());
    for p in [
        "adminProfiles.list",
        "adminProfiles.create",
        "clientProfiles.delete",
        "globalSettings.edit",
    ] {
        assert!(
            admin_role["privileges"]
                .as_array()
                .unwrap()
                .contains(&json!(p)),
            "{p}"
        );
    }
    assert_eq!(
        role("clientProfileViewerRole")["privileges"],
        json!(["clientProfiles.view"])
    );
    assert_eq!(
        role("clientProfileExporterRole")["privileges"],
        json!(["clientProfiles.view", "clientProfiles.export"])
    );
    assert_eq!(role("catalogRole")["privileges"], json!([]));

    let page = s
        .occ(
            Method::GET,
            "/ccadmin/v1/adminRoles?sort=name:desc&limit=2&fields=id",
            Some(&token),
            None,
        )
        .await
        .json();
    assert_eq!(
        page["items"],
        json!([{"id": "settingsRole"}, {"id": "searchRole"}])
    );

    // Oracle's built-in roles are accepted and grant nothing here.
    new_profile(
        &s,
        &token,
        "cat@example.com",
        &["catalogRole", "mediaRole"],
        Some(PASSWORD),
    )
    .await;
    let cat = s.occ_login("cat@example.com", PASSWORD).await;
    assert_error(&list(&s, &cat, "").await, 403, "403");
    let r = s
        .occ(Method::GET, "/ccadmin/v1/adminRoles", Some(&cat), None)
        .await;
    assert_eq!(r.status, 200);
}
