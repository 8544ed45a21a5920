//! ZPL II sticker printer: job builder against the guide's examples, reply parsers on arbitrary
//! bytes, ^GF round trip through the simulator's independent decoder, and the driver against the
//! simulator over a real pseudo-terminal.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mtu::devices::DeviceError;
use mtu::devices::sticker::{
    LabelElement, MonoBitmap, QrLevel, StickerFault, StickerLabel, StickerPrinter, TagLock, TagPassword,
    TagWrite,
};
use mtu::devices::transport::SerialLink;
use mtu::devices::zpl::label::{compress_rows, graphic_field, qr_field};
use mtu::devices::zpl::status::{parse_host_status_reply, take_tag_lines};
use mtu::devices::zpl::{GfEncoding, ZplOptions, ZplPrinter, encode_label};
use mtu::sim::sticker::parse::decode_gf;
use mtu::sim::sticker::{SimOptions, StickerSim};
use mtu::sim::{SimDevice, SimOut};
use proptest::prelude::*;
use serialport::{SerialPort, TTYPort};

// ---------------------------------------------------------------- builder vs. the guide

#[test]
fn guide_qr_example() {
    // ^BQ, "Example: QR Code, normal mode with automatic data input": level Q, input A.
    let f = qr_field(20, 20, "0123456789ABCD 2D code", 10, QrLevel::Q).unwrap();
    assert_eq!(f, "^FO20,20^BQN,2,10,Q^FDQA,0123456789ABCD 2D code^FS");
}

#[test]
fn guide_rfid_password_and_lock_forms() {
    // ^RF examples: "^RFW,H,P^FD12345678,88887777^FS" writes access and kill passwords;
    // "^RFW,H,P^FD,88887777^FS" writes the kill password only; ^RL: "^RLM,L,L,L,L^FS" locks
    // all banks with the access password given earlier in the format.
    let mut label = StickerLabel::new_mm(203, 50.0, 30.0);
    label.elements.push(LabelElement::Text { x: 10, y: 10, height: 30, text: "MTU".into() });
    let tag = TagWrite {
        epc: hex::decode("112233445566778899001122").unwrap(),
        user: vec![],
        access_password: Some(TagPassword::new([0x12, 0x34, 0x56, 0x78])),
        kill_password: Some(TagPassword::new([0x88, 0x88, 0x77, 0x77])),
        lock: TagLock::Lock,
    };
    let job = encode_label(&label, Some(&tag), GfEncoding::Auto).unwrap();
    let text = String::from_utf8(job.as_bytes().to_vec()).unwrap();
    assert!(text.starts_with("^XA^PW400^LL240^LH0,0^RS8,,,1,N"), "{text}");
    assert!(text.contains("^RFR,H,0,12,2^FN1^FS^FH_^HV1,24,TID[,]_0D_0A,L^FS"));
    assert!(text.contains("^RFW,H,2,12,1^FD112233445566778899001122^FS"));
    assert!(text.contains("^RFW,H,P^FD12345678,88887777^FS"));
    assert!(text.contains("^RLM,L,L,L,L^FS"));
    assert!(text.ends_with("^PQ1^XZ"));
    let dump = format!("{job:?}");
    assert!(!dump.contains("12345678") && !dump.contains("88887777"), "{dump}");

    let only_kill = TagWrite { access_password: None, lock: TagLock::Unchanged, ..tag.clone() };
    let text = String::from_utf8(
        encode_label(&label, Some(&only_kill), GfEncoding::Auto).unwrap().as_bytes().to_vec(),
    )
    .unwrap();
    assert!(text.contains("^RFW,H,P^FD,88887777^FS"));
    let no_access = TagWrite { access_password: None, ..tag };
    assert!(encode_label(&label, Some(&no_access), GfEncoding::Auto).is_err(), "L needs a password");
}

#[test]
fn guide_graphic_field_example() {
    // ^GF example: "^FO100,100^GFA,8000,8000,80,ASCII data" — 80 bytes per row (640 dots), 100 rows.
    let bm = MonoBitmap::from_fn(640, 100, |x, _| x % 3 == 0);
    let f = graphic_field(100, 100, &bm, GfEncoding::Hex);
    assert!(f.starts_with("^FO100,100^GFA,8000,8000,80,"), "{}", &f[..40]);
    assert_eq!(f.len(), "^FO100,100^GFA,8000,8000,80,".len() + 16_000 + "^FS".len());
}

#[test]
fn gf_lengths_for_widths_not_multiple_of_8() {
    for width in [1u32, 7, 9, 15, 17, 601] {
        let bm = MonoBitmap::from_fn(width, 3, |x, y| (x + y) % 2 == 0);
        let d = width.div_ceil(8) as usize;
        let f = graphic_field(0, 0, &bm, GfEncoding::Hex);
        let expected = format!("^FO0,0^GFA,{},{},{d},", 3 * d, 3 * d);
        assert!(f.starts_with(&expected), "{width}: {f}");
        let data = &f[expected.len()..f.len() - 3];
        assert_eq!(data.len(), 3 * d * 2, "{width}: two hex digits per byte");
    }
}

fn typical_sticker(encoding: GfEncoding) -> usize {
    // A 600×200 dot bitmap of "Arabic text" (strokes and blank margins) and a QR code.
    let bitmap = MonoBitmap::from_fn(600, 200, |x, y| {
        let in_line = (30..70).contains(&y) || (110..150).contains(&y);
        in_line && (x / 7 + y / 5) % 5 < 2 && x > 20 && x < 560
    });
    let mut label = StickerLabel::new_mm(203, 100.0, 60.0);
    label.elements.push(LabelElement::Bitmap { x: 50, y: 20, bitmap });
    label.elements.push(LabelElement::Qr {
        x: 600,
        y: 250,
        data: "MTU1.eyJ2IjoiQ0FJLTEyMzQiLCJzIjoiMjAyNi0xMS0yMyJ9.k2Jd8sKq0aZ".into(),
        magnification: 4,
        level: QrLevel::M,
    });
    label.elements.push(LabelElement::Text { x: 50, y: 400, height: 30, text: "CAI 1234".into() });
    encode_label(&label, None, encoding).unwrap().len()
}

#[test]
fn figures_for_a_typical_sticker() {
    let plain = typical_sticker(GfEncoding::Hex);
    let packed = typical_sticker(GfEncoding::Compressed);
    let auto = typical_sticker(GfEncoding::Auto);
    println!("typical sticker: {plain} bytes hex, {packed} bytes compressed, auto {auto}");
    assert!(packed < plain / 2, "compression pays on text bitmaps: {packed} vs {plain}");
    assert_eq!(auto, packed.min(plain));

    // Worst case: the same sticker with a noisy bitmap (about 30 % ink, no long runs).
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let noisy = MonoBitmap::from_fn(600, 200, |_, _| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % 10 < 3
    });
    let mut label = StickerLabel::new_mm(203, 100.0, 60.0);
    label.elements.push(LabelElement::Bitmap { x: 0, y: 0, bitmap: noisy });
    let hex = encode_label(&label, None, GfEncoding::Hex).unwrap().len();
    let comp = encode_label(&label, None, GfEncoding::Compressed).unwrap().len();
    let auto = encode_label(&label, None, GfEncoding::Auto).unwrap().len();
    println!("noisy 600x200 bitmap: {hex} bytes hex, {comp} bytes compressed, auto {auto}");
    assert_eq!(auto, hex.min(comp), "auto never sends the longer form");
}

// ---------------------------------------------------------------- parsers never panic

proptest! {
    #[test]
    fn host_status_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_host_status_reply(&bytes);
    }

    #[test]
    fn host_status_parser_on_framed_noise(a in "[0-9,]{0,40}", b in "[0-9,A-Z]{0,40}", c in "[0-9,]{0,10}") {
        let reply = format!("\x02{a}\x03\r\n\x02{b}\x03\r\n\x02{c}\x03\r\n");
        let _ = parse_host_status_reply(reply.as_bytes());
    }

    #[test]
    fn tag_line_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = take_tag_lines(&bytes);
    }

    #[test]
    fn sim_gf_decoder_never_panics(text in "[A,0-9GYgz!:, ]{0,200}") {
        let _ = decode_gf(&text);
    }

    #[test]
    fn simulator_survives_any_stream(
        parts in proptest::collection::vec(
            prop_oneof![
                Just("^XA".to_string()), Just("^XZ".to_string()), Just("~HS".to_string()),
                Just("^FS".to_string()), Just("^RS8".to_string()),
                "\\^(FO|GF|BQ|FD|RF|RL|HV|FN|FH|LL|PW|PQ)[A-Z0-9,:!_\\[\\]]{0,30}",
                proptest::collection::vec(any::<u8>(), 0..20)
                    .prop_map(|v| String::from_utf8_lossy(&v).into_owned()),
            ],
            0..30,
        )
    ) {
        let options = SimOptions {
            dpi: 203, rfid: true, output_dir: None, timing_scale: 0.0, silent_faults: false,
        };
        let mut sim = StickerSim::new(options);
        let now = Instant::now();
        for p in parts {
            let _ = sim.receive(p.as_bytes(), now);
        }
        let _ = sim.poll(now);
        let _ = sim.status();
    }

    #[test]
    fn gf_round_trip(width in 1u32..80, height in 1u32..24, seed in any::<u64>(), mode in 0u8..3) {
        // Runs of 0 and 1 with repeated rows, so every compression code gets exercised.
        let bm = MonoBitmap::from_fn(width, height, |x, y| {
            let r = (y / 3) as u64;
            let h = seed.rotate_left((r % 64) as u32) ^ (r * 0x9E37_79B9);
            (h >> ((x / 5) % 64)) & 1 == 1
        });
        let encoding = [GfEncoding::Hex, GfEncoding::Compressed, GfEncoding::Auto][mode as usize];
        let field = graphic_field(3, 4, &bm, encoding);
        let params = field.strip_prefix("^FO3,4^GF").unwrap().strip_suffix("^FS").unwrap();
        let g = decode_gf(params).unwrap();
        prop_assert_eq!(g.bytes_per_row, bm.stride());
        prop_assert_eq!(g.rows as u32, height);
        prop_assert_eq!(&g.data[..], bm.data());
    }
}

#[test]
fn compressed_rows_decode_by_the_simulator() {
    let a = [0x00u8, 0x00, 0xFF, 0xFF];
    let b = [0xAAu8; 4];
    let rows: Vec<&[u8]> = vec![&a, &a, &b, &[0; 4], &[0xFF; 4]];
    let data = compress_rows(&rows);
    let g = decode_gf(&format!("A,20,20,4,{data}")).unwrap();
    assert_eq!(g.data, [a, a, b, [0; 4], [0xFF; 4]].concat());
}

// ---------------------------------------------------------------- driver over a PTY

/// Serves a simulator on the other end of the PTY from a thread.
struct Bench {
    sim: Arc<Mutex<StickerSim>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    garbage: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Drop for Bench {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn bench(rfid: bool, timeout_ms: u64) -> (Bench, ZplPrinter) {
    bench_with(rfid, timeout_ms, true)
}

fn bench_with(rfid: bool, timeout_ms: u64, silent_faults: bool) -> (Bench, ZplPrinter) {
    bench_timed(rfid, timeout_ms, silent_faults, 0.0)
}

fn bench_timed(rfid: bool, timeout_ms: u64, silent: bool, scale: f64) -> (Bench, ZplPrinter) {
    let (host, mut dev) = TTYPort::pair().expect("pty pair");
    let table: toml::Table =
        toml::from_str(&format!("timing_scale = {scale:?}\nrfid = {rfid}\nsilent_faults = {silent}"))
            .unwrap();
    let sim = Arc::new(Mutex::new(StickerSim::new(SimOptions::from_table(&table).unwrap())));
    let stop = Arc::new(AtomicBool::new(false));
    let garbage: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
    let (s, st, g) = (sim.clone(), stop.clone(), garbage.clone());
    let thread = std::thread::spawn(move || {
        dev.set_timeout(Duration::from_millis(10)).unwrap();
        let mut buf = [0u8; 4096];
        while !st.load(Ordering::SeqCst) {
            let n = match dev.read(&mut buf) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => 0,
                Err(_) => return,
            };
            let now = Instant::now();
            let outs = {
                let mut sim = s.lock().unwrap();
                let mut outs = if n > 0 { sim.receive(&buf[..n], now) } else { Vec::new() };
                if sim.next_deadline().is_some_and(|d| d <= now) {
                    outs.extend(sim.poll(now));
                }
                outs
            };
            for o in outs {
                match o {
                    SimOut::Wait(d) => std::thread::sleep(d),
                    SimOut::Send(bytes) => {
                        let bytes = g.lock().unwrap().clone().unwrap_or(bytes);
                        let _ = dev.write_all(&bytes);
                    }
                    SimOut::DropLink => {}
                }
            }
        }
    });
    let options = ZplOptions {
        rfid,
        reply_timeout: Duration::from_millis(timeout_ms),
        print_timeout: Duration::from_millis(2000),
        ..ZplOptions::default()
    };
    let printer = ZplPrinter::new(Box::new(SerialLink::from_tty(host, "sticker")), options);
    (Bench { sim, stop, thread: Some(thread), garbage }, printer)
}

fn small_label() -> StickerLabel {
    let mut label = StickerLabel::new_mm(203, 60.0, 40.0);
    let bitmap = MonoBitmap::from_fn(123, 40, |x, y| (x * y) % 7 == 0);
    label.elements.push(LabelElement::Bitmap { x: 10, y: 10, bitmap: bitmap.clone() });
    label.elements.push(LabelElement::Qr {
        x: 200,
        y: 60,
        data: "MTU1.abc-DEF_123".into(),
        magnification: 3,
        level: QrLevel::Q,
    });
    label
}

fn tag() -> TagWrite {
    TagWrite {
        epc: hex::decode("300833B2DDD9014035050000").unwrap(),
        user: hex::decode("0102030405060708").unwrap(),
        access_password: Some(TagPassword::new([0xA1, 0xB2, 0xC3, 0xD4])),
        kill_password: Some(TagPassword::new([0x0F, 0x1E, 0x2D, 0x3C])),
        lock: TagLock::Lock,
    }
}

#[test]
fn prints_a_label_and_the_simulator_decodes_it() {
    let (bench, mut printer) = bench(false, 1000);
    let st = printer.host_status().unwrap();
    assert!(st.ready, "{st:?}");
    let label = small_label();
    printer.print_label(&label).unwrap();
    let sim = bench.sim.lock().unwrap();
    let printed = &sim.labels()[0];
    assert!(printed.warnings.is_empty(), "{:?}", printed.warnings);
    assert_eq!(printed.qr[0].data, "MTU1.abc-DEF_123");
    assert_eq!((printed.qr[0].level, printed.qr[0].input), ('Q', 'A'));
    let LabelElement::Bitmap { bitmap, .. } = &label.elements[0] else { unreachable!() };
    assert_eq!(printed.graphics[0].graphic.data, bitmap.data());
    assert!(printed.png.as_ref().is_some_and(|p| p.starts_with(b"\x89PNG")));
    let report = {
        drop(sim);
        printer.self_test().unwrap()
    };
    assert!(report.ok, "{report:?}");
    assert_eq!(bench.sim.lock().unwrap().labels().len(), 1, "self-test never prints");
}

#[test]
fn waits_while_the_printer_is_busy() {
    // With realistic timing (scaled down) the first status polls report the label still printing;
    // the driver returns only once the printer reports the batch done.
    let (bench, mut printer) = bench_timed(true, 1000, true, 0.1);
    let mut label = small_label();
    label.copies = 2;
    printer.print_label(&label).unwrap();
    let st = printer.host_status().unwrap();
    assert_eq!((st.formats_queued, st.labels_remaining), (0, 0));
    let tid = printer.print_rfid_label(&small_label(), &tag()).unwrap();
    assert_eq!(tid.0.len(), 12);
    assert_eq!(bench.sim.lock().unwrap().labels().len(), 2);
}

#[test]
fn paper_out_silence_is_a_fault() {
    let (bench, mut printer) = bench(false, 300);
    bench.sim.lock().unwrap().apply_fault("paper_out").unwrap();
    let st = printer.host_status().unwrap();
    assert!(!st.ready);
    assert_eq!(st.faults, [StickerFault::NoAnswer]);
    let err = printer.print_label(&small_label()).unwrap_err();
    assert!(matches!(err, DeviceError::Fault { .. }), "{err}");
    assert!(err.to_string().contains("no answer"), "{err}");
    assert!(bench.sim.lock().unwrap().labels().is_empty());
    let report = printer.self_test().unwrap();
    assert!(!report.ok);
}

#[test]
fn head_open_silence_is_a_fault() {
    // Current guide, ~HS: no response with MEDIA OUT, RIBBON OUT, HEAD OPEN, REWINDER FULL or
    // HEAD OVER-TEMPERATURE.
    let (bench, mut printer) = bench(false, 300);
    bench.sim.lock().unwrap().apply_fault("head_open").unwrap();
    let err = printer.print_label(&small_label()).unwrap_err().to_string();
    assert!(err.contains("no answer") && err.contains("print head"), "{err}");
    assert!(bench.sim.lock().unwrap().labels().is_empty());
    bench.sim.lock().unwrap().clear_faults();
    printer.print_label(&small_label()).unwrap();
}

#[test]
fn head_open_and_ribbon_out_are_reported() {
    // Older firmware answers ~HS with the head-up and ribbon-out flags set.
    let (bench, mut printer) = bench_with(false, 500, false);
    bench.sim.lock().unwrap().apply_fault("head_open").unwrap();
    let err = printer.print_label(&small_label()).unwrap_err().to_string();
    assert!(err.contains("print head open") && err.contains("close the print head"), "{err}");
    {
        let mut sim = bench.sim.lock().unwrap();
        sim.clear_faults();
        sim.apply_fault("ribbon_out").unwrap();
    }
    let err = printer.print_label(&small_label()).unwrap_err().to_string();
    assert!(err.contains("ribbon ended") && err.contains("replace the ribbon"), "{err}");
    bench.sim.lock().unwrap().apply_fault("pause").unwrap();
    let st = printer.host_status().unwrap();
    assert!(st.faults.contains(&StickerFault::Paused) && st.faults.contains(&StickerFault::RibbonOut));
    assert!(bench.sim.lock().unwrap().labels().is_empty());
}

#[test]
fn rfid_label_returns_the_tid() {
    let (bench, mut printer) = bench(true, 1000);
    let tid = printer.print_rfid_label(&small_label(), &tag()).unwrap();
    assert_eq!(tid.to_string(), "E28011600000000000000001");
    let sim = bench.sim.lock().unwrap();
    let l = &sim.labels()[0];
    assert!(!l.voided);
    assert!(!l.zpl.contains("A1B2C3D4") && !l.zpl.contains("0F1E2D3C"), "redacted: {}", l.zpl);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn rfid_no_tag_and_write_failure() {
    let (bench, mut printer) = bench(true, 300);
    bench.sim.lock().unwrap().apply_fault("no_tag").unwrap();
    let err = printer.print_rfid_label(&small_label(), &tag()).unwrap_err().to_string();
    assert!(err.contains("RFID tag not encoded"), "{err}");
    assert!(!err.contains("A1B2C3D4"));
    {
        let mut sim = bench.sim.lock().unwrap();
        assert!(sim.labels()[0].voided);
        sim.clear_faults();
        sim.apply_fault("write_fail").unwrap();
    }
    let err = printer.print_rfid_label(&small_label(), &tag()).unwrap_err().to_string();
    assert!(err.contains("RFID tag not encoded"), "{err}");
}

#[test]
fn rfid_needs_the_option() {
    let (_bench, mut printer) = bench(false, 300);
    let err = printer.print_rfid_label(&small_label(), &tag()).unwrap_err();
    assert!(matches!(err, DeviceError::Unsupported { .. }), "{err}");
}

#[test]
fn garbage_replies_are_protocol_errors() {
    let (bench, mut printer) = bench(false, 300);
    *bench.garbage.lock().unwrap() = Some(b"\x02hello\x03\r\n\x02world\x03\r\n\x02!\x03\r\n".to_vec());
    let err = printer.host_status().unwrap_err();
    assert!(matches!(err, DeviceError::Protocol { .. }), "{err}");
    *bench.garbage.lock().unwrap() = Some(b"OK\r\n".to_vec());
    let err = printer.print_label(&small_label()).unwrap_err();
    assert!(matches!(err, DeviceError::Protocol { .. }), "{err}");
    assert!(bench.sim.lock().unwrap().labels().is_empty(), "nothing sent after a bad status");
}

#[test]
fn driver_from_config_builds_the_zpl_driver() {
    let cfg: mtu::config::DeviceConfig = toml::from_str(
        "driver = \"zpl\"\npath = \"/dev/null\"\nbaud = 9600\n[options]\ndpi = 300\nrfid = true\n",
    )
    .unwrap();
    let (host, _dev) = TTYPort::pair().unwrap();
    assert!(mtu::devices::registry::sticker(&cfg, Box::new(SerialLink::from_tty(host, "sticker"))).is_ok());
}

#[test]
fn driver_from_config_names_bad_options() {
    let cfg: mtu::config::DeviceConfig =
        toml::from_str("driver = \"zpl\"\npath = \"/dev/null\"\nbaud = 9600\n[options]\ndpi = 250\n")
            .unwrap();
    let (host, _dev) = TTYPort::pair().unwrap();
    match mtu::devices::registry::sticker(&cfg, Box::new(SerialLink::from_tty(host, "sticker"))) {
        Err(DeviceError::Config { key, .. }) => assert_eq!(key, "devices.sticker.options.dpi"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("dpi 250 accepted"),
    }
}
