//! Simulated ZVT payment terminal (the device side), with its own frame reader and message
//! builder so that a bug in the driver's codec cannot hide behind a shared implementation.
//!
//! Serves registration, purchase, reversal, refund, end-of-day, status enquiry, repeat receipt
//! and abort with realistic pauses (scaled by `timing_scale`; 0 in tests). Faults: `decline`,
//! `timeout` (never answers), `drop_mid_purchase` (one-shot: the link drops after the card is read,
//! the approval is kept as the last transaction), `nak_once` (one-shot: one frame with a bad CRC).
//!
//! Every command is read to its last byte ([`parse_command`]); what the terminal cannot read gets
//! `84 9A 00`, what it does not offer (or a wrong password) `84 83 00`, a bad CRC a NAK, each
//! with a `warn` log line and a count in [`SimDevice::status`]. Never `80 00 00` for those.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::ledger::Event;
use super::{SimDevice, SimOut};

const DLE: u8 = 0x10;
const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const ACK: u8 = 0x06;
const NAK: u8 = 0x15;
const EGP: u16 = 818;
/// The simulated card's number as BMP 22 carries it (`E` = a masked digit).
const PAN_BMP: [u8; 8] = [0x41, 0x11, 0x11, 0xEE, 0xEE, 0xEE, 0x10, 0x10];

/// Names accepted by [`SimDevice::apply_fault`].
pub const FAULTS: [&str; 4] = ["decline", "timeout", "drop_mid_purchase", "nak_once"];

/// Builds the simulator from its scenario options (`[payment]` table of a `hw/sim/*.toml` file).
pub fn simulator(options: &toml::Table) -> Result<Box<dyn SimDevice>, String> {
    Ok(Box::new(ZvtSim::new(SimOptions::from_table(options)?)))
}

/// Options of the simulated terminal.
#[derive(Clone)]
pub struct SimOptions {
    /// Multiplier for the pauses a real terminal makes (1.0 = real time, 0 = none).
    pub timing_scale: f64,
    /// The terminal password (6 digits) the ECR must send.
    pub password: String,
    /// Terminal id reported in BMP 29 (8 digits).
    pub terminal_id: u32,
    /// ISO 4217 numeric code of the currency the terminal is set up for (818 = EGP).
    pub currency: u16,
}

impl std::fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOptions")
            .field("timing_scale", &self.timing_scale)
            .field("terminal_id", &self.terminal_id)
            .field("currency", &self.currency)
            .finish_non_exhaustive()
    }
}

impl Default for SimOptions {
    fn default() -> Self {
        Self { timing_scale: 1.0, password: "000000".into(), terminal_id: 52_523_535, currency: EGP }
    }
}

impl SimOptions {
    /// Reads the scenario table; unknown keys and bad values are errors naming the key.
    pub fn from_table(t: &toml::Table) -> Result<Self, String> {
        let mut o = Self::default();
        for (k, v) in t {
            match (k.as_str(), v) {
                ("timing_scale", toml::Value::Float(x)) if *x >= 0.0 && x.is_finite() => o.timing_scale = *x,
                ("timing_scale", toml::Value::Integer(x)) if *x >= 0 => o.timing_scale = *x as f64,
                ("timing_scale", _) => {
                    return Err("payment simulator: timing_scale must be a number >= 0".into());
                }
                ("password", toml::Value::String(s))
                    if s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    o.password = s.clone()
                }
                ("password", _) => {
                    return Err("payment simulator: password must be a string of 6 digits".into());
                }
                ("terminal_id", toml::Value::Integer(x)) if (0..=99_999_999).contains(x) => {
                    o.terminal_id = *x as u32
                }
                ("terminal_id", _) => {
                    return Err("payment simulator: terminal_id must be 0..=99999999".into());
                }
                ("currency", toml::Value::Integer(x)) if (1..=999).contains(x) => o.currency = *x as u16,
                ("currency", _) => {
                    return Err("payment simulator: currency must be an ISO 4217 numeric code 1..=999".into());
                }
                (other, _) => {
                    return Err(format!(
                        "payment simulator: unknown option {other:?} (known: timing_scale, password, terminal_id, currency)"
                    ));
                }
            }
        }
        Ok(o)
    }
}

// ---- device-side wire helpers (independent of crate::devices::zvt) ----------------------------

/// CRC-16/KERMIT computed bit by bit (reflected polynomial 0x8408, initial value 0).
fn crc_kermit_bitwise(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x8408 } else { crc >> 1 };
        }
    }
    crc
}

fn frame(apdu: &[u8]) -> Vec<u8> {
    let mut f = vec![DLE, STX];
    for &b in apdu {
        if b == DLE {
            f.push(DLE);
        }
        f.push(b);
    }
    f.push(DLE);
    f.push(ETX);
    let mut covered = apdu.to_vec();
    covered.push(ETX);
    let c = crc_kermit_bitwise(&covered);
    f.push((c & 0xFF) as u8);
    f.push((c >> 8) as u8);
    f
}

fn apdu(class: u8, instr: u8, data: &[u8]) -> Vec<u8> {
    let mut a = vec![class, instr];
    if data.len() < 255 {
        a.push(data.len() as u8);
    } else {
        a.push(0xFF);
        a.extend_from_slice(&(data.len() as u16).to_le_bytes());
    }
    a.extend_from_slice(data);
    a
}

fn bcd(value: u64, bytes: usize) -> Vec<u8> {
    let digits = format!("{value:0width$}", width = bytes * 2);
    let d = digits.as_bytes();
    let d = &d[d.len() - bytes * 2..];
    d.chunks(2).map(|p| ((p[0] - b'0') << 4) | (p[1] - b'0')).collect()
}

fn unbcd(bytes: &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for b in bytes {
        let (h, l) = (b >> 4, b & 0xF);
        if h > 9 || l > 9 {
            return None;
        }
        v = v * 100 + u64::from(h) * 10 + u64::from(l);
    }
    Some(v)
}

fn llvar(text: &[u8], digits: u32) -> Vec<u8> {
    let n = text.len();
    let mut v: Vec<u8> = (0..digits).rev().map(|i| 0xF0 | ((n / 10usize.pow(i)) % 10) as u8).collect();
    v.extend_from_slice(text);
    v
}

enum Rx {
    Ack,
    Nak,
    Bad,
    Frame(Vec<u8>),
}

/// Pulls complete items off the front of `buf`; leaves an incomplete frame in place.
fn read_line(buf: &mut Vec<u8>) -> Vec<Rx> {
    let mut out = Vec::new();
    loop {
        // Skip to ACK, NAK or DLE STX.
        let mut i = 0;
        while i < buf.len() {
            match buf[i] {
                ACK | NAK => break,
                DLE if buf.get(i + 1) == Some(&STX) || i + 1 == buf.len() => break,
                _ => i += 1,
            }
        }
        buf.drain(..i);
        match buf.first() {
            None => return out,
            Some(&ACK) => {
                buf.remove(0);
                out.push(Rx::Ack);
                continue;
            }
            Some(&NAK) => {
                buf.remove(0);
                out.push(Rx::Nak);
                continue;
            }
            _ => {}
        }
        if buf.len() < 2 {
            return out;
        }
        // buf starts with DLE STX.
        let mut body = Vec::new();
        let mut j = 2;
        let mut end = None;
        while j < buf.len() {
            if buf[j] == DLE {
                match buf.get(j + 1) {
                    Some(&DLE) => {
                        body.push(DLE);
                        j += 2;
                    }
                    Some(&ETX) => {
                        end = Some(j + 2);
                        break;
                    }
                    Some(_) => {
                        // Broken escape: drop up to here and report.
                        buf.drain(..j);
                        out.push(Rx::Bad);
                        body.clear();
                        j = usize::MAX;
                        break;
                    }
                    None => return out,
                }
            } else {
                body.push(buf[j]);
                j += 1;
            }
            if body.len() > 70_000 {
                buf.clear();
                out.push(Rx::Bad);
                return out;
            }
        }
        if j == usize::MAX {
            continue;
        }
        let Some(e) = end else { return out };
        if buf.len() < e + 2 {
            return out;
        }
        let got = u16::from(buf[e]) | (u16::from(buf[e + 1]) << 8);
        buf.drain(..e + 2);
        let mut covered = body.clone();
        covered.push(ETX);
        if crc_kermit_bitwise(&covered) == got { out.push(Rx::Frame(body)) } else { out.push(Rx::Bad) }
    }
}

// ---- command parsing (device side) ----------------------------------------------------------

/// Error code `0x83` of the spec's error list, "function not possible": the terminal's answer
/// (`84 83 00`) to a command it does not offer or refuses (wrong password).
pub const ERR_NOT_POSSIBLE: u8 = 0x83;
/// Error code `0x9A`, "ZVT protocol error" (parsing error, mandatory element missing): the
/// terminal's answer (`84 9A 00`) to a command it cannot parse.
pub const ERR_PROTOCOL: u8 = 0x9A;

/// Why the simulated terminal refused a command: the error code it answers with (`84 <code> 00`)
/// and what was wrong, with the byte offset in the APDU where it applies.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}")]
pub struct Refusal {
    /// Error code sent back as the instruction byte of `84 xx 00`.
    pub code: u8,
    /// What was wrong and where.
    pub what: String,
}

fn protocol(what: String) -> Refusal {
    Refusal { code: ERR_PROTOCOL, what }
}

/// A command APDU from the ECR as the simulated terminal understood it. Every byte of the APDU
/// was accounted for: fields the simulator does not act on (payment type, timeout, TLV
/// container …) were still parsed to their full length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcrCommand {
    /// Registration `06 00`.
    Registration {
        /// The password (6 digits).
        password: u32,
        /// Config byte (receipt and intermediate-status bits).
        config: u8,
        /// Currency the ECR works in, if sent (untagged, BCD).
        currency: Option<u16>,
        /// BMP 03 service byte.
        service_byte: Option<u8>,
    },
    /// Authorisation (purchase) `06 01`.
    Authorisation {
        /// BMP 04 amount in minor units.
        amount: Option<u64>,
        /// BMP 49 currency code.
        currency: Option<u16>,
        /// BMP 19 payment type.
        payment_type: Option<u8>,
    },
    /// Reversal `06 30`.
    Reversal {
        /// The password.
        password: u32,
        /// BMP 87 receipt number of the payment to reverse.
        receipt_no: Option<u32>,
    },
    /// Refund `06 31`.
    Refund {
        /// The password.
        password: u32,
        /// BMP 04 amount.
        amount: Option<u64>,
        /// BMP 49 currency code.
        currency: Option<u16>,
    },
    /// End-of-day `06 50`.
    EndOfDay {
        /// The password.
        password: u32,
    },
    /// Status enquiry `05 01` (the password is optional).
    StatusEnquiry {
        /// The password, if sent.
        password: Option<u32>,
        /// BMP 03 service byte.
        service_byte: Option<u8>,
    },
    /// Repeat receipt `06 20`.
    RepeatReceipt {
        /// The password.
        password: u32,
    },
    /// Abort `06 B0`.
    Abort,
}

#[derive(Clone, Copy)]
enum BmpLen {
    Fixed(usize),
    Ll,
    Lll,
    Tlv,
}

/// Length rule of each bitmap (BMP) number, from the spec's bitmap table (cross-checked with the
/// Wireshark ZVT dissector's table). `None`: not a bitmap this terminal knows.
fn bmp_len(bmp: u8) -> Option<BmpLen> {
    use BmpLen::*;
    Some(match bmp {
        0x01 | 0x02 | 0x03 | 0x05 | 0x19 | 0x27 | 0x8A => Fixed(1),
        0x04 => Fixed(6),
        0x0B | 0x0C => Fixed(3),
        0x0D | 0x0E | 0x17 | 0x3A | 0x49 | 0x87 => Fixed(2),
        0x29 => Fixed(4),
        0x2A => Fixed(15),
        0x3B => Fixed(8),
        0x22 | 0x23 | 0x2D | 0x8B => Ll,
        0x24 | 0x3C => Lll,
        0x06 => Tlv,
        _ => return None,
    })
}

/// BER length at `d[at..]`: returns (length, bytes used).
fn ber_len(d: &[u8], at: usize) -> Result<(usize, usize), String> {
    match d.get(at) {
        None => Err(format!("TLV length missing at byte {at}")),
        Some(&b) if b < 0x80 => Ok((usize::from(b), 1)),
        Some(0x81) => {
            d.get(at + 1).map(|&n| (usize::from(n), 2)).ok_or(format!("TLV length cut at byte {at}"))
        }
        Some(0x82) => match d.get(at + 1..at + 3) {
            Some(n) => Ok((usize::from(u16::from_be_bytes([n[0], n[1]])), 3)),
            None => Err(format!("TLV length cut at byte {at}")),
        },
        Some(b) => Err(format!("TLV length form {b:#04x} at byte {at} not allowed")),
    }
}

/// Checks a sequence of BER-TLV data objects (the content of BMP 06) down to its last byte.
fn check_tlv(d: &[u8], base: usize, depth: u8) -> Result<(), String> {
    if depth > 8 {
        return Err(format!("TLV nested too deep at byte {base}"));
    }
    let mut i = 0;
    while i < d.len() {
        let first = d[i];
        let mut j = i + 1;
        if first & 0x1F == 0x1F {
            loop {
                let b = *d.get(j).ok_or(format!("TLV tag cut at byte {}", base + j))?;
                j += 1;
                if b & 0x80 == 0 {
                    break;
                }
                if j - i > 4 {
                    return Err(format!("TLV tag longer than 4 bytes at byte {}", base + i));
                }
            }
        }
        let (len, used) = ber_len(d, j).map_err(|e| format!("{e} (+{base})"))?;
        let start = j + used;
        let value = d.get(start..start + len).ok_or(format!(
            "TLV object at byte {} claims {len} bytes, {} left",
            base + i,
            d.len() - start.min(d.len())
        ))?;
        if first & 0x20 != 0 {
            check_tlv(value, base + start, depth + 1)?;
        }
        i = start + len;
    }
    Ok(())
}

fn llvar_len(d: &[u8], at: usize, digits: usize) -> Result<usize, String> {
    let l = d.get(at..at + digits).ok_or(format!("length of variable field cut at byte {at}"))?;
    let mut n = 0;
    for &b in l {
        if b >> 4 != 0xF || b & 0xF > 9 {
            return Err(format!("variable-length prefix byte {b:#04x} at byte {at} is not Fx"));
        }
        n = n * 10 + usize::from(b & 0xF);
    }
    Ok(n)
}

/// Splits `d` (starting at APDU data offset `base`) into bitmaps, each allowed for the command;
/// a bitmap may appear once.
fn parse_bmps<'a>(d: &'a [u8], base: usize, allowed: &[u8]) -> Result<Vec<(u8, &'a [u8])>, Refusal> {
    let mut out: Vec<(u8, &[u8])> = Vec::new();
    let mut i = 0;
    while i < d.len() {
        let bmp = d[i];
        let at = base + i;
        let rule = bmp_len(bmp)
            .filter(|_| allowed.contains(&bmp))
            .ok_or_else(|| protocol(format!("bitmap {bmp:02X} at byte {at} is not allowed here")))?;
        if out.iter().any(|(b, _)| *b == bmp) {
            return Err(protocol(format!("bitmap {bmp:02X} repeated at byte {at}")));
        }
        let (start, len) = match rule {
            BmpLen::Fixed(n) => (i + 1, n),
            BmpLen::Ll => (i + 3, llvar_len(d, i + 1, 2).map_err(protocol)?),
            BmpLen::Lll => (i + 4, llvar_len(d, i + 1, 3).map_err(protocol)?),
            BmpLen::Tlv => {
                let (n, used) = ber_len(d, i + 1).map_err(protocol)?;
                (i + 1 + used, n)
            }
        };
        let value = d.get(start..start + len).ok_or_else(|| {
            protocol(format!(
                "bitmap {bmp:02X} at byte {at} needs {len} bytes, {} left",
                d.len().saturating_sub(start)
            ))
        })?;
        if matches!(rule, BmpLen::Tlv) {
            check_tlv(value, base + start, 0).map_err(protocol)?;
        }
        out.push((bmp, value));
        i = start + len;
    }
    Ok(out)
}

fn bcd_field(v: &[u8], what: &str) -> Result<u64, Refusal> {
    unbcd(v).ok_or_else(|| protocol(format!("{what} {} is not BCD", hex::encode_upper(v))))
}

fn get<'a>(bmps: &[(u8, &'a [u8])], bmp: u8) -> Option<&'a [u8]> {
    bmps.iter().find(|(b, _)| *b == bmp).map(|(_, v)| *v)
}

fn password(d: &[u8]) -> Result<u32, Refusal> {
    let p = d.get(..3).ok_or_else(|| protocol(format!("password needs 3 bytes, got {}", d.len())))?;
    Ok(bcd_field(p, "password")? as u32)
}

/// Amount, currency and payment type from the bitmaps.
type Money = (Option<u64>, Option<u16>, Option<u8>);

fn money(bmps: &[(u8, &[u8])]) -> Result<Money, Refusal> {
    let amount = get(bmps, 0x04).map(|v| bcd_field(v, "amount (BMP 04)")).transpose()?;
    let currency =
        get(bmps, 0x49).map(|v| bcd_field(v, "currency (BMP 49)").map(|c| c as u16)).transpose()?;
    Ok((amount, currency, get(bmps, 0x19).map(|v| v[0])))
}

/// Bitmaps an authorisation may carry (spec 2.2: amount, currency, payment type, card data,
/// timeout, max. status infos, pump number, additional text, card type, TLV container).
const AUTH_BMPS: [u8; 15] =
    [0x01, 0x02, 0x04, 0x05, 0x06, 0x0E, 0x19, 0x22, 0x23, 0x24, 0x2D, 0x3A, 0x3C, 0x49, 0x8A];

/// Parses one command APDU (`CLASS INSTR LEN data`) as the terminal does. Unknown commands are
/// refused with [`ERR_NOT_POSSIBLE`]; a length that does not match, a field cut short, a bitmap
/// the command does not allow, non-BCD digits or bytes left over are refused with [`ERR_PROTOCOL`].
pub fn parse_command(apdu: &[u8]) -> Result<EcrCommand, Refusal> {
    let [class, instr, len, ..] = *apdu else {
        return Err(protocol(format!("APDU of {} bytes is shorter than its 3-byte header", apdu.len())));
    };
    let (declared, data, base) = if len == 0xFF {
        let n = apdu.get(3..5).ok_or_else(|| protocol("extended length cut short".into()))?;
        (usize::from(u16::from_le_bytes([n[0], n[1]])), &apdu[5..], 5)
    } else {
        (usize::from(len), &apdu[3..], 3)
    };
    if declared != data.len() {
        return Err(protocol(format!(
            "{class:02X} {instr:02X}: length field says {declared} bytes, the frame carries {}",
            data.len()
        )));
    }
    let cmd = match (class, instr) {
        (0x06, 0x00) => {
            let password = password(data)?;
            let config = *data.get(3).ok_or_else(|| protocol("registration: config byte missing".into()))?;
            let rest = &data[4..];
            // The currency code is untagged; BMP 03 or 06 may follow it or stand in its place.
            let (currency, bmps_at) = if rest.len() >= 2 && !matches!(rest[0], 0x03 | 0x06) {
                (Some(bcd_field(&rest[..2], "registration currency")? as u16), 6)
            } else {
                (None, 4)
            };
            let bmps = parse_bmps(&data[bmps_at..], base + bmps_at, &[0x03, 0x06])?;
            EcrCommand::Registration {
                password,
                config,
                currency,
                service_byte: get(&bmps, 0x03).map(|v| v[0]),
            }
        }
        (0x06, 0x01) => {
            let bmps = parse_bmps(data, base, &AUTH_BMPS)?;
            let (amount, currency, payment_type) = money(&bmps)?;
            EcrCommand::Authorisation { amount, currency, payment_type }
        }
        (0x06, 0x30) => {
            let password = password(data)?;
            let bmps = parse_bmps(&data[3..], base + 3, &[0x87, 0x04, 0x19, 0x49, 0x06])?;
            let receipt_no = get(&bmps, 0x87)
                .map(|v| bcd_field(v, "receipt number (BMP 87)").map(|r| r as u32))
                .transpose()?;
            money(&bmps)?;
            EcrCommand::Reversal { password, receipt_no }
        }
        (0x06, 0x31) => {
            let password = password(data)?;
            let bmps = parse_bmps(&data[3..], base + 3, &[0x04, 0x19, 0x49, 0x06, 0x22, 0x23, 0x0E, 0x2D])?;
            let (amount, currency, _) = money(&bmps)?;
            EcrCommand::Refund { password, amount, currency }
        }
        (0x06, 0x50) => {
            let password = password(data)?;
            parse_bmps(&data[3..], base + 3, &[])?;
            EcrCommand::EndOfDay { password }
        }
        (0x05, 0x01) => {
            if data.is_empty() {
                EcrCommand::StatusEnquiry { password: None, service_byte: None }
            } else {
                let password = password(data)?;
                let bmps = parse_bmps(&data[3..], base + 3, &[0x03, 0x06])?;
                EcrCommand::StatusEnquiry {
                    password: Some(password),
                    service_byte: get(&bmps, 0x03).map(|v| v[0]),
                }
            }
        }
        (0x06, 0x20) => {
            let password = password(data)?;
            parse_bmps(&data[3..], base + 3, &[0x06])?;
            EcrCommand::RepeatReceipt { password }
        }
        (0x06, 0xB0) => {
            parse_bmps(data, base, &[])?;
            EcrCommand::Abort
        }
        _ => {
            return Err(Refusal {
                code: ERR_NOT_POSSIBLE,
                what: format!("command {class:02X} {instr:02X} not offered by this terminal"),
            });
        }
    };
    Ok(cmd)
}

// ---- terminal state -----------------------------------------------------------------------------

#[derive(Debug, Clone, serde::Serialize)]
struct SimTx {
    kind: &'static str,
    amount: u64,
    trace: u32,
    receipt_no: u32,
    time: String,
    date: String,
    result_code: u8,
    reversed: bool,
    /// For a reversal: the receipt number of the purchase it reverses.
    #[serde(skip_serializing_if = "Option::is_none")]
    reverses: Option<u32>,
}

enum Item {
    Send { delay_ms: u64, apdu: Vec<u8>, app_ack: bool },
    Record(SimTx),
    MarkReversed(u32),
    CloseBatch,
    Drop { delay_ms: u64 },
}

/// The simulated terminal.
pub struct ZvtSim {
    opts: SimOptions,
    rx: Vec<u8>,
    queue: VecDeque<Item>,
    /// Our last frame (correct version) and whether it needs the ECR's `80 00 00` after the ACK.
    awaiting_ack: Option<(Vec<u8>, bool)>,
    awaiting_app_ack: bool,
    decline: bool,
    timeout: bool,
    drop_mid_purchase: bool,
    nak_once: bool,
    registered: bool,
    trace: u32,
    receipt: u32,
    last: Option<SimTx>,
    batch: Vec<SimTx>,
    commands: BTreeMap<&'static str, u32>,
    bad_frames: u32,
    naks_received: u32,
    /// Config byte of the last registration (0x0E until then: receipts and intermediate
    /// status to the ECR, as our driver registers).
    config: u8,
    refused: u32,
    last_refusal: Option<String>,
    ignored: u32,
    /// What happened at the terminal since the host last took it.
    ledger: Vec<Event>,
}

impl ZvtSim {
    /// A terminal with no transactions yet.
    pub fn new(opts: SimOptions) -> Self {
        Self {
            opts,
            rx: Vec::new(),
            queue: VecDeque::new(),
            awaiting_ack: None,
            awaiting_app_ack: false,
            decline: false,
            timeout: false,
            drop_mid_purchase: false,
            nak_once: false,
            registered: false,
            trace: 0,
            receipt: 0,
            last: None,
            batch: Vec::new(),
            commands: BTreeMap::new(),
            bad_frames: 0,
            naks_received: 0,
            config: 0x0E,
            refused: 0,
            last_refusal: None,
            ignored: 0,
            ledger: Vec::new(),
        }
    }

    fn busy(&self) -> bool {
        !self.queue.is_empty() || self.awaiting_ack.is_some() || self.awaiting_app_ack
    }

    fn send(&mut self, delay_ms: u64, class: u8, instr: u8, data: &[u8]) {
        self.queue.push_back(Item::Send {
            delay_ms,
            apdu: apdu(class, instr, data),
            app_ack: class != 0x80 && class != 0x84,
        });
    }

    fn ack_cmd(&mut self) {
        self.send(0, 0x80, 0x00, &[]);
    }

    fn next_tx(&mut self, kind: &'static str, amount: u64, result_code: u8) -> SimTx {
        self.trace = self.trace % 999_999 + 1;
        if result_code == 0 {
            self.receipt = self.receipt % 9999 + 1;
        }
        let now = jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC);
        SimTx {
            kind,
            amount,
            trace: self.trace,
            receipt_no: if result_code == 0 { self.receipt } else { 0 },
            time: format!("{:02}{:02}{:02}", now.hour(), now.minute(), now.second()),
            date: format!("{:02}{:02}", now.month(), now.day()),
            result_code,
            reversed: false,
            reverses: None,
        }
    }

    fn status_info(&self, tx: &SimTx) -> Vec<u8> {
        let mut d = vec![0x27, tx.result_code, 0x04];
        d.extend(bcd(tx.amount, 6));
        d.push(0x0B);
        d.extend(bcd(u64::from(tx.trace), 3));
        d.push(0x0C);
        d.extend(bcd(tx.time.parse().unwrap_or(0), 3));
        d.push(0x0D);
        d.extend(bcd(tx.date.parse().unwrap_or(0), 2));
        if tx.result_code == 0 {
            d.push(0x22);
            d.extend(llvar(&PAN_BMP, 2));
            d.push(0x87);
            d.extend(bcd(u64::from(tx.receipt_no), 2));
            d.push(0x29);
            d.extend(bcd(u64::from(self.opts.terminal_id), 4));
            d.push(0x3B);
            d.extend_from_slice(b"S1M0K7\0\0");
            d.extend_from_slice(&[0x8A, 10]);
            d.push(0x8B);
            d.extend(llvar(b"Visa", 2));
            // A BMP the ECR does not use: must be skipped by its length.
            d.push(0x2A);
            d.extend_from_slice(b"MTU-SIM-VU-0001");
        }
        d.extend_from_slice(&[0x49]);
        d.extend(bcd(u64::from(self.opts.currency), 2));
        d
    }

    fn receipt(&mut self, tx: &SimTx) {
        let lines = [
            "MTU SIMULATED TERMINAL".to_string(),
            tx.kind.to_uppercase(),
            format!("{} {}.{:02}", self.currency_name(), tx.amount / 100, tx.amount % 100),
            format!("RECEIPT {:04}  TRACE {:06}", tx.receipt_no, tx.trace),
            "APPROVED".to_string(),
        ];
        for (i, l) in lines.iter().enumerate() {
            let mut d = vec![if i + 1 == lines.len() { 0x80 } else { 0x00 }];
            d.extend_from_slice(l.as_bytes());
            self.send(0, 0x06, 0xD1, &d);
        }
    }

    fn count(&mut self, what: &'static str) {
        *self.commands.entry(what).or_default() += 1;
    }

    fn currency_name(&self) -> String {
        if self.opts.currency == EGP { "EGP".into() } else { format!("CUR{:03}", self.opts.currency) }
    }

    /// Intermediate status `04 FF`, only when the ECR asked for it (config byte bit 0x08).
    fn intermediate(&mut self, delay_ms: u64, status: u8) {
        if self.config & 0x08 != 0 {
            self.send(delay_ms, 0x04, 0xFF, &[status]);
        }
    }

    fn payment(&mut self, kind: &'static str, amount: u64, currency: Option<u16>) {
        self.ack_cmd();
        if currency.is_some_and(|c| c != self.opts.currency) {
            tracing::warn!(
                ?currency,
                "payment simulator: {kind} in a currency the terminal is not set up for"
            );
            self.send(0, 0x06, 0x1E, &[0x6F]);
            return;
        }
        self.intermediate(300, 0x0A); // Insert card
        self.intermediate(1500, 0x01); // Please watch PIN pad
        self.intermediate(2500, 0x04); // Waiting for the host
        if self.decline {
            let tx = self.next_tx(kind, amount, 0x05);
            let si = self.status_info(&tx);
            self.queue.push_back(Item::Record(tx));
            self.send(1500, 0x04, 0x0F, &si);
            self.send(0, 0x06, 0x1E, &[0x05]);
            return;
        }
        let tx = self.next_tx(kind, amount, 0);
        if self.drop_mid_purchase && kind == "purchase" {
            self.drop_mid_purchase = false;
            self.queue.push_back(Item::Record(tx));
            self.queue.push_back(Item::Drop { delay_ms: 1500 });
            return;
        }
        let si = self.status_info(&tx);
        self.queue.push_back(Item::Record(tx.clone()));
        self.send(1500, 0x04, 0x0F, &si);
        if self.config & 0x02 != 0 {
            self.receipt(&tx);
        }
        self.send(0, 0x06, 0x0F, &[]);
    }

    /// Answers `84 <code> 00`, logs the reason and keeps it for `status`.
    fn refuse(&mut self, apdu: &[u8], r: Refusal) {
        self.refused += 1;
        let head = hex::encode_upper(&apdu[..apdu.len().min(3)]);
        tracing::warn!(code = r.code, apdu = %head, "payment simulator refused a command: {}", r.what);
        self.last_refusal = Some(format!("{head}: {:02X} {}", r.code, r.what));
        self.send(0, 0x84, r.code, &[]);
    }

    fn command(&mut self, a: &[u8]) {
        let cmd = match parse_command(a) {
            Ok(c) => c,
            Err(r) => return self.refuse(a, r),
        };
        let expected: u32 = self.opts.password.parse().unwrap_or(u32::MAX);
        let given = match &cmd {
            EcrCommand::Registration { password, .. }
            | EcrCommand::Reversal { password, .. }
            | EcrCommand::Refund { password, .. }
            | EcrCommand::EndOfDay { password }
            | EcrCommand::RepeatReceipt { password } => Some(*password),
            EcrCommand::StatusEnquiry { password, .. } => *password,
            EcrCommand::Authorisation { .. } | EcrCommand::Abort => None,
        };
        if given.is_some_and(|p| p != expected) {
            self.count("refused_password");
            return self.refuse(a, Refusal { code: ERR_NOT_POSSIBLE, what: "wrong password".into() });
        }
        match cmd {
            EcrCommand::Registration { config, .. } => {
                self.count("registration");
                self.registered = true;
                self.config = config;
                self.ack_cmd();
                let mut d = vec![0x19, 0x00, 0x29];
                d.extend(bcd(u64::from(self.opts.terminal_id), 4));
                d.push(0x49);
                d.extend(bcd(u64::from(self.opts.currency), 2));
                self.send(100, 0x06, 0x0F, &d);
            }
            EcrCommand::Authorisation { amount, currency, .. } => {
                self.count("purchase");
                match amount {
                    Some(amt) => self.payment("purchase", amt, currency),
                    None => self.refuse(
                        a,
                        Refusal {
                            code: ERR_NOT_POSSIBLE,
                            what: "amount entry at the terminal is not simulated".into(),
                        },
                    ),
                }
            }
            EcrCommand::Refund { amount, currency, .. } => {
                self.count("refund");
                match amount {
                    Some(amt) => self.payment("refund", amt, currency),
                    None => self.refuse(
                        a,
                        Refusal {
                            code: ERR_NOT_POSSIBLE,
                            what: "amount entry at the terminal is not simulated".into(),
                        },
                    ),
                }
            }
            EcrCommand::Reversal { receipt_no: None, .. } => self.refuse(
                a,
                Refusal {
                    code: ERR_NOT_POSSIBLE,
                    what: "reversal without a receipt number is not simulated".into(),
                },
            ),
            EcrCommand::Reversal { receipt_no, .. } => {
                self.count("reversal");
                self.ack_cmd();
                let found = self
                    .batch
                    .iter()
                    .find(|t| Some(t.receipt_no) == receipt_no && t.kind == "purchase")
                    .cloned();
                match found {
                    None => self.send(500, 0x06, 0x1E, &[0xB5]),
                    Some(t) if t.reversed => self.send(500, 0x06, 0x1E, &[0xB4]),
                    Some(orig) => {
                        let mut tx = self.next_tx("reversal", orig.amount, 0);
                        tx.reverses = Some(orig.receipt_no);
                        let si = self.status_info(&tx);
                        self.queue.push_back(Item::MarkReversed(orig.receipt_no));
                        self.queue.push_back(Item::Record(tx.clone()));
                        self.send(1500, 0x04, 0x0F, &si);
                        if self.config & 0x02 != 0 {
                            self.receipt(&tx);
                        }
                        self.send(0, 0x06, 0x0F, &[]);
                    }
                }
            }
            EcrCommand::EndOfDay { .. } => self.end_of_day(),
            EcrCommand::StatusEnquiry { .. } => {
                self.count("status_enquiry");
                self.ack_cmd();
                let mut d = llvar(b"MTU-SIM ZVT 1.0", 3);
                d.push(0x00);
                self.send(100, 0x06, 0x0F, &d);
            }
            EcrCommand::RepeatReceipt { .. } => {
                self.count("repeat_receipt");
                self.ack_cmd();
                match self.last.clone() {
                    Some(tx) => {
                        let si = self.status_info(&tx);
                        self.send(200, 0x04, 0x0F, &si);
                        if tx.result_code == 0 && self.config & 0x02 != 0 {
                            self.receipt(&tx);
                        }
                        self.send(0, 0x06, 0x0F, &[]);
                    }
                    None => self.send(200, 0x06, 0x1E, &[0x83]),
                }
            }
            EcrCommand::Abort => {
                self.count("abort");
                self.ack_cmd();
            }
        }
    }

    /// Live purchases, net total (purchases minus refunds), first and last receipt of the batch.
    fn batch_totals(&self) -> (u64, u64, u32, u32) {
        let sales: Vec<&SimTx> = self.batch.iter().filter(|t| t.kind == "purchase" && !t.reversed).collect();
        let refunds: u64 = self.batch.iter().filter(|t| t.kind == "refund").map(|t| t.amount).sum();
        let gross: u64 = sales.iter().map(|t| t.amount).sum();
        let from = self.batch.first().map_or(0, |t| t.receipt_no);
        let to = self.batch.last().map_or(0, |t| t.receipt_no);
        (sales.len() as u64, gross.saturating_sub(refunds), from, to)
    }

    fn end_of_day(&mut self) {
        self.count("end_of_day");
        self.ack_cmd();
        self.intermediate(500, 0x17);
        let (count, total, from, to) = self.batch_totals();
        self.trace = self.trace % 999_999 + 1;
        let mut d = vec![0x27, 0x00, 0x04];
        d.extend(bcd(total, 6));
        d.push(0x0B);
        d.extend(bcd(u64::from(self.trace), 3));
        let mut totals = bcd(u64::from(from), 2);
        totals.extend(bcd(u64::from(to), 2));
        for scheme in 0..7 {
            // All simulated cards are Visa (fifth scheme slot).
            let (n, amt) = if scheme == 4 { (count.min(255) as u8, total) } else { (0, 0) };
            totals.push(n);
            totals.extend(bcd(amt, 6));
        }
        d.push(0x60);
        d.extend(llvar(&totals, 3));
        self.send(2000, 0x04, 0x0F, &d);
        if self.config & 0x04 != 0 {
            for l in ["MTU SIMULATED TERMINAL", "END OF DAY", "OK"] {
                let mut d = vec![0x00];
                d.extend_from_slice(l.as_bytes());
                self.send(0, 0x06, 0xD1, &d);
            }
        }
        self.queue.push_back(Item::CloseBatch);
        self.send(0, 0x06, 0x0F, &[]);
    }

    fn on_frame(&mut self, a: Vec<u8>, out: &mut Vec<SimOut>) {
        out.push(SimOut::Send(vec![ACK]));
        // The ECR's answer to our last message: 80 00 00, or 84 xx 00 (e.g. 84 9C 00, please wait).
        if matches!(a.first(), Some(0x80 | 0x84)) {
            if a.len() != 3 || a[2] != 0 {
                tracing::warn!(apdu = %hex::encode_upper(&a), "payment simulator: malformed answer from the ECR");
            }
            if !self.awaiting_app_ack {
                tracing::debug!(apdu = %hex::encode_upper(&a), "payment simulator: answer from the ECR to nothing");
            }
            self.awaiting_app_ack = false;
            return;
        }
        // Abort during a transaction: drop what is queued, confirm and abort with 6C.
        if a.starts_with(&[0x06, 0xB0]) && self.busy() {
            if let Err(r) = parse_command(&a) {
                return self.refuse(&a, r);
            }
            self.count("abort");
            // A payment not yet booked is called off: no money moves.
            for item in &self.queue {
                if let Item::Record(tx) = item {
                    self.ledger.push(Event::Aborted { kind: tx.kind.into(), amount: tx.amount });
                }
            }
            self.queue.clear();
            self.awaiting_app_ack = false;
            self.ack_cmd();
            self.send(0, 0x06, 0x1E, &[0x6C]);
            return;
        }
        if self.busy() {
            self.ignored += 1;
            tracing::warn!(apdu = %hex::encode_upper(&a[..a.len().min(3)]), "payment simulator: command during a transaction ignored");
            return;
        }
        self.command(&a);
    }

    fn pump(&mut self, out: &mut Vec<SimOut>) {
        while self.awaiting_ack.is_none() && !self.awaiting_app_ack {
            let Some(item) = self.queue.pop_front() else { return };
            match item {
                Item::Send { delay_ms, apdu, app_ack } => {
                    self.wait(delay_ms, out);
                    let f = frame(&apdu);
                    if self.nak_once && app_ack {
                        self.nak_once = false;
                        let mut bad = f.clone();
                        let n = bad.len();
                        bad[n - 2] ^= 0x5A;
                        out.push(SimOut::Send(bad));
                    } else {
                        out.push(SimOut::Send(f.clone()));
                    }
                    self.awaiting_ack = Some((f, app_ack));
                }
                Item::Record(_) | Item::MarkReversed(_) | Item::CloseBatch => self.book(item),
                Item::Drop { delay_ms } => {
                    self.wait(delay_ms, out);
                    out.push(SimOut::DropLink);
                    self.queue.clear();
                    self.rx.clear();
                    return;
                }
            }
        }
    }

    /// Carries out a booking step of the queue (what the terminal records, not what it sends).
    fn book(&mut self, item: Item) {
        match item {
            Item::Record(tx) => {
                self.ledger.push(ledger_event(&tx));
                if tx.result_code == 0 {
                    self.batch.push(tx.clone());
                }
                self.last = Some(tx);
            }
            Item::MarkReversed(r) => {
                if let Some(t) = self.batch.iter_mut().find(|t| t.receipt_no == r) {
                    t.reversed = true;
                }
            }
            Item::CloseBatch => {
                let (count, total, first_receipt, last_receipt) = self.batch_totals();
                self.ledger.push(Event::EndOfDay { total, count, first_receipt, last_receipt });
                self.batch.clear();
            }
            Item::Send { .. } | Item::Drop { .. } => {}
        }
    }

    fn wait(&self, ms: u64, out: &mut Vec<SimOut>) {
        let scaled = (ms as f64 * self.opts.timing_scale).round();
        if scaled >= 1.0 {
            out.push(SimOut::Wait(Duration::from_millis(scaled as u64)));
        }
    }
}

/// The ledger's view of a transaction the terminal booked (or that the issuer declined).
fn ledger_event(tx: &SimTx) -> Event {
    if tx.result_code != 0 {
        return Event::Declined {
            kind: tx.kind.into(),
            amount: tx.amount,
            result_code: tx.result_code,
            trace: tx.trace,
        };
    }
    match (tx.kind, tx.reverses) {
        ("reversal", Some(reversed_receipt_no)) => Event::Reversal {
            reversed_receipt_no,
            amount: tx.amount,
            receipt_no: tx.receipt_no,
            trace: tx.trace,
        },
        ("refund", _) => Event::Refund { amount: tx.amount, receipt_no: tx.receipt_no, trace: tx.trace },
        _ => Event::Charge {
            amount: tx.amount,
            receipt_no: tx.receipt_no,
            trace: tx.trace,
            masked_pan: Some(masked_pan()),
        },
    }
}

/// The simulated card number as a receipt prints it (`411111******1010`).
fn masked_pan() -> String {
    hex::encode_upper(PAN_BMP).replace('E', "*")
}

impl SimDevice for ZvtSim {
    fn name(&self) -> &'static str {
        "payment"
    }

    fn receive(&mut self, bytes: &[u8], _now: Instant) -> Vec<SimOut> {
        let mut out = Vec::new();
        if self.timeout {
            return out;
        }
        self.rx.extend_from_slice(bytes);
        for item in read_line(&mut self.rx) {
            match item {
                Rx::Ack => {
                    if let Some((_, app_ack)) = self.awaiting_ack.take() {
                        self.awaiting_app_ack = app_ack;
                    }
                }
                Rx::Nak => {
                    self.naks_received += 1;
                    if let Some((f, _)) = &self.awaiting_ack {
                        out.push(SimOut::Send(f.clone()));
                    }
                }
                Rx::Bad => {
                    self.bad_frames += 1;
                    out.push(SimOut::Send(vec![NAK]));
                }
                Rx::Frame(a) => self.on_frame(a, &mut out),
            }
            self.pump(&mut out);
        }
        self.pump(&mut out);
        out
    }

    fn apply_fault(&mut self, fault: &str) -> Result<(), String> {
        match fault {
            "decline" => self.decline = true,
            "timeout" => self.timeout = true,
            "drop_mid_purchase" => self.drop_mid_purchase = true,
            "nak_once" => self.nak_once = true,
            other => return Err(format!("payment: unknown fault {other:?} (known: {})", FAULTS.join(", "))),
        }
        Ok(())
    }

    fn take_ledger(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.ledger)
    }

    /// The ECR is gone: the transaction in progress runs to its end at the terminal (the card
    /// is charged, or declined, as it would have been) and what the terminal would have sent is
    /// given up, as after its ACK timeouts.
    fn host_closed(&mut self) {
        self.rx.clear();
        self.awaiting_ack = None;
        self.awaiting_app_ack = false;
        while let Some(item) = self.queue.pop_front() {
            self.book(item);
        }
    }

    fn clear_faults(&mut self) {
        self.decline = false;
        self.timeout = false;
        self.drop_mid_purchase = false;
        self.nak_once = false;
    }

    fn status(&self) -> serde_json::Value {
        let live: Vec<&SimTx> = self.batch.iter().filter(|t| t.kind == "purchase" && !t.reversed).collect();
        let faults: Vec<&str> = [
            ("decline", self.decline),
            ("timeout", self.timeout),
            ("drop_mid_purchase", self.drop_mid_purchase),
            ("nak_once", self.nak_once),
        ]
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
        serde_json::json!({
            "registered": self.registered,
            "faults": faults,
            "last_transaction": self.last,
            "totals": { "count": live.len(), "amount": live.iter().map(|t| t.amount).sum::<u64>() },
            "commands": self.commands,
            "bad_frames": self.bad_frames,
            "naks_received": self.naks_received,
            "refused": self.refused,
            "last_refusal": self.last_refusal,
            "ignored_while_busy": self.ignored,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim() -> ZvtSim {
        ZvtSim::new(SimOptions { timing_scale: 0.0, ..Default::default() })
    }

    fn sends(out: &[SimOut]) -> Vec<Vec<u8>> {
        out.iter().filter_map(|o| if let SimOut::Send(b) = o { Some(b.clone()) } else { None }).collect()
    }

    /// `80 00 00` framed, CRC computed outside this code base (Python, bitwise KERMIT): F5 1F.
    const ACK_FRAME: [u8; 9] = [0x10, 0x02, 0x80, 0x00, 0x00, 0x10, 0x03, 0xF5, 0x1F];
    /// devices.md verified vector: purchase of 1.90.
    const PURCHASE_190: [u8; 16] =
        [0x10, 0x02, 0x06, 0x01, 0x07, 0x04, 0x00, 0x00, 0x00, 0x00, 0x01, 0x90, 0x10, 0x03, 0x76, 0x57];

    #[test]
    fn crc_matches_verified_vector() {
        assert_eq!(crc_kermit_bitwise(&[0x06, 0x01, 0x07, 0x04, 0, 0, 0, 0, 0x01, 0x90, 0x03]), 0x5776);
        assert_eq!(frame(&[0x80, 0, 0]), ACK_FRAME);
    }

    #[test]
    fn purchase_vector_is_acked_and_answered() {
        let mut s = sim();
        let t = Instant::now();
        let out = s.receive(&PURCHASE_190, t);
        assert_eq!(sends(&out), vec![vec![ACK], ACK_FRAME.to_vec()]);
        // Our ACK → first intermediate status "insert card" (04 FF 01 0A).
        let out = s.receive(&[ACK], t);
        let f = sends(&out);
        assert_eq!(f[0][2..6], [0x04, 0xFF, 0x01, 0x0A]);
        assert_eq!(s.status()["commands"]["purchase"], 1);
    }

    #[test]
    fn full_purchase_by_hand_then_repeat_receipt() {
        let mut s = sim();
        let t = Instant::now();
        s.receive(&PURCHASE_190, t);
        let mut out = s.receive(&[ACK], t);
        let mut seen = Vec::new();
        for _ in 0..20 {
            let f = sends(&out);
            let Some(last) = f.last() else { break };
            seen.push(last[2..4].to_vec());
            if last[2..4] == [0x06, 0x0F] {
                break;
            }
            // ACK the frame, then answer 80 00 00 and ACK nothing else.
            s.receive(&[ACK], t);
            out = s.receive(&ACK_FRAME, t);
            out.extend(s.receive(&[ACK], t));
        }
        assert!(seen.contains(&vec![0x04, 0x0F]));
        assert_eq!(seen.last().unwrap(), &vec![0x06, 0x0F]);
        assert_eq!(s.status()["last_transaction"]["amount"], 190);
        assert_eq!(s.status()["totals"]["amount"], 190);
        assert_eq!(
            s.take_ledger(),
            vec![Event::Charge {
                amount: 190,
                receipt_no: 1,
                trace: 1,
                masked_pan: Some("411111******1010".into())
            }]
        );
        assert!(s.take_ledger().is_empty(), "taken once");
    }

    #[test]
    fn abort_before_booking_is_an_aborted_payment_in_the_ledger() {
        let mut s = sim();
        let t = Instant::now();
        s.receive(&PURCHASE_190, t);
        s.receive(&[ACK], t);
        // Abort (06 B0 00) while the terminal waits for the card.
        s.receive(&frame(&[0x06, 0xB0, 0x00]), t);
        assert_eq!(s.take_ledger(), vec![Event::Aborted { kind: "purchase".into(), amount: 190 }]);
        assert!(s.status()["last_transaction"].is_null(), "nothing booked");
    }

    #[test]
    fn extended_length_and_tlv_forms() {
        // LEN = FF, then a 2-byte little-endian length: the same purchase as the verified vector.
        let a = [0x06, 0x01, 0xFF, 0x07, 0x00, 0x04, 0, 0, 0, 0, 0x01, 0x90];
        assert_eq!(
            parse_command(&a),
            Ok(EcrCommand::Authorisation { amount: Some(190), currency: None, payment_type: None })
        );
        let mut short = a;
        short[3] = 0x08;
        assert_eq!(parse_command(&short).unwrap_err().code, ERR_PROTOCOL);
        // TLV with a two-byte tag and 81 length form; a constructed tag whose content is cut.
        let ok = [0x06, 0x01, 0x0D, 0x04, 0, 0, 0, 0, 0x01, 0x90, 0x06, 0x81, 0x03, 0x1F, 0x10, 0x00];
        assert!(parse_command(&ok).is_ok(), "{:?}", parse_command(&ok));
        let cut = [0x06, 0x01, 0x0C, 0x04, 0, 0, 0, 0, 0x01, 0x90, 0x06, 0x03, 0xE9, 0x02, 0x1F];
        let e = parse_command(&cut).unwrap_err();
        assert!(e.what.contains("TLV"), "{e}");
        // LLVAR prefix bytes must be Fx.
        let bad_ll = [0x06, 0x01, 0x0B, 0x04, 0, 0, 0, 0, 0x01, 0x90, 0x22, 0xF0, 0x31, 0x12];
        assert!(parse_command(&bad_ll).unwrap_err().what.contains("Fx"));
    }

    #[test]
    fn bad_crc_from_ecr_is_naked() {
        let mut s = sim();
        let mut bad = PURCHASE_190;
        bad[15] ^= 1;
        let out = s.receive(&bad, Instant::now());
        assert_eq!(sends(&out), vec![vec![NAK]]);
        assert_eq!(s.status()["commands"]["purchase"], serde_json::Value::Null);
    }

    #[test]
    fn timeout_fault_never_answers_and_unknown_fault_lists_names() {
        let mut s = sim();
        s.apply_fault("timeout").unwrap();
        assert!(s.receive(&PURCHASE_190, Instant::now()).is_empty());
        let e = s.apply_fault("paper_jam").unwrap_err();
        assert!(e.contains("nak_once"));
    }

    #[test]
    fn options_errors_name_the_key() {
        let t: toml::Table = "timing_scale = -1".parse().unwrap();
        assert!(simulator(&t).err().unwrap().contains("timing_scale"));
        let t: toml::Table = "speed = 1".parse().unwrap();
        assert!(simulator(&t).err().unwrap().contains("speed"));
        let t: toml::Table = "timing_scale = 0\npassword = \"123456\"".parse().unwrap();
        assert!(simulator(&t).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..80), 0..12)) {
            let mut s = sim();
            for c in chunks {
                let _ = s.receive(&c, Instant::now());
            }
            let _ = s.status();
        }
    }
}
