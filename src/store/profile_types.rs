//! The client profile itself: its fields and their types, and the key that makes its name
//! unique. Storage (`client_profiles`), the record format (`profile_record`) and the search
//! index (`search`) all build on these and on nothing of each other's.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

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

/// A client profile. A `Profile` uses `spa_key_name`, `identity_provider_name` and `hostname`;
/// a `Group` uses `profile_urls`. Its serde form (compact JSON, empty fields left out, times
/// in Unix microseconds) is the record format of schema 1 and the `clientProfile` line of a
/// backup; the store itself keeps the form of `profile_record`.
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
