//! ZVT wire codec, free of I/O: serial framing (DLE STX … DLE ETX CRC), APDUs, BCD and the
//! bitmaps (BMPs) of the messages the ECR sends and receives.
//!
//! Layout facts are from the ZVT-Protokoll specification PA00P015 (serial transport chapter and
//! the BMP list); checked against the Wireshark dissector `packet-zvt.c` and the EVerest/zvt
//! captures.

use std::fmt;

/// Data link escape: starts/ends a frame and is doubled inside the APDU.
pub const DLE: u8 = 0x10;
/// Start of text, after DLE at the start of a frame.
pub const STX: u8 = 0x02;
/// End of text, after DLE at the end of a frame; included in the CRC.
pub const ETX: u8 = 0x03;
/// Serial-level positive acknowledgement of a frame.
pub const ACK: u8 = 0x06;
/// Serial-level negative acknowledgement of a frame (the sender repeats it).
pub const NAK: u8 = 0x15;

/// Largest APDU we accept: 2 control bytes, 3 length bytes and a 16-bit data length.
pub const MAX_APDU: usize = 5 + u16::MAX as usize;

const KERMIT: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_KERMIT);

/// CRC-16/KERMIT over the unstuffed APDU followed by ETX, as the serial transport requires.
pub fn frame_crc(apdu: &[u8]) -> u16 {
    let mut digest = KERMIT.digest();
    digest.update(apdu);
    digest.update(&[ETX]);
    digest.finalize()
}

/// Wraps an APDU for the serial line: DLE STX, APDU with every DLE doubled, DLE ETX, CRC low, CRC high.
pub fn encode_frame(apdu: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(apdu.len() + 8);
    out.extend_from_slice(&[DLE, STX]);
    for &b in apdu {
        out.push(b);
        if b == DLE {
            out.push(DLE);
        }
    }
    out.extend_from_slice(&[DLE, ETX]);
    let crc = frame_crc(apdu);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Why a received frame was rejected (the receiver answers NAK).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The CRC over APDU + ETX did not match.
    #[error("CRC mismatch: frame says {received:#06x}, computed {computed:#06x}")]
    BadCrc {
        /// CRC carried by the frame.
        received: u16,
        /// CRC computed over what arrived.
        computed: u16,
    },
    /// A new frame started (DLE STX) before the current one ended.
    #[error("frame cut short by a new DLE STX after {after} bytes")]
    Truncated {
        /// Unstuffed bytes received before the new frame started.
        after: usize,
    },
    /// DLE followed by something other than DLE, ETX or STX inside a frame.
    #[error("DLE followed by {0:#04x} inside a frame")]
    BadEscape(u8),
    /// More bytes than any APDU may have.
    #[error("frame longer than {MAX_APDU} bytes")]
    TooLong,
    /// The CRC was right but the APDU's length field disagrees with the data.
    #[error("APDU invalid: {0}")]
    Apdu(ApduError),
}

/// One thing recognised on the serial line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineEvent {
    /// A lone ACK byte between frames.
    Ack,
    /// A lone NAK byte between frames.
    Nak,
    /// A complete frame with a good CRC and a well-formed APDU.
    Frame(Apdu),
    /// A damaged frame: answer NAK.
    Bad(FrameError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DecState {
    /// Between frames.
    Idle,
    /// Saw DLE between frames; STX starts a frame.
    IdleDle,
    /// Inside a frame.
    Body,
    /// Inside a frame, after a DLE.
    BodyDle,
    /// After DLE ETX, waiting for CRC low.
    CrcLo,
    /// Waiting for CRC high.
    CrcHi(u8),
}

/// Streaming frame decoder: push any bytes, get frames, lone ACK/NAK and errors out.
///
/// Resynchronises on garbage (bytes between frames other than ACK/NAK are skipped), never
/// panics and never holds more than [`MAX_APDU`] bytes.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    state: DecState,
    body: Vec<u8>,
    /// Bytes skipped as garbage since creation (for diagnostics).
    skipped: u64,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameDecoder {
    /// A decoder waiting for the start of a frame.
    pub fn new() -> Self {
        Self { state: DecState::Idle, body: Vec::new(), skipped: 0 }
    }

    /// Forgets a partly received frame (after a timeout or a lost link).
    pub fn reset(&mut self) {
        self.state = DecState::Idle;
        self.body.clear();
    }

    /// Whether a frame is partly received.
    pub fn in_frame(&self) -> bool {
        !matches!(self.state, DecState::Idle | DecState::IdleDle)
    }

    /// Bytes skipped as garbage so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Feeds bytes; every recognised event is appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<LineEvent>) {
        for &b in bytes {
            if let Some(ev) = self.push_byte(b) {
                out.push(ev);
            }
        }
    }

    fn push_byte(&mut self, b: u8) -> Option<LineEvent> {
        match self.state {
            DecState::Idle => match b {
                DLE => {
                    self.state = DecState::IdleDle;
                    None
                }
                ACK => Some(LineEvent::Ack),
                NAK => Some(LineEvent::Nak),
                _ => {
                    self.skipped += 1;
                    None
                }
            },
            DecState::IdleDle => {
                if b == STX {
                    self.body.clear();
                    self.state = DecState::Body;
                } else if b == DLE {
                    self.skipped += 1;
                } else {
                    self.skipped += 2;
                    self.state = DecState::Idle;
                }
                None
            }
            DecState::Body => {
                if b == DLE {
                    self.state = DecState::BodyDle;
                    None
                } else {
                    self.push_body(b)
                }
            }
            DecState::BodyDle => match b {
                DLE => {
                    self.state = DecState::Body;
                    self.push_body(DLE)
                }
                ETX => {
                    self.state = DecState::CrcLo;
                    None
                }
                STX => {
                    let after = self.body.len();
                    self.body.clear();
                    self.state = DecState::Body;
                    Some(LineEvent::Bad(FrameError::Truncated { after }))
                }
                other => {
                    self.body.clear();
                    self.state = DecState::Idle;
                    Some(LineEvent::Bad(FrameError::BadEscape(other)))
                }
            },
            DecState::CrcLo => {
                self.state = DecState::CrcHi(b);
                None
            }
            DecState::CrcHi(lo) => {
                self.state = DecState::Idle;
                let received = u16::from_le_bytes([lo, b]);
                let computed = frame_crc(&self.body);
                let body = std::mem::take(&mut self.body);
                if received != computed {
                    return Some(LineEvent::Bad(FrameError::BadCrc { received, computed }));
                }
                Some(match Apdu::decode(&body) {
                    Ok(apdu) => LineEvent::Frame(apdu),
                    Err(e) => LineEvent::Bad(FrameError::Apdu(e)),
                })
            }
        }
    }

    fn push_body(&mut self, b: u8) -> Option<LineEvent> {
        if self.body.len() >= MAX_APDU {
            self.body.clear();
            self.state = DecState::Idle;
            return Some(LineEvent::Bad(FrameError::TooLong));
        }
        self.body.push(b);
        None
    }
}

/// Why bytes are not a valid APDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApduError {
    /// Fewer than the 3 header bytes (or 5 with an extended length).
    #[error("APDU too short ({0} bytes)")]
    TooShort(usize),
    /// The length field does not match the data that follows.
    #[error("length field says {declared} data bytes, {actual} present")]
    LengthMismatch {
        /// Data length given by the LEN field.
        declared: usize,
        /// Data bytes actually present.
        actual: usize,
    },
    /// Data longer than a 16-bit length can describe.
    #[error("data of {0} bytes does not fit an APDU")]
    TooLong(usize),
}

/// Application protocol data unit: control field (CLASS, INSTR) and data.
#[derive(Clone, PartialEq, Eq)]
pub struct Apdu {
    /// CLASS byte of the control field.
    pub class: u8,
    /// INSTR byte of the control field.
    pub instr: u8,
    /// Data after the length field.
    pub data: Vec<u8>,
}

impl fmt::Debug for Apdu {
    // Data is not shown: ECR commands may carry the terminal password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Apdu({:02X} {:02X}, {} data bytes)", self.class, self.instr, self.data.len())
    }
}

impl Apdu {
    /// An APDU from its control field and data.
    pub fn new(class: u8, instr: u8, data: Vec<u8>) -> Self {
        Self { class, instr, data }
    }

    /// The control field as one number (`0x0601` for authorisation).
    pub fn control(&self) -> u16 {
        u16::from_be_bytes([self.class, self.instr])
    }

    /// Serialises: CLASS INSTR LEN data, LEN = 0xFF followed by a 2-byte little-endian length
    /// when the data has 255 bytes or more.
    pub fn encode(&self) -> Result<Vec<u8>, ApduError> {
        let n = self.data.len();
        let mut out = Vec::with_capacity(n + 5);
        out.extend_from_slice(&[self.class, self.instr]);
        if n < 0xFF {
            out.push(n as u8);
        } else if let Ok(n16) = u16::try_from(n) {
            out.push(0xFF);
            out.extend_from_slice(&n16.to_le_bytes());
        } else {
            return Err(ApduError::TooLong(n));
        }
        out.extend_from_slice(&self.data);
        Ok(out)
    }

    /// Parses exactly one APDU (the whole slice).
    pub fn decode(bytes: &[u8]) -> Result<Self, ApduError> {
        let (class, instr, len_byte) = match bytes {
            [c, i, l, ..] => (*c, *i, *l),
            _ => return Err(ApduError::TooShort(bytes.len())),
        };
        let (declared, start) = if len_byte == 0xFF {
            match bytes.get(3..5) {
                Some(&[lo, hi]) => (u16::from_le_bytes([lo, hi]) as usize, 5),
                _ => return Err(ApduError::TooShort(bytes.len())),
            }
        } else {
            (len_byte as usize, 3)
        };
        let data = bytes.get(start..).unwrap_or_default();
        if data.len() != declared {
            return Err(ApduError::LengthMismatch { declared, actual: data.len() });
        }
        Ok(Self { class, instr, data: data.to_vec() })
    }
}

// ---------------------------------------------------------------------------------------------
// BCD and variable-length fields
// ---------------------------------------------------------------------------------------------

/// Packs `value` as `n` bytes of BCD, most significant digit first; `None` if it does not fit.
pub fn bcd_encode(value: u64, n: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; n];
    let mut v = value;
    for byte in out.iter_mut().rev() {
        let lo = (v % 10) as u8;
        v /= 10;
        let hi = (v % 10) as u8;
        v /= 10;
        *byte = (hi << 4) | lo;
    }
    if v != 0 { None } else { Some(out) }
}

/// Unpacks BCD digits; `None` if a nibble is not a decimal digit or the value overflows.
pub fn bcd_decode(bytes: &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for &b in bytes {
        for nib in [b >> 4, b & 0x0F] {
            if nib > 9 {
                return None;
            }
            v = v.checked_mul(10)?.checked_add(u64::from(nib))?;
        }
    }
    Some(v)
}

/// Writes an LLVAR/LLLVAR length prefix (`digits` bytes of `F0`–`F9`).
pub fn var_len_encode(len: usize, digits: usize) -> Option<Vec<u8>> {
    let max = 10usize.pow(digits as u32);
    if len >= max {
        return None;
    }
    let mut out = Vec::with_capacity(digits);
    for i in (0..digits).rev() {
        out.push(0xF0 | ((len / 10usize.pow(i as u32)) % 10) as u8);
    }
    Some(out)
}

fn var_len_decode(bytes: &[u8]) -> Option<usize> {
    let mut n = 0usize;
    for &b in bytes {
        let d = b & 0x0F;
        if b >> 4 != 0x0F || d > 9 {
            return None;
        }
        n = n * 10 + usize::from(d);
    }
    Some(n)
}

/// Length of a TLV container's length field and value (BER-style: `0x81 n`, `0x82 hi lo`).
fn tlv_len(bytes: &[u8]) -> Option<(usize, usize)> {
    let first = *bytes.first()?;
    if first & 0x80 == 0 {
        return Some((1, usize::from(first)));
    }
    match first & 0x7F {
        1 => Some((2, usize::from(*bytes.get(1)?))),
        2 => Some((3, usize::from(u16::from_be_bytes([*bytes.get(1)?, *bytes.get(2)?])))),
        _ => None,
    }
}

/// How the length of a BMP's value is given (spec PA00P015, list of bitmaps).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BmpLen {
    /// Fixed number of bytes.
    Fixed(usize),
    /// Two bytes `F x F y` giving 0–99 bytes.
    Ll,
    /// Three bytes `F x F y F z` giving 0–999 bytes.
    Lll,
    /// TLV container with a BER length.
    Tlv,
}

/// The defined length of each BMP tag; `None` for tags the specification does not define.
pub fn bmp_len(tag: u8) -> Option<BmpLen> {
    use BmpLen::*;
    Some(match tag {
        0x01 | 0x02 | 0x03 | 0x05 | 0x19 | 0x27 | 0x8A | 0x8C | 0xA0 | 0xD0 | 0xD2 | 0xD3 => Fixed(1),
        0x04 => Fixed(6),
        0x06 => Tlv,
        0x0B | 0x0C | 0x37 | 0x3D | 0x88 | 0xAA => Fixed(3),
        0x0D | 0x0E | 0x17 | 0x3A | 0x49 | 0x87 => Fixed(2),
        0x22 | 0x23 | 0x2D | 0x8B | 0xA7 | 0xD1 => Ll,
        0x24 | 0x2E | 0x3C | 0x60 | 0x92 | 0x9A | 0xAF => Lll,
        0x29 | 0x70 | 0x71 => Fixed(4),
        0x2A => Fixed(15),
        0x3B | 0xEB => Fixed(8),
        0xBA => Fixed(5),
        0x72..=0x75 => Fixed(1),
        0xE0 | 0xE9 | 0xEA | 0xF0 | 0xF9..=0xFD => Fixed(1),
        0xE1..=0xE8 | 0xF1..=0xF8 => Ll,
        _ => return None,
    })
}

/// Why a BMP sequence could not be read to its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BmpError {
    /// A tag the specification does not define: its length is unknown, parsing stops there.
    #[error("undefined BMP {0:#04x}")]
    Unknown(u8),
    /// The value runs past the end of the data.
    #[error("BMP {0:#04x} runs past the end of the message")]
    Truncated(u8),
    /// A length prefix that is not `F0`–`F9` digits (or a bad TLV length).
    #[error("BMP {0:#04x} has a malformed length")]
    BadLength(u8),
}

/// Splits a BMP sequence into `(tag, value)` pairs using the defined lengths.
///
/// Returns the pairs read so far and, if reading stopped early, why.
pub fn split_bmps(mut data: &[u8]) -> (Vec<(u8, &[u8])>, Option<BmpError>) {
    let mut out = Vec::new();
    while let Some((&tag, rest)) = data.split_first() {
        let Some(kind) = bmp_len(tag) else {
            return (out, Some(BmpError::Unknown(tag)));
        };
        let (prefix, len) = match kind {
            BmpLen::Fixed(n) => (0, n),
            BmpLen::Ll | BmpLen::Lll => {
                let digits = if kind == BmpLen::Ll { 2 } else { 3 };
                let Some(lb) = rest.get(..digits) else {
                    return (out, Some(BmpError::Truncated(tag)));
                };
                match var_len_decode(lb) {
                    Some(n) => (digits, n),
                    None => return (out, Some(BmpError::BadLength(tag))),
                }
            }
            BmpLen::Tlv => match tlv_len(rest) {
                Some(x) => x,
                None => return (out, Some(BmpError::BadLength(tag))),
            },
        };
        let Some(value) = rest.get(prefix..prefix + len) else {
            return (out, Some(BmpError::Truncated(tag)));
        };
        out.push((tag, value));
        data = &rest[prefix + len..];
    }
    (out, None)
}

// ---------------------------------------------------------------------------------------------
// ECR → terminal commands
// ---------------------------------------------------------------------------------------------

/// The terminal password: 6 decimal digits sent as 3 BCD bytes. Never shown in Debug output.
#[derive(Clone, PartialEq, Eq)]
pub struct Password([u8; 3]);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(******)")
    }
}

impl Password {
    /// Parses exactly 6 decimal digits; the error never echoes the input.
    pub fn parse(digits: &str) -> Result<Self, &'static str> {
        if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("must be exactly 6 decimal digits");
        }
        let v: u64 = digits.parse().map_err(|_| "must be exactly 6 decimal digits")?;
        let b = bcd_encode(v, 3).ok_or("must be exactly 6 decimal digits")?;
        Ok(Self([b[0], b[1], b[2]]))
    }

    /// The 3 BCD bytes as sent on the wire.
    pub fn bcd(&self) -> [u8; 3] {
        self.0
    }
}

/// BMP 04 amount: 6 bytes BCD, in the currency's minor unit (piastres).
pub const BMP_AMOUNT: u8 = 0x04;
/// BMP 49 currency code: 2 bytes BCD ISO 4217 numeric.
pub const BMP_CURRENCY: u8 = 0x49;
/// BMP 87 receipt number: 2 bytes BCD.
pub const BMP_RECEIPT_NO: u8 = 0x87;
/// ISO 4217 numeric code of the Egyptian pound.
pub const EGP: u16 = 818;
/// Largest amount BMP 04 can carry (12 BCD digits).
pub const MAX_AMOUNT: u64 = 999_999_999_999;

/// Why a command could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// Amount above 12 digits.
    #[error("amount {0} piastres does not fit the 12-digit amount field")]
    AmountTooLarge(u64),
    /// Receipt number above 4 digits.
    #[error("receipt number {0} does not fit 4 BCD digits")]
    ReceiptTooLarge(u32),
    /// Currency code above 4 digits.
    #[error("currency code {0} does not fit 4 BCD digits")]
    BadCurrency(u16),
}

fn amount_bmp(out: &mut Vec<u8>, amount: u64) -> Result<(), CommandError> {
    let bcd = bcd_encode(amount, 6).ok_or(CommandError::AmountTooLarge(amount))?;
    out.push(BMP_AMOUNT);
    out.extend_from_slice(&bcd);
    Ok(())
}

fn currency_bytes(code: u16) -> Result<Vec<u8>, CommandError> {
    bcd_encode(u64::from(code), 2).ok_or(CommandError::BadCurrency(code))
}

/// Registration `06 00`: password, config byte, optional currency (untagged, 2 bytes BCD).
pub fn registration(pw: &Password, config_byte: u8, currency: Option<u16>) -> Result<Apdu, CommandError> {
    let mut d = pw.bcd().to_vec();
    d.push(config_byte);
    if let Some(cc) = currency {
        d.extend(currency_bytes(cc)?);
    }
    Ok(Apdu::new(0x06, 0x00, d))
}

/// Authorisation (purchase) `06 01`: BMP 04 amount, then BMP 49 currency if given.
pub fn authorisation(amount: u64, currency: Option<u16>) -> Result<Apdu, CommandError> {
    let mut d = Vec::new();
    amount_bmp(&mut d, amount)?;
    if let Some(cc) = currency {
        d.push(BMP_CURRENCY);
        d.extend(currency_bytes(cc)?);
    }
    Ok(Apdu::new(0x06, 0x01, d))
}

/// Reversal `06 30`: password and BMP 87 receipt number of the payment to reverse.
pub fn reversal(pw: &Password, receipt_no: u32) -> Result<Apdu, CommandError> {
    let mut d = pw.bcd().to_vec();
    d.push(BMP_RECEIPT_NO);
    d.extend(bcd_encode(u64::from(receipt_no), 2).ok_or(CommandError::ReceiptTooLarge(receipt_no))?);
    Ok(Apdu::new(0x06, 0x30, d))
}

/// Refund `06 31`: password, BMP 04 amount, BMP 49 currency if given.
pub fn refund(pw: &Password, amount: u64, currency: Option<u16>) -> Result<Apdu, CommandError> {
    let mut d = pw.bcd().to_vec();
    amount_bmp(&mut d, amount)?;
    if let Some(cc) = currency {
        d.push(BMP_CURRENCY);
        d.extend(currency_bytes(cc)?);
    }
    Ok(Apdu::new(0x06, 0x31, d))
}

/// End-of-day `06 50`: password.
pub fn end_of_day(pw: &Password) -> Apdu {
    Apdu::new(0x06, 0x50, pw.bcd().to_vec())
}

/// Status enquiry `05 01`: password. Used as the safe diagnosis (never contacts the host, never charges).
pub fn status_enquiry(pw: &Password) -> Apdu {
    Apdu::new(0x05, 0x01, pw.bcd().to_vec())
}

/// Repeat receipt `06 20`: password; the terminal answers with the last transaction.
pub fn repeat_receipt(pw: &Password) -> Apdu {
    Apdu::new(0x06, 0x20, pw.bcd().to_vec())
}

/// Abort `06 B0` (no data).
pub fn abort() -> Apdu {
    Apdu::new(0x06, 0xB0, Vec::new())
}

/// Positive completion `80 00 00`, the ECR's answer to every terminal message.
pub fn positive_ack() -> Apdu {
    Apdu::new(0x80, 0x00, Vec::new())
}

// ---------------------------------------------------------------------------------------------
// Terminal → ECR messages
// ---------------------------------------------------------------------------------------------

/// Totals by card scheme from BMP 60 (individual totals) of an end-of-day.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct IndividualTotals {
    /// First receipt number of the period.
    pub receipt_from: u32,
    /// Last receipt number of the period.
    pub receipt_to: u32,
    /// (scheme, count, amount) for each scheme with a non-zero count.
    pub schemes: Vec<(String, u32, u64)>,
}

const TOTAL_SCHEMES: [&str; 7] = ["girocard", "JCB", "Eurocard", "Amex", "Visa", "Diners", "others"];

fn parse_totals(v: &[u8]) -> Option<IndividualTotals> {
    let receipt_from = bcd_decode(v.get(0..2)?)? as u32;
    let receipt_to = bcd_decode(v.get(2..4)?)? as u32;
    let mut schemes = Vec::new();
    let mut rest = v.get(4..)?;
    for name in TOTAL_SCHEMES {
        let Some(chunk) = rest.get(..7) else { break };
        let count = u32::from(chunk[0]);
        let amount = bcd_decode(&chunk[1..7])?;
        if count > 0 {
            schemes.push((name.to_string(), count, amount));
        }
        rest = &rest[7..];
    }
    Some(IndividualTotals { receipt_from, receipt_to, schemes })
}

/// The fields of a Status-Information `04 0F` the ECR uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusInfo {
    /// BMP 27 result code (0 = success).
    pub result_code: Option<u8>,
    /// BMP 04 amount in piastres.
    pub amount: Option<u64>,
    /// BMP 0B trace number.
    pub trace: Option<u32>,
    /// BMP 87 receipt number.
    pub receipt_no: Option<u32>,
    /// BMP 29 terminal id.
    pub terminal_id: Option<u32>,
    /// BMP 0C time `HHMMSS` (terminal clock).
    pub time: Option<String>,
    /// BMP 0D date `MMDD` (terminal clock).
    pub date: Option<String>,
    /// BMP 22 PAN, masked digits as `*`.
    pub masked_pan: Option<String>,
    /// BMP 8B card name.
    pub card_name: Option<String>,
    /// BMP 3B AID (authorisation attribute).
    pub aid: Option<String>,
    /// BMP 8A ZVT card type.
    pub card_type: Option<u8>,
    /// BMP 49 currency.
    pub currency: Option<u16>,
    /// BMP 3C additional text.
    pub additional_text: Option<String>,
    /// BMP 60 individual totals (end-of-day).
    pub totals: Option<IndividualTotals>,
    /// Set when parsing stopped before the end (an undefined or malformed BMP).
    pub incomplete: Option<BmpError>,
}

fn bcd_digits(v: &[u8]) -> Option<String> {
    let mut s = String::with_capacity(v.len() * 2);
    for &b in v {
        for nib in [b >> 4, b & 0x0F] {
            if nib > 9 {
                return None;
            }
            s.push(char::from(b'0' + nib));
        }
    }
    Some(s)
}

/// PAN digits; `E` nibbles are masked digits (`*`), `F` is padding.
fn masked_pan(v: &[u8]) -> String {
    let mut s = String::with_capacity(v.len() * 2);
    for &b in v {
        for nib in [b >> 4, b & 0x0F] {
            match nib {
                0..=9 => s.push(char::from(b'0' + nib)),
                0x0E => s.push('*'),
                0x0F => {}
                _ => s.push('?'),
            }
        }
    }
    s
}

/// Text from a terminal field: printable ASCII kept, NUL padding and trailing blanks dropped.
pub fn field_text(v: &[u8]) -> String {
    let s: String = v
        .iter()
        .filter(|&&b| b != 0)
        .map(|&b| if (0x20..0x7F).contains(&b) { char::from(b) } else { '?' })
        .collect();
    s.trim_end().to_string()
}

impl StatusInfo {
    /// Reads a Status-Information data field; unknown-but-defined BMPs (and TLV 06) are skipped.
    pub fn parse(data: &[u8]) -> Self {
        let (bmps, incomplete) = split_bmps(data);
        let mut s = StatusInfo { incomplete, ..Default::default() };
        for (tag, v) in bmps {
            match tag {
                0x27 => s.result_code = v.first().copied(),
                0x04 => s.amount = bcd_decode(v),
                0x0B => s.trace = bcd_decode(v).map(|x| x as u32),
                0x87 => s.receipt_no = bcd_decode(v).map(|x| x as u32),
                0x29 => s.terminal_id = bcd_decode(v).map(|x| x as u32),
                0x0C => s.time = bcd_digits(v),
                0x0D => s.date = bcd_digits(v),
                0x22 => s.masked_pan = Some(masked_pan(v)),
                0x8B => s.card_name = Some(field_text(v)),
                0x3B => s.aid = Some(field_text(v)),
                0x8A => s.card_type = v.first().copied(),
                0x49 => s.currency = bcd_decode(v).map(|x| x as u16),
                0x3C => s.additional_text = Some(field_text(v)),
                0x60 => s.totals = parse_totals(v),
                _ => {}
            }
        }
        s
    }
}

/// Data of a Completion `06 0F` answering a status enquiry: software version and terminal status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnquiryCompletion {
    /// Software version (LLLVAR text).
    pub software: String,
    /// Terminal status code (0 = ready).
    pub status_code: u8,
}

impl EnquiryCompletion {
    /// Parses `<sw-version LLLVAR><terminal-status-code>[TLV]`; `None` if malformed.
    pub fn parse(data: &[u8]) -> Option<Self> {
        let n = var_len_decode(data.get(..3)?)?;
        let software = field_text(data.get(3..3 + n)?);
        let status_code = *data.get(3 + n)?;
        Some(Self { software, status_code })
    }
}

/// A message from the terminal, recognised by its control field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminalMsg {
    /// `80 00 00`: positive completion of the ECR's last command.
    Ack,
    /// `84 xx`: the terminal refuses the command with this code.
    Refused(u8),
    /// `04 FF`: intermediate status (code, optional timeout in seconds).
    Intermediate {
        /// Intermediate status code (see [`intermediate_text`]).
        code: u8,
        /// Seconds the ECR should wait for the next message (0 or absent: use T4).
        timeout_s: Option<u8>,
    },
    /// `04 0F`: Status-Information.
    Status(Box<StatusInfo>),
    /// `06 D1`: one receipt line.
    PrintLine(String),
    /// `06 D3`: a text block (lines taken from its TLV container).
    PrintBlock(Vec<String>),
    /// `06 0F`: completion; data depends on the command (kept raw).
    Completion(Vec<u8>),
    /// `06 1E`: abort with a result code.
    Abort(u8),
    /// Anything else: acknowledged and ignored.
    Other(u16),
}

fn tlv_text_lines(mut v: &[u8], depth: u8, out: &mut Vec<String>) {
    if depth > 8 {
        return;
    }
    while let Some(&first) = v.first() {
        // Tag: one byte, or more when the low 5 bits are all set (continuation in bit 8).
        let mut i = 1;
        if first & 0x1F == 0x1F {
            while let Some(&b) = v.get(i) {
                i += 1;
                if b & 0x80 == 0 || i > 4 {
                    break;
                }
            }
        }
        let Some((lp, len)) = v.get(i..).and_then(tlv_len) else { return };
        let Some(value) = v.get(i + lp..i + lp + len) else { return };
        if first & 0x20 != 0 {
            tlv_text_lines(value, depth + 1, out);
        } else if first == 0x07 {
            out.push(field_text(value));
        }
        v = &v[i + lp + len..];
    }
}

impl TerminalMsg {
    /// Classifies a terminal APDU; never fails (unknown ones become [`TerminalMsg::Other`]).
    pub fn from_apdu(a: &Apdu) -> Self {
        let d = &a.data;
        match (a.class, a.instr) {
            (0x80, 0x00) => TerminalMsg::Ack,
            (0x84, code) => TerminalMsg::Refused(code),
            (0x04, 0xFF) => TerminalMsg::Intermediate {
                code: d.first().copied().unwrap_or(0xFF),
                timeout_s: d.get(1).copied(),
            },
            (0x04, 0x0F) => TerminalMsg::Status(Box::new(StatusInfo::parse(d))),
            (0x06, 0xD1) => TerminalMsg::PrintLine(d.get(1..).map(field_text).unwrap_or_default()),
            (0x06, 0xD3) => {
                let mut lines = Vec::new();
                for (tag, v) in split_bmps(d).0 {
                    if tag == 0x06 {
                        tlv_text_lines(v, 0, &mut lines);
                    }
                }
                TerminalMsg::PrintBlock(lines)
            }
            (0x06, 0x0F) => TerminalMsg::Completion(d.clone()),
            (0x06, 0x1E) => TerminalMsg::Abort(d.first().copied().unwrap_or(0xFF)),
            _ => TerminalMsg::Other(a.control()),
        }
    }
}

/// Text of an intermediate status code (spec PA00P015, intermediate status table).
pub fn intermediate_text(code: u8) -> String {
    let s = match code {
        0x00 => "Waiting for amount confirmation",
        0x01 | 0x02 => "Please watch PIN pad",
        0x03 => "Not accepted",
        0x04 => "Waiting for response from host",
        0x05 => "Sending auto-reversal",
        0x06 => "Sending post-bookings",
        0x07 => "Card not admitted",
        0x08 => "Card unknown",
        0x09 => "Expired card",
        0x0A => "Insert card",
        0x0B => "Please remove card",
        0x0C => "Card not readable",
        0x0D => "Processing error",
        0x0E | 0x17 => "Please wait",
        0x0F => "Starting automatic end-of-day",
        0x10 => "Invalid card",
        0x12 => "System malfunction",
        0x13 => "Payment not possible",
        0x14 => "Credit not sufficient",
        0x15 => "Incorrect PIN",
        0x16 => "Limit not sufficient",
        0x18 => "PIN try limit exceeded",
        0x19 => "Card data incorrect",
        0x1A => "Service mode",
        0x1B | 0x1C => "Approved",
        0x1D => "Declined",
        0x41 => "Please enter PIN",
        _ => return format!("Terminal status {code:#04x}"),
    };
    s.to_string()
}

/// Text of a result code (BMP 27 / abort `06 1E`), spec PA00P015 error-message table.
pub fn result_text(code: u8) -> String {
    let s = match code {
        0x00 => "Approved",
        0x05 => "Declined by the card issuer",
        0x64 => "Card not readable",
        0x65 => "Card data not present",
        0x66 => "Processing error",
        0x67 => "Function not permitted for this card",
        0x68 => "Function not permitted for this card",
        0x6A => "Turnover file full",
        0x6C => "Aborted (timeout or abort key)",
        0x6F => "Wrong currency",
        0x78 => "Card expired",
        0x79 => "Card not yet valid",
        0x7A => "Card unknown",
        0x83 => "Function not possible",
        0x9A => "ZVT protocol error",
        0x9C => "Repeat the procedure",
        0xA0 => "Receiver not ready",
        0xB4 => "Already reversed",
        0xB5 => "Reversal not possible",
        0xC2 => "Diagnosis required",
        0xC3 => "Maximum amount exceeded",
        0xFF => "System error",
        _ => return format!("Result code {code:#04x}"),
    };
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// devices.md verified vector: purchase of 1.90 without currency.
    const PURCHASE_190: [u8; 16] =
        [0x10, 0x02, 0x06, 0x01, 0x07, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x90, 0x10, 0x03, 0x76, 0x57];

    #[test]
    fn purchase_vector_without_currency() {
        let apdu = authorisation(190, None).unwrap().encode().unwrap();
        assert_eq!(encode_frame(&apdu), PURCHASE_190);
    }

    #[test]
    fn purchase_with_egp_currency() {
        let apdu = authorisation(190, Some(EGP)).unwrap().encode().unwrap();
        assert_eq!(apdu, [0x06, 0x01, 0x0A, 0x04, 0, 0, 0, 0, 0x01, 0x90, 0x49, 0x08, 0x18]);
    }

    #[test]
    fn decoder_reads_verified_vector() {
        let mut d = FrameDecoder::new();
        let mut ev = Vec::new();
        d.push(&PURCHASE_190, &mut ev);
        assert_eq!(ev, vec![LineEvent::Frame(Apdu::new(0x06, 0x01, vec![0x04, 0, 0, 0, 0, 0x01, 0x90]))]);
    }

    #[test]
    fn decoder_rejects_bad_crc_and_resyncs() {
        let mut bad = PURCHASE_190;
        bad[15] ^= 0xFF;
        let mut d = FrameDecoder::new();
        let mut ev = Vec::new();
        d.push(&[0x55, 0xAA, 0x10, 0x99], &mut ev);
        d.push(&bad, &mut ev);
        d.push(&PURCHASE_190, &mut ev);
        assert!(matches!(ev[0], LineEvent::Bad(FrameError::BadCrc { .. })));
        assert!(matches!(ev[1], LineEvent::Frame(_)));
        assert_eq!(ev.len(), 2);
    }

    #[test]
    fn decoder_reports_truncated_frame() {
        let mut d = FrameDecoder::new();
        let mut ev = Vec::new();
        d.push(&PURCHASE_190[..8], &mut ev);
        d.push(&PURCHASE_190, &mut ev);
        assert_eq!(ev.len(), 2);
        assert!(matches!(ev[0], LineEvent::Bad(FrameError::Truncated { after: 6 })));
        assert!(matches!(ev[1], LineEvent::Frame(_)));
    }

    #[test]
    fn length_mismatch_is_rejected() {
        // CRC right, LEN says 9 but 7 bytes follow.
        let body = [0x06, 0x01, 0x09, 0x04, 0, 0, 0, 0, 0x01, 0x90];
        let mut frame = vec![DLE, STX];
        frame.extend_from_slice(&body);
        frame.extend_from_slice(&[DLE, ETX]);
        frame.extend_from_slice(&frame_crc(&body).to_le_bytes());
        let mut d = FrameDecoder::new();
        let mut ev = Vec::new();
        d.push(&frame, &mut ev);
        assert!(matches!(ev[0], LineEvent::Bad(FrameError::Apdu(ApduError::LengthMismatch { .. }))));
    }

    #[test]
    fn extended_length_round_trip() {
        let a = Apdu::new(0x06, 0xD3, vec![0x41; 300]);
        let enc = a.encode().unwrap();
        assert_eq!(&enc[..5], &[0x06, 0xD3, 0xFF, 0x2C, 0x01]);
        assert_eq!(Apdu::decode(&enc).unwrap(), a);
    }

    #[test]
    fn bcd_and_var_len() {
        assert_eq!(bcd_encode(1010, 6).unwrap(), [0, 0, 0, 0, 0x10, 0x10]);
        assert_eq!(bcd_decode(&[0x12, 0x34, 0x56]), Some(123456));
        assert_eq!(bcd_decode(&[0x1A]), None);
        assert_eq!(bcd_encode(1_000_000, 3), None);
        assert_eq!(var_len_encode(10, 2).unwrap(), [0xF1, 0xF0]);
        assert_eq!(var_len_encode(123, 3).unwrap(), [0xF1, 0xF2, 0xF3]);
    }

    /// EVerest/zvt `1681273860.511128000_ecr_pt.blob`: registration, password 123456, config 0xDE, EUR.
    #[test]
    fn registration_matches_everest_capture() {
        let pw = Password::parse("123456").unwrap();
        let a = registration(&pw, 0xDE, Some(978)).unwrap().encode().unwrap();
        assert_eq!(a, [0x06, 0x00, 0x06, 0x12, 0x34, 0x56, 0xDE, 0x09, 0x78]);
    }

    /// EVerest/zvt `1681282621.302434000_ecr_pt.blob`: end-of-day with password 123456.
    #[test]
    fn end_of_day_matches_everest_capture() {
        let pw = Password::parse("123456").unwrap();
        assert_eq!(end_of_day(&pw).encode().unwrap(), [0x06, 0x50, 0x03, 0x12, 0x34, 0x56]);
    }

    #[test]
    fn password_debug_is_redacted() {
        let pw = Password::parse("987654").unwrap();
        assert!(!format!("{pw:?}").contains("987654"));
        assert!(Password::parse("12345").is_err());
        assert!(Password::parse("12345a").is_err());
        let a = registration(&pw, 0, None).unwrap();
        assert!(!format!("{a:?}").contains("98"));
    }

    /// EVerest/zvt packets.rs test: a Status-Information with result code and a TLV container
    /// (0x60 bytes) that must be skipped by its BER length.
    #[test]
    fn status_info_with_tlv_is_skipped() {
        let bytes: [u8; 103] = [
            4, 15, 100, 39, 0, 6, 96, 76, 10, 0, 0, 0, 0, 0, 0, 8, 255, 105, 20, 31, 69, 12, 12, 120, 128,
            116, 3, 128, 49, 192, 115, 214, 49, 192, 31, 76, 1, 1, 31, 77, 2, 254, 4, 31, 79, 2, 4, 0, 31,
            80, 1, 32, 96, 11, 67, 9, 160, 0, 0, 0, 89, 69, 67, 1, 0, 96, 12, 67, 10, 160, 0, 0, 3, 89, 16,
            16, 2, 128, 1, 96, 11, 67, 9, 210, 118, 0, 0, 37, 71, 65, 1, 0, 96, 9, 67, 7, 160, 0, 0, 0, 4,
            16, 16,
        ];
        let a = Apdu::decode(&bytes).unwrap();
        let TerminalMsg::Status(s) = TerminalMsg::from_apdu(&a) else { panic!("not a status") };
        assert_eq!(s.result_code, Some(0));
        assert_eq!(s.incomplete, None);
    }

    #[test]
    fn status_info_fields() {
        // 27 00, 04 amount 25.00, 0B trace 975, 0C 22:55:58, 0D 04-05, 22 masked PAN, 87 receipt 231,
        // 29 TID 52523535, 3B AID "750071", 8A 06, 8B "MasterCard", 2A VU number (skipped), 17 (skipped).
        let mut d = vec![0x27, 0x00, 0x04, 0, 0, 0, 0, 0x25, 0x00, 0x0B, 0x00, 0x09, 0x75];
        d.extend_from_slice(&[0x0C, 0x22, 0x55, 0x58, 0x0D, 0x04, 0x05]);
        d.extend_from_slice(&[0x22, 0xF0, 0xF8, 0x55, 0x98, 0xEE, 0xEE, 0xEE, 0xEE, 0x80, 0x74]);
        d.extend_from_slice(&[0x87, 0x02, 0x31, 0x29, 0x52, 0x52, 0x35, 0x35]);
        d.extend_from_slice(&[0x3B, b'7', b'5', b'0', b'0', b'7', b'1', 0, 0, 0x8A, 0x06]);
        d.extend_from_slice(&[0x2A]);
        d.extend_from_slice(b"804011926      ");
        d.extend_from_slice(&[0x17, 0x00, 0x01, 0x8B, 0xF1, 0xF0]);
        d.extend_from_slice(b"MasterCard");
        let s = StatusInfo::parse(&d);
        assert_eq!(s.incomplete, None);
        assert_eq!(s.result_code, Some(0));
        assert_eq!(s.amount, Some(2500));
        assert_eq!(s.trace, Some(975));
        assert_eq!(s.time.as_deref(), Some("225558"));
        assert_eq!(s.date.as_deref(), Some("0405"));
        assert_eq!(s.masked_pan.as_deref(), Some("5598********8074"));
        assert_eq!(s.receipt_no, Some(231));
        assert_eq!(s.terminal_id, Some(52523535));
        assert_eq!(s.aid.as_deref(), Some("750071"));
        assert_eq!(s.card_type, Some(6));
        assert_eq!(s.card_name.as_deref(), Some("MasterCard"));
    }

    #[test]
    fn undefined_bmp_stops_but_keeps_earlier_fields() {
        let s = StatusInfo::parse(&[0x27, 0x00, 0x04, 0, 0, 0, 0, 0x01, 0x90, 0x33, 0x01]);
        assert_eq!(s.amount, Some(190));
        assert_eq!(s.incomplete, Some(BmpError::Unknown(0x33)));
        let s = StatusInfo::parse(&[0x27, 0x00, 0x8B, 0xF9, 0xF9, b'x']);
        assert_eq!(s.incomplete, Some(BmpError::Truncated(0x8B)));
    }

    /// EVerest/zvt `1680761818.641601000_pt_ecr.blob` (completion after registration):
    /// 19 10, 29 52523535, 49 0978 — contains a 0x10 byte that must be doubled on the line.
    #[test]
    fn completion_vector_with_dle_stuffing() {
        let apdu = [0x06, 0x0F, 0x0A, 0x19, 0x10, 0x29, 0x52, 0x52, 0x35, 0x35, 0x49, 0x09, 0x78];
        let frame = encode_frame(&apdu);
        assert_eq!(&frame[2..8], &[0x06, 0x0F, 0x0A, 0x19, 0x10, 0x10]);
        let mut d = FrameDecoder::new();
        let mut ev = Vec::new();
        d.push(&frame, &mut ev);
        let LineEvent::Frame(a) = &ev[0] else { panic!("{ev:?}") };
        assert_eq!(a.encode().unwrap(), apdu);
    }

    #[test]
    fn enquiry_completion() {
        let mut d = var_len_encode(5, 3).unwrap();
        d.extend_from_slice(b"SIM-1");
        d.push(0x00);
        let c = EnquiryCompletion::parse(&d).unwrap();
        assert_eq!(c.software, "SIM-1");
        assert_eq!(c.status_code, 0);
        assert_eq!(EnquiryCompletion::parse(&d[..4]), None);
    }

    #[test]
    fn intermediate_status_from_everest() {
        // EVerest/zvt `1680728162.647465000_pt_ecr.blob`: status 0x17, timeout 0.
        let a = Apdu::decode(&[0x04, 0xFF, 0x02, 0x17, 0x00]).unwrap();
        assert_eq!(TerminalMsg::from_apdu(&a), TerminalMsg::Intermediate { code: 0x17, timeout_s: Some(0) });
    }

    proptest::proptest! {
        #[test]
        fn decoder_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let mut d = FrameDecoder::new();
            let mut ev = Vec::new();
            d.push(&bytes, &mut ev);
            for e in ev {
                if let LineEvent::Frame(a) = e {
                    let _ = TerminalMsg::from_apdu(&a);
                }
            }
            let _ = StatusInfo::parse(&bytes);
            let _ = EnquiryCompletion::parse(&bytes);
            let _ = Apdu::decode(&bytes);
        }

        #[test]
        fn frame_round_trip(class in 0u8..=255, instr in 0u8..=255,
                            data in proptest::collection::vec(proptest::prop_oneof![proptest::num::u8::ANY, proptest::strategy::Just(0x10u8)], 0..400)) {
            let a = Apdu::new(class, instr, data);
            let frame = encode_frame(&a.encode().unwrap());
            let mut d = FrameDecoder::new();
            let mut ev = Vec::new();
            d.push(&frame, &mut ev);
            proptest::prop_assert_eq!(ev, vec![LineEvent::Frame(a)]);
        }

        #[test]
        fn amounts_round_trip(amount in 0u64..=MAX_AMOUNT) {
            let a = authorisation(amount, Some(EGP)).unwrap();
            let s = StatusInfo::parse(&a.data);
            proptest::prop_assert_eq!(s.amount, Some(amount));
            proptest::prop_assert_eq!(s.currency, Some(EGP));
        }
    }
}
