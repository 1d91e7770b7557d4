//! The fields the search index keeps, read from a record. The index build reads every record
//! at start-up, so records in the exact layout `encode` writes are read by a direct pass over
//! their bytes; anything else goes through the JSON parser, which gives the same result.

use std::borrow::Cow;

use time::OffsetDateTime;
use uuid::Uuid;

use super::super::StoreError;
use super::super::profile_types::ProfileType;
use super::{parse_public, parse_time, public};

/// The fields the search index keeps, borrowed where the record allows.
pub(crate) struct Fields<'a> {
    pub id: Uuid,
    pub kind: ProfileType,
    pub name: Cow<'a, str>,
    pub notes: Cow<'a, str>,
    pub tags: Vec<Cow<'a, str>>,
    pub spa_key_name: Cow<'a, str>,
    pub identity_provider_name: Cow<'a, str>,
    pub hostname: Cow<'a, str>,
    /// Unix microseconds, the precision that is stored.
    pub created: i64,
    pub updated: i64,
    pub exported: Option<i64>,
}

fn micros(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000) as i64
}

impl<'a> Fields<'a> {
    #[cfg(test)]
    pub(crate) fn of_profile(p: &'a super::super::profile_types::ClientProfile) -> Fields<'a> {
        Fields {
            id: p.id,
            kind: p.kind,
            name: Cow::Borrowed(&p.name),
            notes: Cow::Borrowed(&p.notes),
            tags: p.tags.iter().map(|t| Cow::Borrowed(t.as_str())).collect(),
            spa_key_name: Cow::Borrowed(&p.spa_key_name),
            identity_provider_name: Cow::Borrowed(&p.identity_provider_name),
            hostname: Cow::Borrowed(&p.hostname),
            created: micros(p.created),
            updated: micros(p.updated),
            exported: p.exported.map(micros),
        }
    }

    pub(crate) fn of_record(record: &'a [u8]) -> Result<Fields<'a>, StoreError> {
        if let Some(f) = public(record).and_then(|(json, _)| Reader { b: json, at: 0 }.fields()) {
            return Ok(f);
        }
        let p = parse_public(record)?;
        Ok(Fields {
            id: p.id,
            kind: p.kind,
            name: p.name,
            notes: p.notes,
            tags: p.tags.into_iter().map(Cow::Owned).collect(),
            spa_key_name: p.spa_key_name,
            identity_provider_name: p.identity_provider_name,
            hostname: p.hostname,
            created: micros(parse_time(&p.created)?),
            updated: micros(parse_time(&p.updated)?),
            exported: p
                .exported
                .as_deref()
                .map(parse_time)
                .transpose()?
                .map(micros),
        })
    }
}

/// A pass over public JSON in `encode`'s layout; `None` as soon as anything differs.
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn lit(&mut self, s: &[u8]) -> Option<()> {
        self.b[self.at..].starts_with(s).then(|| self.at += s.len())
    }

    fn string(&mut self) -> Option<Cow<'a, str>> {
        let start = self.at;
        self.lit(b"\"")?;
        let rest = &self.b[self.at..];
        let end = memchr::memchr2(b'"', b'\\', rest)?;
        if rest[end] == b'"' {
            self.at += end + 1;
            return std::str::from_utf8(&rest[..end]).ok().map(Cow::Borrowed);
        }
        // Escapes: find the closing quote, then let the JSON parser unescape.
        let mut i = end;
        loop {
            match *rest.get(i)? {
                b'\\' => i += 2,
                b'"' => break,
                _ => i += 1,
            }
        }
        self.at += i + 1;
        serde_json::from_slice::<String>(&self.b[start..self.at])
            .ok()
            .map(Cow::Owned)
    }

    /// `"YYYY-MM-DDTHH:MM:SS.ffffffZ"` as Unix microseconds.
    fn time(&mut self) -> Option<i64> {
        let s = self.b.get(self.at..self.at + 29)?;
        let n = |r: std::ops::Range<usize>| -> Option<i64> {
            s[r].iter().try_fold(0i64, |acc, &c| {
                c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
            })
        };
        let shape = [
            (0, b'"'),
            (5, b'-'),
            (8, b'-'),
            (11, b'T'),
            (14, b':'),
            (17, b':'),
            (20, b'.'),
            (27, b'Z'),
            (28, b'"'),
        ];
        if shape.iter().any(|&(i, c)| s[i] != c) {
            return None;
        }
        let (y, mo, d) = (n(1..5)?, n(6..8)?, n(9..11)?);
        let (h, mi, sec, us) = (n(12..14)?, n(15..17)?, n(18..20)?, n(21..27)?);
        let date = time::Date::from_calendar_date(
            y as i32,
            time::Month::try_from(mo as u8).ok()?,
            d as u8,
        )
        .ok()?;
        let t = time::Time::from_hms_micro(h as u8, mi as u8, sec as u8, us as u32).ok()?;
        self.at += 29;
        Some(micros(date.with_time(t).assume_utc()))
    }

    fn fields(mut self) -> Option<Fields<'a>> {
        self.lit(b"{\"id\":\"")?;
        let id = Uuid::try_parse_ascii(self.b.get(self.at..self.at + 36)?).ok()?;
        self.at += 36;
        self.lit(b"\",\"name\":")?;
        let name = self.string()?;
        self.lit(b",\"notes\":")?;
        let notes = self.string()?;
        self.lit(b",\"created\":")?;
        let created = self.time()?;
        self.lit(b",\"updated\":")?;
        let updated = self.time()?;
        self.lit(b",\"tags\":[")?;
        let mut tags = Vec::new();
        while self.lit(b"]").is_none() {
            if !tags.is_empty() {
                self.lit(b",")?;
            }
            tags.push(self.string()?);
        }
        let mut f = Fields {
            id,
            kind: ProfileType::Profile,
            name,
            notes,
            tags,
            spa_key_name: Cow::Borrowed(""),
            identity_provider_name: Cow::Borrowed(""),
            hostname: Cow::Borrowed(""),
            created,
            updated,
            exported: None,
        };
        if self.lit(b",\"type\":\"Profile\"").is_some() {
            self.lit(b",\"spaKeyName\":")?;
            f.spa_key_name = self.string()?;
            self.lit(b",\"identityProviderName\":")?;
            f.identity_provider_name = self.string()?;
            if self.lit(b",\"hostname\":").is_some() {
                f.hostname = self.string()?;
            }
        } else {
            self.lit(b",\"type\":\"Group\",\"profileUrls\":[")?;
            f.kind = ProfileType::Group;
            // The members hold nothing the index keeps: go to the end of the array, whose
            // strings hold no raw `]` outside quotes.
            while self.lit(b"]").is_none() {
                match *self.b.get(self.at)? {
                    b'"' => {
                        self.string()?;
                    }
                    _ => self.at += 1,
                }
            }
        }
        if self.lit(b",\"exported\":").is_some() {
            f.exported = Some(self.time()?);
        }
        self.lit(b"}")?;
        (self.at == self.b.len()).then_some(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::profile_record::encode;
    use crate::store::profile_types::{ClientProfile, ProfileUrl};

    fn same(a: &Fields, b: &Fields) -> bool {
        (a.id, a.kind, &a.name, &a.notes, &a.tags, &a.spa_key_name)
            == (b.id, b.kind, &b.name, &b.notes, &b.tags, &b.spa_key_name)
            && (
                &a.identity_provider_name,
                &a.hostname,
                a.created,
                a.updated,
                a.exported,
            ) == (
                &b.identity_provider_name,
                &b.hostname,
                b.created,
                b.updated,
                b.exported,
            )
    }

    #[test]
    fn the_direct_pass_reads_what_the_json_parser_reads() {
        let t = |us: i64| OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).unwrap();
        let mut p = ClientProfile {
            id: Uuid::now_v7(),
            name: "Quote \" slash \\ é \u{1F600} \n".into(),
            notes: "notes ] } \"".into(),
            tags: vec!["a".into(), "b\"]".into()],
            created: t(1_653_053_731_836_392),
            updated: t(-62_135_596_800_000_000),
            exported: Some(t(253_402_300_799_999_999)),
            kind: ProfileType::Profile,
            spa_key_name: "k".into(),
            identity_provider_name: "local".into(),
            hostname: "h.example".into(),
            profile_urls: vec![],
        };
        let mut cases = vec![p.clone()];
        p.hostname.clear();
        p.exported = None;
        p.tags.clear();
        cases.push(p.clone());
        p.kind = ProfileType::Group;
        p.spa_key_name.clear();
        p.identity_provider_name.clear();
        p.profile_urls = vec![ProfileUrl {
            id: Uuid::nil(),
            url: "appgate://x/\"]".into(),
            hostname: "h\"]".into(),
            profile_name: "p".into(),
            weight: 7,
        }];
        p.exported = Some(t(5));
        cases.push(p);
        for case in &cases {
            let record = encode(case);
            let (json, _) = public(&record).unwrap();
            let direct = Reader { b: json, at: 0 }
                .fields()
                .expect("the direct pass reads it");
            let parsed = parse_public(&record).unwrap();
            let slow = Fields {
                id: parsed.id,
                kind: parsed.kind,
                name: parsed.name.clone(),
                notes: parsed.notes.clone(),
                tags: parsed.tags.iter().map(|t| Cow::Owned(t.clone())).collect(),
                spa_key_name: parsed.spa_key_name.clone(),
                identity_provider_name: parsed.identity_provider_name.clone(),
                hostname: parsed.hostname.clone(),
                created: micros(parse_time(&parsed.created).unwrap()),
                updated: micros(parse_time(&parsed.updated).unwrap()),
                exported: parsed
                    .exported
                    .as_deref()
                    .map(|e| micros(parse_time(e).unwrap())),
            };
            assert!(same(&direct, &slow), "{case:?}");
            assert!(same(&direct, &Fields::of_profile(case)), "{case:?}");
        }
        // Anything else falls back to the parser.
        let odd = br#"P{"name":"x","id":"00000000-0000-0000-0000-000000000000","created":"2022-05-20T13:35:31.836392Z","updated":"2022-05-20T13:35:31.836392Z","type":"Profile"}"#;
        assert!(
            Reader {
                b: &odd[1..],
                at: 0
            }
            .fields()
            .is_none()
        );
        assert_eq!(Fields::of_record(odd).unwrap().name, "x");
    }
}
