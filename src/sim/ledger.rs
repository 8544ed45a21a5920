//! The simulators' ledger: what physically happened at the simulated devices (charges and
//! reversals at the terminal, cards out of the printer, labels printed, tags written), in the
//! order it happened. It is the ground truth that whole-program tests and the crash harness
//! compare with the journal: the journal says what the van *believes*, the ledger what the
//! devices *did*.
//!
//! A simulator reports [`Event`]s through [`SimDevice::take_ledger`](super::SimDevice::take_ledger);
//! the host stamps each with a sequence number (1, 2, 3 … over the whole ledger, across restarts)
//! and the UTC time, and appends it — to memory, and to a JSON Lines file when one is given
//! ([`Ledger::open`]), one line per entry, written before the device's answer goes to the host.
//! The file is append-only: reopening it continues the sequence; a last line cut short by a kill
//! mid-write is dropped (it was never answered), any other bad line refuses the file.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One panel of a printed card, as the printer received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelDigest {
    /// `front` or `back`.
    pub side: String,
    /// `y`, `m`, `c`, `k` or `o`.
    pub panel: String,
    /// SHA-256 (hex) of the panel's decoded level values in printer line order.
    pub sha256: String,
}

/// Something that physically happened at a simulated device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The terminal approved and booked a purchase (whether or not its answer reached the ECR).
    Charge {
        /// Piastres.
        amount: u64,
        /// The terminal's receipt number (BMP 87).
        receipt_no: u32,
        /// The terminal's trace number (BMP 0B).
        trace: u32,
        /// The card number as a receipt shows it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        masked_pan: Option<String>,
    },
    /// The terminal reversed an earlier purchase of this batch.
    Reversal {
        /// Receipt number of the purchase reversed.
        reversed_receipt_no: u32,
        /// Piastres given back (the purchase's amount).
        amount: u64,
        /// The reversal's own receipt number.
        receipt_no: u32,
        /// The reversal's trace number.
        trace: u32,
    },
    /// The terminal approved a refund to a card.
    Refund {
        /// Piastres.
        amount: u64,
        /// The refund's receipt number.
        receipt_no: u32,
        /// The refund's trace number.
        trace: u32,
    },
    /// The card issuer declined; no money moved.
    Declined {
        /// `purchase` or `refund`.
        kind: String,
        /// Piastres asked for.
        amount: u64,
        /// ZVT result code (e.g. 5 = declined).
        result_code: u8,
        /// The trace number used.
        trace: u32,
    },
    /// The ECR aborted a payment before the terminal booked it; no money moved.
    Aborted {
        /// `purchase` or `refund`.
        kind: String,
        /// Piastres asked for.
        amount: u64,
    },
    /// The terminal closed its batch (end of day).
    EndOfDay {
        /// Net piastres of the batch (live purchases minus refunds).
        total: u64,
        /// Live (not reversed) purchases.
        count: u64,
        /// Receipt numbers of the batch, first and last (0 for an empty batch).
        first_receipt: u32,
        /// See `first_receipt`.
        last_receipt: u32,
    },
    /// A card left the printer printed.
    CardPrinted {
        /// The printer's card counter (1-based since the simulator started).
        card: u32,
        /// 1 or 2.
        sides: u32,
        /// The panels printed, front then back, in the order received.
        panels: Vec<PanelDigest>,
        /// Panel data bytes received for this card (`Db` / `Dbc` payloads, as sent).
        bytes: u64,
        /// SHA-256 (hex) over every panel's decoded levels, in the order of `panels`.
        sha256: String,
        /// The card came out of the exit (always true for a printed card).
        ejected: bool,
    },
    /// A card left the hopper and was spoiled: it jammed inside (`ejected: false`) or went to
    /// the reject tray (`ejected: true`). A job that ends before the printer feeds a card (the
    /// port closed mid-job, ribbon ended, feeder fault) spoils nothing.
    CardSpoiled {
        /// What went wrong (`card_jam`, `ribbon_jam`, `card_rejected`).
        reason: String,
        /// Whether the card came out of the printer.
        ejected: bool,
    },
    /// A label came out of the sticker printer.
    LabelPrinted {
        /// The printer's label counter (1-based since the simulator started).
        label: u32,
        /// `^PW` in dots.
        width: u32,
        /// Label length (`^LL`) in dots.
        height: u32,
        /// `^PQ` copies printed.
        copies: u32,
        /// SHA-256 (hex) of the whole format as the printer read it (tag passwords redacted).
        sha256: String,
        /// The tag inside could not be encoded: the printer printed VOID across the label.
        voided: bool,
    },
    /// A tag was written: at the sticker printer (its inlay, once per label) or at the RFID
    /// encoder (once per successful write or lock command; the last entry of a TID is its state).
    TagWritten {
        /// TID, hex upper case.
        tid: String,
        /// EPC now on the tag, hex upper case.
        epc: String,
        /// The EPC is locked (needs the access password to change).
        locked: bool,
        /// User memory bytes written so far (from word 0).
        user_bytes: u64,
        /// What this write did: `passwords`, `epc`, `user`, `lock` (encoder) or `label` (printer).
        op: String,
    },
    /// A tag was killed (Gen2 Kill): it never answers again.
    TagKilled {
        /// TID, hex upper case.
        tid: String,
    },
}

/// One ledger line: the event with who, when and its place in the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// 1, 2, 3 … without gaps over the whole ledger (all devices, across van-sim restarts).
    pub seq: u64,
    /// When the host recorded it (UTC).
    pub time: jiff::Timestamp,
    /// `payment`, `card`, `sticker` or `rfid`.
    pub device: String,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

impl Entry {
    /// The event's name as in the JSON (`charge`, `card_printed` …).
    pub fn event_name(&self) -> &'static str {
        match self.event {
            Event::Charge { .. } => "charge",
            Event::Reversal { .. } => "reversal",
            Event::Refund { .. } => "refund",
            Event::Declined { .. } => "declined",
            Event::Aborted { .. } => "aborted",
            Event::EndOfDay { .. } => "end_of_day",
            Event::CardPrinted { .. } => "card_printed",
            Event::CardSpoiled { .. } => "card_spoiled",
            Event::LabelPrinted { .. } => "label_printed",
            Event::TagWritten { .. } => "tag_written",
            Event::TagKilled { .. } => "tag_killed",
        }
    }

    /// The event's fields in `key=value` form, for the text table of `van-sim ctl ledger`.
    pub fn details(&self) -> String {
        let Ok(serde_json::Value::Object(map)) = serde_json::to_value(&self.event) else {
            return String::new();
        };
        map.iter()
            .filter(|(k, _)| k.as_str() != "event")
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}={s}"),
                serde_json::Value::Array(a) => format!("{k}=[{}]", a.len()),
                other => format!("{k}={other}"),
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The ledger file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// Reading, creating or writing the file failed.
    #[error("ledger {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line is not a ledger entry, or breaks the sequence.
    #[error("ledger {path}: line {line}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// What [`parse`] found in a ledger file's bytes.
#[derive(Debug)]
pub struct Parsed {
    /// The complete entries, in order.
    pub entries: Vec<Entry>,
    /// Length of the valid part; anything after it is a last line cut short.
    pub valid_len: usize,
}

/// Reads ledger JSON Lines. Every complete line (ending in `\n`) must be an entry whose `seq`
/// follows the previous one (the first may start anywhere above 0); a last line without its
/// `\n` is left out (`valid_len` stops before it). Errors give the 1-based line and the reason.
pub fn parse(bytes: &[u8]) -> Result<Parsed, (usize, String)> {
    let mut entries: Vec<Entry> = Vec::new();
    let mut at = 0;
    let mut line_no = 0;
    while at < bytes.len() {
        let Some(end) = bytes[at..].iter().position(|b| *b == b'\n') else { break };
        line_no += 1;
        let line = &bytes[at..at + end];
        let entry: Entry = serde_json::from_slice(line).map_err(|e| (line_no, e.to_string()))?;
        match entries.last() {
            Some(prev) if entry.seq != prev.seq.wrapping_add(1) => {
                return Err((line_no, format!("seq {} after {}", entry.seq, prev.seq)));
            }
            None if entry.seq == 0 => return Err((line_no, "seq 0 (the sequence starts at 1)".into())),
            _ => {}
        }
        entries.push(entry);
        at += end + 1;
    }
    Ok(Parsed { entries, valid_len: at })
}

struct Inner {
    entries: Vec<Entry>,
    next_seq: u64,
    file: Option<(PathBuf, File)>,
}

/// The ledger of one van-sim (or of vand's in-process simulators), shared by the device threads.
pub struct Ledger {
    inner: Mutex<Inner>,
}

impl Ledger {
    /// A ledger kept in memory only (lost when the process ends).
    pub fn in_memory() -> Ledger {
        Ledger { inner: Mutex::new(Inner { entries: Vec::new(), next_seq: 1, file: None }) }
    }

    /// Opens (or creates, with its folder) the JSON Lines file at `path`, loads its entries and
    /// appends new ones after them. A last line cut short is cut off the file (with a warning).
    pub fn open(path: &Path) -> Result<Ledger, LedgerError> {
        let io = |source| LedgerError::Io { path: path.to_owned(), source };
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = std::fs::OpenOptions::new().read(true).append(true).create(true).open(path).map_err(io)?;
        let bytes = std::fs::read(path).map_err(io)?;
        let parsed = parse(&bytes).map_err(|(line, message)| LedgerError::Malformed {
            path: path.to_owned(),
            line,
            message,
        })?;
        if parsed.valid_len < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                bytes = bytes.len() - parsed.valid_len,
                "ledger: dropping a last line cut short"
            );
            file.set_len(parsed.valid_len as u64).map_err(io)?;
        }
        let next_seq = parsed.entries.last().map_or(1, |e| e.seq + 1);
        Ok(Ledger {
            inner: Mutex::new(Inner {
                entries: parsed.entries,
                next_seq,
                file: Some((path.to_owned(), file)),
            }),
        })
    }

    /// Reads the entries of a ledger file without touching it (e.g. while a van-sim appends to
    /// it): complete lines only, a line being written is left out.
    pub fn read(path: &Path) -> Result<Vec<Entry>, LedgerError> {
        let bytes =
            std::fs::read(path).map_err(|source| LedgerError::Io { path: path.to_owned(), source })?;
        parse(&bytes).map(|p| p.entries).map_err(|(line, message)| LedgerError::Malformed {
            path: path.to_owned(),
            line,
            message,
        })
    }

    /// The file behind this ledger, if any.
    pub fn path(&self) -> Option<PathBuf> {
        self.lock().file.as_ref().map(|(p, _)| p.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends one event from `device`: numbered, timed, written to the file (one `write` of the
    /// whole line, so a van-sim killed afterwards keeps it) and kept in memory. A failed file
    /// write is logged and the entry still kept in memory.
    pub fn record(&self, device: &str, event: Event) -> Entry {
        let mut inner = self.lock();
        let entry =
            Entry { seq: inner.next_seq, time: jiff::Timestamp::now(), device: device.to_owned(), event };
        inner.next_seq += 1;
        if let Some((path, file)) = inner.file.as_mut() {
            match serde_json::to_vec(&entry) {
                Ok(mut line) => {
                    line.push(b'\n');
                    if let Err(e) = file.write_all(&line) {
                        tracing::error!(path = %path.display(), "ledger: cannot append entry {}: {e}", entry.seq);
                    }
                }
                Err(e) => tracing::error!("ledger: cannot encode entry {}: {e}", entry.seq),
            }
        }
        tracing::info!(seq = entry.seq, device, event = entry.event_name(), "{}", entry.details());
        inner.entries.push(entry.clone());
        entry
    }

    /// Every entry, or those of one device, oldest first.
    pub fn entries(&self, device: Option<&str>) -> Vec<Entry> {
        self.lock().entries.iter().filter(|e| device.is_none_or(|d| e.device == d)).cloned().collect()
    }
}

/// The text table `van-sim ctl ledger` prints: one line per entry.
pub fn table(entries: &[Entry]) -> String {
    let mut out = format!("{:>5}  {:<27}  {:<8}  {:<13}  details\n", "seq", "time (UTC)", "device", "event");
    for e in entries {
        out.push_str(&format!(
            "{:>5}  {:<27}  {:<8}  {:<13}  {}\n",
            e.seq,
            e.time.to_string(),
            e.device,
            e.event_name(),
            e.details()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge(amount: u64) -> Event {
        Event::Charge { amount, receipt_no: 1, trace: 1, masked_pan: Some("411111******1010".into()) }
    }

    #[test]
    fn entries_round_trip_with_flat_event_fields() {
        let l = Ledger::in_memory();
        let e = l.record("payment", charge(15_000));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["event"], "charge");
        assert_eq!(v["seq"], 1);
        assert_eq!(v["amount"], 15_000);
        assert_eq!(v["device"], "payment");
        let back: Entry = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        assert!(e.details().contains("amount=15000") && e.details().contains("masked_pan=411111******1010"));
    }

    #[test]
    fn file_survives_reopen_and_continues_the_sequence() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/ledger.jsonl");
        {
            let l = Ledger::open(&path).unwrap();
            l.record("payment", charge(100));
            l.record("rfid", Event::TagKilled { tid: "E2".into() });
        }
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.entries(None).len(), 2);
        assert_eq!(l.record("card", Event::CardSpoiled { reason: "card_jam".into(), ejected: false }).seq, 3);
        assert_eq!(l.entries(Some("rfid")).len(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3);
    }

    #[test]
    fn torn_last_line_is_dropped_other_bad_lines_refuse_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.jsonl");
        {
            let l = Ledger::open(&path).unwrap();
            l.record("payment", charge(100));
        }
        let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"seq\":2,\"ti").unwrap();
        drop(f);
        assert_eq!(Ledger::read(&path).unwrap().len(), 1, "a reader leaves the line being written out");
        assert!(
            std::fs::read_to_string(&path).unwrap().ends_with("\"ti"),
            "a reader leaves the file as it was"
        );
        let l = Ledger::open(&path).unwrap();
        assert_eq!(l.record("payment", charge(5)).seq, 2);
        drop(l);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");

        std::fs::write(&path, format!("{}not json\n", text)).unwrap();
        let e = Ledger::open(&path).err().unwrap().to_string();
        assert!(e.contains("line 3"), "{e}");
        let gap = text.replace("\"seq\":2", "\"seq\":4");
        std::fs::write(&path, gap).unwrap();
        let e = Ledger::open(&path).err().unwrap().to_string();
        assert!(e.contains("line 2") && e.contains("seq 4 after 1"), "{e}");
    }

    #[test]
    fn table_has_one_line_per_entry() {
        let l = Ledger::in_memory();
        l.record("payment", charge(100));
        l.record("sticker", Event::TagKilled { tid: "E280".into() });
        let t = table(&l.entries(None));
        assert_eq!(t.lines().count(), 3);
        assert!(t.lines().nth(2).unwrap().contains("tag_killed") && t.contains("tid=E280"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn arbitrary_lines_never_panic(lines in proptest::collection::vec("\\PC{0,80}", 0..6)) {
            let _ = parse(lines.join("\n").as_bytes());
        }
    }
}
