//! The byte layout of one index entry, and reading its fields back.
//!
//! `START s s s FIELD name FIELD notes FIELD idp FIELD hostname (FIELD tag)* (SPA spaKeyName | SPA_IS_NAME)`
//!
//! Every field is lower-cased UTF-8. The markers are bytes that never occur in UTF-8, and
//! `s s s` (the entry's row in its segment) are continuation bytes (`0x80..=0xBF`), with which
//! no UTF-8 text starts. A UTF-8 needle can therefore only match inside one field.

use super::super::profile_record::Fields;
use super::super::profile_types::ProfileType;

pub(super) const START: u8 = 0xFE;
pub(super) const FIELD: u8 = 0xFF;
pub(super) const SPA: u8 = 0xFC;
pub(super) const SPA_IS_NAME: u8 = 0xFB;
/// Fills the bytes of a replaced or removed entry, so that no needle can match there.
pub(super) const FREED: u8 = 0xFF;
pub(super) const HEADER: usize = 4;

/// What a row keeps besides the text.
#[derive(Clone, Copy)]
pub(super) struct Meta {
    pub id: uuid::Uuid,
    pub group: bool,
    pub created: i64,
    pub updated: i64,
    pub exported: Option<i64>,
}

impl Meta {
    pub(super) fn of(f: &Fields) -> Meta {
        Meta {
            id: f.id,
            group: f.kind == ProfileType::Group,
            created: f.created,
            updated: f.updated,
            exported: f.exported,
        }
    }
}

pub(super) fn header(row: usize) -> [u8; HEADER] {
    [
        START,
        0x80 | ((row >> 12) & 0x3F) as u8,
        0x80 | ((row >> 6) & 0x3F) as u8,
        0x80 | (row & 0x3F) as u8,
    ]
}

/// The row number in a header (`h` starts at `START`).
pub(super) fn row_of(h: &[u8]) -> usize {
    ((h[1] as usize & 0x3F) << 12) | ((h[2] as usize & 0x3F) << 6) | (h[3] as usize & 0x3F)
}

fn push_lower(out: &mut Vec<u8>, s: &str) {
    if s.is_ascii() {
        out.extend(s.bytes().map(|b| b.to_ascii_lowercase()));
    } else {
        out.extend_from_slice(s.to_lowercase().as_bytes());
    }
}

/// An entry's text, without its header.
pub(super) fn body(f: &Fields) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        8 + f.name.len() + f.notes.len() + f.identity_provider_name.len() + f.hostname.len(),
    );
    for s in [&f.name, &f.notes, &f.identity_provider_name, &f.hostname] {
        out.push(FIELD);
        push_lower(&mut out, s);
    }
    let name_len = out[1..].iter().position(|&b| b == FIELD).unwrap_or(0);
    for t in &f.tags {
        out.push(FIELD);
        push_lower(&mut out, t);
    }
    let mut spa = Vec::with_capacity(f.spa_key_name.len());
    push_lower(&mut spa, &f.spa_key_name);
    // Usually the name without blanks: store it once when it is the name itself.
    if spa == out[1..1 + name_len] {
        out.push(SPA_IS_NAME);
    } else {
        out.push(SPA);
        out.extend_from_slice(&spa);
    }
    out
}

/// The (lower-cased) name of an entry: its first field.
pub(super) fn name(entry: &[u8]) -> &[u8] {
    let rest = &entry[HEADER + 1..];
    &rest[..memchr::memchr(FIELD, rest).unwrap_or(rest.len())]
}

/// An entry's fields, read from its bytes.
pub(super) struct View<'a> {
    /// Every field a `query` searches, with their separators.
    pub searched: &'a [u8],
    pub name: &'a [u8],
    pub notes: &'a [u8],
    pub idp: &'a [u8],
    pub host: &'a [u8],
    /// The tags, each preceded by `FIELD`.
    tags: &'a [u8],
    pub spa: &'a [u8],
}

impl<'a> View<'a> {
    pub(super) fn of(entry: &'a [u8]) -> View<'a> {
        let body = &entry[HEADER..];
        let spa_at = memchr::memchr2(SPA, SPA_IS_NAME, body).unwrap_or(body.len());
        let searched = &body[..spa_at];
        let mut fields = [&searched[..0]; 4];
        let mut rest = searched;
        for f in fields.iter_mut() {
            rest = rest.get(1..).unwrap_or_default();
            let end = memchr::memchr(FIELD, rest).unwrap_or(rest.len());
            *f = &rest[..end];
            rest = &rest[end..];
        }
        let spa = match body.get(spa_at) {
            Some(&SPA) => {
                let spa = &body[spa_at + 1..];
                &spa[..memchr::memchr2(START, FREED, spa).unwrap_or(spa.len())]
            }
            _ => fields[0],
        };
        View {
            searched,
            name: fields[0],
            notes: fields[1],
            idp: fields[2],
            host: fields[3],
            tags: rest,
            spa,
        }
    }

    pub(super) fn tags(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        self.tags.split(|&b| b == FIELD).skip(1)
    }
}
