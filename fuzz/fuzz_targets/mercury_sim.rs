#![no_main]
//! The simulated Mercury module parses host frames itself: it must never panic on any bytes, nor on
//! any well-framed command (opcode = first byte, data = the rest), in its bootloader or in its
//! application with region, Gen2 and a filled tag buffer (so tag commands run past their parser).
use libfuzzer_sys::fuzz_target;
use mtu::devices::mercury::codec::encode_command;
use mtu::sim::SimDevice;
use mtu::sim::rfid::MercurySim;

fuzz_target!(|data: &[u8]| {
    let now = std::time::Instant::now();
    let mut sim = MercurySim::new();
    let _ = sim.receive(data, now);
    if let Some((op, rest)) = data.split_first() {
        // Bootloader, then the application set up for tag commands: Boot Firmware, Set Region EU3,
        // Set Protocol Gen2, an inventory with the C API's multi-select form.
        let framed = encode_command(*op, rest);
        if let Ok(frame) = &framed {
            let _ = sim.receive(frame, now);
        }
        for (setup_op, setup_data) in [
            (0x04u8, &[][..]),
            (0x97, &[0x08][..]),
            (0x93, &[0x00, 0x05][..]),
            (0x22, &[0x88, 0x10, 0x00, 0x13, 0x00, 0x00, 0x0F, 0xFF][..]),
        ] {
            if let Ok(frame) = encode_command(setup_op, setup_data) {
                let _ = sim.receive(&frame, now);
            }
        }
        if let Ok(frame) = &framed {
            let _ = sim.receive(frame, now);
        }
    }
});
