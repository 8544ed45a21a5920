//! Simulated Evolis card printer: the device side of the Evolis command protocol.
//!
//! It has its own parser of the command stream (written from the Programming Guide A5013
//! Rev. E, not sharing code with the driver's encoder, so a symmetric bug cannot hide), keeps
//! the printer's state (ribbon left, cards in the feeder, cover, jams), answers with realistic
//! delays (`timing_scale`, 0 in tests) and turns the received panels back into PNG images so a
//! person can see what would have been printed.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::{SimDevice, SimOut};

/// Pixels per printer line (guide page 4: bitmaps of 1016 lines × 648).
const LINE_PX: usize = 648;
/// Lines per card side.
const LINES: usize = 1016;
/// Pixels of one side.
const SIDE_PX: usize = LINE_PX * LINES;
/// Bytes per line of a 1-bit panel.
const LINE_BYTES: usize = 81;
/// Longest command head or text parameter list we accept before calling it garbage.
const MAX_TEXT: usize = 512;
/// Largest binary payload accepted (a 128-level panel is 592 368 bytes).
const MAX_DATA: usize = 600_000;

/// `Db` payload sizes as listed on guide page 14, by grey levels.
fn db_size(levels: u32) -> Option<usize> {
    match levels {
        2 => Some(84_624),
        32 => Some(423_120),
        64 => Some(507_744),
        128 => Some(592_368),
        _ => None,
    }
}

/// One command as the printer parsed it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parsed {
    /// Name, text parameters and binary data (empty for text-only commands).
    Command { name: String, params: Vec<String>, data: Vec<u8> },
    /// Something that could not be a command.
    Malformed(String),
}

#[derive(Debug)]
enum PState {
    /// Waiting for ESC; other bytes are dropped.
    Idle,
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

impl StreamParser {
    fn new() -> Self {
        StreamParser { state: PState::Idle }
    }

    fn feed(&mut self, bytes: &[u8], out: &mut Vec<Parsed>) {
        let mut i = 0;
        while i < bytes.len() {
            let state = std::mem::replace(&mut self.state, PState::Idle);
            self.state = match state {
                PState::Idle => {
                    if bytes[i] == 0x1B {
                        i += 1;
                        PState::Head(Vec::new())
                    } else {
                        // Guide page 4 allows omitting ESC after a CR; we are strict and skip
                        // anything before the next ESC (NUL padding, line noise).
                        i += 1;
                        PState::Idle
                    }
                }
                PState::Head(mut head) => {
                    let b = bytes[i];
                    i += 1;
                    if b == 0x0D {
                        out.push(text_command(&head));
                        PState::Idle
                    } else if head.len() >= MAX_TEXT {
                        out.push(Parsed::Malformed("command head too long".into()));
                        PState::Idle
                    } else {
                        head.push(b);
                        match data_start(&head) {
                            Some(Ok((name, params, need))) => {
                                PState::Data { name, params, data: Vec::with_capacity(need), need }
                            }
                            Some(Err(why)) => {
                                out.push(Parsed::Malformed(why));
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
                    let b = bytes[i];
                    i += 1;
                    if b == 0x0D {
                        out.push(Parsed::Command { name, params, data });
                    } else {
                        out.push(Parsed::Malformed(format!("{name}: data not followed by CR")));
                    }
                    PState::Idle
                }
            };
        }
    }
}

fn text_command(head: &[u8]) -> Parsed {
    let Ok(text) = std::str::from_utf8(head) else {
        return Parsed::Malformed("command is not text".into());
    };
    let mut parts = text.split(';');
    let name = parts.next().unwrap_or_default().to_string();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphabetic()) {
        return Parsed::Malformed(format!("bad command name {name:?}"));
    }
    Parsed::Command { name, params: parts.map(str::to_string).collect(), data: Vec::new() }
}

/// For `Db;<panel>;<levels>;` and `Dbc;<panel>;<lines>;<len>;`: once the head up to the data
/// is complete, the command name, its parameters and the data length.
#[allow(clippy::type_complexity)]
fn data_start(head: &[u8]) -> Option<Result<(String, Vec<String>, usize), String>> {
    if head.last() != Some(&b';') {
        return None;
    }
    let text = std::str::from_utf8(head).ok()?;
    let fields: Vec<&str> = text[..text.len() - 1].split(';').collect();
    match fields.first().copied() {
        Some("Db") if fields.len() == 3 => {
            let levels: u32 = match fields[2].parse() {
                Ok(l) => l,
                Err(_) => return Some(Err(format!("Db: bad levels {:?}", fields[2]))),
            };
            Some(
                db_size(levels)
                    .map(|n| ("Db".to_string(), vec![fields[1].to_string(), fields[2].to_string()], n))
                    .ok_or_else(|| format!("Db: unsupported levels {levels}")),
            )
        }
        Some("Dbc") if fields.len() == 4 => {
            let len: usize = match fields[3].parse() {
                Ok(l) if l > 0 && l <= MAX_DATA => l,
                _ => return Some(Err(format!("Dbc: bad length {:?}", fields[3]))),
            };
            Some(Ok(("Dbc".to_string(), fields[1..3].iter().map(|s| s.to_string()).collect(), len)))
        }
        _ => None,
    }
}

/// One decoded panel: level values (0 = no ink … max) in printer line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPanel {
    /// `y`, `m`, `c`, `k` or `o`.
    pub panel: char,
    /// Highest level (1 for K/O, 31/63/127 for colour).
    pub max: u32,
    /// 648 × 1016 level values, line after line.
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

/// Unpacks a `Db` payload: `bits` per pixel, MSB first, first 648 × 1016 pixels.
fn unpack_db(data: &[u8], bits: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(SIDE_PX);
    let mut acc: u64 = 0;
    let mut have: u32 = 0;
    let mask = (1u64 << bits) - 1;
    for &b in data {
        acc = (acc << 8) | b as u64;
        have += 8;
        while have >= bits && out.len() < SIDE_PX {
            have -= bits;
            out.push(((acc >> have) & mask) as u8);
        }
        acc &= (1u64 << have) - 1;
        if out.len() == SIDE_PX {
            break;
        }
    }
    out.resize(SIDE_PX, 0);
    out
}

/// Decodes a `Dbc` K/O payload (guide page 5) into 1-bit levels; errors on bad structure.
fn unpack_dbc(data: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(SIDE_PX);
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
        for byte in bytes {
            for bit in (0..8).rev() {
                out.push((byte >> bit) & 1);
            }
        }
    }
    if i != data.len() {
        return Err(format!("Dbc: {} bytes left after 1016 lines", data.len() - i));
    }
    Ok(out)
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
            Parsed::Malformed(_) => {
                self.malformed += 1;
                self.side_back = None;
                out.push(reply("ERROR CDE"));
                return;
            }
        };
        self.commands += 1;
        let params: Vec<&str> = params.iter().map(String::as_str).collect();
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
            ("Pr", [_]) | ("Pmi", [_, _]) | ("Pc", [_, _, _]) | ("Pem", [_]) => "OK".into(),
            ("Ss", []) => match self.state_error() {
                Some(e) => e.into(),
                None => {
                    self.side_back = Some(false);
                    self.front.clear();
                    self.back.clear();
                    "OK".into()
                }
            },
            ("Sr", []) | ("Sv", []) if self.side_back.is_some() => {
                self.side_back = Some(name == "Sv");
                "OK".into()
            }
            ("Db", [panel, levels]) if self.side_back.is_some() => self.store_db(panel, levels, &data),
            ("Dbc", [panel, _lines]) if self.side_back.is_some() => self.store_dbc(panel, &data),
            ("Se", []) if self.side_back.is_some() => {
                self.side_back = None;
                self.finish_card(out);
                return;
            }
            ("Sr" | "Sv" | "Db" | "Dbc" | "Se", _) => "ERROR SEQUENCE".into(),
            _ => "ERROR CDE".into(),
        };
        out.push(reply(&text));
    }

    fn current_side(&mut self) -> &mut Vec<SimPanel> {
        if self.side_back == Some(true) { &mut self.back } else { &mut self.front }
    }

    fn store_db(&mut self, panel: &str, levels: &str, data: &[u8]) -> String {
        let Some(p) = panel_char(panel) else { return "ERROR CDE".into() };
        let (bits, max) = match levels {
            "2" => (1, 1),
            "32" => (5, 31),
            "64" => (6, 63),
            "128" => (7, 127),
            _ => return "ERROR CDE".into(),
        };
        let is_mono = matches!(p, 'k' | 'o');
        if is_mono != (bits == 1) {
            return "ERROR CDE".into();
        }
        let levels = unpack_db(data, bits);
        self.current_side().push(SimPanel { panel: p, max, levels });
        "OK".into()
    }

    fn store_dbc(&mut self, panel: &str, data: &[u8]) -> String {
        let Some(p) = panel_char(panel).filter(|p| matches!(p, 'k' | 'o')) else {
            return "ERROR CDE".into();
        };
        match unpack_dbc(data) {
            Ok(levels) => {
                self.current_side().push(SimPanel { panel: p, max: 1, levels });
                "OK".into()
            }
            Err(_) => "ERROR CDE".into(),
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
                self.feeder_cards = self.feeder_cards.saturating_sub(1);
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

/// Draws a panel as a person would see that ink on a white card (648 × 1016, line 0 on top).
fn render(p: &SimPanel) -> Option<tiny_skia::Pixmap> {
    let mut px = tiny_skia::Pixmap::new(LINE_PX as u32, LINES as u32)?;
    let max = p.max.max(1) as f32;
    for (dst, &v) in px.data_mut().chunks_exact_mut(4).zip(p.levels.iter()) {
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

    // Byte sequences written out by hand from the guide (page 4 framing; setup commands as in
    // the guide's example: Pr;k, Pmi;F;s, Pc;k;=;10), not produced by the driver's encoder.
    #[test]
    fn mono_card_from_guide_bytes() {
        let mut s = sim();
        assert_eq!(feed(&mut s, b"\x1bPr;k\r\x1bPmi;F;s\r\x1bPc;k;=;10\r"), ["OK\r", "OK\r", "OK\r"]);
        assert_eq!(feed(&mut s, b"\x1bSs\r\x1bSr\r"), ["OK\r", "OK\r"]);
        // Db;k;2; + 84 624 bytes (page 14): first byte 0x80 = top-left pixel inked.
        let mut db = b"\x1bDb;k;2;".to_vec();
        let mut data = vec![0u8; 84_624];
        data[0] = 0x80;
        data[81] = 0x0D; // a CR inside the data must not end the command
        db.extend_from_slice(&data);
        db.push(0x0D);
        // Delivered in awkward chunks.
        let mut replies = Vec::new();
        for chunk in db.chunks(4093) {
            replies.extend(feed(&mut s, chunk));
        }
        assert_eq!(replies, ["OK\r"]);
        assert_eq!(feed(&mut s, b"\x1bSe\r"), ["OK\r"]);
        let card = &s.printed()[0];
        assert_eq!(card.front.len(), 1);
        let k = &card.front[0];
        assert_eq!(k.levels[0], 1);
        assert_eq!(k.levels[648 + 4], 1); // 0x0D = 0000_1101 at line 1
        assert_eq!(k.inked(), 4);
        assert!(s.png(1, "front", 'k').is_some_and(|p| p.starts_with(b"\x89PNG")));
    }

    #[test]
    fn dbc_from_guide_rules() {
        let mut s = sim();
        feed(&mut s, b"\x1bSs\r\x1bSr\r");
        // Line 0 black (255), line 1: 2 useful bytes 0xF0 0x01, 1014 white lines (0).
        let mut data = vec![0xFF, 2, 0xF0, 0x01];
        data.extend(std::iter::repeat_n(0u8, 1014));
        let mut cmd = format!("\x1bDbc;k;1016;{};", data.len()).into_bytes();
        cmd.extend_from_slice(&data);
        cmd.push(0x0D);
        assert_eq!(feed(&mut s, &cmd), ["OK\r"]);
        assert_eq!(feed(&mut s, b"\x1bSe\r"), ["OK\r"]);
        let k = &s.printed()[0].front[0];
        assert_eq!(k.inked(), 648 + 4 + 1);
        assert_eq!(&k.levels[648..656], &[1, 1, 1, 1, 0, 0, 0, 0]);
        assert_eq!(k.levels[648 + 15], 1);
    }

    #[test]
    fn bad_dbc_is_rejected() {
        assert!(unpack_dbc(&[82]).is_err());
        assert!(unpack_dbc(&[5, 1]).is_err());
        assert!(unpack_dbc(&vec![0; 1017]).is_err());
        assert!(unpack_dbc(&vec![0; 1016]).is_ok());
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
        assert_eq!(feed(&mut s, b"\x1bXyz\r\x1bSe\r"), ["ERROR CDE\r", "ERROR SEQUENCE\r"]);
    }

    #[test]
    fn timing_is_scaled() {
        let mut s = EvolisSim::new();
        let out = s.receive(b"\x1bSs\r\x1bSr\r\x1bSe\r", Instant::now());
        assert!(out.iter().any(|o| matches!(o, SimOut::Wait(d) if *d >= Duration::from_secs(2))));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_stream_parser(chunks in proptest::collection::vec(
            proptest::collection::vec(proptest::num::u8::ANY, 0..300), 0..8)) {
            let mut s = sim();
            for c in &chunks {
                let _ = s.receive(c, Instant::now());
            }
            // Also with command-shaped prefixes so the data paths are reached.
            for prefix in [&b"\x1bDbc;k;1016;20;"[..], b"\x1bDb;k;2;", b"\x1bSs\r\x1bSr\r\x1bDbc;o;1;5;"] {
                let mut s = sim();
                let _ = s.receive(prefix, Instant::now());
                for c in &chunks {
                    let _ = s.receive(c, Instant::now());
                }
            }
            let _ = s.status();
        }
    }
}
