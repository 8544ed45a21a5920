//! The export format: JSON Lines, one record per line, as specified in `docs/journal-format.md`.
//!
//! Every field needed to rebuild the signed bytes is present, so an auditor can verify an export
//! with any Ed25519 library. `time` is informational (the signed value is `time_us`).

use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::record::Record;

/// One exported record.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    seq: u64,
    van_id: String,
    key_id: String,
    time_us: i64,
    /// Informational RFC 3339 rendering of `time_us`; ignored when reading.
    #[serde(default)]
    time: String,
    boot_id: String,
    boot_us: u64,
    kind: String,
    /// The exact payload bytes as a JSON string (payloads are UTF-8 JSON text).
    payload: String,
    prev_hash: String,
    hash: String,
    sig: String,
}

/// An export line that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum ExportLineError {
    #[error("line {line}: not a journal export record: {detail}")]
    Json { line: usize, detail: String },
    #[error("line {line}: field {field}: {detail}")]
    Field { line: usize, field: &'static str, detail: String },
}

/// Formats UTC microseconds as RFC 3339 with microseconds (`2026-11-23T20:00:00.000000Z`).
pub fn format_utc_us(us: i64) -> String {
    match jiff::Timestamp::from_microsecond(us) {
        Ok(t) => format!("{t:.6}"),
        Err(_) => format!("<invalid time {us}>"),
    }
}

/// Writes one record as a JSON line (with trailing newline).
///
/// Export is lossless: a payload that is not UTF-8 (impossible for a record that passes the
/// format rules, so a sign of damage) is an `InvalidData` error naming the record, never a
/// silently altered line.
pub fn write_line(out: &mut impl Write, rec: &Record) -> std::io::Result<()> {
    let payload = std::str::from_utf8(&rec.payload).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "record {}: payload is not UTF-8 (byte {}); it cannot be exported without altering it \
                 (run `vanctl journal verify`)",
                rec.seq,
                e.valid_up_to()
            ),
        )
    })?;
    let line = Line {
        seq: rec.seq,
        van_id: rec.van_id.clone(),
        key_id: hex::encode(rec.key_id),
        time_us: rec.time_us,
        time: format_utc_us(rec.time_us),
        boot_id: hex::encode(rec.boot_id),
        boot_us: rec.boot_us,
        kind: rec.kind.clone(),
        payload: payload.to_owned(),
        prev_hash: hex::encode(rec.prev_hash),
        hash: hex::encode(rec.hash),
        sig: hex::encode(rec.sig),
    };
    serde_json::to_writer(&mut *out, &line)?;
    out.write_all(b"\n")
}

fn hex_field<const N: usize>(
    line: usize,
    field: &'static str,
    text: &str,
) -> Result<[u8; N], ExportLineError> {
    let bytes =
        hex::decode(text).map_err(|e| ExportLineError::Field { line, field, detail: e.to_string() })?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| ExportLineError::Field {
        line,
        field,
        detail: format!("{} bytes, expected {N}", bytes.len()),
    })
}

/// Parses one export line (`line_no` is for messages). Never panics on any input.
pub fn parse_line(text: &str, line_no: usize) -> Result<Record, ExportLineError> {
    let l: Line = serde_json::from_str(text)
        .map_err(|e| ExportLineError::Json { line: line_no, detail: e.to_string() })?;
    Ok(Record {
        seq: l.seq,
        van_id: l.van_id,
        key_id: hex_field(line_no, "key_id", &l.key_id)?,
        time_us: l.time_us,
        boot_id: hex_field(line_no, "boot_id", &l.boot_id)?,
        boot_us: l.boot_us,
        kind: l.kind,
        payload: l.payload.into_bytes(),
        prev_hash: hex_field(line_no, "prev_hash", &l.prev_hash)?,
        hash: hex_field(line_no, "hash", &l.hash)?,
        sig: hex_field(line_no, "sig", &l.sig)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Draft;

    #[test]
    fn line_round_trips_exactly() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        let payload = br#"{"name":"\u0645\u062d\u0645\u062f","note":"a \"quoted\" \\ text"}"#;
        let rec = Draft {
            seq: 7,
            van_id: "MTU-1",
            time_us: -5,
            boot_id: [9; 16],
            boot_us: 1,
            kind: "test.note",
            payload,
            prev_hash: [1; 32],
        }
        .seal(&key)
        .unwrap();
        let mut out = Vec::new();
        write_line(&mut out, &rec).unwrap();
        assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
        let back = parse_line(std::str::from_utf8(&out).unwrap().trim_end(), 1).unwrap();
        assert_eq!(back, rec);
    }

    #[test]
    fn non_utf8_payload_is_an_error_not_a_lossy_line() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3u8; 32]);
        let draft = Draft {
            seq: 7,
            van_id: "MTU-1",
            time_us: 0,
            boot_id: [0; 16],
            boot_us: 0,
            kind: "test.note",
            payload: br#""ok""#,
            prev_hash: [0; 32],
        };
        let mut rec = draft.seal(&key).unwrap();
        rec.payload = b"\"\xff\"".to_vec();
        let mut out = Vec::new();
        let err = write_line(&mut out, &rec).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
        assert!(err.to_string().starts_with("record 7: payload is not UTF-8"), "{err}");
        assert!(out.is_empty());
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(parse_line("", 1).is_err());
        assert!(parse_line("{}", 1).is_err());
        assert!(parse_line("[1,2]", 3).unwrap_err().to_string().starts_with("line 3"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,400}") {
            let _ = parse_line(&s, 1);
        }
    }
}
