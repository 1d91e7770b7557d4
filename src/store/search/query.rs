//! Running a list request over the index: one `memmem` pass per segment for the first query,
//! the other queries and the filters on each candidate, and a bounded selection of the page.

use std::cmp::Ordering;

use memchr::memmem::Finder;
use uuid::Uuid;

use super::text::{FREED, HEADER, SPA, SPA_IS_NAME, START, View, row_of};
use super::{ProfileField, ProfileQuery, Row, Segment};

pub(super) struct Compiled {
    /// Non-empty queries (an empty one matches everything), lower-cased.
    queries: Vec<Finder<'static>>,
    filters: Vec<(ProfileField, Finder<'static>)>,
}

impl Compiled {
    pub(super) fn new(q: &ProfileQuery) -> Self {
        let finder = |s: &str| Finder::new(s.to_lowercase().as_bytes()).into_owned();
        Compiled {
            queries: q
                .queries
                .iter()
                .filter(|q| !q.is_empty())
                .map(|q| finder(q))
                .collect(),
            filters: q.filters.iter().map(|(f, v)| (*f, finder(v))).collect(),
        }
    }

    /// Whether an entry passes every query and filter but the first query (`rest`) or all.
    fn matches(&self, row: &Row, entry: &[u8], rest: bool) -> bool {
        let queries = &self.queries[usize::from(rest).min(self.queries.len())..];
        if queries.is_empty() && self.filters.is_empty() {
            return true;
        }
        let v = View::of(entry);
        queries.iter().all(|q| contains(v.searched, q))
            && self
                .filters
                .iter()
                .all(|(f, n)| field_matches(row, &v, *f, n))
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

/// Calls `found` with the row number and the bytes of every live entry of `seg` that
/// matches. A hit is placed with the bytes around it (which the search just read), so that a
/// row is only read when a filter, the order or the page needs it.
pub(super) fn scan<'s>(seg: &'s Segment, q: &Compiled, mut found: impl FnMut(usize, &'s [u8])) {
    let arena = &seg.arena[..];
    let Some(first) = q.queries.first() else {
        for (n, row) in seg.rows.iter().enumerate().filter(|(_, r)| r.live()) {
            let entry = &arena[row.span()];
            if q.matches(row, entry, false) {
                found(n, entry);
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
        let after = &arena[hit..];
        match memchr::memchr3(SPA, SPA_IS_NAME, START, after) {
            // In a searched field: the entry ends at the first marker after its SPA part.
            Some(i) if after[i] != START => {
                let spa = hit + i + 1;
                let end =
                    spa + memchr::memchr2(START, FREED, &arena[spa..]).unwrap_or(arena.len() - spa);
                let n = row_of(&arena[start..start + HEADER]);
                let entry = &arena[start..end];
                if q.queries.len() + q.filters.len() == 1 || q.matches(&seg.rows[n], entry, true) {
                    found(n, entry);
                }
                from = end;
            }
            // In the SPA key name, which queries do not search: on to the next entry.
            Some(i) => from = hit + i,
            None => break,
        }
    }
}

/// A sort key as found in the index.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Key<'a> {
    Int(i64),
    Text(&'a [u8]),
}

pub(super) fn key<'a>(
    order: ProfileField,
    row: impl FnOnce() -> &'a Row,
    entry: &'a [u8],
) -> Key<'a> {
    let v = || View::of(entry);
    match order {
        // The uuid's bytes sort as its lower-case hyphenated text does.
        ProfileField::Id => Key::Text(row().id.as_bytes()),
        ProfileField::Notes => Key::Text(v().notes),
        // By name: the tie-break (the name) decides alone.
        ProfileField::Tags | ProfileField::Name => Key::Text(b""),
        ProfileField::Type => Key::Text(row().kind_text()),
        ProfileField::SpaKeyName => Key::Text(v().spa),
        ProfileField::IdentityProviderName => Key::Text(v().idp),
        ProfileField::Hostname => Key::Text(v().host),
        ProfileField::Created => Key::Int(row().created),
        ProfileField::Updated => Key::Int(row().updated),
        ProfileField::Exported => Key::Int(row().exported),
    }
}

/// A candidate kept for the page, its keys copied out of the arena (buffers are reused when
/// a better candidate takes its place).
pub(super) struct Cand {
    int: i64,
    text: Option<Vec<u8>>,
    name: Vec<u8>,
    pub id: Uuid,
}

impl Cand {
    fn key(&self) -> (Key<'_>, &[u8]) {
        let k = match &self.text {
            None => Key::Int(self.int),
            Some(t) => Key::Text(t),
        };
        (k, &self.name)
    }

    fn set(&mut self, key: Key, name: &[u8], id: Uuid) {
        match key {
            Key::Int(i) => {
                self.int = i;
                self.text = None;
            }
            Key::Text(t) => {
                let text = self.text.get_or_insert_with(Vec::new);
                text.clear();
                text.extend_from_slice(t);
            }
        }
        self.name.clear();
        self.name.extend_from_slice(name);
        self.id = id;
    }
}

/// Up to this many kept candidates live in a heap; a longer page is sorted at the end.
const HEAP_MAX: usize = 1 << 14;

/// Keeps the first `keep` candidates in order: a heap with the worst kept candidate on top, so
/// that most candidates cost one comparison.
pub(super) struct TopK {
    keep: usize,
    descending: bool,
    items: Vec<Cand>,
}

impl TopK {
    pub(super) fn new(keep: usize, descending: bool) -> TopK {
        TopK {
            keep,
            descending,
            items: Vec::new(),
        }
    }

    /// `Less`: `a` comes first in the list.
    fn order(&self, a: (Key, &[u8]), b: (Key, &[u8])) -> Ordering {
        if self.descending {
            b.cmp(&a)
        } else {
            a.cmp(&b)
        }
    }

    fn later(&self, i: usize, j: usize) -> bool {
        self.order(self.items[i].key(), self.items[j].key()) == Ordering::Greater
    }

    /// Appends a candidate; returns its position.
    fn push(&mut self, key: Key, name: &[u8], id: Uuid) -> usize {
        self.items.push(Cand {
            int: 0,
            text: None,
            name: Vec::new(),
            id,
        });
        let last = self.items.len() - 1;
        self.items[last].set(key, name, id);
        last
    }

    /// Offers a candidate; `id` is read only if it is kept.
    pub(super) fn offer(&mut self, key: Key, name: &[u8], id: impl FnOnce() -> Uuid) {
        if self.keep == 0 {
            return;
        }
        if self.keep > HEAP_MAX {
            self.push(key, name, id());
            return;
        }
        if self.items.len() < self.keep {
            let mut i = self.push(key, name, id());
            while i > 0 && self.later(i, (i - 1) / 2) {
                self.items.swap(i, (i - 1) / 2);
                i = (i - 1) / 2;
            }
            return;
        }
        if self.order((key, name), self.items[0].key()) != Ordering::Less {
            return;
        }
        self.items[0].set(key, name, id());
        let mut i = 0;
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut top = i;
            if l < self.items.len() && self.later(l, top) {
                top = l;
            }
            if r < self.items.len() && self.later(r, top) {
                top = r;
            }
            if top == i {
                break;
            }
            self.items.swap(i, top);
            i = top;
        }
    }

    /// The kept candidates, in order.
    pub(super) fn finish(mut self) -> Vec<Cand> {
        let mut items = std::mem::take(&mut self.items);
        let keep = self.keep.min(items.len());
        if keep > 0 && keep < items.len() {
            items.select_nth_unstable_by(keep - 1, |a, b| self.order(a.key(), b.key()));
            items.truncate(keep);
        }
        items.sort_unstable_by(|a, b| self.order(a.key(), b.key()));
        items
    }
}
