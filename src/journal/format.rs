//! How commits, entries and the journal's header are laid out in bytes.
//!
//! Framing is hand-rolled little-endian (lengths, versions, a CRC-32 over
//! every record); values are JSON, through the value type's serde impls.
//! Every record carries its own checksum because a journal must tell a
//! flipped bit from a value: redb keeps its own structures consistent, but
//! a record that decodes to a different value would otherwise load as if
//! nothing happened.

use std::time::{Duration, SystemTime};

use crate::history::Operation;

/// The format this build writes, and the newest it reads.
pub(crate) const FORMAT: u32 = 1;

/// Why bytes could not be read back.
#[derive(Debug)]
pub(crate) struct Malformed(pub(crate) String);

/// One change of a stored commit: a key and its new value's JSON, or
/// `None` for a removal.
pub(crate) struct StoredChange<'a> {
    pub(crate) key: &'a str,
    pub(crate) value: Option<&'a [u8]>,
    /// For a rollback's value: the version that first wrote this very
    /// value (see `store`), so recovery shares it as the writer did.
    pub(crate) origin: Option<u64>,
}

/// A commit as the log stores it.
pub(crate) struct StoredCommit<'a> {
    pub(crate) timestamp: SystemTime,
    pub(crate) operation: Operation,
    pub(crate) changed_by: Option<&'a str>,
    pub(crate) changes: Vec<StoredChange<'a>>,
    /// A rollback's target version.
    pub(crate) restored_from: Option<u64>,
}

/// The journal's header: format, the version its stored snapshot is at,
/// and the value type it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) format: u32,
    pub(crate) base: u64,
    pub(crate) value_type: String,
}

/// Builds one checksummed record.
pub(crate) struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    pub(crate) fn new() -> Self {
        Self {
            bytes: vec![0; 4], // the checksum, filled in by `finish`
        }
    }

    pub(crate) fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }

    pub(crate) fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }

    pub(crate) fn bytes(&mut self, value: &[u8]) {
        let len = u32::try_from(value.len()).expect("journal records are below redb's 3 GiB");
        self.u32(len);
        self.bytes.extend_from_slice(value);
    }

    /// The buffer a value is serialized into, after its length.
    pub(crate) fn value(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) -> Result<(), serde_json::Error> {
        let at = self.bytes.len();
        self.u32(0);
        encode(&mut self.bytes)?;
        let len = u32::try_from(self.bytes.len() - at - 4).expect("below redb's 3 GiB");
        self.bytes[at..at + 4].copy_from_slice(&len.to_le_bytes());
        Ok(())
    }

    /// The record, its checksum covering `context` (the record's key) and
    /// every byte after the checksum.
    pub(crate) fn finish(mut self, context: &[u8]) -> Vec<u8> {
        let sum = crc32(crc32_update(u32::MAX, context), &self.bytes[4..]);
        self.bytes[..4].copy_from_slice(&sum.to_le_bytes());
        self.bytes
    }
}

/// Reads one checksummed record.
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Check `record`'s checksum (over `context` and its body).
    pub(crate) fn new(record: &'a [u8], context: &[u8]) -> Result<Self, Malformed> {
        let (sum, body) = record
            .split_first_chunk::<4>()
            .ok_or_else(|| Malformed("record shorter than its checksum".into()))?;
        if crc32(crc32_update(u32::MAX, context), body) != u32::from_le_bytes(*sum) {
            return Err(Malformed("checksum mismatch".into()));
        }
        Ok(Self { rest: body })
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], Malformed> {
        if self.rest.len() < len {
            return Err(Malformed("record ends early".into()));
        }
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(head)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Malformed> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Malformed> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Malformed> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], Malformed> {
        let len = self.u32()? as usize;
        self.take(len)
    }

    pub(crate) fn str(&mut self) -> Result<&'a str, Malformed> {
        std::str::from_utf8(self.bytes()?).map_err(|_| Malformed("key is not UTF-8".into()))
    }

    /// Whatever is left: an entry's value.
    pub(crate) fn rest(self) -> &'a [u8] {
        self.rest
    }

    pub(crate) fn end(self) -> Result<(), Malformed> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(Malformed("trailing bytes after the record".into()))
        }
    }
}

/// Encode a commit. `encode_value` serializes one value into the buffer.
#[allow(clippy::too_many_arguments)] // one per field of the record
pub(crate) fn commit<'v, T: 'v>(
    version: u64,
    timestamp: SystemTime,
    operation: Operation,
    changed_by: Option<&str>,
    restored_from: Option<u64>,
    changes: impl ExactSizeIterator<Item = (&'v str, Option<&'v T>, u64)>,
    mut encode_value: impl FnMut(&mut Vec<u8>, &T) -> Result<(), serde_json::Error>,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut record = Writer::new();
    let since_epoch = timestamp
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    record.u64(since_epoch.as_secs());
    record.u32(since_epoch.subsec_nanos());
    record.u8(operation_code(operation));
    match changed_by {
        Some(name) => {
            record.u8(1);
            record.bytes(name.as_bytes());
        }
        None => record.u8(0),
    }
    match restored_from {
        Some(target) => {
            record.u8(1);
            record.u64(target);
        }
        None => record.u8(0),
    }
    record.u32(u32::try_from(changes.len()).expect("fewer than 2^32 changes"));
    for (key, value, origin) in changes {
        record.bytes(key.as_bytes());
        match value {
            Some(value) => {
                record.u8(1);
                record.value(|buffer| encode_value(buffer, value))?;
                if restored_from.is_some() {
                    record.u64(origin);
                }
            }
            None => record.u8(0),
        }
    }
    Ok(record.finish(&version.to_le_bytes()))
}

/// Decode a commit stored at `version`.
pub(crate) fn read_commit(version: u64, record: &[u8]) -> Result<StoredCommit<'_>, Malformed> {
    let mut reader = Reader::new(record, &version.to_le_bytes())?;
    let secs = reader.u64()?;
    let nanos = reader.u32()?;
    let timestamp = SystemTime::UNIX_EPOCH
        .checked_add(Duration::new(secs, nanos.min(999_999_999)))
        .ok_or_else(|| Malformed("timestamp out of range".into()))?;
    let operation = operation_from(reader.u8()?)?;
    let changed_by = match reader.u8()? {
        0 => None,
        1 => Some(reader.str()?),
        other => return Err(Malformed(format!("bad changed_by tag {other}"))),
    };
    let restored_from = match reader.u8()? {
        0 => None,
        1 => Some(reader.u64()?),
        other => return Err(Malformed(format!("bad rollback target tag {other}"))),
    };
    let count = reader.u32()? as usize;
    let mut changes = Vec::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let key = reader.str()?;
        let (value, origin) = match reader.u8()? {
            0 => (None, None),
            1 => {
                let value = reader.bytes()?;
                let origin = match restored_from {
                    Some(_) => Some(reader.u64()?),
                    None => None,
                };
                (Some(value), origin)
            }
            other => return Err(Malformed(format!("bad change tag {other}"))),
        };
        changes.push(StoredChange { key, value, origin });
    }
    reader.end()?;
    Ok(StoredCommit {
        timestamp,
        operation,
        changed_by,
        changes,
        restored_from,
    })
}

/// A stored entry of the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoredEntry<'a> {
    pub(crate) created: u64,
    pub(crate) modified: u64,
    /// The version that first wrote this very value (a rollback rewrites
    /// an older value at its own version).
    pub(crate) origin: u64,
    pub(crate) value: &'a [u8],
}

/// Encode a stored entry: its versions and its value's JSON.
pub(crate) fn entry(key: &str, stored: StoredEntry<'_>) -> Vec<u8> {
    let mut record = Writer::new();
    record.u64(stored.created);
    record.u64(stored.modified);
    record.u64(stored.origin);
    record.bytes.extend_from_slice(stored.value);
    record.finish(key.as_bytes())
}

/// Decode a stored entry.
pub(crate) fn read_entry<'a>(key: &str, record: &'a [u8]) -> Result<StoredEntry<'a>, Malformed> {
    let mut reader = Reader::new(record, key.as_bytes())?;
    let created = reader.u64()?;
    let modified = reader.u64()?;
    let origin = reader.u64()?;
    if created > modified || origin > modified {
        return Err(Malformed(format!(
            "key {key:?}: created {created}, modified {modified}, value from {origin} do not fit"
        )));
    }
    Ok(StoredEntry {
        created,
        modified,
        origin,
        value: reader.rest(),
    })
}

pub(crate) fn header(header: &Header) -> Vec<u8> {
    let mut record = Writer::new();
    record.u32(header.format);
    record.u64(header.base);
    record.bytes(header.value_type.as_bytes());
    record.finish(b"header")
}

/// Decode the header. A format newer than [`FORMAT`] is reported as such
/// even if the rest of the header is laid out differently.
pub(crate) fn read_header(record: &[u8]) -> Result<Header, Malformed> {
    let mut reader = Reader::new(record, b"header")?;
    let format = reader.u32()?;
    if format > FORMAT {
        return Ok(Header {
            format,
            base: 0,
            value_type: String::new(),
        });
    }
    let base = reader.u64()?;
    let value_type = std::str::from_utf8(reader.bytes()?)
        .map_err(|_| Malformed("value type is not UTF-8".into()))?
        .to_owned();
    reader.end()?;
    Ok(Header {
        format,
        base,
        value_type,
    })
}

/// Stable codes: the file outlives the enum's order.
fn operation_code(operation: Operation) -> u8 {
    match operation {
        Operation::Set => 1,
        Operation::Update => 2,
        Operation::Delete => 3,
        Operation::Clear => 4,
        Operation::Modify => 5,
        Operation::Retain => 6,
        Operation::Rollback => 7,
        Operation::Conditional => 8,
        Operation::Transaction => 9,
        Operation::Expire => 10,
        // Only etcd states make it; kept stable all the same.
        Operation::External => 11,
    }
}

fn operation_from(code: u8) -> Result<Operation, Malformed> {
    Ok(match code {
        1 => Operation::Set,
        2 => Operation::Update,
        3 => Operation::Delete,
        4 => Operation::Clear,
        5 => Operation::Modify,
        6 => Operation::Retain,
        7 => Operation::Rollback,
        8 => Operation::Conditional,
        9 => Operation::Transaction,
        10 => Operation::Expire,
        11 => Operation::External,
        other => return Err(Malformed(format!("unknown operation code {other}"))),
    })
}

/// CRC-32 (IEEE, reflected), finished.
fn crc32(state: u32, bytes: &[u8]) -> u32 {
    !crc32_update(state, bytes)
}

/// CRC-32 (IEEE) over `bytes`, continuing from `state`, bytewise with a
/// table built at compile time: fast enough next to a JSON encoding.
fn crc32_update(mut state: u32, bytes: &[u8]) -> u32 {
    const TABLE: [u32; 256] = {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut crc = i as u32;
            let mut bit = 0;
            while bit < 8 {
                crc = if crc & 1 == 1 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
                bit += 1;
            }
            table[i] = crc;
            i += 1;
        }
        table
    };
    for &byte in bytes {
        state = TABLE[((state ^ u32::from(byte)) & 0xFF) as usize] ^ (state >> 8);
    }
    state
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(u32::MAX, b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn a_commit_round_trips_and_a_flipped_bit_is_caught() {
        let values = [7u32, 9];
        let changes = vec![
            ("a", Some(&values[0]), 12),
            ("b", None, 0),
            ("c", Some(&values[1]), 30),
        ];
        let at = SystemTime::UNIX_EPOCH + Duration::new(1_700_000_000, 5);
        let record = commit(
            42,
            at,
            Operation::Transaction,
            Some("agent"),
            Some(40),
            changes.into_iter(),
            |buffer, value| serde_json::to_writer(buffer, value),
        )
        .unwrap();
        let read = read_commit(42, &record).unwrap();
        assert_eq!(read.timestamp, at);
        assert_eq!(read.operation, Operation::Transaction);
        assert_eq!(read.changed_by, Some("agent"));
        assert_eq!(read.restored_from, Some(40));
        let keys: Vec<_> = read
            .changes
            .iter()
            .map(|c| (c.key, c.value, c.origin))
            .collect();
        assert_eq!(
            keys,
            vec![
                ("a", Some(&b"7"[..]), Some(12)),
                ("b", None, None),
                ("c", Some(&b"9"[..]), Some(30))
            ]
        );
        // The version is part of the checksum: a record moved to another
        // slot does not load.
        assert!(read_commit(43, &record).is_err());
        for bit in 0..record.len() * 8 {
            let mut flipped = record.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(read_commit(42, &flipped).is_err(), "bit {bit} not caught");
        }
        assert!(read_commit(42, &record[..record.len() - 1]).is_err());
    }

    /// A record with a valid checksum around `body`, as `commit` lays it
    /// out: timestamp, operation, then `body`.
    fn record_with(version: u64, operation: u8, body: impl FnOnce(&mut Writer)) -> Vec<u8> {
        let mut record = Writer::new();
        record.u64(0);
        record.u32(0);
        record.u8(operation);
        body(&mut record);
        record.finish(&version.to_le_bytes())
    }

    #[test]
    fn every_operation_round_trips_and_bad_fields_are_caught_behind_a_valid_checksum() {
        for operation in [
            Operation::Set,
            Operation::Update,
            Operation::Delete,
            Operation::Clear,
            Operation::Modify,
            Operation::Retain,
            Operation::Rollback,
            Operation::Conditional,
            Operation::Transaction,
            Operation::Expire,
            Operation::External,
        ] {
            let record = commit::<u8>(
                1,
                SystemTime::UNIX_EPOCH,
                operation,
                None,
                None,
                std::iter::empty(),
                |_, _| Ok(()),
            )
            .unwrap();
            assert_eq!(read_commit(1, &record).unwrap().operation, operation);
        }
        let error = |record: Vec<u8>| match read_commit(1, &record) {
            Err(Malformed(message)) => message,
            Ok(_) => panic!("accepted"),
        };
        assert!(error(record_with(1, 99, |_| {})).contains("unknown operation"));
        assert!(error(record_with(1, 1, |r| r.u8(7))).contains("changed_by tag"));
        assert!(error(record_with(1, 1, |r| {
            r.u8(0);
            r.u8(7);
        }))
        .contains("rollback target tag"));
        assert!(error(record_with(1, 1, |r| {
            r.u8(0);
            r.u8(0);
            r.u32(1);
            r.bytes(b"k");
            r.u8(7);
        }))
        .contains("change tag"));
        assert!(error(record_with(1, 1, |r| {
            r.u8(0);
            r.u8(0);
            r.u32(0);
            r.u8(0);
        }))
        .contains("trailing"));
        assert!(error(record_with(1, 1, |_| {})).contains("ends early"));
        assert!(read_commit(1, &[1, 2]).is_err());
        let backwards = entry(
            "k",
            StoredEntry {
                created: 5,
                modified: 3,
                origin: 3,
                value: b"1",
            },
        );
        assert!(read_entry("k", &backwards).is_err());
        assert!(read_header(b"short").is_err());
    }

    #[test]
    fn entries_and_headers_round_trip() {
        let original = StoredEntry {
            created: 3,
            modified: 5,
            origin: 4,
            value: b"\"v\"",
        };
        let stored = entry("k", original);
        assert_eq!(read_entry("k", &stored).unwrap(), original);
        assert!(read_entry("j", &stored).is_err());
        let head = Header {
            format: FORMAT,
            base: 12,
            value_type: "u32".into(),
        };
        assert_eq!(read_header(&header(&head)).unwrap(), head);
    }
}
