//! The index saved by a clean shutdown and loaded by the next open, so that a clean restart
//! does not read and parse every record again. The file is written once no write can happen
//! any more (the gate is closed), made durable before the clean-shutdown marker that names it
//! by a random token, and deleted once loaded. A crash, a stale token or a damaged file only
//! mean that the index is built from the records, as after any unclean stop.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;
use std::sync::{Arc, RwLock};

use uuid::Uuid;

use super::text::{HEADER, START, row_of};
use super::{GROUP_BIT, Row, SEGMENT_ROWS, Search, Segment, State};

/// The file's name in the data directory.
pub(crate) const FILE: &str = "search-index";
const MAGIC: &[u8; 16] = b"profiled-search1";
const END: &[u8; 4] = b"end.";
const ROW_BYTES: usize = 48;

fn put_row(out: &mut impl Write, r: &Row) -> std::io::Result<()> {
    let mut b = [0u8; ROW_BYTES];
    b[..16].copy_from_slice(r.id.as_bytes());
    b[16..20].copy_from_slice(&r.start.to_le_bytes());
    b[20..24].copy_from_slice(&r.len.to_le_bytes());
    b[24..32].copy_from_slice(&r.created.to_le_bytes());
    b[32..40].copy_from_slice(&r.updated.to_le_bytes());
    b[40..48].copy_from_slice(&r.exported.to_le_bytes());
    out.write_all(&b)
}

fn get_row(b: &[u8; ROW_BYTES]) -> Row {
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().expect("4 bytes"));
    let i64_at = |i: usize| i64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    Row {
        id: Uuid::from_bytes(b[..16].try_into().expect("16 bytes")),
        start: u32_at(16),
        len: u32_at(20),
        created: i64_at(24),
        updated: i64_at(32),
        exported: i64_at(40),
    }
}

fn read_array<const N: usize>(r: &mut impl Read) -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    r.read_exact(&mut b)?;
    Ok(b)
}

impl Search {
    /// Writes the index to `dir/FILE`, durably. Returns `false` (and writes nothing) while the
    /// index is still being built.
    pub(crate) fn save(&self, dir: &Path, token: &[u8; 16]) -> std::io::Result<bool> {
        if *self.state.borrow() != State::Ready {
            return Ok(false);
        }
        let rows = self.lock_rows();
        let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
        let tmp = dir.join(format!("{FILE}.tmp"));
        let mut out = BufWriter::with_capacity(1 << 20, File::create(&tmp)?);
        out.write_all(MAGIC)?;
        out.write_all(token)?;
        out.write_all(&rows.next.to_le_bytes())?;
        out.write_all(&(segments.len() as u32).to_le_bytes())?;
        for seg in segments.iter() {
            let seg = seg.read().unwrap_or_else(|p| p.into_inner());
            out.write_all(&(seg.rows.len() as u32).to_le_bytes())?;
            out.write_all(&(seg.arena.len() as u64).to_le_bytes())?;
            out.write_all(&(seg.garbage as u64).to_le_bytes())?;
            for r in &seg.rows {
                put_row(&mut out, r)?;
            }
            out.write_all(&seg.arena)?;
        }
        out.write_all(END)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, dir.join(FILE))?;
        File::open(dir)?.sync_all()?;
        Ok(true)
    }

    /// Loads the index saved with `token`, which must hold `expected` profiles, before anything
    /// else touches the index, and marks it ready.
    pub(crate) fn load(&self, dir: &Path, token: &[u8; 16], expected: u64) -> Result<(), String> {
        let file = File::open(dir.join(FILE)).map_err(|e| e.to_string())?;
        let mut r = BufReader::with_capacity(1 << 20, file);
        let io = |e: std::io::Error| e.to_string();
        if &read_array::<16>(&mut r).map_err(io)? != MAGIC {
            return Err("not a saved search index".into());
        }
        if &read_array::<16>(&mut r).map_err(io)? != token {
            return Err("saved by another shutdown".into());
        }
        let next = u32::from_le_bytes(read_array(&mut r).map_err(io)?);
        let count = u32::from_le_bytes(read_array(&mut r).map_err(io)?) as usize;
        if next.div_ceil(SEGMENT_ROWS) as usize != count {
            return Err("segment count does not match the rows".into());
        }
        let mut segments = Vec::with_capacity(count);
        let mut by_id = HashMap::new();
        let mut free = Vec::new();
        for n in 0..count {
            let rows = u32::from_le_bytes(read_array(&mut r).map_err(io)?) as usize;
            let arena_len = u64::from_le_bytes(read_array(&mut r).map_err(io)?) as usize;
            let garbage = u64::from_le_bytes(read_array(&mut r).map_err(io)?) as usize;
            if rows > SEGMENT_ROWS as usize || garbage > arena_len || arena_len > u32::MAX as usize
            {
                return Err(format!("segment {n} is damaged"));
            }
            let mut seg = Segment {
                rows: Vec::with_capacity(rows),
                arena: Vec::new(),
                garbage,
            };
            for _ in 0..rows {
                seg.rows.push(get_row(&read_array(&mut r).map_err(io)?));
            }
            seg.arena = vec![0; arena_len];
            r.read_exact(&mut seg.arena).map_err(io)?;
            for (i, row) in seg.rows.iter().enumerate() {
                let global = (n * SEGMENT_ROWS as usize + i) as u32;
                if !row.live() {
                    if global < next {
                        free.push(global);
                    }
                    continue;
                }
                let entry = seg.arena.get(row.span()).filter(|e| e.len() > HEADER);
                let sound = entry.is_some_and(|e| e[0] == START && row_of(e) == i)
                    && row.len & !GROUP_BIT > HEADER as u32;
                if !sound || by_id.insert(row.id, global).is_some() {
                    return Err(format!("row {global} is damaged"));
                }
            }
            segments.push(Arc::new(RwLock::new(seg)));
        }
        if &read_array::<4>(&mut r).map_err(io)? != END {
            return Err("the file is truncated".into());
        }
        if by_id.len() as u64 != expected {
            return Err(format!(
                "{} profiles, the store has {expected}",
                by_id.len()
            ));
        }
        let mut state = self.lock_rows();
        state.by_id = by_id;
        state.free = free;
        state.next = next;
        state.touched = None;
        *self.segments.write().unwrap_or_else(|p| p.into_inner()) = segments;
        self.state.send_replace(State::Ready);
        Ok(())
    }
}
