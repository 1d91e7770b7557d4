//! How a client profile is stored: one kind byte, then the profile's public JSON exactly as the
//! API shows it (less `globalHostname`, which follows the settings), then for a group its
//! write-only member links after a 0 byte. Reads copy the public part straight into a response
//! instead of decoding and re-encoding it; only writes and exports decode a record.

use std::borrow::Cow;

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::StoreError;
use super::profile_types::{ClientProfile, ProfileType, ProfileUrl, name_key};

const PROFILE: u8 = b'P';
const GROUP: u8 = b'G';
/// Ends the public JSON when a private part follows; JSON text never holds a raw 0 byte.
const PRIVATE: u8 = 0;
/// `P{"id":"<36>","name":"`: where the name starts in every record this build writes.
const NAME_AT: usize = 54;

fn string(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing a string to a Vec cannot fail");
}

fn time(out: &mut Vec<u8>, t: OffsetDateTime) {
    out.push(b'"');
    out.extend_from_slice(crate::clock::appgate(t).as_bytes());
    out.push(b'"');
}

fn uuid(out: &mut Vec<u8>, id: &Uuid) {
    out.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
}

/// The stored form of `p`.
pub(crate) fn encode(p: &ClientProfile) -> Vec<u8> {
    let mut out = Vec::with_capacity(256 + p.notes.len());
    out.push(match p.kind {
        ProfileType::Profile => PROFILE,
        ProfileType::Group => GROUP,
    });
    out.extend_from_slice(b"{\"id\":\"");
    uuid(&mut out, &p.id);
    out.extend_from_slice(b"\",\"name\":");
    string(&mut out, &p.name);
    out.extend_from_slice(b",\"notes\":");
    string(&mut out, &p.notes);
    out.extend_from_slice(b",\"created\":");
    time(&mut out, p.created);
    out.extend_from_slice(b",\"updated\":");
    time(&mut out, p.updated);
    out.extend_from_slice(b",\"tags\":[");
    for (i, tag) in p.tags.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(&mut out, tag);
    }
    out.extend_from_slice(b"],\"type\":\"");
    out.extend_from_slice(p.kind.as_str().as_bytes());
    out.push(b'"');
    match p.kind {
        ProfileType::Profile => {
            out.extend_from_slice(b",\"spaKeyName\":");
            string(&mut out, &p.spa_key_name);
            out.extend_from_slice(b",\"identityProviderName\":");
            string(&mut out, &p.identity_provider_name);
            if !p.hostname.is_empty() {
                out.extend_from_slice(b",\"hostname\":");
                string(&mut out, &p.hostname);
            }
        }
        ProfileType::Group => {
            out.extend_from_slice(b",\"profileUrls\":[");
            for (i, u) in p.profile_urls.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"id\":\"");
                uuid(&mut out, &u.id);
                out.extend_from_slice(b"\",\"hostname\":");
                string(&mut out, &u.hostname);
                out.extend_from_slice(b",\"profileName\":");
                string(&mut out, &u.profile_name);
                out.extend_from_slice(b",\"weight\":");
                out.extend_from_slice(u.weight.to_string().as_bytes());
                out.push(b'}');
            }
            out.push(b']');
        }
    }
    if let Some(t) = p.exported {
        out.extend_from_slice(b",\"exported\":");
        time(&mut out, t);
    }
    out.push(b'}');
    if !p.profile_urls.is_empty() {
        out.push(PRIVATE);
        let urls: Vec<&str> = p.profile_urls.iter().map(|u| u.url.as_str()).collect();
        serde_json::to_writer(&mut out, &urls).expect("writing to a Vec cannot fail");
    }
    out
}

/// The public JSON of a record and whether it is a `Profile` (which shows `globalHostname`).
fn public(record: &[u8]) -> Option<(&[u8], bool)> {
    let (&kind, rest) = record.split_first()?;
    let end = memchr::memchr(PRIVATE, rest).unwrap_or(rest.len());
    let json = &rest[..end];
    match (kind, json.last()) {
        (PROFILE, Some(b'}')) => Some((json, true)),
        (GROUP, Some(b'}')) => Some((json, false)),
        _ => None,
    }
}

/// Appends the profile as the API shows it: the stored public JSON with `globalHostname`
/// added to a `Profile`.
pub(crate) fn write_json(out: &mut Vec<u8>, record: &[u8], global_hostname: &str) -> bool {
    let Some((json, is_profile)) = public(record) else {
        return false;
    };
    if is_profile {
        out.extend_from_slice(&json[..json.len() - 1]);
        out.extend_from_slice(b",\"globalHostname\":");
        string(out, global_hostname);
        out.push(b'}');
    } else {
        out.extend_from_slice(json);
    }
    true
}

/// The name index key of a record, without decoding the rest of it (`None`: unreadable).
pub(crate) fn name_key_of(record: &[u8]) -> Option<Vec<u8>> {
    if record.first() == Some(&b'{') {
        return legacy_name_key_of(record);
    }
    let head = record.get(..NAME_AT)?;
    if !head.starts_with(b"P{\"id\":\"") && !head.starts_with(b"G{\"id\":\"") {
        return None;
    }
    if !head.ends_with(b"\",\"name\":\"") {
        return None;
    }
    let rest = &record[NAME_AT..];
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    if rest[end] == b'"' {
        return std::str::from_utf8(&rest[..end]).ok().map(name_key);
    }
    // An escaped name: let the JSON parser read it.
    let (json, _) = public(record)?;
    legacy_name_key_of(json)
}

/// Whether a record's name has the index key `key` (`None`: the record cannot be read).
/// Compares in place when it can: listing checks every entry it shows.
pub(crate) fn has_name_key(record: &[u8], key: &[u8]) -> Option<bool> {
    if let Some(rest) = record.get(NAME_AT..)
        && !is_legacy(record)
        && record[..NAME_AT].ends_with(b"\",\"name\":\"")
        && let Some(end) = memchr::memchr2(b'"', b'\\', rest)
        && rest[end] == b'"'
        && rest[..end].is_ascii()
    {
        return Some(
            rest[..end].eq_ignore_ascii_case(key) && !key.iter().any(u8::is_ascii_uppercase),
        );
    }
    name_key_of(record).map(|k| k == key)
}

fn legacy_name_key_of(json: &[u8]) -> Option<Vec<u8>> {
    #[derive(Deserialize)]
    struct NameOnly<'a> {
        #[serde(borrow)]
        name: Cow<'a, str>,
    }
    serde_json::from_slice::<NameOnly>(json)
        .ok()
        .map(|n| name_key(&n.name))
}

/// Whether a record is in the format of schema 1 (the compact `ClientProfile` JSON).
pub(crate) fn is_legacy(record: &[u8]) -> bool {
    record.first() == Some(&b'{')
}

/// What the search index and the decoder read from the public JSON.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Public<'a> {
    id: Uuid,
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    notes: Cow<'a, str>,
    #[serde(borrow)]
    created: Cow<'a, str>,
    #[serde(borrow)]
    updated: Cow<'a, str>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(rename = "type")]
    kind: ProfileType,
    #[serde(borrow, default)]
    spa_key_name: Cow<'a, str>,
    #[serde(borrow, default)]
    identity_provider_name: Cow<'a, str>,
    #[serde(borrow, default)]
    hostname: Cow<'a, str>,
    #[serde(default)]
    profile_urls: Vec<PublicUrl>,
    #[serde(borrow, default)]
    exported: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicUrl {
    id: Uuid,
    hostname: String,
    profile_name: String,
    weight: i64,
}

fn corrupt(why: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("client profile record: {why}"))
}

fn parse_time(s: &str) -> Result<OffsetDateTime, StoreError> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(corrupt)
}

fn parse_public(record: &[u8]) -> Result<Public<'_>, StoreError> {
    let (json, _) = public(record).ok_or_else(|| corrupt("unknown layout"))?;
    serde_json::from_slice(json).map_err(corrupt)
}

/// Reads a whole record back (either format), write-only links included.
pub(crate) fn decode(record: &[u8]) -> Result<ClientProfile, StoreError> {
    if is_legacy(record) {
        return super::decode(record);
    }
    let p = parse_public(record)?;
    let urls: Vec<String> = match memchr::memchr(PRIVATE, record) {
        Some(at) => serde_json::from_slice(&record[at + 1..]).map_err(corrupt)?,
        None => Vec::new(),
    };
    if urls.len() != p.profile_urls.len() {
        return Err(corrupt("group links do not match its members"));
    }
    Ok(ClientProfile {
        id: p.id,
        name: p.name.into_owned(),
        notes: p.notes.into_owned(),
        tags: p.tags,
        created: parse_time(&p.created)?,
        updated: parse_time(&p.updated)?,
        exported: p.exported.as_deref().map(parse_time).transpose()?,
        kind: p.kind,
        spa_key_name: p.spa_key_name.into_owned(),
        identity_provider_name: p.identity_provider_name.into_owned(),
        hostname: p.hostname.into_owned(),
        profile_urls: p
            .profile_urls
            .into_iter()
            .zip(urls)
            .map(|(u, url)| ProfileUrl {
                id: u.id,
                url,
                hostname: u.hostname,
                profile_name: u.profile_name,
                weight: u.weight,
            })
            .collect(),
    })
}

mod fields;

pub(crate) use fields::Fields;

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(kind: ProfileType) -> ClientProfile {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_653_053_731_836_392_000).unwrap();
        ClientProfile {
            id: Uuid::nil(),
            name: "Main \"quoted\"".into(),
            notes: String::new(),
            tags: vec!["a".into()],
            created: t,
            updated: t,
            exported: Some(t),
            kind,
            spa_key_name: "Main".into(),
            identity_provider_name: "local".into(),
            hostname: String::new(),
            profile_urls: vec![],
        }
    }

    #[test]
    fn a_profile_is_stored_as_its_public_json() {
        let p = sample(ProfileType::Profile);
        let record = encode(&p);
        let mut out = Vec::new();
        assert!(write_json(&mut out, &record, "g\"h"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":"00000000-0000-0000-0000-000000000000","name":"Main \"quoted\"","notes":"","created":"2022-05-20T13:35:31.836392Z","updated":"2022-05-20T13:35:31.836392Z","tags":["a"],"type":"Profile","spaKeyName":"Main","identityProviderName":"local","exported":"2022-05-20T13:35:31.836392Z","globalHostname":"g\"h"}"#
        );
        assert_eq!(decode(&record).unwrap(), p);
        assert_eq!(name_key_of(&record), Some(b"main \"quoted\"".to_vec()));
        assert_eq!(
            name_key_of(&encode(&ClientProfile {
                name: "ÄBC".into(),
                ..p
            })),
            Some("äbc".as_bytes().to_vec())
        );
    }

    #[test]
    fn group_links_stay_out_of_the_public_json() {
        let mut g = sample(ProfileType::Group);
        g.spa_key_name.clear();
        g.identity_provider_name.clear();
        g.profile_urls = vec![ProfileUrl {
            id: Uuid::nil(),
            url: "appgate://secret/x".into(),
            hostname: "h".into(),
            profile_name: "p".into(),
            weight: 100,
        }];
        let record = encode(&g);
        let mut out = Vec::new();
        assert!(write_json(&mut out, &record, "ignored"));
        let json = String::from_utf8(out).unwrap();
        assert!(
            !json.contains("secret") && !json.contains("globalHostname"),
            "{json}"
        );
        assert!(json.ends_with(r#""profileUrls":[{"id":"00000000-0000-0000-0000-000000000000","hostname":"h","profileName":"p","weight":100}],"exported":"2022-05-20T13:35:31.836392Z"}"#), "{json}");
        assert_eq!(decode(&record).unwrap(), g);
        let f = Fields::of_record(&record).unwrap();
        assert_eq!(
            (f.kind, f.tags.len(), f.exported.is_some()),
            (ProfileType::Group, 1, true)
        );
    }

    #[test]
    fn a_record_is_checked_against_an_index_key_in_place() {
        for name in ["Main", "main", "ÄBC straße", "quote \" in", "A\\B"] {
            let record = encode(&ClientProfile {
                name: name.into(),
                ..sample(ProfileType::Profile)
            });
            let key = name_key(name);
            assert_eq!(has_name_key(&record, &key), Some(true), "{name}");
            let mut other = key.clone();
            other.push(b'x');
            assert_eq!(has_name_key(&record, &other), Some(false), "{name}");
            assert_eq!(
                has_name_key(&record, name.as_bytes()),
                Some(key == name.as_bytes()),
                "{name}"
            );
        }
    }

    #[test]
    fn records_of_schema_1_still_read() {
        let p = sample(ProfileType::Profile);
        let legacy = super::super::encode(&p);
        assert!(is_legacy(&legacy));
        assert_eq!(decode(&legacy).unwrap(), p);
        assert_eq!(name_key_of(&legacy), Some(b"main \"quoted\"".to_vec()));
    }
}
