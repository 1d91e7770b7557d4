//! Client profiles (Appgate's): records by id, unique by name (case-insensitive), with a
//! name-ordered index that lists the first page without reading the rest of the store.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::unique::{Swap, UniqueTable};
use super::{Store, StoreError, decode, encode};

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub enum ProfileType {
    #[default]
    Profile,
    Group,
}

impl ProfileType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileType::Profile => "Profile",
            ProfileType::Group => "Group",
        }
    }
}

/// One member of a group: an exported `appgate://` link and its load-balancing weight.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ProfileUrl {
    pub id: Uuid,
    /// Write-only in the API: kept so that the group can be handed on, never returned.
    pub url: String,
    pub hostname: String,
    pub profile_name: String,
    pub weight: i64,
}

/// A client profile as stored (compact JSON: empty fields are left out). A `Profile` uses
/// `spa_key_name`, `identity_provider_name` and `hostname`; a `Group` uses `profile_urls`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ClientProfile {
    pub id: Uuid,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub notes: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(with = "micros")]
    pub created: OffsetDateTime,
    #[serde(with = "micros")]
    pub updated: OffsetDateTime,
    #[serde(default, with = "micros_opt", skip_serializing_if = "Option::is_none")]
    pub exported: Option<OffsetDateTime>,
    #[serde(rename = "type", default)]
    pub kind: ProfileType,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spa_key_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub identity_provider_name: String,
    /// Overrides the global `profileHostname`; empty when unset.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profile_urls: Vec<ProfileUrl>,
}

impl ClientProfile {
    pub fn name_key(&self) -> Vec<u8> {
        name_key(&self.name)
    }
}

/// The index key of a name: names are compared case-insensitively and stored as given. The
/// index is ordered by this key, so it is also the sort key of `orderBy=name`.
pub fn name_key(name: &str) -> Vec<u8> {
    name.to_lowercase().into_bytes()
}

pub(super) fn name_key_of(record: &[u8]) -> Option<Vec<u8>> {
    // Only the name is needed: skip decoding the rest (start-up repairs every record).
    #[derive(Deserialize)]
    struct NameOnly<'a> {
        #[serde(borrow)]
        name: std::borrow::Cow<'a, str>,
    }
    serde_json::from_slice::<NameOnly>(record)
        .ok()
        .map(|n| name_key(&n.name))
}

/// The two trees and the live count, which is what an unfiltered list reports as its total.
pub(crate) struct ProfileTable {
    pub(super) table: UniqueTable,
    count: AtomicU64,
}

impl ProfileTable {
    /// Call after `repair`: the count is taken from the records as they are then.
    pub(super) fn new(table: UniqueTable) -> Self {
        let count = AtomicU64::new(table.records.len() as u64);
        ProfileTable { table, count }
    }
}

/// Which way `client_profiles_by_name` walks the name index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Ascending,
    Descending,
}

impl Store {
    /// Stores a new profile (its id and name must both be free) and waits until durable.
    pub async fn create_client_profile(&self, profile: &ClientProfile) -> Result<(), StoreError> {
        self.writable()?;
        let t = &self.inner.tables.client_profiles;
        t.table
            .insert(profile.id.as_bytes(), &profile.name_key(), encode(profile))?;
        t.count.fetch_add(1, Ordering::SeqCst);
        self.durable().await
    }

    pub fn client_profile(&self, id: &Uuid) -> Result<Option<ClientProfile>, StoreError> {
        self.inner
            .tables
            .client_profiles
            .table
            .get(id.as_bytes())?
            .map(|v| decode(&v))
            .transpose()
    }

    /// Applies `change` to the stored profile and writes it back atomically, moving the name
    /// index entry on a rename (409 `KeyTaken` when the new name belongs to another profile).
    /// `change` may run more than once when another writer got there first, so it must only
    /// modify the profile it is given. Waits until the result is durable.
    pub async fn update_client_profile<E: From<StoreError>>(
        &self,
        id: &Uuid,
        mut change: impl FnMut(&mut ClientProfile) -> Result<(), E>,
    ) -> Result<ClientProfile, E> {
        self.writable()?;
        let table = &self.inner.tables.client_profiles.table;
        let profile = loop {
            let old = table.get(id.as_bytes())?.ok_or(StoreError::NotFound)?;
            let mut profile: ClientProfile = decode(&old)?;
            let old_key = profile.name_key();
            change(&mut profile)?;
            profile.id = *id;
            let new_key = profile.name_key();
            match table.update(id.as_bytes(), &old, &old_key, &new_key, encode(&profile))? {
                Swap::Done => break profile,
                Swap::Changed => continue,
            }
        };
        self.durable().await?;
        Ok(profile)
    }

    /// Deletes a profile, freeing its name, and waits until durable.
    pub async fn delete_client_profile(&self, id: &Uuid) -> Result<(), StoreError> {
        self.writable()?;
        let t = &self.inner.tables.client_profiles;
        loop {
            let old = t.table.get(id.as_bytes())?.ok_or(StoreError::NotFound)?;
            let key = name_key_of(&old).ok_or_else(|| {
                StoreError::Corrupt(format!("client profile {id} has no readable name"))
            })?;
            match t.table.remove(id.as_bytes(), &old, &key)? {
                Swap::Done => break,
                Swap::Changed => continue,
            }
        }
        t.count.fetch_sub(1, Ordering::SeqCst);
        self.durable().await
    }

    /// How many profiles exist; kept in memory, so free.
    pub fn client_profile_count(&self) -> u64 {
        self.inner
            .tables
            .client_profiles
            .count
            .load(Ordering::SeqCst)
    }

    /// Profiles in name order (case-insensitive), read straight from the name index: skips
    /// `skip`, returns at most `take`, and touches nothing past them.
    pub fn client_profiles_by_name(
        &self,
        direction: Direction,
        skip: usize,
        take: usize,
    ) -> Result<Vec<ClientProfile>, StoreError> {
        let table = &self.inner.tables.client_profiles.table;
        let entries = table.index.iter();
        let entries: Box<dyn Iterator<Item = _>> = match direction {
            Direction::Ascending => Box::new(entries),
            Direction::Descending => Box::new(entries.rev()),
        };
        let mut out = Vec::with_capacity(take.min(1024));
        let mut skipped = 0;
        for entry in entries {
            if out.len() >= take {
                break;
            }
            let (key, id) = entry?;
            let Some(record) = table.get(&id)? else {
                continue;
            };
            let name = name_key_of(&record).ok_or_else(|| {
                StoreError::Corrupt(format!("client profile {id:?} has no readable name"))
            })?;
            // A reservation of a create or rename in flight points at a record that does not
            // (yet, or any more) carry this name: not a listed entry.
            if name != key.as_ref() {
                continue;
            }
            if skipped < skip {
                skipped += 1;
                continue;
            }
            out.push(decode(&record)?);
        }
        Ok(out)
    }

    /// Every profile, in id order; for queries, filters and other sort orders.
    pub fn client_profiles(&self) -> impl Iterator<Item = Result<ClientProfile, StoreError>> + '_ {
        self.inner
            .tables
            .client_profiles
            .table
            .records
            .iter()
            .values()
            .map(|v| decode(&v?))
    }
}

/// Time stamps as Unix microseconds: the precision Appgate shows, in a fraction of the bytes.
mod micros {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn to_micros(t: &OffsetDateTime) -> i64 {
        (t.unix_timestamp_nanos() / 1_000) as i64
    }

    pub fn from_micros(us: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(us as i128 * 1_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(to_micros(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        i64::deserialize(d).map(from_micros)
    }
}

mod micros_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_some(&super::micros::to_micros(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        Option::<i64>::deserialize(d).map(|o| o.map(super::micros::from_micros))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

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

    #[tokio::test]
    async fn start_up_repairs_the_name_index_and_counts_what_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions::default();
        {
            let (store, _) = Store::open(dir.path(), &options).unwrap();
            store
                .create_client_profile(&new_profile("Kept"))
                .await
                .unwrap();
            // What a crash between reserving a name and writing the record leaves behind.
            let index = &store.inner.tables.client_profiles.table.index;
            index.insert(b"ghost", Uuid::new_v4().as_bytes()).unwrap();
            store.flush().unwrap();
        }
        let (store, report) = Store::open(dir.path(), &options).unwrap();
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
        let names: Vec<String> = store
            .client_profiles_by_name(Direction::Descending, 0, 10)
            .unwrap()
            .into_iter()
            .map(|p| p.name)
            .collect();
        assert_eq!(names, ["Kept", "Ghost"]);
        assert_eq!(store.client_profile_count(), 2);
    }

    #[test]
    fn records_round_trip_compactly() {
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
        assert_eq!(decode::<ClientProfile>(&bytes).unwrap(), p);
        assert_eq!(name_key_of(&bytes), Some(b"main".to_vec()));
    }
}
