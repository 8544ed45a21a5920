//! Simulated ZPL II sticker printer: accepts label formats, keeps each label (redacted ZPL and a
//! PNG of its graphics and QR codes), answers `~HS`/`~HI`, encodes a simulated Gen2 tag for
//! RFID formats and returns fields with `^HV`. Faults: `paper_out` (silent, nothing printed),
//! `head_open`, `ribbon_out`, `pause`, and for RFID `no_tag`, `write_fail`.
//!
//! Its ZPL reading lives in [`parse`], written independently of the driver's builder.
//!
//! Stricter than a printer on purpose: a format holding anything the simulator cannot read (an
//! unknown command, a parameter of the wrong shape, a malformed `^GF`, `^RF`, `^RL`, `^HV` or
//! `^BQ`) prints nothing, writes no tag and returns nothing; the reason is logged (`warn`) and
//! kept in `status` (`rejected_formats`, `last_rejection`). A real Zebra skips unknown commands.

pub mod parse;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::ledger::Event;
use super::{SimDevice, SimOut};
use parse::Command;

const FAULTS: [&str; 6] = ["paper_out", "head_open", "ribbon_out", "pause", "no_tag", "write_fail"];

/// Simulator options (`[sticker]` table of a scenario file).
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Resolution reported by `~HI` (203 or 300).
    pub dpi: u32,
    /// Whether an RFID encoder is fitted.
    pub rfid: bool,
    /// Where to write each label's `.zpl` and `.png`, if anywhere.
    pub output_dir: Option<PathBuf>,
    /// Multiplier for realistic delays (0 = instant, for tests).
    pub timing_scale: f64,
    /// No `~HS` answer at all with the head open or the ribbon out, as the current guide says
    /// (default); `false` answers with the head-up / ribbon-out flags set, as older firmware did.
    pub silent_faults: bool,
}

impl SimOptions {
    /// Reads the options table; unknown keys are errors that list the known ones.
    pub fn from_table(options: &toml::Table) -> Result<Self, String> {
        let mut o =
            SimOptions { dpi: 203, rfid: false, output_dir: None, timing_scale: 1.0, silent_faults: true };
        for (key, value) in options {
            match key.as_str() {
                "dpi" => match value.as_integer() {
                    Some(d @ (203 | 300)) => o.dpi = d as u32,
                    _ => return Err(format!("sticker.dpi: must be 203 or 300, got {value}")),
                },
                "rfid" => o.rfid = value.as_bool().ok_or("sticker.rfid: must be true or false")?,
                "silent_faults" => {
                    o.silent_faults = value.as_bool().ok_or("sticker.silent_faults: must be true or false")?
                }
                "output_dir" => {
                    o.output_dir =
                        Some(PathBuf::from(value.as_str().ok_or("sticker.output_dir: must be a path")?))
                }
                "timing_scale" => {
                    let v = value
                        .as_float()
                        .or_else(|| value.as_integer().map(|i| i as f64))
                        .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 100.0)
                        .ok_or("sticker.timing_scale: must be a number from 0 to 100")?;
                    o.timing_scale = v;
                }
                other => {
                    return Err(format!(
                        "sticker.{other}: unknown option (known: dpi, rfid, output_dir, timing_scale, \
                         silent_faults)"
                    ));
                }
            }
        }
        Ok(o)
    }
}

/// A QR code found on a label.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SimQr {
    /// Field origin.
    pub x: u32,
    /// Field origin.
    pub y: u32,
    /// `^BQ` magnification.
    pub magnification: u32,
    /// Error correction letter from the `^FD` switches.
    pub level: char,
    /// Input mode letter (`A` automatic, `M` manual).
    pub input: char,
    /// The encoded data.
    pub data: String,
}

/// A graphic placed on a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimGraphic {
    /// Field origin.
    pub x: u32,
    /// Field origin.
    pub y: u32,
    /// Decoded graphic.
    pub graphic: parse::Graphic,
}

/// One label as the simulated printer understood it.
#[derive(Debug, Clone)]
pub struct SimLabel {
    /// The format text with tag passwords redacted.
    pub zpl: String,
    /// `^PW` print width in dots.
    pub width: u32,
    /// `^LL` label length in dots.
    pub length: u32,
    /// `^GF` graphics.
    pub graphics: Vec<SimGraphic>,
    /// `^BQ` QR codes.
    pub qr: Vec<SimQr>,
    /// `^FD` text fields with their origin.
    pub texts: Vec<(u32, u32, String)>,
    /// `^PQ` quantity.
    pub copies: u32,
    /// The tag could not be encoded: the printer printed VOID across the label.
    pub voided: bool,
    /// TID of the tag encoded in this label.
    pub tid: Option<Vec<u8>>,
    /// Problems met while reading the format.
    pub warnings: Vec<String>,
    /// PNG of graphics, boxes and QR codes (text is not drawn).
    pub png: Option<Vec<u8>>,
}

#[derive(Debug, Clone, Default)]
struct SimTag {
    tid: Vec<u8>,
    epc: Vec<u8>,
    user: Vec<u8>,
    access: Option<[u8; 4]>,
    kill: Option<[u8; 4]>,
    locks: String,
}

/// The simulated printer.
pub struct StickerSim {
    opts: SimOptions,
    faults: BTreeSet<String>,
    input: Vec<u8>,
    format: Option<Vec<Command>>,
    queue: VecDeque<Vec<Command>>,
    printing: Option<(Instant, u32)>,
    labels: Vec<SimLabel>,
    tags: Vec<SimTag>,
    next_serial: u64,
    label_length: u32,
    rejected: u32,
    last_rejection: Option<String>,
    ignored: u32,
    /// What came out of the printer since the host last took it.
    ledger: Vec<Event>,
}

/// What one format came to: the label, the `^HV` bytes, the tag it encoded, and the reasons it
/// must not print at all (a command the simulator does not know or could not read).
struct FormatRun {
    label: SimLabel,
    replies: Vec<u8>,
    tag: Option<SimTag>,
    errors: Vec<String>,
}

impl StickerSim {
    /// A ready printer with a full roll.
    pub fn new(opts: SimOptions) -> Self {
        StickerSim {
            opts,
            faults: BTreeSet::new(),
            input: Vec::new(),
            format: None,
            queue: VecDeque::new(),
            printing: None,
            labels: Vec::new(),
            tags: Vec::new(),
            next_serial: 1,
            label_length: 1218,
            rejected: 0,
            last_rejection: None,
            ignored: 0,
            ledger: Vec::new(),
        }
    }

    /// Labels printed so far (voided ones included).
    pub fn labels(&self) -> &[SimLabel] {
        &self.labels
    }

    /// Formats received but not printed (held by a fault).
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    fn scaled(&self, ms: u64) -> Duration {
        let secs = (ms as f64 / 1000.0 * self.opts.timing_scale).clamp(0.0, 3600.0);
        Duration::from_secs_f64(secs)
    }

    fn stopped(&self) -> bool {
        ["paper_out", "head_open", "ribbon_out", "pause"].iter().any(|f| self.faults.contains(*f))
    }

    fn has(&self, f: &str) -> bool {
        self.faults.contains(f)
    }

    fn host_status(&self) -> Vec<u8> {
        let b = |f: bool| if f { '1' } else { '0' };
        let remaining = self.printing.map_or(0, |(_, n)| n);
        let s1 = format!(
            "030,{},{},{:04},{:03},0,0,{},000,0,0,0",
            b(self.has("paper_out")),
            b(self.has("pause")),
            self.label_length.min(9999),
            self.queue.len().min(999),
            b(self.format.is_some()),
        );
        let s2 = format!(
            "001,0,{},{},1,2,6,0,{:08},1,000",
            b(self.has("head_open")),
            b(self.has("ribbon_out")),
            remaining
        );
        let mut out = Vec::new();
        for s in [s1.as_str(), s2.as_str(), "1234,0"] {
            out.push(0x02);
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\x03\r\n");
        }
        out
    }

    fn answers_status(&self) -> bool {
        if self.has("paper_out") {
            return false;
        }
        !(self.opts.silent_faults && (self.has("head_open") || self.has("ribbon_out")))
    }

    /// Starts the next queued format when nothing stops the printer.
    fn advance(&mut self, now: Instant, out: &mut Vec<SimOut>) {
        if let Some((done, _)) = self.printing {
            if now < done {
                return;
            }
            self.printing = None;
        }
        while !self.stopped() {
            let Some(format) = self.queue.pop_front() else { return };
            let FormatRun { label, replies, tag, errors } = self.run_format(&format);
            if !errors.is_empty() {
                // A real printer skips a command it does not know and prints the rest; the
                // simulator refuses the whole format so that a label the printer would render
                // differently from what was meant cannot pass a test (docs/hardware.md).
                self.rejected += 1;
                let why = errors.join("; ");
                tracing::warn!("sticker simulator: format not printed: {why}");
                self.last_rejection = Some(why);
                continue;
            }
            self.label_length = label.length;
            if let Some(t) = tag {
                // `^RLM,k,a,e,u`: the EPC's lock is the third letter.
                let locked = matches!(t.locks.split(',').nth(3).map(str::trim), Some("L" | "P"));
                self.ledger.push(Event::TagWritten {
                    tid: hex::encode_upper(&t.tid),
                    epc: hex::encode_upper(&t.epc),
                    locked,
                    user_bytes: t.user.len() as u64,
                    op: "label".into(),
                });
                self.tags.push(t);
            }
            let copies = label.copies.max(1);
            if !replies.is_empty() {
                out.push(SimOut::Wait(self.scaled(300)));
                out.push(SimOut::Send(replies));
            }
            self.store(label);
            let print_time =
                self.scaled(u64::from(self.label_length).saturating_mul(10 * u64::from(copies)) / 8);
            if !print_time.is_zero() {
                self.printing = Some((now + print_time, copies));
                return;
            }
        }
    }

    fn store(&mut self, mut label: SimLabel) {
        self.ledger.push(Event::LabelPrinted {
            label: self.labels.len() as u32 + 1,
            width: label.width,
            height: label.length,
            copies: label.copies.max(1),
            sha256: hex::encode(Sha256::digest(label.zpl.as_bytes())),
            voided: label.voided,
        });
        label.png = render_png(&label);
        if let Some(dir) = &self.opts.output_dir {
            let n = self.labels.len() + 1;
            let _ = std::fs::create_dir_all(dir);
            let _ = std::fs::write(dir.join(format!("label-{n:04}.zpl")), &label.zpl);
            if let Some(png) = &label.png {
                let _ = std::fs::write(dir.join(format!("label-{n:04}.png")), png);
            }
        }
        self.labels.push(label);
    }

    fn new_tag(&mut self) -> SimTag {
        let serial = self.next_serial;
        self.next_serial += 1;
        let mut tid = vec![0xE2, 0x80, 0x11, 0x60];
        tid.extend_from_slice(&serial.to_be_bytes());
        SimTag { tid, epc: vec![0; 12], ..Default::default() }
    }

    /// Interprets one format; returns the label and the bytes `^HV` sends back.
    fn run_format(&mut self, cmds: &[Command]) -> FormatRun {
        let mut errors: Vec<String> = Vec::new();
        let mut label = SimLabel {
            zpl: String::new(),
            width: 0,
            length: self.label_length,
            graphics: Vec::new(),
            qr: Vec::new(),
            texts: Vec::new(),
            copies: 1,
            voided: false,
            tid: None,
            warnings: Vec::new(),
            png: None,
        };
        let mut raw = String::from("^XA");
        for c in cmds {
            raw.push(c.prefix as char);
            raw.push_str(&c.code);
            raw.push_str(&c.params);
        }
        raw.push_str("^XZ");
        label.zpl = crate::devices::zpl::label::redact(&raw);

        let uses_rfid = cmds.iter().any(|c| matches!(c.code.as_str(), "RF" | "RS" | "RL"));
        let mut tag = if uses_rfid && self.opts.rfid { Some(self.new_tag()) } else { None };
        if uses_rfid && !self.opts.rfid {
            label.warnings.push("RFID commands on a printer without an encoder".into());
        }
        let mut fields: BTreeMap<u32, String> = BTreeMap::new();
        let mut hv: Vec<(u32, usize, Vec<u8>, Vec<u8>)> = Vec::new();
        let (mut x, mut y) = (0u32, 0u32);
        let mut qr: Option<u32> = None;
        let mut rf: Option<Vec<String>> = None;
        let mut fh: Option<char> = None;
        let mut field_no: Option<u32> = None;
        let mut data: Option<String> = None;
        let mut rfid_failed = false;
        let num = |s: Option<&str>| s.and_then(|v| v.trim().parse::<u32>().ok());

        for c in cmds {
            let p: Vec<&str> = c.params.split(',').collect();
            match c.code.as_str() {
                "PW" => label.width = num(p.first().copied()).unwrap_or(0),
                "LL" => {
                    if let Some(l) = num(p.first().copied()) {
                        label.length = l;
                    }
                }
                "PQ" => label.copies = num(p.first().copied()).unwrap_or(1).max(1),
                "FO" | "FT" => {
                    x = num(p.first().copied()).unwrap_or(0);
                    y = num(p.get(1).copied()).unwrap_or(0);
                }
                "GF" => match parse::decode_gf_bytes(&c.raw) {
                    Ok(g) => label.graphics.push(SimGraphic { x, y, graphic: g }),
                    Err(e) => errors.push(e),
                },
                "BQ" => qr = Some(num(p.get(2).copied()).unwrap_or(2)),
                "RS" if !matches!(p.first().map(|t| t.trim()), None | Some("" | "8")) => {
                    errors.push(format!("^RS{}: only tag type 8 (EPC Gen 2) is simulated", c.params));
                }
                "FD" => data = Some(c.params.clone()),
                "FH" => fh = Some(c.params.chars().next().unwrap_or('_')),
                "FN" => field_no = num(p.first().copied()),
                "RF" => {
                    let op: Vec<String> = p.iter().map(|s| s.trim().to_string()).collect();
                    if let Err(e) = check_rf(&op) {
                        errors.push(e);
                    }
                    rf = Some(op);
                }
                "HV" => {
                    let number = |s: Option<&&str>, required: bool| match s.map(|v| v.trim()) {
                        None | Some("") => !required,
                        Some(v) => v.len() <= 4 && v.bytes().all(|b| b.is_ascii_digit()),
                    };
                    if !number(p.first(), true) || !number(p.get(1), false) || p.len() > 5 {
                        errors.push(format!("^HV{}: field number and byte count must be numbers", c.params));
                    }
                    let esc = fh.unwrap_or('_');
                    let decode = |s: Option<&&str>| match (fh, s) {
                        (Some(_), Some(s)) => parse::field_hex(s, esc),
                        (None, Some(s)) => s.as_bytes().to_vec(),
                        _ => Vec::new(),
                    };
                    let n = num(p.get(1).copied()).unwrap_or(64) as usize;
                    hv.push((num(p.first().copied()).unwrap_or(0), n, decode(p.get(2)), decode(p.get(3))));
                }
                "RL" => {
                    let ok = p.first() == Some(&"M")
                        && p.len() <= 5
                        && p.iter().skip(1).all(|a| matches!(*a, "" | "U" | "L" | "O" | "P"));
                    if !ok {
                        errors.push(format!("^RL{}: only ^RLM with U/L/O/P per bank is simulated", c.params));
                    } else if let Some(t) = tag.as_mut() {
                        if self.faults.contains("no_tag") {
                            rfid_failed = true;
                        } else {
                            let needs_password = p.iter().skip(1).any(|a| *a == "L" || *a == "U");
                            if needs_password && t.access.is_none_or(|a| a == [0; 4]) {
                                label.warnings.push("^RLM L/U without an access password".into());
                                rfid_failed = true;
                            }
                            t.locks = c.params.clone();
                        }
                    }
                }
                "FS" => {
                    if let (Some(op), Some(d)) = (rf.as_ref(), data.as_deref()) {
                        if let Err(e) = check_rf_data(op, d) {
                            errors.push(e);
                            rf = None;
                        }
                    }
                    if let Some(op) = rf.take() {
                        match tag.as_mut() {
                            Some(t) => match self.rfid_op(t, &op, data.as_deref()) {
                                Ok(Some(read)) => {
                                    if let Some(n) = field_no {
                                        fields.insert(n, read);
                                    }
                                }
                                Ok(None) => {}
                                Err(e) => {
                                    tracing::info!("sticker simulator: tag not encoded: {e}");
                                    label.warnings.push(e);
                                    rfid_failed = true;
                                }
                            },
                            None => rfid_failed = true,
                        }
                    } else if let Some(mag) = qr.take() {
                        let d = data.clone().unwrap_or_default();
                        match qr_switches(&d) {
                            Ok((level, input, text)) => {
                                label.qr.push(SimQr { x, y, magnification: mag, level, input, data: text })
                            }
                            Err(e) => errors.push(e),
                        }
                    } else if let Some(d) = data.as_ref() {
                        label.texts.push((x, y, d.clone()));
                    }
                    data = None;
                    field_no = None;
                    fh = None;
                }
                // Known and checked (below), not drawn.
                _ => {}
            }
            let checked = if c.prefix != b'^' {
                Err(format!("~{}: control command inside a format", c.code))
            } else {
                match c.code.as_str() {
                    "A" => parse::check_font(&c.params),
                    "GF" | "XA" | "XZ" => Ok(()),
                    code => parse::check_params(code, &c.params),
                }
            };
            if let Err(e) = checked {
                errors.push(e);
            }
        }
        if rf.is_some() {
            errors.push("^RF without its ^FS".into());
        }
        let mut replies = Vec::new();
        let mut encoded = None;
        if let Some(t) = tag {
            if rfid_failed {
                label.voided = true;
            } else {
                label.tid = Some(t.tid.clone());
                for (field, n, header, term) in hv {
                    let value = fields.get(&field).cloned().unwrap_or_default();
                    replies.extend_from_slice(&header);
                    replies.extend(value.bytes().take(n));
                    replies.extend_from_slice(&term);
                }
                encoded = Some(t);
            }
        }
        FormatRun { label, replies, tag: encoded, errors }
    }

    /// One `^RF` operation on the tag: `Ok(Some(hex))` for reads.
    fn rfid_op(&self, t: &mut SimTag, op: &[String], data: Option<&str>) -> Result<Option<String>, String> {
        if self.faults.contains("no_tag") {
            return Err("no tag in the RF field".into());
        }
        let get = |i: usize| op.get(i).map(String::as_str).unwrap_or("");
        let (operation, format) = (get(0), get(1));
        if !matches!(format, "H" | "") {
            return Err(format!("^RF format {format:?} not simulated (only H)"));
        }
        // Bank E (EPC, 12 bytes) is the default; E and A always start at word 2.
        let bank = match get(4) {
            "" | "E" | "A" => "1",
            b => b,
        };
        let epc_default = matches!(get(4), "" | "E" | "A");
        let block: Option<usize> = if epc_default { Some(2) } else { get(2).parse().ok().or(Some(0)) };
        let count: Option<usize> = match get(3).parse().ok() {
            Some(n) => Some(n),
            None if operation == "W" => data.map(|d| d.len() / 2),
            None if epc_default => Some(12),
            None => None,
        };
        match (operation, get(2)) {
            ("W", "P") => {
                if self.faults.contains("write_fail") {
                    return Err("password write failed".into());
                }
                let d = data.unwrap_or("");
                let (a, k) = d.split_once(',').unwrap_or((d, ""));
                let pw = |s: &str| -> Result<Option<[u8; 4]>, String> {
                    if s.is_empty() {
                        return Ok(None);
                    }
                    let v = hex::decode(s).map_err(|_| "password is not hex".to_string())?;
                    <[u8; 4]>::try_from(v.as_slice())
                        .map(Some)
                        .map_err(|_| "password is not 8 hex characters".to_string())
                };
                if let Some(a) = pw(a)? {
                    t.access = Some(a);
                }
                if let Some(k) = pw(k)? {
                    t.kill = Some(k);
                }
                Ok(None)
            }
            ("R", _) => {
                let (b, n) = (block.ok_or("^RF read: bad block")?, count.ok_or("^RF read: bad count")?);
                let source: &[u8] = match bank {
                    "2" => &t.tid,
                    "1" => {
                        let from = b.checked_sub(2).ok_or("EPC reads start at word 2")?.saturating_mul(2);
                        return t
                            .epc
                            .get(from..from.saturating_add(n))
                            .map(|s| Some(hex::encode_upper(s)))
                            .ok_or_else(|| "read past the EPC".to_string());
                    }
                    "3" => &t.user,
                    other => return Err(format!("read of bank {other:?} not simulated")),
                };
                source
                    .get(b.saturating_mul(2)..b.saturating_mul(2).saturating_add(n))
                    .map(|s| Some(hex::encode_upper(s)))
                    .ok_or_else(|| format!("read past the end of bank {bank}"))
            }
            ("W", _) => {
                if self.faults.contains("write_fail") {
                    return Err("tag write failed".into());
                }
                let (b, n) = (block.ok_or("^RF write: bad block")?, count.ok_or("^RF write: bad count")?);
                let bytes = hex::decode(data.unwrap_or("")).map_err(|_| "write data is not hex")?;
                if bytes.len() != n || b > 4096 {
                    return Err(format!("^RF write: {} bytes of data for n = {n}", bytes.len()));
                }
                match bank {
                    "1" => {
                        let from = b.checked_sub(2).ok_or("EPC writes start at word 2")? * 2;
                        t.epc.resize(t.epc.len().max(from + n), 0);
                        t.epc[from..from + n].copy_from_slice(&bytes);
                    }
                    "3" => {
                        t.user.resize(t.user.len().max(b * 2 + n), 0);
                        t.user[b * 2..b * 2 + n].copy_from_slice(&bytes);
                    }
                    other => return Err(format!("write to bank {other:?} not simulated")),
                }
                Ok(None)
            }
            (other, _) => Err(format!("^RF operation {other:?} not simulated")),
        }
    }
}

/// Checks an `^RFo,f,b,n,m` command's parameters (Gen 2, hex format).
fn check_rf(op: &[String]) -> Result<(), String> {
    let get = |i: usize| op.get(i).map(String::as_str).unwrap_or("");
    let all = op.join(",");
    if op.len() > 5 {
        return Err(format!("^RF{all}: too many parameters"));
    }
    if !matches!(get(0), "W" | "R" | "") {
        return Err(format!("^RF{all}: operation {:?} not simulated (W or R)", get(0)));
    }
    if !matches!(get(1), "H" | "") {
        return Err(format!("^RF{all}: format {:?} not simulated (only H, hexadecimal)", get(1)));
    }
    let number = |s: &str| s.is_empty() || (s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit()));
    let password = get(0) != "R" && get(2) == "P";
    if !password && !number(get(2)) {
        return Err(format!("^RF{all}: starting block {:?} is not a number", get(2)));
    }
    if !number(get(3)) {
        return Err(format!("^RF{all}: byte count {:?} is not a number", get(3)));
    }
    if !password && !matches!(get(4), "" | "1" | "2" | "3" | "E" | "A") {
        return Err(format!("^RF{all}: memory bank {:?} not simulated (1, 2, 3, E or A)", get(4)));
    }
    Ok(())
}

/// Checks the `^FD` data of a write against its `^RF`: hex, whole bytes, the byte count.
fn check_rf_data(op: &[String], data: &str) -> Result<(), String> {
    let get = |i: usize| op.get(i).map(String::as_str).unwrap_or("");
    if get(0) == "R" {
        return Ok(());
    }
    let hex = |s: &str| s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if get(2) == "P" {
        let (a, k) = data.split_once(',').unwrap_or((data, ""));
        if [a, k].iter().any(|p| !(p.is_empty() || (p.len() == 8 && hex(p)))) || data.matches(',').count() > 1
        {
            return Err("^RFW,H,P: passwords must be 8 hex characters, access,kill".into());
        }
        return Ok(());
    }
    if data.is_empty() || !hex(data) {
        return Err(format!(
            "^RFW: data {:?} is not whole hex bytes",
            data.get(..data.len().min(40)).unwrap_or("")
        ));
    }
    if let Ok(n) = get(3).parse::<usize>() {
        if n != data.len() / 2 {
            return Err(format!("^RFW: {} bytes of data for n = {n}", data.len() / 2));
        }
    }
    if matches!(get(4), "" | "E") && data.len() != 24 {
        return Err(format!("^RFW: memory bank E takes 12 bytes, got {}", data.len() / 2));
    }
    Ok(())
}

/// Splits `^BQ` field data into error correction level, input mode and the data itself. In
/// manual mode (`M`) a character mode follows the comma: `N`, `A`, `K`, or `B` with a 4-digit
/// byte count.
fn qr_switches(d: &str) -> Result<(char, char, String), String> {
    let bad = || format!("^BQ field data {:?} lacks valid switches", d.get(..d.len().min(20)).unwrap_or(""));
    let mut chars = d.chars();
    let level = chars.next().filter(|c| "HQML".contains(*c)).ok_or_else(bad)?;
    let input = chars.next().filter(|c| "AM".contains(*c)).ok_or_else(bad)?;
    let rest = d.get(2..).and_then(|r| r.strip_prefix(',')).ok_or_else(bad)?;
    let text = if input == 'A' {
        rest.to_string()
    } else {
        match rest.chars().next() {
            Some('N' | 'A' | 'K') => rest[1..].to_string(),
            Some('B') => {
                let n: usize = rest.get(1..5).and_then(|n| n.parse().ok()).ok_or_else(bad)?;
                let body = &rest[5..];
                if body.len() != n {
                    return Err(format!("^BQ byte mode says {n} bytes, data has {}", body.len()));
                }
                body.to_string()
            }
            _ => return Err(bad()),
        }
    };
    Ok((level, input, text))
}

/// Draws graphics, QR codes and their positions into a PNG (text is left out).
fn render_png(label: &SimLabel) -> Option<Vec<u8>> {
    let width = label.width.max(1);
    let height = label.length.max(1);
    if u64::from(width) * u64::from(height) > 16_000_000 {
        return None;
    }
    let mut pixmap = tiny_skia::Pixmap::new(width, height)?;
    pixmap.fill(tiny_skia::Color::WHITE);
    let w = width as usize;
    let data = pixmap.data_mut();
    let mut black = |px: u32, py: u32| {
        if px < width && py < height {
            let i = (py as usize * w + px as usize) * 4;
            data[i..i + 3].copy_from_slice(&[0, 0, 0]);
        }
    };
    for g in &label.graphics {
        for row in 0..g.graphic.rows {
            for col in 0..g.graphic.bytes_per_row * 8 {
                let byte = g.graphic.data[row * g.graphic.bytes_per_row + col / 8];
                if byte & (0x80 >> (col % 8)) != 0 {
                    black(g.x.saturating_add(col as u32), g.y.saturating_add(row as u32));
                }
            }
        }
    }
    for q in &label.qr {
        let level = match q.level {
            'L' => qrcode::EcLevel::L,
            'M' => qrcode::EcLevel::M,
            'H' => qrcode::EcLevel::H,
            _ => qrcode::EcLevel::Q,
        };
        let Ok(code) = qrcode::QrCode::with_error_correction_level(q.data.as_bytes(), level) else {
            continue;
        };
        let n = code.width();
        let mag = q.magnification.clamp(1, 10);
        for (i, c) in code.to_colors().iter().enumerate() {
            if *c == qrcode::Color::Dark {
                let (mx, my) = ((i % n) as u32, (i / n) as u32);
                for dy in 0..mag {
                    for dx in 0..mag {
                        black(q.x.saturating_add(mx * mag + dx), q.y.saturating_add(my * mag + dy));
                    }
                }
            }
        }
    }
    pixmap.encode_png().ok()
}

impl SimDevice for StickerSim {
    fn name(&self) -> &'static str {
        "sticker"
    }

    fn receive(&mut self, bytes: &[u8], now: Instant) -> Vec<SimOut> {
        let mut out = Vec::new();
        self.input.extend_from_slice(bytes);
        let (cmds, used) = parse::tokenize(&self.input);
        self.input.drain(..used);
        if self.input.len() > 4_000_000 {
            self.input.clear();
        }
        for c in cmds {
            match (c.prefix, c.code.as_str()) {
                (b'~', "HS") => {
                    if self.answers_status() {
                        self.advance(now, &mut out);
                        out.push(SimOut::Wait(self.scaled(15)));
                        out.push(SimOut::Send(self.host_status()));
                    }
                }
                (b'~', "HI") => {
                    if self.answers_status() {
                        let dpmm = if self.opts.dpi == 300 { 12 } else { 8 };
                        let model = if self.opts.rfid { "ZT411R-SIM" } else { "ZT411-SIM" };
                        let body = format!("{model},V92.21.39Z,{dpmm},8176KB");
                        out.push(SimOut::Wait(self.scaled(15)));
                        let mut reply = vec![0x02];
                        reply.extend_from_slice(body.as_bytes());
                        reply.extend_from_slice(b"\x03\r\n");
                        out.push(SimOut::Send(reply));
                    }
                }
                (b'^', "XA") => self.format = Some(Vec::new()),
                (b'^', "XZ") => {
                    if let Some(f) = self.format.take() {
                        self.queue.push_back(f);
                        self.advance(now, &mut out);
                    }
                }
                (b'~', code) => {
                    self.ignored += 1;
                    tracing::warn!("sticker simulator: control command ~{code} not simulated, ignored");
                }
                (_, code) => match self.format.as_mut() {
                    Some(f) => f.push(c),
                    None => {
                        self.ignored += 1;
                        tracing::warn!("sticker simulator: ^{code} outside ^XA…^XZ ignored");
                    }
                },
            }
        }
        out
    }

    fn poll(&mut self, now: Instant) -> Vec<SimOut> {
        let mut out = Vec::new();
        self.advance(now, &mut out);
        out
    }

    fn next_deadline(&self) -> Option<Instant> {
        match self.printing {
            Some((done, _)) => Some(done),
            None if !self.queue.is_empty() && !self.stopped() => Some(Instant::now()),
            None => None,
        }
    }

    fn apply_fault(&mut self, fault: &str) -> Result<(), String> {
        if !FAULTS.contains(&fault) {
            return Err(format!("unknown sticker fault {fault:?} (known: {})", FAULTS.join(", ")));
        }
        self.faults.insert(fault.to_string());
        Ok(())
    }

    fn clear_faults(&mut self) {
        self.faults.clear();
    }

    fn take_ledger(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.ledger)
    }

    /// Half-received input and an unfinished format are dropped; whole formats already received
    /// still print.
    fn host_closed(&mut self) {
        self.input.clear();
        self.format = None;
    }

    fn status(&self) -> serde_json::Value {
        let last = self.labels.last().map(|l| {
            serde_json::json!({
                "width": l.width,
                "length": l.length,
                "graphics": l.graphics.len(),
                "qr": l.qr,
                "texts": l.texts.iter().map(|t| t.2.clone()).collect::<Vec<_>>(),
                "copies": l.copies,
                "voided": l.voided,
                "tid": l.tid.as_ref().map(hex::encode_upper),
                "warnings": l.warnings,
            })
        });
        serde_json::json!({
            "printed": self.labels.len(),
            "rejected_formats": self.rejected,
            "last_rejection": self.last_rejection,
            "ignored_commands": self.ignored,
            "queued": self.queue.len(),
            "faults": self.faults.iter().collect::<Vec<_>>(),
            "tags_encoded": self.tags.iter().map(|t| hex::encode_upper(&t.tid)).collect::<Vec<_>>(),
            "last_label": last,
        })
    }
}

/// Builds the simulator from its scenario options (`[sticker]` table of a `hw/sim/*.toml` file).
pub fn simulator(options: &toml::Table) -> Result<Box<dyn SimDevice>, String> {
    Ok(Box::new(StickerSim::new(SimOptions::from_table(options)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim() -> StickerSim {
        let t: toml::Table = toml::from_str("timing_scale = 0\nrfid = true").unwrap();
        StickerSim::new(SimOptions::from_table(&t).unwrap())
    }

    fn sent(out: &[SimOut]) -> Vec<u8> {
        out.iter()
            .filter_map(|o| if let SimOut::Send(b) = o { Some(b.clone()) } else { None })
            .flatten()
            .collect()
    }

    #[test]
    fn guide_rfid_example_returns_tid() {
        // RFID section of the ZPL II guide, ^RF: "reads the extended Gen 2 tag ID (TID) … and
        // returns the results to the host computer".
        let mut s = sim();
        let now = Instant::now();
        let out = s.receive(b"^XA\r\n^RS8\r\n^RFR,H,0,8,2^FN1^FS^HV1,,8-byte Tag ID Data:^FS\r\n^XZ", now);
        assert_eq!(sent(&out), b"8-byte Tag ID Data:E280116000000000".to_vec());
    }

    #[test]
    fn guide_graphic_example() {
        // ^GF: "^FO100,100^GFA,8000,8000,80,ASCII data" (an 80-byte-wide, 100-row field).
        let mut s = sim();
        let data = "F".repeat(16_000);
        let job = format!("^XA^FO100,100^GFA,8000,8000,80,{data}^FS^XZ");
        s.receive(job.as_bytes(), Instant::now());
        let l = &s.labels()[0];
        assert_eq!(l.graphics[0].graphic.rows, 100);
        assert_eq!((l.graphics[0].x, l.graphics[0].y), (100, 100));
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    }

    #[test]
    fn paper_out_is_silent_and_holds_labels() {
        let mut s = sim();
        s.apply_fault("paper_out").unwrap();
        let now = Instant::now();
        assert!(sent(&s.receive(b"~HS", now)).is_empty());
        s.receive(b"^XA^FO1,1^FDX^FS^XZ", now);
        assert_eq!((s.labels().len(), s.queued()), (0, 1));
        s.clear_faults();
        s.poll(now);
        assert_eq!(s.labels().len(), 1);
        assert!(s.apply_fault("melted").unwrap_err().contains("paper_out"));
    }

    #[test]
    fn labels_go_to_output_dir() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = toml::Table::new();
        t.insert("timing_scale".into(), toml::Value::Integer(0));
        t.insert("output_dir".into(), toml::Value::String(dir.path().display().to_string()));
        let mut s = StickerSim::new(SimOptions::from_table(&t).unwrap());
        s.receive(b"^XA^PW100^LL50^FO0,0^GFA,4,4,1,F0F0F0F0^FS^RFW,H,P^FD12345678^FS^XZ", Instant::now());
        let zpl = std::fs::read_to_string(dir.path().join("label-0001.zpl")).unwrap();
        assert!(zpl.contains("^GFA,4,4,1,F0F0F0F0") && !zpl.contains("12345678"), "{zpl}");
        let png = std::fs::read(dir.path().join("label-0001.png")).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        assert!(SimOptions::from_table(&toml::from_str("speed = 3").unwrap()).is_err());
    }
}
