//! Simulated ZVT payment terminal (the device side), with its own frame reader and message
//! builder so that a bug in the driver's codec cannot hide behind a shared implementation.
//!
//! Serves registration, purchase, reversal, refund, end-of-day, status enquiry, repeat receipt
//! and abort with realistic pauses (scaled by `timing_scale`; 0 in tests). Faults: `decline`,
//! `timeout` (never answers), `drop_mid_purchase` (one-shot: the link drops after the card is read,
//! the approval is kept as the last transaction), `nak_once` (one-shot: one frame with a bad CRC).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::{SimDevice, SimOut};

const DLE: u8 = 0x10;
const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const ACK: u8 = 0x06;
const NAK: u8 = 0x15;
const EGP: u16 = 818;

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
}

impl std::fmt::Debug for SimOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimOptions")
            .field("timing_scale", &self.timing_scale)
            .field("terminal_id", &self.terminal_id)
            .finish_non_exhaustive()
    }
}

impl Default for SimOptions {
    fn default() -> Self {
        Self { timing_scale: 1.0, password: "000000".into(), terminal_id: 52_523_535 }
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
                (other, _) => {
                    return Err(format!(
                        "payment simulator: unknown option {other:?} (known: timing_scale, password, terminal_id)"
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
            d.extend(llvar(&[0x41, 0x11, 0x11, 0xEE, 0xEE, 0xEE, 0x10, 0x10], 2));
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
        d.extend(bcd(u64::from(EGP), 2));
        d
    }

    fn receipt(&mut self, tx: &SimTx) {
        let lines = [
            "MTU SIMULATED TERMINAL".to_string(),
            tx.kind.to_uppercase(),
            format!("EGP {}.{:02}", tx.amount / 100, tx.amount % 100),
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

    fn payment(&mut self, kind: &'static str, amount: u64, currency: Option<u64>) {
        let ms = |x: u64| x;
        self.ack_cmd();
        if currency.is_some_and(|c| c != u64::from(EGP)) {
            self.send(0, 0x06, 0x1E, &[0x6F]);
            return;
        }
        self.send(ms(300), 0x04, 0xFF, &[0x0A]); // Insert card
        self.send(ms(1500), 0x04, 0xFF, &[0x01]); // Please watch PIN pad
        self.send(ms(2500), 0x04, 0xFF, &[0x04]); // Waiting for the host
        if self.decline {
            let tx = self.next_tx(kind, amount, 0x05);
            let si = self.status_info(&tx);
            self.queue.push_back(Item::Record(tx));
            self.send(ms(1500), 0x04, 0x0F, &si);
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
        self.send(ms(1500), 0x04, 0x0F, &si);
        self.receipt(&tx);
        self.send(0, 0x06, 0x0F, &[]);
    }

    fn command(&mut self, a: &[u8]) {
        let (class, instr) = (a[0], a[1]);
        let data: &[u8] =
            if a.get(2) == Some(&0xFF) { a.get(5..).unwrap_or(&[]) } else { a.get(3..).unwrap_or(&[]) };
        let pw_ok = |d: &[u8]| {
            d.get(..3).and_then(unbcd).map(|p| format!("{p:06}")) == Some(self.opts.password.clone())
        };
        let needs_pw = matches!((class, instr), (0x06, 0x00 | 0x30 | 0x31 | 0x50 | 0x20) | (0x05, 0x01));
        if needs_pw && !pw_ok(data) {
            self.count("refused_password");
            self.send(0, 0x84, 0x83, &[]);
            return;
        }
        match (class, instr) {
            (0x06, 0x00) => {
                self.count("registration");
                self.registered = true;
                self.ack_cmd();
                let mut d = vec![0x19, 0x00, 0x29];
                d.extend(bcd(u64::from(self.opts.terminal_id), 4));
                d.push(0x49);
                d.extend(bcd(u64::from(EGP), 2));
                self.send(100, 0x06, 0x0F, &d);
            }
            (0x06, 0x01) => {
                self.count("purchase");
                // BMP 04 amount, optional BMP 49 currency.
                let amount = match data {
                    [0x04, rest @ ..] => rest.get(..6).and_then(unbcd),
                    _ => None,
                };
                let currency = match data.get(7..) {
                    Some([0x49, a, b, ..]) => unbcd(&[*a, *b]),
                    _ => None,
                };
                match amount {
                    Some(amt) => self.payment("purchase", amt, currency),
                    None => self.send(0, 0x84, 0x9A, &[]),
                }
            }
            (0x06, 0x31) => {
                self.count("refund");
                let amount = match data.get(3..).unwrap_or(&[]) {
                    [0x04, rest @ ..] => rest.get(..6).and_then(unbcd),
                    _ => None,
                };
                match amount {
                    Some(amt) => self.payment("refund", amt, None),
                    None => self.send(0, 0x84, 0x9A, &[]),
                }
            }
            (0x06, 0x30) => {
                self.count("reversal");
                let rno = match data.get(3..).unwrap_or(&[]) {
                    [0x87, a, b, ..] => unbcd(&[*a, *b]).map(|x| x as u32),
                    _ => None,
                };
                self.ack_cmd();
                let found =
                    self.batch.iter().find(|t| Some(t.receipt_no) == rno && t.kind == "purchase").cloned();
                match found {
                    None => self.send(500, 0x06, 0x1E, &[0xB5]),
                    Some(t) if t.reversed => self.send(500, 0x06, 0x1E, &[0xB4]),
                    Some(orig) => {
                        let tx = self.next_tx("reversal", orig.amount, 0);
                        let si = self.status_info(&tx);
                        self.queue.push_back(Item::MarkReversed(orig.receipt_no));
                        self.queue.push_back(Item::Record(tx.clone()));
                        self.send(1500, 0x04, 0x0F, &si);
                        self.receipt(&tx);
                        self.send(0, 0x06, 0x0F, &[]);
                    }
                }
            }
            (0x06, 0x50) => {
                self.count("end_of_day");
                self.ack_cmd();
                self.send(500, 0x04, 0xFF, &[0x17]);
                let sales: Vec<&SimTx> =
                    self.batch.iter().filter(|t| t.kind == "purchase" && !t.reversed).collect();
                let refunds: u64 = self.batch.iter().filter(|t| t.kind == "refund").map(|t| t.amount).sum();
                let count = sales.len() as u64;
                let gross: u64 = sales.iter().map(|t| t.amount).sum();
                let total = gross.saturating_sub(refunds);
                let from = self.batch.first().map_or(0, |t| t.receipt_no);
                let to = self.batch.last().map_or(0, |t| t.receipt_no);
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
                for l in ["MTU SIMULATED TERMINAL", "END OF DAY", "OK"] {
                    let mut d = vec![0x00];
                    d.extend_from_slice(l.as_bytes());
                    self.send(0, 0x06, 0xD1, &d);
                }
                self.queue.push_back(Item::CloseBatch);
                self.send(0, 0x06, 0x0F, &[]);
            }
            (0x05, 0x01) => {
                self.count("status_enquiry");
                self.ack_cmd();
                let mut d = llvar(b"MTU-SIM ZVT 1.0", 3);
                d.push(0x00);
                self.send(100, 0x06, 0x0F, &d);
            }
            (0x06, 0x20) => {
                self.count("repeat_receipt");
                self.ack_cmd();
                match self.last.clone() {
                    Some(tx) => {
                        let si = self.status_info(&tx);
                        self.send(200, 0x04, 0x0F, &si);
                        if tx.result_code == 0 {
                            self.receipt(&tx);
                        }
                        self.send(0, 0x06, 0x0F, &[]);
                    }
                    None => self.send(200, 0x06, 0x1E, &[0x83]),
                }
            }
            (0x06, 0xB0) => {
                self.count("abort");
                self.ack_cmd();
            }
            _ => {
                self.count("unsupported");
                self.send(0, 0x84, 0x83, &[]);
            }
        }
    }

    fn on_frame(&mut self, a: Vec<u8>, out: &mut Vec<SimOut>) {
        out.push(SimOut::Send(vec![ACK]));
        if a.len() < 3 {
            return;
        }
        // The ECR's 80 00 00 to our last message.
        if a[0] == 0x80 && a[1] == 0x00 {
            if self.awaiting_app_ack {
                self.awaiting_app_ack = false;
            }
            return;
        }
        // Abort during a transaction: drop what is queued, confirm and abort with 6C.
        if a[0] == 0x06 && a[1] == 0xB0 && self.busy() {
            self.count("abort");
            self.queue.clear();
            self.awaiting_app_ack = false;
            self.ack_cmd();
            self.send(0, 0x06, 0x1E, &[0x6C]);
            return;
        }
        if self.busy() {
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
                Item::Record(tx) => {
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
                Item::CloseBatch => self.batch.clear(),
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

    fn wait(&self, ms: u64, out: &mut Vec<SimOut>) {
        let scaled = (ms as f64 * self.opts.timing_scale).round();
        if scaled >= 1.0 {
            out.push(SimOut::Wait(Duration::from_millis(scaled as u64)));
        }
    }
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
