#![no_main]
//! The simulated Mercury module parses host frames itself: it must never panic on any bytes, nor on
//! any well-framed command (opcode = first byte, data = the rest).
use libfuzzer_sys::fuzz_target;
use mtu::devices::mercury::codec::encode_command;
use mtu::sim::SimDevice;
use mtu::sim::rfid::MercurySim;

fuzz_target!(|data: &[u8]| {
    let now = std::time::Instant::now();
    let mut sim = MercurySim::new();
    let _ = sim.receive(data, now);
    if let Some((op, rest)) = data.split_first() {
        // Boot into the application, then send the framed command.
        let _ = sim.receive(&[0xFF, 0x00, 0x04, 0x1D, 0x0B], now);
        if let Ok(frame) = encode_command(*op, rest) {
            let _ = sim.receive(&frame, now);
        }
    }
});
