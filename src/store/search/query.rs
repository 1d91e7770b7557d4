//! Running a list request over the index: one `memmem` pass per segment for the first query,
//! the other queries and the filters on each candidate, and a bounded selection of the page.

use std::cmp::Ordering;

use memchr::memmem::Finder;
use uuid::Uuid;

use super::text::{HEADER, START, View, row_of};
use super::{ProfileField, Row, Segment};

pub(super) struct Compiled<'q> {
    /// Non-empty queries (an empty one matches everything).
    queries: Vec<Finder<'q>>,
    filters: Vec<(ProfileField, Finder<'q>)>,
}

impl<'q> Compiled<'q> {
    /// `queries` and filter values must already be lower-cased.
    pub(super) fn new(queries: &'q [String], filters: &'q [(ProfileField, String)]) -> Self {
        Compiled {
            queries: queries
                .iter()
                .filter(|q| !q.is_empty())
                .map(|q| Finder::new(q.as_bytes()))
                .collect(),
            filters: filters
                .iter()
                .map(|(f, v)| (*f, Finder::new(v.as_bytes())))
                .collect(),
        }
    }

    fn matches(&self, row: &Row, v: &View, skip_first_query: bool) -> bool {
        let queries = &self.queries[usize::from(skip_first_query).min(self.queries.len())..];
        queries.iter().all(|q| contains(v.searched, q))
            && self
                .filters
                .iter()
                .all(|(f, n)| field_matches(row, v, *f, n))
    }
}

fn contains(haystack: &[u8], needle: &Finder) -> bool {
    needle.find(haystack).is_some()
}

fn field_matches(row: &Row, v: &View, field: ProfileField, needle: &Finder) -> bool {
    match field {
        ProfileField::Id => {
            let mut buf = Uuid::encode_buffer();
            contains(
                row.id.hyphenated().encode_lower(&mut buf).as_bytes(),
                needle,
            )
        }
        ProfileField::Name => contains(v.name, needle),
        ProfileField::Notes => contains(v.notes, needle),
        ProfileField::Tags => v.tags().any(|t| contains(t, needle)),
        ProfileField::Type => contains(row.kind_text(), needle),
        ProfileField::SpaKeyName => contains(v.spa, needle),
        ProfileField::IdentityProviderName => contains(v.idp, needle),
        ProfileField::Hostname => contains(v.host, needle),
        ProfileField::Created | ProfileField::Updated | ProfileField::Exported => false,
    }
}

/// Calls `found` for every live entry of `seg` that matches.
pub(super) fn scan<'s>(seg: &'s Segment, q: &Compiled, mut found: impl FnMut(&'s Row, View<'s>)) {
    let arena = &seg.arena[..];
    let Some(first) = q.queries.first() else {
        for row in seg.rows.iter().filter(|r| r.live()) {
            let v = View::of(&arena[row.span()]);
            if q.matches(row, &v, false) {
                found(row, v);
            }
        }
        return;
    };
    let mut from = 0;
    while let Some(at) = first.find(&arena[from..]) {
        let hit = from + at;
        // The header of the entry the hit is in: no START byte lies inside an entry's text.
        let Some(start) = memchr::memrchr(START, &arena[..hit]) else {
            break;
        };
        let row = &seg.rows[row_of(&arena[start..start + HEADER])];
        debug_assert_eq!(row.start as usize, start);
        let v = View::of(&arena[row.span()]);
        // The first hit in an entry: past the searched fields it is in the SPA key name only.
        if hit < start + HEADER + v.searched.len() && q.matches(row, &v, true) {
            found(row, v);
        }
        from = row.span().end;
    }
}

/// A sort key as found in the index.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Key<'a> {
    Int(i64),
    Text(&'a [u8]),
}

pub(super) fn key<'a>(order: ProfileField, row: &'a Row, v: &View<'a>) -> Key<'a> {
    match order {
        // The uuid's bytes sort as its lower-case hyphenated text does.
        ProfileField::Id => Key::Text(row.id.as_bytes()),
        ProfileField::Notes => Key::Text(v.notes),
        // By name: the tie-break (the name) decides alone.
        ProfileField::Tags | ProfileField::Name => Key::Text(b""),
        ProfileField::Type => Key::Text(row.kind_text()),
        ProfileField::SpaKeyName => Key::Text(v.spa),
        ProfileField::IdentityProviderName => Key::Text(v.idp),
        ProfileField::Hostname => Key::Text(v.host),
        ProfileField::Created => Key::Int(row.created),
        ProfileField::Updated => Key::Int(row.updated),
        ProfileField::Exported => Key::Int(row.exported),
    }
}

#[derive(Clone)]
enum OwnedKey {
    Int(i64),
    Text(Vec<u8>),
}

/// A candidate kept for the page, its keys copied out of the arena.
#[derive(Clone)]
pub(super) struct Cand {
    key: OwnedKey,
    name: Vec<u8>,
    pub id: Uuid,
}

impl Cand {
    fn key(&self) -> (Key<'_>, &[u8]) {
        let k = match &self.key {
            OwnedKey::Int(i) => Key::Int(*i),
            OwnedKey::Text(t) => Key::Text(t),
        };
        (k, &self.name)
    }
}

/// Keeps the first `keep` candidates in order, in memory proportional to `keep`.
pub(super) struct TopK {
    keep: usize,
    descending: bool,
    items: Vec<Cand>,
    /// The worst kept candidate once the list was cut: nothing at or past it can enter.
    bar: Option<Cand>,
}

impl TopK {
    pub(super) fn new(keep: usize, descending: bool) -> TopK {
        TopK {
            keep,
            descending,
            items: Vec::new(),
            bar: None,
        }
    }

    fn order(descending: bool, a: (Key, &[u8]), b: (Key, &[u8])) -> Ordering {
        if descending { b.cmp(&a) } else { a.cmp(&b) }
    }

    pub(super) fn offer(&mut self, key: Key, name: &[u8], id: Uuid) {
        if self.keep == 0 {
            return;
        }
        if let Some(bar) = &self.bar
            && Self::order(self.descending, (key, name), bar.key()) != Ordering::Less
        {
            return;
        }
        let key = match key {
            Key::Int(i) => OwnedKey::Int(i),
            Key::Text(t) => OwnedKey::Text(t.to_vec()),
        };
        self.items.push(Cand {
            key,
            name: name.to_vec(),
            id,
        });
        if self.items.len() >= self.keep.saturating_mul(2).max(1024) {
            self.cut();
        }
    }

    fn cut(&mut self) {
        let d = self.descending;
        let keep = self.keep;
        self.items
            .select_nth_unstable_by(keep - 1, |a, b| Self::order(d, a.key(), b.key()));
        self.items.truncate(keep);
        self.bar = self
            .items
            .iter()
            .max_by(|a, b| Self::order(d, a.key(), b.key()))
            .cloned();
    }

    /// The kept candidates, in order.
    pub(super) fn finish(mut self) -> Vec<Cand> {
        let d = self.descending;
        self.items
            .sort_unstable_by(|a, b| Self::order(d, a.key(), b.key()));
        self.items.truncate(self.keep);
        self.items
    }
}
