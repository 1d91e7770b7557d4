//! The index against a plain scan of the same profiles (what lists did before it existed).

use time::OffsetDateTime;

use super::*;
use crate::store::profile_record;
use crate::store::profile_types::{ClientProfile, ProfileType, ProfileUrl};

fn profile(i: u64) -> ClientProfile {
    let words = [
        "Alpha", "beta", "GAMMA", "dëlta", "ÉCHO", "fox trot", "needle",
    ];
    let w = |k: u64| words[(k % words.len() as u64) as usize];
    let t = |s: i64| OffsetDateTime::from_unix_timestamp(1_600_000_000 + s).unwrap();
    let group = i % 7 == 3;
    ClientProfile {
        id: Uuid::from_u128(0x1234_5678_9abc_def0_u128.wrapping_mul(i as u128 + 1)),
        name: format!("{} {i}", w(i)),
        notes: if i.is_multiple_of(3) {
            String::new()
        } else {
            format!("note {} {}", w(i / 3), i % 5)
        },
        tags: (0..i % 3).map(|k| w(i + k).to_lowercase()).collect(),
        created: t((i * 7919 % 1000) as i64),
        updated: t((i % 10) as i64),
        exported: i.is_multiple_of(4).then(|| t(i as i64)),
        kind: if group {
            ProfileType::Group
        } else {
            ProfileType::Profile
        },
        spa_key_name: if group {
            String::new()
        } else if i.is_multiple_of(2) {
            format!("{}{i}", w(i))
        } else {
            format!("key{}", w(i + 2))
        },
        identity_provider_name: if group {
            String::new()
        } else {
            w(i + 1).into()
        },
        hostname: if group || i.is_multiple_of(5) {
            String::new()
        } else {
            format!("h{}.{}.example", i % 4, w(i + 3))
        },
        profile_urls: if group {
            vec![ProfileUrl {
                id: Uuid::from_u128(i as u128),
                url: "appgate://x/y".into(),
                hostname: "needle.example".into(),
                profile_name: "p".into(),
                weight: 1,
            }]
        } else {
            vec![]
        },
    }
}

fn put(s: &Search, p: &ClientProfile) {
    let record = profile_record::encode(p);
    let stored = IVec::from(record.clone());
    s.refresh(&p.id, || Ok(Some(stored)), Some(&record));
}

fn contains(h: &str, n: &str) -> bool {
    h.to_lowercase().contains(n)
}

fn field_matches(p: &ClientProfile, f: ProfileField, n: &str) -> bool {
    match f {
        ProfileField::Id => contains(&p.id.to_string(), n),
        ProfileField::Name => contains(&p.name, n),
        ProfileField::Notes => contains(&p.notes, n),
        ProfileField::Tags => p.tags.iter().any(|t| contains(t, n)),
        ProfileField::Type => contains(p.kind.as_str(), n),
        ProfileField::SpaKeyName => contains(&p.spa_key_name, n),
        ProfileField::IdentityProviderName => contains(&p.identity_provider_name, n),
        ProfileField::Hostname => contains(&p.hostname, n),
        _ => false,
    }
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortKey {
    Time(Option<i128>),
    Text(String),
}

fn sort_key(p: &ClientProfile, f: ProfileField) -> SortKey {
    let text = |s: &str| SortKey::Text(s.to_lowercase());
    let time = |t: Option<OffsetDateTime>| SortKey::Time(t.map(|t| t.unix_timestamp_nanos()));
    match f {
        ProfileField::Id => SortKey::Text(p.id.to_string()),
        ProfileField::Notes => text(&p.notes),
        ProfileField::Created => time(Some(p.created)),
        ProfileField::Updated => time(Some(p.updated)),
        ProfileField::Exported => time(p.exported),
        ProfileField::Type => text(p.kind.as_str()),
        ProfileField::SpaKeyName => text(&p.spa_key_name),
        ProfileField::IdentityProviderName => text(&p.identity_provider_name),
        ProfileField::Hostname => text(&p.hostname),
        _ => SortKey::Text(String::new()),
    }
}

/// The list as the plain scan computed it.
fn reference(all: &[ClientProfile], q: &ProfileQuery) -> (usize, Vec<Uuid>) {
    let queries: Vec<String> = q.queries.iter().map(|s| s.to_lowercase()).collect();
    let mut out: Vec<&ClientProfile> = all
        .iter()
        .filter(|p| {
            queries.iter().all(|n| {
                [
                    ProfileField::Name,
                    ProfileField::Notes,
                    ProfileField::Tags,
                    ProfileField::IdentityProviderName,
                    ProfileField::Hostname,
                ]
                .iter()
                .any(|f| field_matches(p, *f, n))
            }) && q
                .filters
                .iter()
                .all(|(f, v)| field_matches(p, *f, &v.to_lowercase()))
        })
        .collect();
    out.sort_by_cached_key(|p| (sort_key(p, q.order), p.name_key()));
    if q.descending {
        out.reverse();
    }
    let matched = out.len();
    let (start, end) = q.range.unwrap_or((0, matched));
    let ids = out.iter().take(end).skip(start).map(|p| p.id).collect();
    (matched, ids)
}

fn check(s: &Search, all: &[ClientProfile], q: ProfileQuery) {
    let found = s.run(&q);
    let (matched, ids) = reference(all, &q);
    assert_eq!(
        (found.matched, &found.ids),
        (matched, &ids),
        "queries {:?} filters {:?} order {:?} desc {} range {:?}",
        q.queries,
        q.filters,
        q.order,
        q.descending,
        q.range
    );
}

fn query(
    queries: &[&str],
    filters: &[(ProfileField, &str)],
    order: ProfileField,
    descending: bool,
    range: Option<(usize, usize)>,
) -> ProfileQuery {
    ProfileQuery {
        queries: queries.iter().map(|s| s.to_string()).collect(),
        filters: filters.iter().map(|(f, v)| (*f, v.to_string())).collect(),
        order,
        descending,
        range,
    }
}

#[test]
fn lists_agree_with_a_plain_scan() {
    let s = Search::new();
    let all: Vec<ClientProfile> = (0..700).map(profile).collect();
    for p in &all {
        put(&s, p);
    }
    let orders = [
        ProfileField::Name,
        ProfileField::Id,
        ProfileField::Notes,
        ProfileField::Created,
        ProfileField::Updated,
        ProfileField::Exported,
        ProfileField::Type,
        ProfileField::SpaKeyName,
        ProfileField::IdentityProviderName,
        ProfileField::Hostname,
    ];
    let queries: [&[&str]; 9] = [
        &[],
        &["needle"],
        &["NEEDLE"],
        &["Ël"],
        &["éc"],
        &["a", "1"],
        &[""],
        &["zzz"],
        &["key"],
    ];
    for (i, qs) in queries.iter().enumerate() {
        for (j, order) in orders.iter().enumerate() {
            let range = [
                None,
                Some((0, 10)),
                Some((5, 9)),
                Some((0, 0)),
                Some((2000, 3000)),
            ][(i + j) % 5];
            check(&s, &all, query(qs, &[], *order, (i + j) % 2 == 1, range));
        }
    }
    let filters: [(ProfileField, &str); 10] = [
        (ProfileField::Id, "9ABC"),
        (ProfileField::Name, "a 1"),
        (ProfileField::Notes, "NOTE b"),
        (ProfileField::Tags, "ga"),
        (ProfileField::Tags, ""),
        (ProfileField::Type, "grou"),
        (ProfileField::SpaKeyName, "alpha"),
        (ProfileField::IdentityProviderName, "fox"),
        (ProfileField::Hostname, "h1."),
        (ProfileField::Name, ""),
    ];
    for (i, f) in filters.iter().enumerate() {
        check(
            &s,
            &all,
            query(
                &[],
                &[*f],
                orders[i % orders.len()],
                i % 2 == 0,
                Some((0, 50)),
            ),
        );
        check(
            &s,
            &all,
            query(&["e"], &[*f], ProfileField::Name, false, None),
        );
    }
}

#[test]
fn replaced_and_removed_profiles_leave_nothing_behind() {
    let s = Search::new();
    let mut all: Vec<ClientProfile> = (0..300).map(profile).collect();
    for p in &all {
        put(&s, p);
    }
    // Enough rewrites to compact the segment's text several times.
    for round in 0..40 {
        for p in all.iter_mut().step_by(3) {
            p.name = format!("renamed {round} {}", p.id);
            put(&s, p);
        }
    }
    let removed: Vec<ClientProfile> = all.drain(..100).collect();
    for p in &removed {
        s.refresh(&p.id, || Ok(None), None);
    }
    assert_eq!(
        s.run(&query(
            &["renamed 3 "],
            &[],
            ProfileField::Name,
            false,
            None
        ))
        .matched,
        0
    );
    check(
        &s,
        &all,
        query(&["renamed 39"], &[], ProfileField::Created, false, None),
    );
    check(
        &s,
        &all,
        query(&[], &[], ProfileField::Name, true, Some((0, 1000))),
    );
    // Entries followed by freed bytes still end where they should.
    for order in [ProfileField::SpaKeyName, ProfileField::Hostname] {
        check(
            &s,
            &all,
            query(
                &["e"],
                &[(ProfileField::SpaKeyName, "a")],
                order,
                false,
                None,
            ),
        );
    }
    // Freed rows are reused.
    for p in &removed {
        put(&s, p);
    }
    all.extend(removed);
    check(&s, &all, query(&["a"], &[], ProfileField::Id, false, None));
    assert_eq!(s.lock_rows().next, 300);
}

#[test]
fn the_build_keeps_what_writers_indexed_meanwhile() {
    let db = crate::store::engine::sled::temporary();
    let records = db.open_tree("r").unwrap();
    let old = profile(1);
    let gone = profile(2);
    for p in [&old, &gone, &profile(3)] {
        records
            .insert(p.id.as_bytes(), profile_record::encode(p))
            .unwrap();
    }
    let s = Search::new();
    // Writers act before the build reaches these records: a rename, and a delete.
    let new = ClientProfile {
        name: "fresh name".into(),
        ..old.clone()
    };
    put(&s, &new);
    s.refresh(&gone.id, || Ok(None), None);
    s.build(&records);
    let found = s.run(&query(&[], &[], ProfileField::Name, false, None));
    assert_eq!(
        found.ids,
        [profile(3).id, new.id],
        "\"delta 3\" < \"fresh name\""
    );
    assert_eq!(*s.state.borrow(), State::Ready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_queries_share_scans_and_each_gets_its_own_answer() {
    let s = Arc::new(Search::new());
    let all: Vec<ClientProfile> = (0..500).map(profile).collect();
    for p in &all {
        put(&s, p);
    }
    s.lock_rows().touched = None;
    s.state.send_replace(State::Ready);
    let asked: Vec<ProfileQuery> = (0..64)
        .map(|i| {
            let needle = ["needle", "a", "ël", "needle"][i % 4];
            let range = Some((i % 3, 10 + i % 7));
            query(&[needle], &[], ProfileField::Name, i % 2 == 0, range)
        })
        .collect();
    let tasks: Vec<_> = asked
        .iter()
        .map(|q| {
            let (s, q) = (s.clone(), q.clone());
            tokio::spawn(async move { s.search(q).await.unwrap() })
        })
        .collect();
    for (task, q) in tasks.into_iter().zip(&asked) {
        let found = task.await.unwrap();
        assert_eq!((found.matched, found.ids), reference(&all, q), "{q:?}");
    }
}

#[test]
fn a_saved_index_loads_as_it_was_and_a_damaged_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = Search::new();
    let mut all: Vec<ClientProfile> = (0..(SEGMENT_ROWS as u64 + 300)).map(profile).collect();
    for p in &all {
        put(&s, p);
    }
    for p in all.drain(..50) {
        s.refresh(&p.id, || Ok(None), None);
    }
    let token = [7u8; 16];
    assert!(
        !s.save(dir.path(), &token).unwrap(),
        "nothing is saved while building"
    );
    s.lock_rows().touched = None;
    s.state.send_replace(State::Ready);
    assert!(s.save(dir.path(), &token).unwrap());

    let loaded = Search::new();
    let n = all.len() as u64;
    assert!(
        loaded.load(dir.path(), &[8u8; 16], n).is_err(),
        "another token"
    );
    assert!(
        loaded.load(dir.path(), &token, n + 1).is_err(),
        "another count"
    );
    loaded.load(dir.path(), &token, n).unwrap();
    assert_eq!(*loaded.state.borrow(), State::Ready);
    check(
        &loaded,
        &all,
        query(
            &["needle"],
            &[],
            ProfileField::Created,
            false,
            Some((0, 20)),
        ),
    );
    check(
        &loaded,
        &all,
        query(
            &[],
            &[(ProfileField::Type, "group")],
            ProfileField::Id,
            true,
            None,
        ),
    );
    // Writes go on: freed rows are reused, new ones appended.
    for i in 0..60 {
        let p = profile(100_000 + i);
        put(&loaded, &p);
        all.push(p);
    }
    check(
        &loaded,
        &all,
        query(&["a"], &[], ProfileField::Name, false, None),
    );
    assert_eq!(loaded.lock_rows().next, SEGMENT_ROWS + 310);

    let path = dir.path().join(FILE);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 10]).unwrap();
    assert!(
        Search::new().load(dir.path(), &token, n).is_err(),
        "truncated"
    );
    let mut bad = bytes.clone();
    // The start of row 50, the first live one: magic, token, next, segments, then the
    // segment's row count, text length and garbage, then 48 bytes a row.
    bad[16 + 16 + 4 + 4 + 4 + 8 + 8 + 50 * 48 + 16] ^= 0x55;
    std::fs::write(&path, &bad).unwrap();
    assert!(
        Search::new().load(dir.path(), &token, n).is_err(),
        "damaged row"
    );
}
