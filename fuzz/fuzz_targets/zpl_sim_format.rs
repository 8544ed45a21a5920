#![no_main]
//! The sticker simulator must survive any byte stream: tokenizer, `^GF` decoder, RFID and `~HS`.
use libfuzzer_sys::fuzz_target;
use mtu::sim::SimDevice;
use mtu::sim::sticker::{SimOptions, StickerSim};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mtu::sim::sticker::parse::decode_gf(text);
    }
    let options =
        SimOptions { dpi: 203, rfid: true, output_dir: None, timing_scale: 0.0, silent_faults: false };
    let mut sim = StickerSim::new(options);
    let now = std::time::Instant::now();
    let _ = sim.receive(data, now);
    let _ = sim.poll(now);
});
