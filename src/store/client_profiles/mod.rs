//! Client profiles (Appgate's): records by id, unique by name (case-insensitive), with a
//! name-ordered index that lists the first page without reading the rest of the store, and
//! an in-memory search index for everything else a list can ask.

use std::sync::Arc;

use uuid::Uuid;

use super::profile_record;
use super::profile_types::ClientProfile;
use super::search::{Found, ProfileQuery, Search};
use super::unique::{Gate, Swap, UniqueTable};
use super::{Store, StoreError};

pub(super) fn name_key_of(record: &[u8]) -> Option<Vec<u8>> {
    profile_record::name_key_of(record)
}

/// The two trees (with the live count, what an unfiltered list reports as its total) and the
/// search index.
pub(crate) struct ProfileTable {
    pub(crate) table: UniqueTable,
    pub(super) search: Arc<Search>,
}

impl ProfileTable {
    /// Counts the records; with `indexed`, keeps the search index in step with every write.
    pub(super) fn new(
        records: super::engine::Tree,
        index: super::engine::Tree,
        gate: Gate,
        indexed: bool,
    ) -> Self {
        let search = Arc::new(Search::new());
        let mut table = UniqueTable::counted(records.clone(), index, gate)
            .cached(super::record_cache::CAPACITY);
        if indexed {
            let s = search.clone();
            table = table.watched(Box::new(move |id, now| {
                if let Ok(id) = Uuid::from_slice(id) {
                    s.refresh(&id, || Ok(records.get(id.as_bytes())?), now);
                }
            }));
        }
        ProfileTable { table, search }
    }

    /// The same over a database other nodes write to: each write is one conditional write,
    /// and nothing is cached.
    pub(super) fn shared(self, db: &super::engine::Db) -> Self {
        let ProfileTable { table, search } = self;
        ProfileTable {
            table: table.atomic(db).uncached(),
            search,
        }
    }

    /// Rewrites records of schema 1 in this build's format (names do not change, so the index
    /// stays as it is). Returns how many were rewritten.
    pub(super) fn upgrade_records(&self) -> Result<usize, StoreError> {
        let mut n = 0;
        for entry in self.table.records.iter() {
            let (id, old) = entry?;
            if profile_record::is_legacy(&old) {
                let new = profile_record::encode(&profile_record::decode(&old)?);
                // Nothing else writes while the store opens.
                let _ = self
                    .table
                    .records
                    .compare_and_swap(&id, Some(&old), Some(new))?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Which way `client_profiles_by_name` walks the name index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Ascending,
    Descending,
}

/// A client profile as the API shows it (`globalHostname` filled in), as JSON.
pub fn profile_json(p: &ClientProfile, global_hostname: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(384);
    profile_record::write_json(&mut out, &profile_record::encode(p), global_hostname);
    out
}

/// Appends a stored record's API JSON to a list being built.
fn push_item(out: &mut Vec<u8>, n: usize, record: &[u8], global: &str) -> Result<(), StoreError> {
    if n > 0 {
        out.push(b',');
    }
    if profile_record::write_json(out, record, global) {
        Ok(())
    } else {
        Err(StoreError::Corrupt(
            "a client profile record has an unknown layout".into(),
        ))
    }
}

impl Store {
    /// Stores a new profile (its id and name must both be free) and waits until durable.
    pub async fn create_client_profile(&self, profile: &ClientProfile) -> Result<(), StoreError> {
        self.writable()?;
        let t = &self.inner.tables.client_profiles;
        let record = profile_record::encode(profile);
        t.table
            .insert(profile.id.as_bytes(), &profile.name_key(), record)?;
        self.durable().await
    }

    pub fn client_profile(&self, id: &Uuid) -> Result<Option<ClientProfile>, StoreError> {
        self.inner
            .tables
            .client_profiles
            .table
            .get(id.as_bytes())?
            .map(|v| profile_record::decode(&v))
            .transpose()
    }

    /// The profile as the API shows it, straight from its stored bytes.
    pub fn client_profile_json(
        &self,
        id: &Uuid,
        global_hostname: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let table = &self.inner.tables.client_profiles.table;
        let Some(record) = table.get_cached(id.as_bytes())? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(record.len() + 32 + global_hostname.len());
        push_item(&mut out, 0, &record, global_hostname)?;
        Ok(Some(out))
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
        let t = &self.inner.tables.client_profiles;
        let profile = loop {
            let old = t.table.get(id.as_bytes())?.ok_or(StoreError::NotFound)?;
            let mut profile = profile_record::decode(&old)?;
            let old_key = profile.name_key();
            change(&mut profile)?;
            profile.id = *id;
            let new_key = profile.name_key();
            let record = profile_record::encode(&profile);
            match t
                .table
                .update(id.as_bytes(), &old, &old_key, &new_key, record)?
            {
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
        self.durable().await
    }

    /// How many profiles exist; kept in memory, so free.
    pub fn client_profile_count(&self) -> u64 {
        self.inner.tables.client_profiles.table.count()
    }

    /// Profiles in name order (case-insensitive), read straight from the name index: skips
    /// `skip`, appends at most `take` to `out` as comma-separated JSON objects, touches nothing
    /// past them, and returns how many it appended.
    pub fn client_profiles_by_name(
        &self,
        direction: Direction,
        skip: usize,
        take: usize,
        global_hostname: &str,
        out: &mut Vec<u8>,
    ) -> Result<usize, StoreError> {
        let table = &self.inner.tables.client_profiles.table;
        let entries = table.index.iter();
        let entries: Box<dyn Iterator<Item = _>> = match direction {
            Direction::Ascending => Box::new(entries),
            Direction::Descending => Box::new(entries.rev()),
        };
        if table.is_atomic() {
            return by_name_atomic(table, entries, skip, take, global_hostname, out);
        }
        let (mut n, mut skipped) = (0, 0);
        for entry in entries {
            if n >= take {
                break;
            }
            let (key, id) = entry?;
            let Some(record) = table.get_cached(&id)? else {
                continue;
            };
            let holds = profile_record::has_name_key(&record, &key).ok_or_else(|| {
                StoreError::Corrupt(format!("client profile {id:?} has no readable name"))
            })?;
            // A reservation of a create or rename in flight points at a record that does not
            // (yet, or any more) carry this name: not a listed entry.
            if !holds {
                continue;
            }
            if skipped < skip {
                skipped += 1;
                continue;
            }
            push_item(out, n, &record, global_hostname)?;
            n += 1;
        }
        Ok(n)
    }

    /// Runs a list request on the search index (waiting for it after a start-up).
    pub async fn search_client_profiles(&self, query: ProfileQuery) -> Result<Found, StoreError> {
        // Read your writes across nodes: the index has every change committed before now. A
        // feed that cannot catch up in time, like a cluster that cannot be reached, is a 503
        // with Retry-After (see `Outage`).
        self.inner.db.caught_up()?;
        self.inner.tables.client_profiles.search.search(query).await
    }

    /// Appends the profiles with these ids (those that still exist) to `out` as
    /// comma-separated JSON objects; returns how many.
    pub fn client_profiles_by_id(
        &self,
        ids: &[Uuid],
        global_hostname: &str,
        out: &mut Vec<u8>,
    ) -> Result<usize, StoreError> {
        let table = &self.inner.tables.client_profiles.table;
        let mut n = 0;
        for id in ids {
            if let Some(record) = table.get_cached(id.as_bytes())? {
                push_item(out, n, &record, global_hostname)?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// `client_profiles_by_name` on an engine that writes a record and its name together (etcd):
/// every name entry is a listed profile, so the skipped ones are counted without reading their
/// records, and the page's records are read together (`get_many`).
fn by_name_atomic(
    table: &super::unique::UniqueTable,
    mut entries: impl Iterator<
        Item = super::engine::Result<(super::engine::Value, super::engine::Value)>,
    >,
    skip: usize,
    take: usize,
    global_hostname: &str,
    out: &mut Vec<u8>,
) -> Result<usize, StoreError> {
    for _ in 0..skip {
        match entries.next() {
            Some(entry) => drop(entry?),
            None => return Ok(0),
        }
    }
    let mut n = 0;
    while n < take {
        let page = entries
            .by_ref()
            .take(take - n)
            .collect::<Result<Vec<_>, _>>()?;
        if page.is_empty() {
            break;
        }
        let ids: Vec<&[u8]> = page.iter().map(|(_, id)| id.as_ref()).collect();
        for ((key, id), record) in page.iter().zip(table.get_many(&ids)?) {
            // Removed since the names were read: not listed.
            let Some(record) = record else { continue };
            let holds = profile_record::has_name_key(&record, key).ok_or_else(|| {
                StoreError::Corrupt(format!("client profile {id:?} has no readable name"))
            })?;
            if holds {
                push_item(out, n, &record, global_hostname)?;
                n += 1;
            }
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
