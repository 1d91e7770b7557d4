//! The commit record: an account of what was committed, kept outside sled.
//!
//! sled recovers a damaged log by cutting it at the first bad record, and then opens what is
//! left as if nothing had happened: a database can lose its last commits, or all of them,
//! without an error. A record kept *inside* sled is cut with the rest, so profiled keeps its
//! own, beside the database, in `FILE`:
//!
//! - every group commit round has a number, stored in sled (meta `commit_seq`) *before* the
//!   round's flush, and written here *after* the flush and fdatasync, before any writer of the
//!   round is answered. So sled's number is never smaller than this record's, unless sled lost
//!   data;
//! - with it, the number of accounts (which only grow: there is no account delete) counted
//!   before the flush, so that sled must hold at least as many;
//! - a clean stop writes a final record (fsynced) with the exact counts and `clean` set: the
//!   next open must find exactly that commit, the clean-stop marker and those counts.
//!
//! The file holds two 64-byte slots written in turn (round `n` into slot `n % 2`) with
//! `pwrite`, each with a checksum: a torn write spoils one slot and the other still holds the
//! previous round. Rounds do not fsync this file (the database file was synced just before;
//! a record that is older than the database after a power loss is harmless, only a newer one
//! would be alarming, and that cannot happen); it is created and the clean-stop record is
//! written durably (fsync of the file and of the directory).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use sha2::{Digest, Sha256};

/// The commit record's file in the data directory.
pub(crate) const FILE: &str = "profiled.commit";
const MAGIC: &[u8; 8] = b"PRFCMT01";
const SLOT: usize = 64;

/// One round's record.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Record {
    /// The number of the last group commit round that completed.
    pub(crate) seq: u64,
    /// Accounts at least (exact when `clean`).
    pub(crate) accounts: u64,
    /// Client profiles (exact only when `clean`).
    pub(crate) client_profiles: u64,
    /// Written by a clean stop: the counts are exact and nothing follows.
    pub(crate) clean: bool,
}

impl Record {
    fn encode(&self) -> [u8; SLOT] {
        let mut s = [0u8; SLOT];
        s[..8].copy_from_slice(MAGIC);
        s[8..16].copy_from_slice(&self.seq.to_be_bytes());
        s[16..24].copy_from_slice(&self.accounts.to_be_bytes());
        s[24..32].copy_from_slice(&self.client_profiles.to_be_bytes());
        s[32] = u8::from(self.clean);
        let sum = Sha256::digest(&s[..SLOT - 16]);
        s[SLOT - 16..].copy_from_slice(&sum[..16]);
        s
    }

    fn decode(s: &[u8]) -> Option<Record> {
        if s.len() != SLOT
            || &s[..8] != MAGIC
            || Sha256::digest(&s[..SLOT - 16])[..16] != s[SLOT - 16..]
        {
            return None;
        }
        let n = |i: usize| u64::from_be_bytes(s[i..i + 8].try_into().expect("8 bytes"));
        Some(Record {
            seq: n(8),
            accounts: n(16),
            client_profiles: n(24),
            clean: s[32] == 1,
        })
    }
}

/// Reads the record in `dir`: `Ok(None)` when there is no file, an error when it exists but no
/// slot can be read.
pub(crate) fn read(dir: &Path) -> std::io::Result<Option<Record>> {
    let bytes = match std::fs::read(dir.join(FILE)) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    bytes
        .chunks(SLOT)
        .filter_map(Record::decode)
        .max_by_key(|r| r.seq)
        .map(Some)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{FILE} is unreadable (both copies fail their checksum)"),
            )
        })
}

/// The open record file, written once per round.
pub(crate) struct Ledger {
    file: File,
}

impl Ledger {
    /// Opens the record in `dir`, creating it durably (with `first`) when there is none.
    pub(crate) fn open(dir: &Path, first: Record) -> std::io::Result<Ledger> {
        let path = dir.join(FILE);
        if !path.exists() {
            let tmp = dir.join(format!("{FILE}.tmp"));
            let mut f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            let slot = first.encode();
            f.write_all(&slot)?;
            f.write_all(&slot)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            File::open(dir)?.sync_all()?;
        }
        let file = OpenOptions::new().read(true).write(true).open(&path)?;
        Ok(Ledger { file })
    }

    /// Writes `r` into its slot (no fsync: see the module documentation).
    pub(crate) fn write(&self, r: &Record) -> std::io::Result<()> {
        self.file
            .write_all_at(&r.encode(), (r.seq % 2) * SLOT as u64)
    }

    /// Writes `r` into both slots and syncs: a clean stop, or the first record after open.
    pub(crate) fn write_durably(&self, r: &Record) -> std::io::Result<()> {
        let slot = r.encode();
        self.file.write_all_at(&slot, 0)?;
        self.file.write_all_at(&slot, SLOT as u64)?;
        self.file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_readable_slot_wins_and_a_torn_slot_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None);
        let first = Record {
            seq: 1,
            accounts: 1,
            ..Record::default()
        };
        let ledger = Ledger::open(dir.path(), first).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(first));
        let second = Record { seq: 2, ..first };
        ledger.write(&second).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(second));
        // Tear the newest slot: the previous round's record stands.
        let path = dir.path().join(FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[10] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(first));
        // Both torn: an error, never "no record".
        bytes[SLOT + 10] ^= 0xFF;
        std::fs::write(&path, &bytes).unwrap();
        assert!(read(dir.path()).is_err());
    }
}
