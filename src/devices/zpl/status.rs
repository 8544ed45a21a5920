//! Replies from the printer: `~HS` host status (three `STX … ETX CR LF` strings), `~HI` host
//! identification, and the `^HV` lines that return tag data. Parsers never panic; malformed
//! replies are errors that say what was wrong.

use std::fmt;

/// Start of text, opening each `~HS` / `~HI` string.
pub const STX: u8 = 0x02;
/// End of text, followed by CR LF.
pub const ETX: u8 = 0x03;

/// A reply that is not what the ZPL II guide describes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Bytes outside `STX … ETX CR LF` framing.
    #[error("bad framing: {detail}")]
    Framing { detail: String },
    /// A string with the wrong number of comma-separated fields.
    #[error("host status string {string}: expected {expected} fields, got {got}")]
    FieldCount { string: u8, expected: usize, got: usize },
    /// One field that is not what the guide allows.
    #[error("host status string {string}, field {field}: {detail}")]
    Field { string: u8, field: &'static str, detail: String },
    /// A `^HV` line that is not `HEADER[hex]`.
    #[error("tag data line: {detail}")]
    TagLine { detail: String },
}

/// Serial settings packed in the `aaa` field of string 1 (bits a8…a0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct CommSettings {
    /// The raw value (0–511).
    pub raw: u16,
    /// Baud rate from a8 a2 a1 a0; `None` for codes the guide does not list.
    pub baud: Option<u32>,
    /// a7: DTR handshake (false = Xon/Xoff).
    pub handshake_dtr: bool,
    /// a6: even parity (false = odd), meaningful when `parity_enabled`.
    pub parity_even: bool,
    /// a5: parity enabled.
    pub parity_enabled: bool,
    /// a4: one stop bit (false = two).
    pub one_stop_bit: bool,
    /// a3: eight data bits (false = seven).
    pub eight_data_bits: bool,
}

impl CommSettings {
    /// Decodes the 9-bit value.
    pub fn from_raw(raw: u16) -> Self {
        let bit = |n: u16| raw & (1 << n) != 0;
        let code = ((raw >> 5) & 0b1000) | (raw & 0b111);
        let baud = match code {
            0 => Some(110),
            1 => Some(300),
            2 => Some(600),
            3 => Some(1200),
            4 => Some(2400),
            5 => Some(4800),
            6 => Some(9600),
            7 => Some(19200),
            8 => Some(28800),
            9 => Some(38400),
            10 => Some(57600),
            11 => Some(14400),
            _ => None,
        };
        CommSettings {
            raw,
            baud,
            handshake_dtr: bit(7),
            parity_even: bit(6),
            parity_enabled: bit(5),
            one_stop_bit: bit(4),
            eight_data_bits: bit(3),
        }
    }
}

/// Print mode (`r` of string 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum PrintMode {
    /// 0
    Rewind,
    /// 1
    PeelOff,
    /// 2
    TearOff,
    /// 3
    Cutter,
    /// 4
    Applicator,
    /// 5
    DelayedCut,
    /// 6
    LinerlessPeel,
    /// 7
    LinerlessRewind,
    /// 8
    PartialCutter,
    /// 9
    Rfid,
    /// Letters the guide lists for kiosk and stream modes (`K`, `S`, `A`), or newer values.
    Other(char),
}

/// Function settings packed in `mmm` of string 2 (bits m7…m0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct FunctionSettings {
    /// The raw value (0–255).
    pub raw: u8,
    /// m7: continuous media (false = die-cut).
    pub continuous_media: bool,
    /// m6: sensor profile on.
    pub sensor_profile: bool,
    /// m5: communications diagnostics on.
    pub comm_diagnostics: bool,
    /// m0: thermal transfer (false = direct thermal).
    pub thermal_transfer: bool,
}

/// The printer's front-panel password from string 3: kept, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct PanelPassword(String);

impl PanelPassword {
    /// The password digits.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PanelPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PanelPassword(<redacted>)")
    }
}

/// The full `~HS` reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostStatus {
    /// aaa: communication settings.
    pub comm: CommSettings,
    /// b: paper out.
    pub paper_out: bool,
    /// c: pause active.
    pub paused: bool,
    /// dddd: label length in dots.
    pub label_length_dots: u32,
    /// eee: formats in the receive buffer.
    pub formats_in_buffer: u32,
    /// f: receive buffer full.
    pub buffer_full: bool,
    /// g: communications diagnostic mode active.
    pub diagnostic_mode: bool,
    /// h: partial format in progress.
    pub partial_format: bool,
    /// iii: unused (the guide says always 000), kept as sent.
    pub unused_1: u32,
    /// j: corrupt RAM (configuration data lost).
    pub corrupt_ram: bool,
    /// k: under temperature.
    pub under_temperature: bool,
    /// l: over temperature.
    pub over_temperature: bool,
    /// mmm: function settings.
    pub functions: FunctionSettings,
    /// n: unused, kept as sent.
    pub unused_2: u8,
    /// o: head up (open).
    pub head_up: bool,
    /// p: ribbon out.
    pub ribbon_out: bool,
    /// q: thermal transfer mode selected.
    pub thermal_transfer_mode: bool,
    /// r: print mode.
    pub print_mode: PrintMode,
    /// s: print width mode.
    pub print_width_mode: u8,
    /// t: label waiting (peel-off mode).
    pub label_waiting: bool,
    /// uuuuuuuu: labels remaining in batch.
    pub labels_remaining: u32,
    /// v: format while printing (the guide says always 1).
    pub format_while_printing: bool,
    /// www: graphic images stored in memory.
    pub graphics_stored: u32,
    /// xxxx: front-panel password (redacted in Debug).
    pub password: PanelPassword,
    /// y: static RAM installed.
    pub static_ram_installed: bool,
}

/// Complete frame bodies and the number of bytes they took.
pub type Frames<'a> = (Vec<&'a [u8]>, usize);

/// The three strings `~HS` returns, or fewer when `buf` does not hold them all yet.
///
/// Returns `Ok(None)` while the reply is incomplete, `Ok(Some((frames, used)))` once three frames
/// are present; bytes before the first STX or between frames are a framing error.
pub fn take_frames(buf: &[u8], count: usize) -> Result<Option<Frames<'_>>, ReplyError> {
    let mut frames = Vec::with_capacity(count);
    let mut pos = 0;
    while frames.len() < count {
        let Some(&first) = buf.get(pos) else { return Ok(None) };
        if first != STX {
            return Err(ReplyError::Framing {
                detail: format!("expected STX at byte {pos}, got 0x{first:02X}"),
            });
        }
        let Some(rel_etx) = buf[pos + 1..].iter().position(|&b| b == ETX) else {
            if buf[pos + 1..].contains(&STX) {
                return Err(ReplyError::Framing { detail: "STX inside a string".into() });
            }
            if buf.len() - pos > 256 {
                return Err(ReplyError::Framing { detail: "string longer than 256 bytes".into() });
            }
            return Ok(None);
        };
        let body = &buf[pos + 1..pos + 1 + rel_etx];
        if body.contains(&STX) {
            return Err(ReplyError::Framing { detail: "STX inside a string".into() });
        }
        let after = pos + 1 + rel_etx + 1;
        match buf.get(after..after + 2) {
            None => {
                if buf.get(after).is_some_and(|&b| b != b'\r') {
                    return Err(ReplyError::Framing { detail: "ETX not followed by CR LF".into() });
                }
                return Ok(None);
            }
            Some(b"\r\n") => {}
            Some(_) => {
                return Err(ReplyError::Framing { detail: "ETX not followed by CR LF".into() });
            }
        }
        frames.push(body);
        pos = after + 2;
    }
    Ok(Some((frames, pos)))
}

fn fields(body: &[u8], string: u8, expected: usize) -> Result<Vec<&str>, ReplyError> {
    let text = std::str::from_utf8(body).map_err(|_| ReplyError::Field {
        string,
        field: "text",
        detail: "not ASCII".into(),
    })?;
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() != expected {
        return Err(ReplyError::FieldCount { string, expected, got: parts.len() });
    }
    Ok(parts)
}

fn flag(s: &str, string: u8, field: &'static str) -> Result<bool, ReplyError> {
    match s {
        "0" => Ok(false),
        "1" => Ok(true),
        other => Err(ReplyError::Field { string, field, detail: format!("{other:?} is not 0 or 1") }),
    }
}

/// Numbers: decimal digits only. The guide gives fixed widths; we accept 1 to 8 digits because
/// compatible printers do not all pad the same way.
fn number(s: &str, string: u8, field: &'static str) -> Result<u32, ReplyError> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ReplyError::Field { string, field, detail: format!("{s:?} is not a number") });
    }
    s.parse::<u32>().map_err(|_| ReplyError::Field {
        string,
        field,
        detail: format!("{s:?} is not a number"),
    })
}

/// Parses the three `~HS` strings (their bodies, without STX/ETX CR LF).
pub fn parse_host_status(frames: &[&[u8]]) -> Result<HostStatus, ReplyError> {
    let [s1, s2, s3] = frames else {
        return Err(ReplyError::Framing { detail: format!("expected 3 strings, got {}", frames.len()) });
    };
    let f1 = fields(s1, 1, 12)?;
    let f2 = fields(s2, 2, 11)?;
    let f3 = fields(s3, 3, 2)?;

    let aaa = number(f1[0], 1, "aaa (communication settings)")?;
    if aaa > 511 {
        return Err(ReplyError::Field {
            string: 1,
            field: "aaa (communication settings)",
            detail: format!("{aaa} does not fit 9 bits"),
        });
    }
    let mmm = number(f2[0], 2, "mmm (function settings)")?;
    let mmm = u8::try_from(mmm).map_err(|_| ReplyError::Field {
        string: 2,
        field: "mmm (function settings)",
        detail: format!("{mmm} does not fit 8 bits"),
    })?;
    let print_mode = match f2[5] {
        "0" => PrintMode::Rewind,
        "1" => PrintMode::PeelOff,
        "2" => PrintMode::TearOff,
        "3" => PrintMode::Cutter,
        "4" => PrintMode::Applicator,
        "5" => PrintMode::DelayedCut,
        "6" => PrintMode::LinerlessPeel,
        "7" => PrintMode::LinerlessRewind,
        "8" => PrintMode::PartialCutter,
        "9" => PrintMode::Rfid,
        s if s.len() == 1 && s.bytes().all(|b| b.is_ascii_alphanumeric()) => {
            PrintMode::Other(s.chars().next().unwrap_or('?'))
        }
        s => {
            return Err(ReplyError::Field {
                string: 2,
                field: "r (print mode)",
                detail: format!("{s:?} is not one character"),
            });
        }
    };
    let width_mode = f2[6];
    if width_mode.len() != 1 {
        return Err(ReplyError::Field {
            string: 2,
            field: "s (print width mode)",
            detail: format!("{width_mode:?} is not one digit"),
        });
    }
    let unused_2 = number(f2[1], 2, "n (unused)")?;
    let password = f3[0];
    if password.is_empty() || password.len() > 8 || !password.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ReplyError::Field {
            string: 3,
            field: "xxxx (password)",
            detail: "not 1 to 8 digits".into(),
        });
    }
    Ok(HostStatus {
        comm: CommSettings::from_raw(aaa as u16),
        paper_out: flag(f1[1], 1, "b (paper out)")?,
        paused: flag(f1[2], 1, "c (pause)")?,
        label_length_dots: number(f1[3], 1, "dddd (label length)")?,
        formats_in_buffer: number(f1[4], 1, "eee (formats in buffer)")?,
        buffer_full: flag(f1[5], 1, "f (buffer full)")?,
        diagnostic_mode: flag(f1[6], 1, "g (diagnostic mode)")?,
        partial_format: flag(f1[7], 1, "h (partial format)")?,
        unused_1: number(f1[8], 1, "iii (unused)")?,
        corrupt_ram: flag(f1[9], 1, "j (corrupt RAM)")?,
        under_temperature: flag(f1[10], 1, "k (under temperature)")?,
        over_temperature: flag(f1[11], 1, "l (over temperature)")?,
        functions: FunctionSettings {
            raw: mmm,
            continuous_media: mmm & 0x80 != 0,
            sensor_profile: mmm & 0x40 != 0,
            comm_diagnostics: mmm & 0x20 != 0,
            thermal_transfer: mmm & 0x01 != 0,
        },
        unused_2: unused_2.min(255) as u8,
        head_up: flag(f2[2], 2, "o (head up)")?,
        ribbon_out: flag(f2[3], 2, "p (ribbon out)")?,
        thermal_transfer_mode: flag(f2[4], 2, "q (thermal transfer)")?,
        print_mode,
        print_width_mode: number(width_mode, 2, "s (print width mode)")? as u8,
        label_waiting: flag(f2[7], 2, "t (label waiting)")?,
        labels_remaining: number(f2[8], 2, "uuuuuuuu (labels remaining)")?,
        format_while_printing: flag(f2[9], 2, "v (format while printing)")?,
        graphics_stored: number(f2[10], 2, "www (graphics stored)")?,
        password: PanelPassword(password.to_string()),
        static_ram_installed: flag(f3[1], 3, "y (static RAM)")?,
    })
}

/// Parses a whole `~HS` reply (three framed strings and nothing else).
pub fn parse_host_status_reply(bytes: &[u8]) -> Result<HostStatus, ReplyError> {
    match take_frames(bytes, 3)? {
        None => Err(ReplyError::Framing { detail: "incomplete reply".into() }),
        Some((frames, used)) if used == bytes.len() => parse_host_status(&frames),
        Some(_) => Err(ReplyError::Framing { detail: "bytes after the third string".into() }),
    }
}

/// `~HI` host identification: model, firmware version, dots per mm, memory, options.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostIdentification {
    /// Printer model as reported.
    pub model: String,
    /// Firmware version.
    pub firmware: String,
    /// Dots per millimetre (8 = 203 dpi, 12 = 300 dpi).
    pub dots_per_mm: u32,
    /// Memory and options, as sent.
    pub rest: Vec<String>,
}

/// Parses the body of a `~HI` string: `model,version,dpm,memory[,options]`.
pub fn parse_host_identification(body: &[u8]) -> Result<HostIdentification, ReplyError> {
    let text = std::str::from_utf8(body)
        .ok()
        .filter(|t| t.bytes().all(|b| (0x20..0x7F).contains(&b)))
        .ok_or_else(|| ReplyError::Framing { detail: "identification is not printable ASCII".into() })?;
    let parts: Vec<&str> = text.split(',').collect();
    if parts.len() < 3 {
        return Err(ReplyError::Framing {
            detail: format!("identification has {} fields, expected at least 3", parts.len()),
        });
    }
    let dots_per_mm = parts[2]
        .trim()
        .parse::<u32>()
        .map_err(|_| ReplyError::Framing { detail: format!("dots per mm {:?} is not a number", parts[2]) })?;
    Ok(HostIdentification {
        model: parts[0].trim().to_string(),
        firmware: parts[1].trim().to_string(),
        dots_per_mm,
        rest: parts[3..].iter().map(|s| s.trim().to_string()).collect(),
    })
}

/// One `^HV` line as our jobs ask for it: `HEADER[hex]` CR LF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagLine {
    /// Header before `[` (e.g. `TID`).
    pub header: String,
    /// The decoded bytes between the brackets.
    pub data: Vec<u8>,
}

/// Takes complete CR LF-terminated lines from `buf`; returns the parsed lines and bytes used.
/// A line that is not `NAME[hex]` is an error.
pub fn take_tag_lines(buf: &[u8]) -> Result<(Vec<TagLine>, usize), ReplyError> {
    let mut lines = Vec::new();
    let mut pos = 0;
    while let Some(rel) = buf[pos..].windows(2).position(|w| w == b"\r\n") {
        let line = &buf[pos..pos + rel];
        pos += rel + 2;
        lines.push(parse_tag_line(line)?);
    }
    if buf.len() - pos > 1024 {
        return Err(ReplyError::TagLine { detail: "line longer than 1024 bytes".into() });
    }
    Ok((lines, pos))
}

/// Parses one `NAME[hex]` line (without CR LF).
pub fn parse_tag_line(line: &[u8]) -> Result<TagLine, ReplyError> {
    let text = std::str::from_utf8(line).map_err(|_| ReplyError::TagLine { detail: "not ASCII".into() })?;
    let (header, rest) =
        text.split_once('[').ok_or_else(|| ReplyError::TagLine { detail: format!("no '[' in {text:?}") })?;
    let hex_part = rest
        .strip_suffix(']')
        .ok_or_else(|| ReplyError::TagLine { detail: format!("no closing ']' in {text:?}") })?;
    if header.is_empty() || !header.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ReplyError::TagLine { detail: format!("bad header {header:?}") });
    }
    let data = hex::decode(hex_part)
        .map_err(|_| ReplyError::TagLine { detail: format!("{header}: {hex_part:?} is not hex") })?;
    Ok(TagLine { header: header.to_string(), data })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field layout of the ZPL II Programming Guide, ~HS ("Host Status Return"), filled with
    /// the values an idle 9600 8N1 thermal-transfer printer reports (a reply widely logged from
    /// LP/ZD printers).
    const IDLE: &[u8] = b"\x02030,0,0,1245,000,0,0,0,000,0,0,0\x03\r\n\
\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\r\n\
\x021234,0\x03\r\n";

    #[test]
    fn idle_reply() {
        let s = parse_host_status_reply(IDLE).unwrap();
        assert_eq!(s.comm.baud, Some(9600));
        assert!(s.comm.eight_data_bits && s.comm.one_stop_bit && !s.comm.parity_enabled);
        assert!(!s.comm.handshake_dtr);
        assert!(!s.paper_out && !s.paused && !s.head_up && !s.ribbon_out);
        assert_eq!(s.label_length_dots, 1245);
        assert_eq!(s.formats_in_buffer, 0);
        assert!(s.functions.thermal_transfer && s.thermal_transfer_mode);
        assert_eq!(s.print_mode, PrintMode::TearOff);
        assert_eq!(s.print_width_mode, 6);
        assert_eq!(s.labels_remaining, 0);
        assert!(s.format_while_printing);
        assert_eq!(s.password.expose(), "1234");
        assert!(!format!("{s:?}").contains("1234"), "password must not show in Debug");
        assert!(!s.static_ram_installed);
    }

    #[test]
    fn baud_table() {
        // a8 set + 001 → 1001 = 38400; 0b1_0001_1001 = 281 (a4 a3 set too).
        let c = CommSettings::from_raw(0b1_0001_1001);
        assert_eq!(c.baud, Some(38400));
        assert!(c.eight_data_bits && c.one_stop_bit);
        assert_eq!(CommSettings::from_raw(0b1_0000_0111).baud, None);
        assert_eq!(CommSettings::from_raw(0b0_1110_0000).baud, Some(110));
        let c = CommSettings::from_raw(0b0_1110_0000);
        assert!(c.handshake_dtr && c.parity_even && c.parity_enabled);
    }

    #[test]
    fn faults_and_malformed() {
        let out = b"\x02030,1,1,1245,002,0,0,1,000,0,0,1\x03\r\n\
\x02001,0,1,1,1,2,6,0,00000003,1,000\x03\r\n\x021234,0\x03\r\n";
        let s = parse_host_status_reply(out).unwrap();
        assert!(s.paper_out && s.paused && s.head_up && s.ribbon_out && s.over_temperature);
        assert!(s.partial_format);
        assert_eq!((s.formats_in_buffer, s.labels_remaining), (2, 3));

        let bad_flag = b"\x02030,2,0,1245,000,0,0,0,000,0,0,0\x03\r\n\
\x02001,0,0,0,1,2,6,0,00000000,1,000\x03\r\n\x021234,0\x03\r\n";
        let e = parse_host_status_reply(bad_flag).unwrap_err().to_string();
        assert!(e.contains("paper out"), "{e}");
        let short = b"\x02030,0,0\x03\r\n\x02001\x03\r\n\x021234,0\x03\r\n";
        assert!(matches!(
            parse_host_status_reply(short),
            Err(ReplyError::FieldCount { string: 1, expected: 12, got: 3 })
        ));
        assert!(parse_host_status_reply(b"garbage").is_err());
        assert!(parse_host_status_reply(&IDLE[..IDLE.len() - 1]).is_err());
        assert_eq!(take_frames(&IDLE[..20], 3).unwrap(), None);
    }

    #[test]
    fn tag_lines() {
        let (lines, used) = take_tag_lines(b"TID[E2801160200074CF085B0B4D]\r\nEPC[30").unwrap();
        assert_eq!(used, 31);
        assert_eq!(lines[0].header, "TID");
        assert_eq!(lines[0].data.len(), 12);
        assert!(take_tag_lines(b"TID[XYZ]\r\n").is_err());
        assert!(take_tag_lines(b"nonsense\r\n").is_err());
    }

    #[test]
    fn identification() {
        let id = parse_host_identification(b"LP 2824 Plus-200dpi,V61.17.5Z,8,2104KB").unwrap();
        assert_eq!(id.dots_per_mm, 8);
        assert_eq!(id.firmware, "V61.17.5Z");
        assert!(parse_host_identification(b"x").is_err());
    }
}
