//! The payment simulator against ZVT command sequences from outside our code base (captures from
//! a real terminal session published with EVerest's zvt crate, the APDUs of the Portalum.Zvt
//! client, the verified purchase vector), listed with their sources in `tests/data/zvt/vectors.toml`;
//! and the never-success property: malformed or unknown input gets `84 xx 00`, a NAK or nothing,
//! never `80 00 00`, a status or a completion.
//!
//! The harness frames with the `crc` crate's CRC-16/KERMIT, not with the simulator's or the
//! driver's code.

use std::time::Instant;

use mtu::sim::payment::{SimOptions, ZvtSim, parse_command};
use mtu::sim::{SimDevice, SimOut};
use proptest::prelude::*;

const DLE: u8 = 0x10;
const ACK: u8 = 0x06;
const NAK: u8 = 0x15;
const KERMIT: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_KERMIT);

fn frame(apdu: &[u8]) -> Vec<u8> {
    let mut f = vec![DLE, 0x02];
    for &b in apdu {
        if b == DLE {
            f.push(DLE);
        }
        f.push(b);
    }
    f.extend_from_slice(&[DLE, 0x03]);
    let mut d = KERMIT.digest();
    d.update(apdu);
    d.update(&[0x03]);
    f.extend_from_slice(&d.finalize().to_le_bytes());
    f
}

/// What the terminal put on the line for one input.
#[derive(Debug, Default)]
struct Line {
    acks: usize,
    naks: usize,
    apdus: Vec<Vec<u8>>,
}

fn unframe(f: &[u8]) -> Vec<u8> {
    assert!(f.starts_with(&[DLE, 0x02]), "not a frame: {f:02X?}");
    let mut apdu = Vec::new();
    let mut i = 2;
    loop {
        match (f[i], f.get(i + 1)) {
            (DLE, Some(&DLE)) => {
                apdu.push(DLE);
                i += 2;
            }
            (DLE, Some(&0x03)) => break,
            (b, _) => {
                apdu.push(b);
                i += 1;
            }
        }
    }
    let mut d = KERMIT.digest();
    d.update(&apdu);
    d.update(&[0x03]);
    assert_eq!(&f[i + 2..], &d.finalize().to_le_bytes(), "bad CRC from the terminal");
    apdu
}

fn sends(out: Vec<SimOut>) -> Vec<Vec<u8>> {
    out.into_iter().filter_map(|o| if let SimOut::Send(b) = o { Some(b) } else { None }).collect()
}

/// Sends `input` and plays a well-behaved ECR until the terminal falls silent.
fn exchange(sim: &mut ZvtSim, input: &[u8]) -> Line {
    let now = Instant::now();
    let mut line = Line::default();
    let mut pending = sends(sim.receive(input, now));
    for _ in 0..200 {
        if pending.is_empty() {
            return line;
        }
        let mut next = Vec::new();
        for s in pending {
            match s.as_slice() {
                [ACK] => line.acks += 1,
                [NAK] => line.naks += 1,
                f => {
                    let apdu = unframe(f);
                    next.extend(sends(sim.receive(&[ACK], now)));
                    if !matches!(apdu[0], 0x80 | 0x84) {
                        next.extend(sends(sim.receive(&frame(&[0x80, 0x00, 0x00]), now)));
                    }
                    line.apdus.push(apdu);
                }
            }
        }
        pending = next;
    }
    panic!("the terminal never fell silent");
}

fn sim(options: &toml::Table) -> ZvtSim {
    let mut t = options.clone();
    t.insert("timing_scale".into(), toml::Value::Integer(0));
    ZvtSim::new(SimOptions::from_table(&t).unwrap())
}

fn hex_bytes(s: &str) -> Vec<u8> {
    hex::decode(s.replace(' ', "")).unwrap()
}

fn ctrl(apdu: &[u8]) -> String {
    format!("{:02X} {:02X}", apdu[0], apdu[1])
}

/// Walks a terminal's bitmap sequence with the lengths of the Wireshark ZVT dissector's table
/// (plus BMP 60, LLLVAR individual totals), independently of the simulator's parser.
fn walk_bitmaps(d: &[u8]) -> Result<(), String> {
    let mut i = 0;
    while i < d.len() {
        let bmp = d[i];
        let var = |digits: usize| -> Result<(usize, usize), String> {
            let l = d.get(i + 1..i + 1 + digits).ok_or(format!("BMP {bmp:02X} length cut"))?;
            let n = l.iter().try_fold(0usize, |n, b| {
                if b >> 4 == 0xF && b & 0xF < 10 {
                    Ok(n * 10 + usize::from(b & 0xF))
                } else {
                    Err(format!("BMP {bmp:02X}: {b:02X}"))
                }
            })?;
            Ok((1 + digits, n))
        };
        let (head, len) = match bmp {
            0x01 | 0x02 | 0x03 | 0x05 | 0x19 | 0x27 | 0x8A => (1, 1),
            0x04 => (1, 6),
            0x0B | 0x0C => (1, 3),
            0x0D | 0x0E | 0x17 | 0x3A | 0x49 | 0x87 => (1, 2),
            0x29 => (1, 4),
            0x2A => (1, 15),
            0x3B => (1, 8),
            0x22 | 0x23 | 0x2D | 0x8B => var(2)?,
            0x24 | 0x3C | 0x60 => var(3)?,
            other => return Err(format!("BMP {other:02X} at {i} not in the table")),
        };
        i += head + len;
        if i > d.len() {
            return Err(format!("BMP {bmp:02X} runs past the end"));
        }
    }
    Ok(())
}

/// BMP 04 of a Status-Information `04 0F` (the simulator puts 27 xx first, then 04).
fn status_amount(apdu: &[u8]) -> Option<u64> {
    let d = &apdu[3..];
    let at = d.windows(1).position(|w| w[0] == 0x04)?;
    let digits = hex::encode(d.get(at + 1..at + 7)?);
    digits.parse().ok()
}

#[test]
fn vectors_from_outside_sources() {
    let text = std::fs::read_to_string("tests/data/zvt/vectors.toml").unwrap();
    let doc: toml::Table = text.parse().unwrap();
    let sessions = doc["session"].as_array().unwrap();
    let mut steps_run = 0;
    for session in sessions {
        let name = session["name"].as_str().unwrap();
        let mut s = sim(session["options"].as_table().unwrap());
        for step in session["step"].as_array().unwrap() {
            let source = step["source"].as_str().unwrap();
            let apdu = hex_bytes(step["apdu"].as_str().unwrap());
            let line = exchange(&mut s, &frame(&apdu));
            let ctrls: Vec<String> = line.apdus.iter().map(|a| ctrl(a)).collect();
            let why = format!("{name} / {source}: terminal sent {ctrls:?}, status {}", s.status());
            assert!(line.acks >= 1, "the frame was not acknowledged: {why}");
            assert_eq!(ctrls.first().map(String::as_str), step["first"].as_str(), "{why}");
            assert_eq!(ctrls.last().map(String::as_str), step["last"].as_str(), "{why}");
            for c in step.get("contains").and_then(|c| c.as_array()).into_iter().flatten() {
                assert!(ctrls.iter().any(|x| x == c.as_str().unwrap()), "{c} missing: {why}");
            }
            for c in step.get("absent").and_then(|c| c.as_array()).into_iter().flatten() {
                assert!(!ctrls.iter().any(|x| x == c.as_str().unwrap()), "{c} present: {why}");
            }
            for si in line.apdus.iter().filter(|a| a.starts_with(&[0x04, 0x0F])) {
                if let Err(e) = walk_bitmaps(&si[3..]) {
                    panic!("the terminal's 04 0F is not a bitmap sequence ({e}): {why}");
                }
            }
            if ctrls[0].starts_with("84") {
                assert_eq!(line.apdus.len(), 1, "a refusal is the only answer: {why}");
                assert_eq!(line.apdus[0].len(), 3, "84 xx 00: {why}");
            }
            if let Some(amount) = step.get("amount").and_then(|a| a.as_integer()) {
                let si = line.apdus.iter().find(|a| a.starts_with(&[0x04, 0x0F])).expect("04 0F");
                assert_eq!(status_amount(si), Some(amount as u64), "{why}");
            }
            steps_run += 1;
        }
    }
    assert!(steps_run >= 25, "only {steps_run} steps read");
}

#[test]
fn bad_crc_gets_nak_and_nothing_else() {
    let mut s = sim(&toml::Table::new());
    let mut f = frame(&hex_bytes("06 01 07 04 00 00 00 00 01 90"));
    let n = f.len();
    f[n - 1] ^= 0x01;
    let line = exchange(&mut s, &f);
    assert_eq!((line.acks, line.naks, line.apdus.len()), (0, 1, 0));
}

#[test]
fn refusal_is_logged_in_status() {
    let mut s = sim(&toml::Table::new());
    exchange(&mut s, &frame(&hex_bytes("06 01 08 04 00 00 00 00 01 90")));
    let st = s.status();
    assert_eq!(st["refused"], 1);
    let why = st["last_refusal"].as_str().unwrap();
    assert!(why.contains("length field says 8"), "{why}");
}

// ---------------------------------------------------------------- never success

/// Commands the simulator accepts (all from the vectors above), to mutate.
const VALID: [&str; 6] = [
    "06 01 07 04 00 00 00 00 01 90",
    "06 00 06 00 00 00 DE 09 78",
    "06 50 03 00 00 00",
    "06 30 06 00 00 00 87 00 02",
    "06 01 09 04 00 00 00 00 33 00 02 0A",
    "06 01 1E 19 40 49 08 18 04 00 00 00 00 25 00 06 10 E9 0E 1F 62 02 41 43 1F 63 06 33 38 34 48 48 32",
];

/// Bytes that are no bitmap in the spec's table.
fn undefined_bmp() -> impl Strategy<Value = u8> {
    any::<u8>().prop_filter("defined bitmap", |b| {
        ![
            0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0B, 0x0C, 0x0D, 0x0E, 0x17, 0x19, 0x22, 0x23, 0x24, 0x27,
            0x29, 0x2A, 0x2D, 0x3A, 0x3B, 0x3C, 0x49, 0x87, 0x8A, 0x8B,
        ]
        .contains(b)
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    /// The length byte no longer matches the data.
    Length(u8),
    /// Data cut by n bytes (length byte fixed).
    Cut(usize),
    /// An undefined bitmap and a byte appended.
    Append(u8, u8),
    /// A non-BCD nibble in the amount / password.
    NonBcd(u8),
    /// A control field the terminal does not offer.
    Command(u8, u8),
    /// The frame's CRC broken.
    Crc(u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<u8>().prop_map(Mutation::Length),
        (1usize..40).prop_map(Mutation::Cut),
        (undefined_bmp(), any::<u8>()).prop_map(|(b, v)| Mutation::Append(b, v)),
        (0xAu8..=0xF).prop_map(Mutation::NonBcd),
        (any::<u8>(), any::<u8>())
            .prop_filter("offered", |(c, i)| !matches!(
                (c, i),
                (0x06, 0x00 | 0x01 | 0x20 | 0x30 | 0x31 | 0x50 | 0xB0) | (0x05, 0x01) | (0x80 | 0x84, _)
            ))
            .prop_map(|(c, i)| Mutation::Command(c, i)),
        (1u8..=255).prop_map(Mutation::Crc),
    ]
}

/// Applies `m` to `apdu`; `None` when the mutation would leave a valid command (e.g. the length
/// byte set to its own value).
fn mutate(apdu: &[u8], m: &Mutation) -> Option<(Vec<u8>, bool)> {
    let mut a = apdu.to_vec();
    let data_len = a.len() - 3;
    match *m {
        Mutation::Length(l) => {
            if usize::from(l) == data_len {
                return None;
            }
            a[2] = l;
        }
        Mutation::Cut(n) => {
            // Some cuts leave a shorter valid command (a registration without its currency):
            // those are skipped, every other cut must be refused.
            if n > data_len {
                return None;
            }
            a.truncate(a.len() - n);
            a[2] = (data_len - n) as u8;
            if parse_command(&a).is_ok() {
                return None;
            }
        }
        Mutation::Append(b, v) => {
            a.extend_from_slice(&[b, v]);
            a[2] = (data_len + 2) as u8;
        }
        Mutation::NonBcd(nib) => {
            // First data byte that is BCD payload: the password (06 00/30/50) or the amount.
            let at = if a[1] == 0x01 { a.iter().position(|&b| b == 0x04).unwrap() + 6 } else { 5 };
            a[at] = (a[at] & 0xF0) | nib;
        }
        Mutation::Command(c, i) => {
            a[0] = c;
            a[1] = i;
        }
        Mutation::Crc(_) => return Some((a, true)),
    }
    Some((a, false))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// A mutated command never gets success: only one `84 xx 00`, or a NAK for a broken CRC.
    #[test]
    fn mutated_commands_never_succeed(which in 0..VALID.len(), m in mutation()) {
        let valid = hex_bytes(VALID[which]);
        let Some((apdu, break_crc)) = mutate(&valid, &m) else { return Ok(()) };
        let mut s = sim(&toml::Table::new());
        let mut f = frame(&apdu);
        if let Mutation::Crc(x) = m {
            let n = f.len();
            f[n - 2] ^= x;
        }
        let line = exchange(&mut s, &f);
        if break_crc {
            prop_assert_eq!((line.naks, line.apdus.len()), (1, 0), "{:02X?}", apdu);
        } else {
            prop_assert!(parse_command(&apdu).is_err(), "mutation left a valid command: {:02X?}", apdu);
            prop_assert_eq!(line.apdus.len(), 1, "{:02X?} got {:02X?}", apdu, line.apdus);
            prop_assert_eq!(line.apdus[0][0], 0x84, "{:02X?} got {:02X?}", apdu, line.apdus);
            prop_assert_eq!(s.status()["refused"].as_u64(), Some(1));
        }
    }

    /// Line noise without a frame start never makes the terminal send a message.
    #[test]
    fn noise_gets_no_message(noise in proptest::collection::vec(any::<u8>().prop_filter("DLE", |b| *b != DLE), 0..300)) {
        let mut s = sim(&toml::Table::new());
        let line = exchange(&mut s, &noise);
        prop_assert!(line.apdus.is_empty(), "{:02X?}", line.apdus);
    }

    /// Any framed APDU either parses, or is refused with exactly one 84 xx 00 and nothing else.
    #[test]
    fn framed_random_apdus(class in prop_oneof![Just(0x06u8), Just(0x05u8), any::<u8>()],
                           instr in prop_oneof![Just(0x01u8), Just(0x00u8), Just(0x50u8), Just(0x30u8), any::<u8>()],
                           data in proptest::collection::vec(any::<u8>(), 0..40)) {
        if matches!(class, 0x80 | 0x84) { return Ok(()) }
        let mut apdu = vec![class, instr, data.len() as u8];
        apdu.extend_from_slice(&data);
        let mut s = sim(&toml::Table::new());
        let line = exchange(&mut s, &frame(&apdu));
        if parse_command(&apdu).is_err() {
            prop_assert_eq!(line.apdus.len(), 1, "{:02X?} got {:02X?}", apdu, line.apdus);
            prop_assert_eq!(line.apdus[0][0], 0x84);
        }
    }
}

/// Collects what `tracing` writes while `f` runs on this thread. One global subscriber for the
/// test binary writes into a per-thread buffer: a scoped (`with_default`) subscriber is not
/// reliable while other test threads run, because `tracing` caches callsite interest and the
/// global maximum level across threads.
fn logs_of(f: impl FnOnce()) -> String {
    use std::cell::RefCell;
    thread_local! {
        static CAPTURE: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
    }
    struct ThreadBuf;
    impl std::io::Write for ThreadBuf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            CAPTURE.with(|c| {
                if let Some(buf) = c.borrow_mut().as_mut() {
                    buf.extend_from_slice(b);
                }
            });
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(|| ThreadBuf).finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    CAPTURE.with(|c| *c.borrow_mut() = Some(Vec::new()));
    f();
    let bytes = CAPTURE.with(|c| c.borrow_mut().take()).unwrap_or_default();
    String::from_utf8(bytes).unwrap()
}

#[test]
fn refusal_leaves_a_log_line() {
    let log = logs_of(|| {
        let mut s = sim(&toml::Table::new());
        exchange(&mut s, &frame(&hex_bytes("06 01 09 04 00 00 00 00 01 90 F0 00")));
    });
    assert!(log.contains("WARN") && log.contains("bitmap F0 at byte 10"), "{log}");
}
