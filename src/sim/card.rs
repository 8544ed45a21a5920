//! Simulated Evolis card printer: the device side of the Evolis command protocol.
//!
//! It has its own parser of the command stream (written from the Programming Guide A5013
//! Rev. E and from the job Evolis's own library writes, not sharing code with the driver's
//! encoder, so a symmetric bug cannot hide), keeps the printer's state (ribbon left, cards in the
//! feeder, cover, jams), answers with realistic delays (`timing_scale`, 0 in tests) and turns
//! the received panels back into PNG images so a person can see what would have been printed.
//!
//! What it accepts: every command the vendor library (libevolis 9.4.1, Primacy 2) writes for a
//! card, including its `Psync` commands and the `<HEADER>`, `<BINARY Size=…>` … tags between
//! commands, so the vendor's own job file prints here; panels `Db;k|o;2;` + 82,296 bytes,
//! `Db;y|m|c;256;` + 658,368 bytes, and `Dbc;k|o;2;<length>;` (guide page 5 compression).
//!
//! It never answers `OK` to something it did not fully parse. An unknown command gets
//! `ERROR CDE`, a known command with parameters it does not take gets `ERROR PARAMETRES` (the
//! printer's replies as the vendor library's reply table names them), bytes between commands that
//! are not vendor tags get `ERROR CDE`; each is logged with the reason and counted (`malformed`
//! in the status).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::ledger::{Event, PanelDigest};
use super::{SimDevice, SimOut};

/// Pixels per printer line (guide page 4: bitmaps of 1016 lines × 648).
const LINE_PX: usize = 648;
/// Lines per card side.
const LINES: usize = 1016;
/// Pixels of one side.
const SIDE_PX: usize = LINE_PX * LINES;
/// Bytes per line of a 1-bit panel.
const LINE_BYTES: usize = 81;
/// Longest command head we accept before calling it garbage.
const MAX_TEXT: usize = 512;
/// Longest run of text between commands (vendor tags are a few dozen bytes).
const MAX_GAP_TEXT: usize = 256;
/// Largest `Dbc` payload accepted (an uncompressed K panel is smaller).
const MAX_DBC: usize = 100_000;

/// Reply to an unknown command (vendor library's reply table).
pub const ERR_COMMAND: &str = "ERROR CDE";
/// Reply to a known command with bad parameters (vendor library's reply table).
pub const ERR_PARAMS: &str = "ERROR PARAMETRES";

/// `Db` payload size for a panel at the given levels: K/O at 2 levels (1 bit per pixel), Y/M/C
/// at 256 levels (one byte per pixel), as the vendor library writes them.
fn db_size(panel: &str, levels: &str) -> Option<usize> {
    match (panel, levels) {
        ("k" | "o", "2") => Some(SIDE_PX / 8),
        ("y" | "m" | "c", "256") => Some(SIDE_PX),
        _ => None,
    }
}

/// One unit of the stream as the printer parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    /// Name, text parameters and binary data (empty for text-only commands).
    Command { name: String, params: Vec<String>, data: Vec<u8> },
    /// Vendor job tags between commands (`<CARD>`): no reply.
    Tags,
    /// Something that is not a command the printer takes: the error reply and why.
    Bad { reply: &'static str, why: String },
}

#[derive(Debug)]
enum PState {
    /// Between commands.
    Idle,
    /// Text between commands, up to the next ESC.
    Gap(Vec<u8>),
    /// Over-long text between commands, already reported: dropped up to the next ESC.
    Skip,
    /// Collecting the command head (name and text parameters) up to CR, or up to the start of
    /// the data for `Db` / `Dbc`.
    Head(Vec<u8>),
    /// Collecting `need` bytes of binary data.
    Data { name: String, params: Vec<String>, data: Vec<u8>, need: usize },
    /// Data complete; the next byte must be CR.
    End { name: String, params: Vec<String>, data: Vec<u8> },
}

/// The printer's stream parser: bytes in, commands out.
#[derive(Debug)]
struct StreamParser {
    state: PState,
}

/// Whether text between commands is one or more vendor tags (`<CARD>`, `</BINARY>`,
/// `<BINARY Size=82305>`, `<DOC Duplex=1>`): `<`, printable ASCII without `<` `>`, `>`.
fn is_tags(text: &[u8]) -> bool {
    let mut rest = text;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let Some(body) = rest.strip_prefix(b"<") else { return false };
        let Some(end) = body.iter().position(|&b| b == b'>') else { return false };
        let inner = &body[..end];
        if inner.is_empty() || !inner.iter().all(|&b| (0x20..0x7f).contains(&b) && b != b'<') {
            return false;
        }
        rest = &body[end + 1..];
    }
    true
}

impl StreamParser {
    fn new() -> Self {
        StreamParser { state: PState::Idle }
    }

    fn end_gap(gap: &[u8], out: &mut Vec<Parsed>) {
        if is_tags(gap) {
            out.push(Parsed::Tags);
        } else {
            let shown = String::from_utf8_lossy(&gap[..gap.len().min(32)]).into_owned();
            out.push(Parsed::Bad { reply: ERR_COMMAND, why: format!("bytes outside a command: {shown:?}") });
        }
    }

    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Parsed>) {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            let state = std::mem::replace(&mut self.state, PState::Idle);
            self.state = match state {
                PState::Idle => {
                    i += 1;
                    match b {
                        0x1B => PState::Head(Vec::new()),
                        // NUL padding (USB printer class) and line ends between commands.
                        0x00 | b'\r' | b'\n' => PState::Idle,
                        _ => PState::Gap(vec![b]),
                    }
                }
                PState::Gap(mut gap) => {
                    i += 1;
                    if b == 0x1B {
                        Self::end_gap(&gap, out);
                        PState::Head(Vec::new())
                    } else if gap.len() >= MAX_GAP_TEXT {
                        out.push(Parsed::Bad {
                            reply: ERR_COMMAND,
                            why: "long text outside a command".into(),
                        });
                        PState::Skip
                    } else {
                        gap.push(b);
                        PState::Gap(gap)
                    }
                }
                PState::Skip => {
                    i += 1;
                    if b == 0x1B { PState::Head(Vec::new()) } else { PState::Skip }
                }
                PState::Head(mut head) => {
                    i += 1;
                    if b == 0x0D {
                        out.push(text_command(&head));
                        PState::Idle
                    } else if head.len() >= MAX_TEXT {
                        out.push(Parsed::Bad { reply: ERR_COMMAND, why: "command head too long".into() });
                        PState::Skip
                    } else {
                        head.push(b);
                        match data_start(&head) {
                            Some(Ok((name, params, need))) => {
                                PState::Data { name, params, data: Vec::with_capacity(need), need }
                            }
                            Some(Err(why)) => {
                                out.push(Parsed::Bad { reply: ERR_PARAMS, why });
                                PState::Idle
                            }
                            None => PState::Head(head),
                        }
                    }
                }
                PState::Data { name, params, mut data, need } => {
                    let take = (need - data.len()).min(bytes.len() - i);
                    data.extend_from_slice(&bytes[i..i + take]);
                    i += take;
                    if data.len() == need {
                        PState::End { name, params, data }
                    } else {
                        PState::Data { name, params, data, need }
                    }
                }
                PState::End { name, params, data } => {
                    i += 1;
                    if b == 0x0D {
                        out.push(Parsed::Command { name, params, data });
                    } else {
                        out.push(Parsed::Bad {
                            reply: ERR_PARAMS,
                            why: format!("{name}: data longer than its header says (no CR after it)"),
                        });
                    }
                    PState::Idle
                }
            };
        }
    }
}

fn text_command(head: &[u8]) -> Parsed {
    let Ok(text) = std::str::from_utf8(head) else {
        return Parsed::Bad { reply: ERR_COMMAND, why: "command is not text".into() };
    };
    let mut parts = text.split(';');
    let name = parts.next().unwrap_or_default().to_string();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphabetic()) {
        return Parsed::Bad { reply: ERR_COMMAND, why: format!("bad command name {name:?}") };
    }
    Parsed::Command { name, params: parts.map(str::to_string).collect(), data: Vec::new() }
}

/// For `Db;<panel>;<levels>;` and `Dbc;<panel>;<levels>;<len>;`: once the head up to the data
/// is complete, the command name, its parameters and the data length.
#[allow(clippy::type_complexity)]
fn data_start(head: &[u8]) -> Option<Result<(String, Vec<String>, usize), String>> {
    if head.last() != Some(&b';') {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let fields: Vec<&str> = text[..text.len() - 1].split(';').collect();
    let owned = |f: &[&str]| f.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match fields.first().copied() {
        Some("Db") if fields.len() == 3 => Some(
            db_size(fields[1], fields[2])
                .map(|n| ("Db".to_string(), owned(&fields[1..]), n))
                .ok_or_else(|| format!("Db: panel {:?} at {:?} levels is not taken", fields[1], fields[2])),
        ),
        Some("Dbc") if fields.len() == 4 => {
            if !matches!(fields[1], "k" | "o") || fields[2] != "2" {
                return Some(Err(format!(
                    "Dbc: panel {:?} at {:?} levels is not taken",
                    fields[1], fields[2]
                )));
            }
            match fields[3].parse::<usize>() {
                Ok(len) if len > 0 && len <= MAX_DBC && fields[3].bytes().all(|b| b.is_ascii_digit()) => {
                    Some(Ok(("Dbc".to_string(), owned(&fields[1..3]), len)))
                }
                _ => Some(Err(format!("Dbc: bad length {:?}", fields[3]))),
            }
        }
        _ => None,
    }
}

/// Whether `s` is a decimal number (digits only) within `range`.
fn num_in(s: &str, range: std::ops::RangeInclusive<u32>) -> bool {
    !s.is_empty()
        && s.len() <= 10
        && s.bytes().all(|b| b.is_ascii_digit())
        && s.parse().is_ok_and(|v| range.contains(&v))
}

/// Ribbon codes of `Pr;<code>;t` / `Pwres;…;<code>` this printer model takes (vendor library
/// `RibbonType` values: YMCKO 0, KO 1, YMCKOS 3, YMCKOK 4, black 100).
fn ribbon_code(s: &str) -> bool {
    matches!(s, "0" | "1" | "3" | "4" | "100")
}

/// The settings and status commands the printer takes, with their parameter checks: `Some(true)`
/// known and well formed, `Some(false)` known with bad parameters, `None` unknown.
fn setting_ok(name: &str, p: &[&str]) -> Option<bool> {
    let contrast_panel = |s: &str| matches!(s, "a" | "k" | "o" | "l" | "f" | "y" | "m" | "c");
    Some(match name {
        // Vendor library job header and trailer.
        "Psmgr" | "Pcla" | "Ppmode" => matches!(p, ["0" | "1"]),
        "Ppws" => matches!(p, [n] if num_in(n, 0..=u32::MAX)),
        "Pr" => match p {
            [code, "t"] => ribbon_code(code),
            // Guide page 69: `Pr;ymcko`.
            [name] => matches!(*name, "k" | "ko" | "ymcko" | "ymckok"),
            _ => false,
        },
        "Pwres" => matches!(p, ["300", "300", code] if ribbon_code(code)),
        "Psk" => matches!(p, [n] if num_in(n, 0..=20)),
        "Piqla" => matches!(p, ["a", "d" | "e"]),
        "Pmc" => matches!(p, ["h" | "l"]),
        "Peoic" => matches!(p, ["k", "D" | "f"]),
        "Pcim" => matches!(p, ["F"]),
        "Mr" => matches!(p, ["s"]),
        "Psync" => match p {
            [n] => num_in(n, 0..=99),
            [n, "0" | "1"] => num_in(n, 0..=99),
            _ => false,
        },
        // Contrast / luminosity: `Pc;k;=;10` (vendor), `Pc;y;+` (guide page 69).
        "Pc" | "Pl" => match p {
            [panel, "=", v] => contrast_panel(panel) && num_in(v, 0..=20),
            [panel, "+" | "-"] => contrast_panel(panel),
            _ => false,
        },
        "Pida" => {
            matches!(p, [w, y, m, c] if num_in(w, 0..=100) && [y, m, c].iter().all(|v| num_in(v, 0..=255)))
        }
        // Guide: `Pmi;F;s` insertion mode, `Pem;n` error management.
        "Pmi" => matches!(p, ["F" | "M" | "B", "s"]),
        "Pem" => matches!(p, [n] if num_in(n, 0..=255)),
        _ => return None,
    })
}

/// One decoded panel: level values (0 = no ink … max) in printer line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPanel {
    /// `y`, `m`, `c`, `k` or `o`.
    pub panel: char,
    /// Highest level (1 for K/O, 255 for colour).
    pub max: u32,
    /// 648 × 1016 level values, printer line after printer line.
    pub levels: Vec<u8>,
}

impl SimPanel {
    /// Pixels with any ink.
    pub fn inked(&self) -> usize {
        self.levels.iter().filter(|&&v| v > 0).count()
    }

    /// SHA-256 of the level values, hex (for comparing in tests and status).
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(&self.levels))
    }

    /// The panel as the portrait image (648 wide × 1016 high, row-major) the vendor library
    /// would have been given for it: it sends a portrait image turned half a turn, so the last
    /// printer pixel is the image's top-left.
    pub fn portrait(&self) -> Vec<u8> {
        self.levels.iter().rev().copied().collect()
    }

    /// The panel as a landscape image (1016 wide × 648 high, row-major): the vendor library
    /// sends image column x as printer line x, read from the image's bottom pixel up.
    pub fn landscape(&self) -> Vec<u8> {
        let mut out = vec![0u8; SIDE_PX];
        for (i, &v) in self.levels.iter().enumerate() {
            let (line, pos) = (i / LINE_PX, i % LINE_PX);
            out[(LINE_PX - 1 - pos) * LINES + line] = v;
        }
        out
    }
}

/// A card the simulator printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimCard {
    /// 1-based card number since start.
    pub number: u32,
    /// Front panels in the order received.
    pub front: Vec<SimPanel>,
    /// Back panels in the order received.
    pub back: Vec<SimPanel>,
}

/// Unpacks a 2-level `Db` payload: 1 bit per pixel, most significant bit first.
fn unpack_bits(data: &[u8]) -> Vec<u8> {
    data.iter().flat_map(|&byte| (0..8).rev().map(move |bit| (byte >> bit) & 1)).collect()
}

/// Decodes a `Dbc` K/O payload (guide page 5) into 1-bit levels; errors on bad structure.
fn unpack_dbc(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(SIDE_PX / 8);
    let mut i = 0;
    for line in 0..LINES {
        let Some(&first) = data.get(i) else {
            return Err(format!("Dbc: data ends at line {line}"));
        };
        i += 1;
        let mut bytes = [0u8; LINE_BYTES];
        match first {
            0 => {}
            255 => bytes = [0xFF; LINE_BYTES],
            n if (n as usize) <= LINE_BYTES => {
                let n = n as usize;
                let Some(src) = data.get(i..i + n) else {
                    return Err(format!("Dbc: line {line} is cut short"));
                };
                bytes[..n].copy_from_slice(src);
                i += n;
            }
            n => return Err(format!("Dbc: line {line} claims {n} bytes (max {LINE_BYTES})")),
        }
        out.extend_from_slice(&bytes);
    }
    if i != data.len() {
        return Err(format!("Dbc: {} bytes left after 1016 lines", data.len() - i));
    }
    Ok(unpack_bits(&out))
}

/// The simulator's persistent conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Armed {
    CardJam,
    CardRejected,
    RibbonJam,
    FeederError,
}

/// Names accepted by [`SimDevice::apply_fault`].
pub const FAULT_NAMES: [&str; 8] = [
    "card_jam",
    "ribbon_ended",
    "feeder_empty",
    "cover_open",
    "no_ribbon",
    "card_rejected",
    "ribbon_jam",
    "feeder_error",
];

/// The simulated printer.
pub struct EvolisSim {
    parser: StreamParser,
    timing_scale: f64,
    output_dir: Option<PathBuf>,
    firmware: String,
    serial: String,
    ribbon_capacity: u32,
    ribbon_remaining: u32,
    feeder_capacity: u32,
    feeder_cards: u32,
    cover_open: bool,
    no_ribbon: bool,
    /// A fault waiting for the next card.
    armed: Option<Armed>,
    /// A jam (card or ribbon) or feeder failure that stays until cleared.
    stuck: Option<Armed>,
    /// `Some(back?)` while a sequence is open.
    side_back: Option<bool>,
    front: Vec<SimPanel>,
    back: Vec<SimPanel>,
    printed: Vec<SimCard>,
    files: Vec<String>,
    malformed: u64,
    commands: u64,
    /// Panel data bytes received for the card in the open sequence.
    job_bytes: u64,
    /// What left the printer since the host last took it.
    ledger: Vec<Event>,
}

impl EvolisSim {
    /// A printer with a fresh ribbon and a full feeder.
    pub fn new() -> Self {
        EvolisSim {
            parser: StreamParser::new(),
            timing_scale: 1.0,
            output_dir: None,
            firmware: "SIM-EVOLIS 1.0".into(),
            serial: "SIM0000001".into(),
            ribbon_capacity: 200,
            ribbon_remaining: 200,
            feeder_capacity: 100,
            feeder_cards: 100,
            cover_open: false,
            no_ribbon: false,
            armed: None,
            stuck: None,
            side_back: None,
            front: Vec::new(),
            back: Vec::new(),
            printed: Vec::new(),
            files: Vec::new(),
            malformed: 0,
            commands: 0,
            job_bytes: 0,
            ledger: Vec::new(),
        }
    }

    /// Builds from scenario options: `timing_scale` (0 = instant), `output_dir` (PNG files;
    /// default keep in memory), `ribbon_capacity`, `feeder_cards`, `firmware`, `serial`.
    pub fn from_options(options: &toml::Table) -> Result<Self, String> {
        let mut s = Self::new();
        for (key, v) in options {
            let bad = || format!("card simulator option {key}: bad value {v}");
            match key.as_str() {
                "timing_scale" => {
                    let f = v.as_float().or_else(|| v.as_integer().map(|i| i as f64)).ok_or_else(bad)?;
                    if !(0.0..=100.0).contains(&f) {
                        return Err(bad());
                    }
                    s.timing_scale = f;
                }
                "output_dir" => s.output_dir = Some(PathBuf::from(v.as_str().ok_or_else(bad)?)),
                "ribbon_capacity" => {
                    s.ribbon_capacity = v.as_integer().and_then(|i| u32::try_from(i).ok()).ok_or_else(bad)?;
                    s.ribbon_remaining = s.ribbon_capacity;
                }
                "feeder_cards" => {
                    s.feeder_capacity = v.as_integer().and_then(|i| u32::try_from(i).ok()).ok_or_else(bad)?;
                    s.feeder_cards = s.feeder_capacity;
                }
                "firmware" => s.firmware = v.as_str().ok_or_else(bad)?.to_string(),
                "serial" => s.serial = v.as_str().ok_or_else(bad)?.to_string(),
                other => {
                    return Err(format!(
                        "card simulator: unknown option {other} (known: timing_scale, output_dir, \
                         ribbon_capacity, feeder_cards, firmware, serial)"
                    ));
                }
            }
        }
        Ok(s)
    }

    /// Cards printed so far, with their decoded panels.
    pub fn printed(&self) -> &[SimCard] {
        &self.printed
    }

    /// PNG image of one printed panel (`side` = `front`/`back`), as a person would look at it.
    pub fn png(&self, card: u32, side: &str, panel: char) -> Option<Vec<u8>> {
        let c = self.printed.iter().find(|c| c.number == card)?;
        let panels = if side == "back" { &c.back } else { &c.front };
        let p = panels.iter().find(|p| p.panel == panel)?;
        render(p)?.encode_png().ok()
    }

    fn wait(&self, secs: f64) -> Option<SimOut> {
        let d = secs * self.timing_scale;
        (d > 0.0).then(|| SimOut::Wait(Duration::from_secs_f64(d)))
    }

    /// The blocking condition a state read reports, most urgent first.
    fn state_error(&self) -> Option<&'static str> {
        if self.cover_open {
            Some("ERROR COVER OPEN")
        } else if self.no_ribbon {
            Some("ERROR NO RIBBON")
        } else if let Some(a) = self.stuck {
            Some(armed_text(a))
        } else if self.ribbon_remaining == 0 {
            Some("ERROR RIBBON ENDED")
        } else if self.feeder_cards == 0 {
            Some("ERROR FEEDER EMPTY")
        } else {
            None
        }
    }

    fn handle(&mut self, p: Parsed, out: &mut Vec<SimOut>) {
        let reply = |t: &str| SimOut::Send(format!("{t}\r").into_bytes());
        let (name, params, data) = match p {
            Parsed::Command { name, params, data } => (name, params, data),
            Parsed::Tags => return,
            Parsed::Bad { reply: r, why } => {
                self.reject(r, &why, out);
                return;
            }
        };
        self.commands += 1;
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
        let in_seq = self.side_back.is_some();
        let text: String = match (name.as_str(), params.as_slice()) {
            ("Rfv", []) => self.firmware.clone(),
            ("Rsn", []) => self.serial.clone(),
            ("Rse", []) => self.state_error().unwrap_or("OK").into(),
            ("Rse", ["f"]) => if self.feeder_cards > 0 { "5,00 Volts" } else { "0,00 Volts" }.into(),
            ("Rrt", ["count"]) => {
                if self.no_ribbon {
                    "ERROR NO RIBBON".into()
                } else {
                    self.ribbon_remaining.to_string()
                }
            }
            ("Ss", []) => match self.state_error() {
                Some(e) => e.into(),
                None => {
                    self.side_back = Some(false);
                    self.front.clear();
                    self.back.clear();
                    self.job_bytes = 0;
                    "OK".into()
                }
            },
            ("Sr", []) | ("Sv", []) if in_seq => {
                self.side_back = Some(name == "Sv");
                "OK".into()
            }
            ("Db", [panel, levels]) if in_seq => {
                self.job_bytes += data.len() as u64;
                self.store_db(panel, levels, &data)
            }
            ("Dbc", [panel, _levels]) if in_seq => {
                self.job_bytes += data.len() as u64;
                self.store_dbc(panel, &data)
            }
            ("Se", []) if in_seq => {
                self.side_back = None;
                self.finish_card(out);
                return;
            }
            // Sequence commands outside a sequence: the guide names no reply for this; we
            // answer as for a command the printer cannot take now.
            ("Sr" | "Sv" | "Db" | "Dbc" | "Se", _) if !in_seq => {
                self.reject(ERR_COMMAND, &format!("{name} outside Ss … Se"), out);
                return;
            }
            ("Rfv" | "Rsn" | "Rse" | "Rrt" | "Ss" | "Sr" | "Sv" | "Se" | "Db" | "Dbc", _) => {
                self.reject(ERR_PARAMS, &format!("{name} with parameters {params:?}"), out);
                return;
            }
            (n, p) => match setting_ok(n, p) {
                Some(true) => "OK".into(),
                Some(false) => {
                    self.reject(ERR_PARAMS, &format!("{n} with parameters {p:?}"), out);
                    return;
                }
                None => {
                    self.reject(ERR_COMMAND, &format!("unknown command {n:?}"), out);
                    return;
                }
            },
        };
        out.push(reply(&text));
    }

    /// Answers input the printer does not take: the error reply, a log line, a count. A bad
    /// command inside a sequence ends the sequence (the card is not printed).
    fn reject(&mut self, reply: &'static str, why: &str, out: &mut Vec<SimOut>) {
        self.malformed += 1;
        self.side_back = None;
        tracing::warn!(reply, reason = %why, "card simulator rejected input");
        out.push(SimOut::Send(format!("{reply}\r").into_bytes()));
    }

    fn current_side(&mut self) -> &mut Vec<SimPanel> {
        if self.side_back == Some(true) { &mut self.back } else { &mut self.front }
    }

    fn store_db(&mut self, panel: &str, levels: &str, data: &[u8]) -> String {
        // The parser only lets through panel/levels pairs `db_size` knows, with their length.
        let Some(p) = panel_char(panel) else { return ERR_PARAMS.into() };
        let (max, levels) = match levels {
            "2" => (1, unpack_bits(data)),
            "256" => (255, data.to_vec()),
            _ => return ERR_PARAMS.into(),
        };
        self.current_side().push(SimPanel { panel: p, max, levels });
        "OK".into()
    }

    fn store_dbc(&mut self, panel: &str, data: &[u8]) -> String {
        let Some(p) = panel_char(panel).filter(|p| matches!(p, 'k' | 'o')) else {
            return ERR_PARAMS.into();
        };
        match unpack_dbc(data) {
            Ok(levels) => {
                self.current_side().push(SimPanel { panel: p, max: 1, levels });
                "OK".into()
            }
            Err(why) => {
                self.malformed += 1;
                self.side_back = None;
                tracing::warn!(reason = %why, "card simulator rejected a Dbc panel");
                ERR_PARAMS.into()
            }
        }
    }

    fn finish_card(&mut self, out: &mut Vec<SimOut>) {
        let panels = self.front.len() + self.back.len();
        let feed = 1.5;
        if let Some(e) = self.state_error() {
            out.push(SimOut::Send(format!("{e}\r").into_bytes()));
            return;
        }
        if let Some(a) = self.armed.take() {
            out.extend(self.wait(feed + 1.0));
            if a != Armed::CardRejected {
                self.stuck = Some(a);
            }
            if a != Armed::FeederError {
                // The card left the hopper: jammed inside, or out to the reject tray.
                self.feeder_cards = self.feeder_cards.saturating_sub(1);
                let reason = match a {
                    Armed::CardJam => "card_jam",
                    Armed::RibbonJam => "ribbon_jam",
                    _ => "card_rejected",
                };
                self.ledger
                    .push(Event::CardSpoiled { reason: reason.into(), ejected: a == Armed::CardRejected });
            }
            out.push(SimOut::Send(format!("{}\r", armed_text(a)).into_bytes()));
            return;
        }
        let sides = 1 + u32::from(!self.back.is_empty());
        if self.ribbon_remaining < sides {
            self.ribbon_remaining = 0;
            out.extend(self.wait(feed));
            out.push(SimOut::Send(b"ERROR RIBBON ENDED\r".to_vec()));
            return;
        }
        let print_time: f64 = self
            .front
            .iter()
            .chain(self.back.iter())
            .map(|p| match p.panel {
                'k' => 1.5,
                'o' => 1.0,
                _ => 2.0,
            })
            .sum();
        let flip = if self.back.is_empty() { 0.0 } else { 2.0 };
        out.extend(self.wait(feed + print_time + flip + 1.0));
        self.feeder_cards -= 1;
        self.ribbon_remaining -= sides;
        let number = self.printed.len() as u32 + 1;
        let card =
            SimCard { number, front: std::mem::take(&mut self.front), back: std::mem::take(&mut self.back) };
        self.ledger.push(printed_event(&card, sides, self.job_bytes));
        self.save(&card);
        self.printed.push(card);
        tracing::debug!(card = number, panels, "simulated card printed");
        out.push(SimOut::Send(b"OK\r".to_vec()));
    }

    fn save(&mut self, card: &SimCard) {
        for (side, panels) in [("front", &card.front), ("back", &card.back)] {
            for p in panels {
                let name = format!("card-{:04}-{side}-{}.png", card.number, p.panel);
                if let Some(dir) = &self.output_dir {
                    let path = dir.join(&name);
                    let saved = std::fs::create_dir_all(dir)
                        .map_err(|e| e.to_string())
                        .and_then(|_| render(p).ok_or_else(|| "cannot allocate image".to_string()))
                        .and_then(|px| px.save_png(&path).map_err(|e| e.to_string()));
                    match saved {
                        Ok(()) => self.files.push(path.display().to_string()),
                        Err(e) => {
                            tracing::warn!(path = %path.display(), error = %e, "card simulator cannot save PNG")
                        }
                    }
                } else {
                    self.files.push(format!("memory:{name}"));
                }
            }
        }
    }
}

/// The ledger's record of a card that came out printed.
fn printed_event(card: &SimCard, sides: u32, bytes: u64) -> Event {
    let mut all = Sha256::new();
    let mut panels = Vec::new();
    for (side, list) in [("front", &card.front), ("back", &card.back)] {
        for p in list {
            all.update(&p.levels);
            panels.push(PanelDigest { side: side.into(), panel: p.panel.to_string(), sha256: p.digest() });
        }
    }
    Event::CardPrinted {
        card: card.number,
        sides,
        panels,
        bytes,
        sha256: hex::encode(all.finalize()),
        ejected: true,
    }
}

impl Default for EvolisSim {
    fn default() -> Self {
        Self::new()
    }
}

fn panel_char(p: &str) -> Option<char> {
    match p {
        "y" | "m" | "c" | "k" | "o" => p.chars().next(),
        _ => None,
    }
}

fn armed_text(a: Armed) -> &'static str {
    match a {
        Armed::CardJam => "ERROR CARD JAM",
        Armed::CardRejected => "ERROR CARD REJECTED",
        Armed::RibbonJam => "ERROR RIBBON JAM",
        Armed::FeederError => "ERROR FEEDER",
    }
}

/// Draws a panel as a person would see that ink on a white card: 648 × 1016, the way up of a
/// portrait image given to the vendor library (see [`SimPanel::portrait`]).
fn render(p: &SimPanel) -> Option<tiny_skia::Pixmap> {
    let mut px = tiny_skia::Pixmap::new(LINE_PX as u32, LINES as u32)?;
    let max = p.max.max(1) as f32;
    for (dst, &v) in px.data_mut().chunks_exact_mut(4).zip(p.portrait().iter()) {
        let ink = (v as f32 / max).min(1.0);
        let keep = (255.0 * (1.0 - ink)) as u8;
        let rgb = match p.panel {
            'y' => [255, 255, keep],
            'm' => [255, keep, 255],
            'c' => [keep, 255, 255],
            'o' => [255 - (255 - keep) / 4, 255 - (255 - keep) / 4, 255],
            _ => [keep, keep, keep],
        };
        dst.copy_from_slice(&[rgb[0], rgb[1], rgb[2], 255]);
    }
    Some(px)
}

impl SimDevice for EvolisSim {
    fn name(&self) -> &'static str {
        "card"
    }

    fn receive(&mut self, bytes: &[u8], _now: Instant) -> Vec<SimOut> {
        let mut parsed = Vec::new();
        self.parser.feed(bytes, &mut parsed);
        let mut out = Vec::new();
        for p in parsed {
            self.handle(p, &mut out);
        }
        out
    }

    fn apply_fault(&mut self, fault: &str) -> Result<(), String> {
        match fault {
            "card_jam" => self.armed = Some(Armed::CardJam),
            "card_rejected" => self.armed = Some(Armed::CardRejected),
            "ribbon_jam" => self.armed = Some(Armed::RibbonJam),
            "feeder_error" => self.armed = Some(Armed::FeederError),
            "ribbon_ended" => self.ribbon_remaining = 0,
            "feeder_empty" => self.feeder_cards = 0,
            "cover_open" => self.cover_open = true,
            "no_ribbon" => self.no_ribbon = true,
            other => return Err(format!("unknown card fault {other:?} (known: {})", FAULT_NAMES.join(", "))),
        }
        Ok(())
    }

    fn take_ledger(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.ledger)
    }

    /// Half-received input is dropped and an open sequence abandoned: no card was taken from
    /// the hopper before `Se`, so none is spoiled.
    fn host_closed(&mut self) {
        self.parser = StreamParser::new();
        if self.side_back.take().is_some() {
            tracing::info!("card simulator: job abandoned before its end; no card taken");
        }
        self.front.clear();
        self.back.clear();
    }

    fn clear_faults(&mut self) {
        self.armed = None;
        self.stuck = None;
        self.cover_open = false;
        self.no_ribbon = false;
        if self.ribbon_remaining == 0 {
            self.ribbon_remaining = self.ribbon_capacity;
        }
        if self.feeder_cards == 0 {
            self.feeder_cards = self.feeder_capacity;
        }
    }

    fn status(&self) -> serde_json::Value {
        let panels: Vec<serde_json::Value> = self
            .printed
            .iter()
            .flat_map(|c| {
                let f = c.front.iter().map(move |p| (c.number, "front", p));
                let b = c.back.iter().map(move |p| (c.number, "back", p));
                f.chain(b)
            })
            .map(|(n, side, p)| {
                serde_json::json!({
                    "card": n, "side": side, "panel": p.panel.to_string(), "max_level": p.max,
                    "inked_pixels": p.inked(), "sha256": p.digest(),
                })
            })
            .collect();
        serde_json::json!({
            "firmware": self.firmware,
            "serial": self.serial,
            "ribbon_remaining": self.ribbon_remaining,
            "feeder_cards": self.feeder_cards,
            "cover_open": self.cover_open,
            "no_ribbon": self.no_ribbon,
            "state": self.state_error().unwrap_or("OK"),
            "armed_fault": self.armed.map(armed_text),
            "cards_printed": self.printed.len(),
            "commands": self.commands,
            "malformed": self.malformed,
            "in_memory": self.output_dir.is_none(),
            "files": self.files,
            "panels": panels,
        })
    }
}

/// Builds the simulator from its scenario options (`[card]` table of a `hw/sim/*.toml` file).
pub fn simulator(options: &toml::Table) -> Result<Box<dyn SimDevice>, String> {
    Ok(Box::new(EvolisSim::from_options(options)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sim() -> EvolisSim {
        EvolisSim::from_options(&toml::from_str("timing_scale = 0").unwrap()).unwrap()
    }

    fn sends(out: &[SimOut]) -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                SimOut::Send(b) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            })
            .collect()
    }

    fn feed(s: &mut EvolisSim, bytes: &[u8]) -> Vec<String> {
        sends(&s.receive(bytes, Instant::now()))
    }

    fn cmd(text: &str) -> Vec<u8> {
        format!("\x1b{text}\r").into_bytes()
    }

    fn db(head: &str, data: &[u8]) -> Vec<u8> {
        let mut v = format!("\x1b{head}").into_bytes();
        v.extend_from_slice(data);
        v.push(0x0D);
        v
    }

    /// One unit of a vendor-like job: bytes and whether the printer answers it.
    #[derive(Debug, Clone)]
    struct Unit {
        bytes: Vec<u8>,
        answered: bool,
    }

    /// A KO job in the form the vendor library writes it (libevolis 9.4.1 `print_to_file`),
    /// written out by hand here: `Psync` commands, tags between commands, the job header, one K
    /// panel (top-left pixel of a portrait image, i.e. the last bit) and a full overlay.
    fn vendor_like_job() -> Vec<Unit> {
        let c = |t: &str| Unit { bytes: cmd(t), answered: true };
        let tag = |t: &str| Unit { bytes: t.as_bytes().to_vec(), answered: false };
        let mut k = vec![0u8; 82_296];
        k[82_295] = 0x01;
        k[100] = 0x0D; // a CR inside the data must not end the command
        k[200] = 0x1B; // nor an ESC start one
        vec![
            c("Psync;1;0"),
            tag("<HEADER>"),
            c("Psmgr;1"),
            c("Ppws;1796112009"),
            c("Pcla;1"),
            c("Ppmode;0"),
            c("Pr;1;t"),
            c("Pwres;300;300;1"),
            c("Psk;10"),
            c("Piqla;a;d"),
            c("Pmc;h"),
            c("Peoic;k;D"),
            c("Psync;2"),
            tag("</HEADER>"),
            c("Psync;12;1"),
            tag("<OPTION Dpi=300x300>"),
            c("Psync;13;0"),
            tag("</OPTION>"),
            c("Ss"),
            c("Mr;s"),
            c("Sr"),
            c("Pc;a;=;10"),
            c("Pl;a;=;10"),
            c("Pc;k;=;10"),
            c("Pc;o;=;10"),
            c("Pc;l;=;10"),
            c("Pc;f;=;10"),
            c("Pl;f;=;10"),
            tag("<BINARY Size=82305>"),
            Unit { bytes: db("Db;k;2;", &k), answered: true },
            tag("</BINARY><BINARY Size=82305>"),
            Unit { bytes: db("Db;o;2;", &[0xFF; 82_296]), answered: true },
            tag("</BINARY>"),
            c("Se"),
            c("Pcla;0"),
        ]
    }

    #[test]
    fn vendor_like_job_prints() {
        let mut s = sim();
        let units = vendor_like_job();
        let stream: Vec<u8> = units.iter().flat_map(|u| u.bytes.clone()).collect();
        let mut replies = Vec::new();
        for chunk in stream.chunks(4093) {
            replies.extend(feed(&mut s, chunk));
        }
        let answered = units.iter().filter(|u| u.answered).count();
        assert_eq!(replies, vec!["OK\r".to_string(); answered]);
        let card = &s.printed()[0];
        let k = &card.front[0];
        assert_eq!((k.panel, k.max), ('k', 1));
        assert_eq!(k.inked(), 1 + 3 + 4, "0x0D and 0x1B bits as well");
        assert_eq!(k.levels[648 * 1016 - 1], 1);
        // The last printer pixel is the top-left of the portrait image.
        assert_eq!(k.portrait()[0], 1);
        assert_eq!(card.front[1].inked(), 648 * 1016);
        assert_eq!(s.status()["malformed"], 0);
        assert!(s.png(1, "front", 'k').is_some_and(|p| p.starts_with(b"\x89PNG")));
    }

    #[test]
    fn colour_panels_at_256_levels() {
        let mut s = sim();
        feed(&mut s, b"\x1bSs\r\x1bSr\r");
        let mut y = vec![0u8; 658_368];
        y[0] = 200;
        y[658_367] = 7;
        assert_eq!(feed(&mut s, &db("Db;y;256;", &y)), ["OK\r"]);
        assert_eq!(feed(&mut s, b"\x1bSe\r"), ["OK\r"]);
        let p = &s.printed()[0].front[0];
        assert_eq!((p.panel, p.max, p.levels[0], p.levels[658_367]), ('y', 255, 200, 7));
        // Landscape view: printer line 0, position 0 is the image's bottom-left.
        assert_eq!(p.landscape()[647 * 1016], 200);
        // The guide's older 32-level form and 256 levels on K are not taken.
        feed(&mut s, b"\x1bSs\r\x1bSr\r");
        assert_eq!(feed(&mut s, b"\x1bDb;y;32;"), ["ERROR PARAMETRES\r"]);
        feed(&mut s, b"\x1bSs\r\x1bSr\r");
        assert_eq!(feed(&mut s, b"\x1bDb;k;256;"), ["ERROR PARAMETRES\r"]);
    }

    #[test]
    fn dbc_from_guide_rules() {
        let mut s = sim();
        feed(&mut s, b"\x1bSs\r\x1bSr\r");
        // Line 0 black (255), line 1: 2 useful bytes 0xF0 0x01, 1014 white lines (0).
        let mut data = vec![0xFF, 2, 0xF0, 0x01];
        data.extend(std::iter::repeat_n(0u8, 1014));
        assert_eq!(feed(&mut s, &db(&format!("Dbc;k;2;{};", data.len()), &data)), ["OK\r"]);
        assert_eq!(feed(&mut s, b"\x1bSe\r"), ["OK\r"]);
        let k = &s.printed()[0].front[0];
        assert_eq!(k.inked(), 648 + 4 + 1);
        assert_eq!(&k.levels[648..656], &[1, 1, 1, 1, 0, 0, 0, 0]);
        assert_eq!(k.levels[648 + 15], 1);
        // The old header form with a line count instead of the level count is refused.
        feed(&mut s, b"\x1bSs\r\x1bSr\r");
        assert_eq!(feed(&mut s, b"\x1bDbc;k;1016;1018;"), ["ERROR PARAMETRES\r"]);
    }

    #[test]
    fn bad_dbc_is_rejected() {
        assert!(unpack_dbc(&[82]).is_err());
        assert!(unpack_dbc(&[5, 1]).is_err());
        assert!(unpack_dbc(&vec![0; 1017]).is_err());
        assert!(unpack_dbc(&vec![0; 1016]).is_ok());
        let mut s = sim();
        feed(&mut s, b"\x1bSs\r\x1bSr\r");
        assert_eq!(feed(&mut s, &db("Dbc;k;2;3;", &[5, 1, 2])), ["ERROR PARAMETRES\r"]);
        assert_eq!(feed(&mut s, b"\x1bSe\r"), ["ERROR CDE\r"], "the sequence ended with the error");
    }

    #[test]
    fn errors_are_the_printers_replies() {
        let mut s = sim();
        assert_eq!(feed(&mut s, b"\x1bXyz\r"), ["ERROR CDE\r"]);
        assert_eq!(feed(&mut s, b"\x1bPc;k;=;99\r\x1bPr;7;t\r\x1bSs;1\r"), ["ERROR PARAMETRES\r"; 3]);
        assert_eq!(feed(&mut s, b"\x1bSe\r"), ["ERROR CDE\r"]);
        // Text between commands: vendor tags pass without a reply, anything else is an error.
        assert_eq!(feed(&mut s, b"<CARD>\x1bRse\r"), ["OK\r"]);
        assert_eq!(feed(&mut s, b"hello\x1bRse\r"), ["ERROR CDE\r", "OK\r"]);
        assert_eq!(feed(&mut s, b"<>\x1bRse\r"), ["ERROR CDE\r", "OK\r"]);
        assert_eq!(s.status()["malformed"], 7);
    }

    #[test]
    fn faults_and_reads() {
        let mut s = sim();
        assert_eq!(feed(&mut s, b"\x1bRse\r\x1bRse;f\r\x1bRrt;count\r"), ["OK\r", "5,00 Volts\r", "200\r"]);
        s.apply_fault("cover_open").unwrap();
        assert_eq!(feed(&mut s, b"\x1bSs\r"), ["ERROR COVER OPEN\r"]);
        s.clear_faults();
        s.apply_fault("feeder_empty").unwrap();
        assert_eq!(feed(&mut s, b"\x1bRse;f\r\x1bSs\r"), ["0,00 Volts\r", "ERROR FEEDER EMPTY\r"]);
        s.clear_faults();
        s.apply_fault("card_jam").unwrap();
        assert_eq!(feed(&mut s, b"\x1bSs\r\x1bSr\r\x1bSe\r"), ["OK\r", "OK\r", "ERROR CARD JAM\r"]);
        assert_eq!(feed(&mut s, b"\x1bRse\r"), ["ERROR CARD JAM\r"]);
        assert!(s.apply_fault("melted").is_err());
    }

    #[test]
    fn timing_is_scaled() {
        let mut s = EvolisSim::new();
        let out = s.receive(b"\x1bSs\r\x1bSr\r\x1bSe\r", Instant::now());
        assert!(out.iter().any(|o| matches!(o, SimOut::Wait(d) if *d >= Duration::from_secs(2))));
    }

    /// Whether `bytes` holds something shaped like a text command (ESC, 1–40 command
    /// characters, CR): only then may a reply be `OK`.
    fn has_command_shape(bytes: &[u8]) -> bool {
        bytes.iter().enumerate().any(|(i, &b)| {
            b == 0x1B && {
                let rest = &bytes[i + 1..];
                let n = rest.iter().take_while(|c| c.is_ascii_alphanumeric() || b";=+-".contains(c)).count();
                (1..=40).contains(&n) && rest.get(n) == Some(&0x0D)
            }
        })
    }

    fn oks(replies: &[String]) -> usize {
        replies.iter().filter(|r| !r.starts_with("ERROR")).count()
    }

    /// Names the simulator knows; a mutation to another name must get `ERROR CDE`.
    const KNOWN: [&str; 29] = [
        "Rfv", "Rsn", "Rse", "Rrt", "Ss", "Sr", "Sv", "Se", "Db", "Dbc", "Psmgr", "Pcla", "Ppmode", "Ppws",
        "Pr", "Pwres", "Psk", "Piqla", "Pmc", "Peoic", "Pcim", "Mr", "Psync", "Pc", "Pl", "Pida", "Pmi",
        "Pem", "Pcom",
    ];

    #[derive(Debug, Clone)]
    enum Mutation {
        /// Replace the command name.
        Rename(String),
        /// Replace parameter `n` (modulo the count) by a value no command takes there.
        BadParam(usize, &'static str),
        /// Append a parameter no command takes.
        ExtraParam,
        /// Put a byte that cannot be in a command name into the name.
        NameByte(u8),
        /// Text that is not a vendor tag before the command.
        StrayText(String),
        /// Change a panel header (level count or panel letter) or a `Dbc` length.
        PanelHeader(&'static str),
    }

    fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            "[A-Z][a-z]{1,4}".prop_map(Mutation::Rename),
            (0usize..4, prop_oneof![Just(""), Just("x"), Just("1x"), Just("-1"), Just("9 9"), Just("=")])
                .prop_map(|(n, v)| Mutation::BadParam(n, v)),
            Just(Mutation::ExtraParam),
            prop_oneof![Just(b'1'), Just(b'_'), Just(0x00u8), Just(0x7F), Just(0xC3), Just(b' ')]
                .prop_map(Mutation::NameByte),
            "[a-z ]{1,12}|<[a-z]*|[a-z]+>|<>".prop_map(Mutation::StrayText),
            prop_oneof![
                Just("Db;k;3;"),
                Just("Db;z;2;"),
                Just("Db;y;2;"),
                Just("Db;k;256;"),
                Just("Dbc;k;2;1017;"),
                Just("Dbc;k;2;1015;"),
                Just("Dbc;y;2;1016;"),
                Just("Dbc;k;1016;1016;")
            ]
            .prop_map(Mutation::PanelHeader),
        ]
    }

    /// Applies a mutation to the text command `text`; `None` when it does not apply.
    fn mutate(text: &str, m: &Mutation) -> Option<Vec<u8>> {
        let mut parts: Vec<String> = text.split(';').map(str::to_string).collect();
        match m {
            Mutation::Rename(n) => {
                if KNOWN.contains(&n.as_str()) {
                    return None;
                }
                parts[0] = n.clone();
            }
            Mutation::BadParam(i, v) => {
                if parts.len() < 2 {
                    return None;
                }
                let i = 1 + i % (parts.len() - 1);
                if parts[i] == *v {
                    return None;
                }
                parts[i] = v.to_string();
            }
            Mutation::ExtraParam => parts.push("x".into()),
            Mutation::NameByte(b) => {
                let mut bytes = vec![0x1B, parts[0].as_bytes()[0], *b];
                bytes.extend_from_slice(&text.as_bytes()[1..]);
                bytes.push(0x0D);
                return Some(bytes);
            }
            // The text alone: the command after it is a valid one and gets its own reply.
            Mutation::StrayText(t) => return Some(t.as_bytes().to_vec()),
            Mutation::PanelHeader(_) => return None,
        }
        Some(cmd(&parts.join(";")))
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

        /// Random bytes: unless they happen to hold a command-shaped run, every reply is an
        /// error. With a sequence opened first, the two openers are the only `OK`s.
        #[test]
        fn random_bytes_never_get_ok(chunks in proptest::collection::vec(
            proptest::collection::vec(proptest::num::u8::ANY, 0..300), 0..8)) {
            let all: Vec<u8> = chunks.concat();
            prop_assume!(!has_command_shape(&all));
            let mut s = sim();
            let mut replies = Vec::new();
            for c in &chunks {
                replies.extend(feed(&mut s, c));
            }
            replies.extend(feed(&mut s, b"\x1b"));
            prop_assert_eq!(oks(&replies), 0, "{:?}", replies);
            for prefix in [&b"\x1bSs\r\x1bSr\r"[..], b"\x1bSs\r\x1bSr\r\x1bDbc;o;2;5;", b"\x1bSs\r\x1bSr\r\x1bDb;k;2;"] {
                let mut s = sim();
                let mut replies = feed(&mut s, prefix);
                for c in &chunks {
                    replies.extend(feed(&mut s, c));
                }
                prop_assert_eq!(oks(&replies), 2, "{:?}", replies);
                let _ = s.status();
            }
        }

        /// A vendor-like job with one unit broken: everything before it is accepted, and the
        /// broken unit gets only error replies, never `OK`.
        #[test]
        fn mutated_commands_never_get_ok(at in 0usize..40, m in mutation()) {
            let units = vendor_like_job();
            let at = at % units.len();
            let unit = &units[at];
            let mutated = match &m {
                Mutation::PanelHeader(h) => {
                    let Some(data_at) = unit.bytes.len().checked_sub(82_297) else { return Ok(()) };
                    let mut v = format!("\x1b{h}").into_bytes();
                    v.extend_from_slice(&unit.bytes[data_at..]);
                    Some(v)
                }
                _ if unit.bytes.len() > 100 || !unit.answered => None,
                _ => {
                    let text = std::str::from_utf8(&unit.bytes[1..unit.bytes.len() - 1]).unwrap();
                    mutate(text, &m)
                }
            };
            prop_assume!(mutated.is_some());
            let mut s = sim();
            let prefix: Vec<u8> = units[..at].iter().flat_map(|u| u.bytes.clone()).collect();
            let before = feed(&mut s, &prefix);
            prop_assert_eq!(oks(&before), before.len());
            // The ESC after it ends any text or data the broken unit left open.
            let mut bytes = mutated.unwrap();
            bytes.push(0x1B);
            let replies = feed(&mut s, &bytes);
            prop_assert!(!replies.is_empty(), "no reply to {:?}", m);
            prop_assert_eq!(oks(&replies), 0, "{:?} got {:?}", m, replies);
        }
    }
}
