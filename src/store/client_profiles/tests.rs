use std::path::Path;

use time::OffsetDateTime;

use super::*;
use crate::store::profile_types::ProfileType;
use crate::store::search::ProfileField;
use crate::store::{META_CLEAN, META_SCHEMA, StoreOptions, encode};

fn new_profile(name: &str) -> ClientProfile {
    let now = crate::clock::now();
    ClientProfile {
        id: Uuid::new_v4(),
        name: name.into(),
        notes: String::new(),
        tags: vec![],
        created: now,
        updated: now,
        exported: None,
        kind: ProfileType::Profile,
        spa_key_name: name.into(),
        identity_provider_name: "local".into(),
        hostname: String::new(),
        profile_urls: vec![],
    }
}

fn open(dir: &Path) -> (Store, crate::store::unique::RepairReport) {
    Store::open(dir, &StoreOptions::default()).unwrap()
}

fn names(store: &Store, direction: Direction) -> Vec<String> {
    let mut out = b"[".to_vec();
    store
        .client_profiles_by_name(direction, 0, 10, "", &mut out)
        .unwrap();
    out.push(b']');
    let items: Vec<serde_json::Value> = serde_json::from_slice(&out).unwrap();
    items
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

async fn search(store: &Store, q: &str) -> Vec<Uuid> {
    store
        .search_client_profiles(ProfileQuery {
            queries: vec![q.into()],
            filters: vec![],
            order: ProfileField::Name,
            descending: false,
            range: None,
        })
        .await
        .unwrap()
        .ids
}

#[tokio::test]
async fn start_up_repairs_the_name_index_and_counts_what_is_left() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(dir.path());
        store
            .create_client_profile(&new_profile("Kept"))
            .await
            .unwrap();
        // What a crash between reserving a name and writing the record leaves behind.
        let index = &store.inner.tables.client_profiles.table.index;
        index.insert(b"ghost", Uuid::new_v4().as_bytes()).unwrap();
        store.flush().unwrap();
    }
    let (store, report) = open(dir.path());
    assert_eq!(report.removed.len(), 1, "{report:?}");
    assert_eq!(store.client_profile_count(), 1);
    store
        .create_client_profile(&new_profile("Ghost"))
        .await
        .unwrap();
    assert!(matches!(
        store.create_client_profile(&new_profile("KEPT")).await,
        Err(StoreError::KeyTaken)
    ));
    assert_eq!(names(&store, Direction::Descending), ["Kept", "Ghost"]);
    assert_eq!(store.client_profile_count(), 2);
}

#[tokio::test]
async fn a_clean_stop_hands_its_count_to_the_next_open_once() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(dir.path());
        for n in ["a", "b", "c"] {
            store.create_client_profile(&new_profile(n)).await.unwrap();
        }
        store.close_cleanly().unwrap();
        // Nothing is written after the marker, so its count stays true.
        assert!(matches!(
            store.create_client_profile(&new_profile("late")).await,
            Err(StoreError::Unavailable)
        ));
        // Mark the marker's count, to see below that the open took it without counting.
        store
            .meta()
            .insert(META_CLEAN, 42u64.to_be_bytes())
            .unwrap();
        store.flush().unwrap();
    }
    {
        let (store, report) = open(dir.path());
        assert!(report.is_clean());
        assert_eq!(store.client_profile_count(), 42, "taken from the marker");
        assert_eq!(store.meta().get(META_CLEAN).unwrap(), None, "and removed");
    }
    // Without a clean stop in between, the next open checks and counts again.
    let (store, _) = open(dir.path());
    assert_eq!(store.client_profile_count(), 3);
    store.close_cleanly().unwrap();
    drop(store);
    let (store, _) = open(dir.path());
    assert_eq!(store.client_profile_count(), 3);
}

#[tokio::test]
async fn a_crash_after_a_clean_start_gets_the_full_repair() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (store, _) = open(dir.path());
        store
            .create_client_profile(&new_profile("one"))
            .await
            .unwrap();
        store.close_cleanly().unwrap();
    }
    {
        // A clean start, then writes and a crash: the marker is gone, a leftover stays.
        let (store, _) = open(dir.path());
        store
            .create_client_profile(&new_profile("two"))
            .await
            .unwrap();
        let index = &store.inner.tables.client_profiles.table.index;
        index.insert(b"stale", Uuid::new_v4().as_bytes()).unwrap();
        store.flush().unwrap();
    }
    let (store, report) = open(dir.path());
    assert_eq!(report.removed.len(), 1, "{report:?}");
    assert_eq!(store.client_profile_count(), 2);
    store
        .create_client_profile(&new_profile("stale"))
        .await
        .unwrap();
}

#[tokio::test]
async fn the_search_index_follows_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let a = new_profile("needle one");
    let b = new_profile("other");
    store.create_client_profile(&a).await.unwrap();
    store.create_client_profile(&b).await.unwrap();
    assert_eq!(search(&store, "NEEDLE").await, [a.id]);
    store
        .update_client_profile(&b.id, |p| {
            p.notes = "a needle in the notes".into();
            Ok::<(), StoreError>(())
        })
        .await
        .unwrap();
    assert_eq!(search(&store, "needle").await, [a.id, b.id]);
    store.delete_client_profile(&a.id).await.unwrap();
    assert_eq!(search(&store, "needle").await, [b.id]);
    // A reopened store builds the index from the records.
    store.close_cleanly().unwrap();
    drop(store);
    let (store, _) = open(dir.path());
    assert_eq!(search(&store, "needle").await, [b.id]);
}

#[tokio::test]
async fn a_schema_1_store_is_upgraded_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let p = new_profile("Old \"one\"");
    {
        let (store, _) = open(dir.path());
        let t = &store.inner.tables.client_profiles.table;
        // How schema 1 stored a profile: its compact serde form.
        t.insert(p.id.as_bytes(), &p.name_key(), encode(&p))
            .unwrap();
        store
            .meta()
            .insert(META_SCHEMA, 1u64.to_be_bytes())
            .unwrap();
        store.flush().unwrap();
    }
    let (store, report) = open(dir.path());
    assert!(report.is_clean(), "{report:?}");
    let schema = store.meta().get(META_SCHEMA).unwrap().unwrap();
    assert_eq!(schema.as_ref(), crate::store::SCHEMA_VERSION.to_be_bytes());
    let record = store
        .inner
        .tables
        .client_profiles
        .table
        .get(p.id.as_bytes())
        .unwrap()
        .unwrap();
    assert!(!profile_record::is_legacy(&record));
    let stored = store.client_profile(&p.id).unwrap().unwrap();
    assert_eq!(
        (stored.name.as_str(), stored.created.unix_timestamp()),
        (p.name.as_str(), p.created.unix_timestamp())
    );
    assert_eq!(
        names(&store, Direction::Ascending),
        std::slice::from_ref(&p.name)
    );
    assert_eq!(search(&store, "old").await, [p.id]);
}

#[test]
fn the_backup_form_is_compact() {
    let t = OffsetDateTime::from_unix_timestamp_nanos(1_653_053_731_836_392_000).unwrap();
    let p = ClientProfile {
        id: Uuid::nil(),
        created: t,
        updated: t,
        ..new_profile("Main")
    };
    let bytes = encode(&p);
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        r#"{"id":"00000000-0000-0000-0000-000000000000","name":"Main","created":1653053731836392,"updated":1653053731836392,"type":"Profile","spaKeyName":"Main","identityProviderName":"local"}"#
    );
    assert_eq!(crate::store::decode::<ClientProfile>(&bytes).unwrap(), p);
    assert_eq!(name_key_of(&bytes), Some(b"main".to_vec()));
}

#[tokio::test]
async fn a_clean_restart_loads_the_saved_search_index() {
    let dir = tempfile::tempdir().unwrap();
    let a = new_profile("needle a");
    {
        let (store, _) = open(dir.path());
        store.create_client_profile(&a).await.unwrap();
        store
            .create_client_profile(&new_profile("other"))
            .await
            .unwrap();
        assert_eq!(search(&store, "needle").await, [a.id], "built");
        store.close_cleanly().unwrap();
        assert!(dir.path().join(crate::store::search::FILE).exists());
    }
    let (store, _) = open(dir.path());
    assert!(
        store.inner.builder.lock().unwrap().is_none(),
        "loaded, not built from the records"
    );
    assert!(
        !dir.path().join(crate::store::search::FILE).exists(),
        "used once"
    );
    let b = new_profile("needle b");
    store.create_client_profile(&b).await.unwrap();
    assert_eq!(search(&store, "needle").await, [a.id, b.id]);
    // A crash now: the next open builds the index from the records.
    store.flush().unwrap();
    drop(store);
    let (store, _) = open(dir.path());
    assert!(store.inner.builder.lock().unwrap().is_some());
    assert_eq!(search(&store, "needle").await, [a.id, b.id]);
}

#[test]
fn a_database_keeps_the_segment_size_it_was_created_with() {
    let segment_size = |dir: &Path| super::super::engine::sled::created_segment_size(dir).unwrap();
    let new = tempfile::tempdir().unwrap();
    drop(open(new.path()));
    assert_eq!(
        segment_size(new.path()),
        super::super::engine::sled::SEGMENT_SIZE
    );
    // Created by an earlier build, with sled's default: sled refuses any other size.
    let old = tempfile::tempdir().unwrap();
    {
        let db = sled::Config::new().path(old.path()).open().unwrap();
        // Every profiled build stamps its schema before serving (schema 1 was the first).
        db.open_tree("meta")
            .unwrap()
            .insert(META_SCHEMA, &1u64.to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    assert_eq!(segment_size(old.path()), 512 * 1024);
    let (store, report) = open(old.path());
    assert!(report.is_clean());
    assert_eq!(store.client_profile_count(), 0);
}

/// Reads go through the record cache; every write must be visible to the next read.
#[tokio::test]
async fn reads_after_acknowledged_writes_never_see_the_cached_record() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = open(dir.path());
    let p = new_profile("Before");
    store.create_client_profile(&p).await.unwrap();
    let shown = |store: &Store| {
        store
            .client_profile_json(&p.id, "")
            .unwrap()
            .map(|j| serde_json::from_slice::<serde_json::Value>(&j).unwrap()["name"].clone())
    };
    // Twice: the first read fills the cache, the second is served from it.
    for _ in 0..2 {
        assert_eq!(shown(&store), Some("Before".into()));
        assert_eq!(names(&store, Direction::Ascending), ["Before"]);
    }
    store
        .update_client_profile::<StoreError>(&p.id, |q| {
            q.name = "After".into();
            Ok(())
        })
        .await
        .unwrap();
    assert_eq!(shown(&store), Some("After".into()));
    assert_eq!(names(&store, Direction::Ascending), ["After"]);
    let mut out = Vec::new();
    assert_eq!(
        store.client_profiles_by_id(&[p.id], "", &mut out).unwrap(),
        1
    );
    assert!(String::from_utf8(out).unwrap().contains("\"After\""));
    store.delete_client_profile(&p.id).await.unwrap();
    assert_eq!(shown(&store), None);
    assert!(names(&store, Direction::Ascending).is_empty());
}
