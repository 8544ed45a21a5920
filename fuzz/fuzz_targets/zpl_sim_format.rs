#![no_main]
//! The sticker simulator must survive any byte stream: tokenizer (binary ^GFB by byte count),
//! `^GF` decoder (hex, compression scheme, :Z64:/:B64:, binary), parameter checks, RFID and `~HS`.
use libfuzzer_sys::fuzz_target;
use mtu::sim::SimDevice;
use mtu::sim::sticker::{SimOptions, StickerSim, parse};

fuzz_target!(|data: &[u8]| {
    let _ = parse::decode_gf_bytes(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse::decode_gf(text);
        let _ = parse::check_font(text);
        if let Some((code, params)) = text.split_at_checked(2) {
            let _ = parse::check_params(code, params);
        }
    }
    let options =
        SimOptions { dpi: 203, rfid: true, output_dir: None, timing_scale: 0.0, silent_faults: false };
    let mut sim = StickerSim::new(options);
    let now = std::time::Instant::now();
    let _ = sim.receive(data, now);
    let _ = sim.poll(now);
    let _ = sim.status();
});
