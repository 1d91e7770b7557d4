//! Time stamps in the two dialects' formats: Appgate uses microseconds, Oracle milliseconds,
//! both in UTC with `Z`.

use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

const APPGATE: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
const OCC: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// `2022-05-20T13:35:31.836392Z`
pub fn appgate(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(APPGATE)
        .expect("a UTC date always formats")
}

/// `2026-11-22T10:00:00.000Z`
pub fn occ(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(OCC)
        .expect("a UTC date always formats")
}

/// Milliseconds since the Unix epoch.
pub fn millis(t: OffsetDateTime) -> i64 {
    (t.unix_timestamp_nanos() / 1_000_000) as i64
}

pub fn from_millis(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}
