//! Framing of Evolis commands and parsing of the printer's replies. Pure: no I/O.
//!
//! Programming Guide A5013 Rev. E, §3 "Communication Protocol" (page 4): a command is
//! `(Start Character) Command (separator) parameter 1 … (separator) parameter n (Stop Character)`
//! with start character ESC (0x1B), separator `;` and stop character CR (0x0D).
//!
//! Replies are short ASCII texts ended by CR. The guide shows them as plain words (`OK`, feeder
//! answers `0`–`3` on page 64); integrators' code against the vendor SDK reports sensor reads
//! such as `5,00 Volts`. The error replies the vendor library (libevolis 9.4.1) recognises are
//! `ERROR CDE` (unknown command), `ERROR PARAMETRES` (bad parameters), `ERROR FEEDER`,
//! `ERROR MECHANICAL` / `ERROR MECA`, `ERROR CARD`, `ERROR TIME OUT`, `ERROR MAGN…` and
//! `ERROR BLANK TRACK` (its reply table, read from the library). A NUL byte also ends a reply (the
//! USB printer-class path of one open-source driver stops reading at NUL).

use crate::devices::card::CardFault;

/// Start character of every command.
pub const ESC: u8 = 0x1B;
/// Stop character of every command and of every reply.
pub const CR: u8 = 0x0D;
/// Parameter separator.
pub const SEP: u8 = b';';
/// Longest reply we accept; anything longer is garbage (real replies are a few dozen bytes).
pub const MAX_REPLY: usize = 256;

/// Encodes a command with text parameters: `ESC name ;p1 ;p2 … CR`.
pub fn command(name: &str, params: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + name.len() + params.iter().map(|p| p.len() + 1).sum::<usize>());
    out.push(ESC);
    out.extend_from_slice(name.as_bytes());
    for p in params {
        out.push(SEP);
        out.extend_from_slice(p.as_bytes());
    }
    out.push(CR);
    out
}

/// Encodes a command whose last parameter is binary data (bitmap downloads):
/// `ESC name ;p1 … ;data CR`. The receiver knows the data length from the other parameters,
/// so CR bytes inside the data are not ambiguous.
pub fn command_with_data(name: &str, params: &[&str], data: &[u8]) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(8 + name.len() + data.len() + params.iter().map(|p| p.len() + 1).sum::<usize>());
    out.push(ESC);
    out.extend_from_slice(name.as_bytes());
    for p in params {
        out.push(SEP);
        out.extend_from_slice(p.as_bytes());
    }
    out.push(SEP);
    out.extend_from_slice(data);
    out.push(CR);
    out
}

/// One reply from the printer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `OK`: the command was accepted (or done, for `Se`).
    Ok,
    /// Any other text: the answer to a read command.
    Value(String),
    /// An error reply (`ERROR …` / `ERR …`), with the fault it names if we recognise one.
    Error {
        /// The reply as received, for logs and error messages.
        text: String,
        /// The fault it names, `None` for command/syntax errors.
        fault: Option<CardFault>,
    },
}

/// A reply that is not a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// More than [`MAX_REPLY`] bytes without a terminator.
    #[error("reply longer than {MAX_REPLY} bytes without CR")]
    TooLong,
    /// Bytes that are not printable ASCII.
    #[error("reply is not printable text: {0:02x?}")]
    NotText(Vec<u8>),
}

/// Parses one reply line (terminator already removed).
pub fn parse_reply(line: &[u8]) -> Result<Reply, ReplyError> {
    if line.len() > MAX_REPLY {
        return Err(ReplyError::TooLong);
    }
    if line.iter().any(|&b| !(0x20..0x7f).contains(&b)) {
        return Err(ReplyError::NotText(line.iter().take(16).copied().collect()));
    }
    // Checked above: every byte is printable ASCII, so this is valid UTF-8.
    let text = String::from_utf8_lossy(line).trim().to_string();
    if text.eq_ignore_ascii_case("OK") {
        return Ok(Reply::Ok);
    }
    let upper = text.to_ascii_uppercase();
    if upper.starts_with("ERR") {
        let fault = fault_from_text(&upper);
        return Ok(Reply::Error { text, fault });
    }
    Ok(Reply::Value(text))
}

/// Maps the words of an error reply to a fault. Unknown words (command and parameter errors:
/// `ERROR CDE`, `ERROR PARAMETRES`) give `None`: a protocol problem, not something a person
/// fixes at the printer.
pub fn fault_from_text(upper: &str) -> Option<CardFault> {
    let has = |w: &str| upper.contains(w);
    if has("COVER") {
        Some(CardFault::CoverOpen)
    } else if has("RIBBON") && (has("JAM") || has("TORN") || has("BROKEN")) {
        Some(CardFault::RibbonJam)
    } else if has("RIBBON") && (has("NO ") || has("MISSING") || has("ABSENT") || has("NO_")) {
        Some(CardFault::NoRibbon)
    } else if has("RIBBON") {
        Some(CardFault::RibbonEnded)
    } else if has("FEEDER") && has("EMPTY") {
        Some(CardFault::FeederEmpty)
    } else if has("FEEDER") {
        Some(CardFault::FeederError)
    } else if has("REJECT") {
        Some(CardFault::CardRejected)
    } else if has("JAM") || has("MECHANICAL") || has("MECA") || has("BLOCKED") {
        Some(CardFault::CardJam)
    } else {
        None
    }
}

/// Splits the incoming byte stream into replies. Pure state machine: push bytes, pop replies.
#[derive(Debug, Default)]
pub struct ReplyReader {
    buf: Vec<u8>,
    overflow: bool,
}

impl ReplyReader {
    /// An empty reader.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes received from the printer.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Drops everything buffered (after a resynchronisation).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.overflow = false;
    }

    /// The next complete reply, if one has arrived. Empty lines (CR LF pairs, NUL padding)
    /// are skipped.
    pub fn next_reply(&mut self) -> Option<Result<Reply, ReplyError>> {
        loop {
            match self.buf.iter().position(|&b| b == CR || b == 0 || b == b'\n') {
                Some(end) => {
                    let line: Vec<u8> = self.buf.drain(..=end).take(end).collect();
                    if std::mem::take(&mut self.overflow) {
                        // Tail of an over-long line already reported: drop it.
                        continue;
                    }
                    if line.is_empty() {
                        continue;
                    }
                    return Some(parse_reply(&line));
                }
                None => {
                    if self.buf.len() > MAX_REPLY {
                        // Keep memory bounded: report once, then drop bytes up to the next
                        // terminator.
                        self.buf.clear();
                        if !self.overflow {
                            self.overflow = true;
                            return Some(Err(ReplyError::TooLong));
                        }
                    }
                    return None;
                }
            }
        }
    }
}

/// Parses a sensor read such as `5,00 Volts` (decimal comma, as the printer sends it) into
/// millivolts.
pub fn parse_volts(text: &str) -> Option<u32> {
    let number = text.split_whitespace().next()?.replace(',', ".");
    let (int, frac) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number.as_str(), ""),
    };
    let int: u32 = int.parse().ok()?;
    let mut frac_mv = 0u32;
    for (i, c) in frac.chars().take(3).enumerate() {
        let d = c.to_digit(10)?;
        frac_mv += d * 10u32.pow(2 - i as u32);
    }
    int.checked_mul(1000)?.checked_add(frac_mv)
}

/// Parses a counter answer (a decimal number, possibly followed by words).
pub fn parse_count(text: &str) -> Option<u32> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Guide page 4: start ESC, separator ';', stop CR. The contrast command as used in the
    // guide's programming example and the open-source driver: ESC "Pc;k;=;10" CR.
    #[test]
    fn frames_commands_as_the_guide_shows() {
        assert_eq!(command("Pc", &["k", "=", "10"]), b"\x1bPc;k;=;10\r".to_vec());
        assert_eq!(command("Ss", &[]), b"\x1bSs\r".to_vec());
        assert_eq!(command("Pmi", &["F", "s"]), b"\x1bPmi;F;s\r".to_vec());
        assert_eq!(command_with_data("Db", &["k", "2"], &[0x0d, 0x1b]), b"\x1bDb;k;2;\x0d\x1b\r".to_vec());
    }

    #[test]
    fn parses_replies() {
        assert_eq!(parse_reply(b"OK"), Ok(Reply::Ok));
        assert_eq!(parse_reply(b"5,00 Volts"), Ok(Reply::Value("5,00 Volts".into())));
        assert_eq!(
            parse_reply(b"ERROR RIBBON ENDED"),
            Ok(Reply::Error { text: "ERROR RIBBON ENDED".into(), fault: Some(CardFault::RibbonEnded) })
        );
        assert_eq!(parse_reply(b"ERROR CDE"), Ok(Reply::Error { text: "ERROR CDE".into(), fault: None }));
        assert_eq!(
            parse_reply(b"ERROR PARAMETRES"),
            Ok(Reply::Error { text: "ERROR PARAMETRES".into(), fault: None })
        );
        assert!(matches!(parse_reply(b"\xff\x01"), Err(ReplyError::NotText(_))));
    }

    #[test]
    fn maps_every_fault_word() {
        let cases = [
            ("ERROR FEEDER EMPTY", CardFault::FeederEmpty),
            ("ERROR RIBBON ENDED", CardFault::RibbonEnded),
            ("ERROR NO RIBBON", CardFault::NoRibbon),
            ("ERROR COVER OPEN", CardFault::CoverOpen),
            ("ERROR CARD JAM", CardFault::CardJam),
            ("ERROR MECHANICAL", CardFault::CardJam),
            ("ERROR MECA", CardFault::CardJam),
            ("ERROR RIBBON JAM", CardFault::RibbonJam),
            ("ERROR FEEDER", CardFault::FeederError),
            ("ERROR CARD REJECTED", CardFault::CardRejected),
        ];
        for (text, fault) in cases {
            assert_eq!(fault_from_text(text), Some(fault), "{text}");
        }
    }

    #[test]
    fn reader_splits_and_skips_padding() {
        let mut r = ReplyReader::new();
        r.push(b"O");
        assert_eq!(r.next_reply(), None);
        r.push(b"K\r\n\x00\x00CARD\r");
        assert_eq!(r.next_reply(), Some(Ok(Reply::Ok)));
        assert_eq!(r.next_reply(), Some(Ok(Reply::Value("CARD".into()))));
        assert_eq!(r.next_reply(), None);
    }

    #[test]
    fn reader_bounds_garbage() {
        let mut r = ReplyReader::new();
        r.push(&[b'A'; 1000]);
        assert_eq!(r.next_reply(), Some(Err(ReplyError::TooLong)));
        assert_eq!(r.next_reply(), None);
        r.push(b"AAA\rOK\r");
        assert_eq!(r.next_reply(), Some(Ok(Reply::Ok)));
    }

    #[test]
    fn parses_sensor_and_counts() {
        assert_eq!(parse_volts("5,00 Volts"), Some(5000));
        assert_eq!(parse_volts("0,17 Volts"), Some(170));
        assert_eq!(parse_volts("3,92"), Some(3920));
        assert_eq!(parse_volts("x Volts"), None);
        assert_eq!(parse_count("187"), Some(187));
        assert_eq!(parse_count(""), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_reply_parser(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse_reply(&bytes);
            let mut r = ReplyReader::new();
            for chunk in bytes.chunks(7) {
                r.push(chunk);
                while r.next_reply().is_some() {}
            }
            if let Ok(t) = std::str::from_utf8(&bytes) {
                let _ = parse_volts(t);
                let _ = parse_count(t);
            }
        }
    }
}
