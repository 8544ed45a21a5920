#![no_main]
//! The simulated terminal's command parser (`parse_command`: length, bitmaps, LLVAR/LLLVAR, BER-TLV)
//! must never panic, and whatever it accepts must have a 3-byte header whose length matches.
use libfuzzer_sys::fuzz_target;
use mtu::sim::payment::parse_command;

fuzz_target!(|data: &[u8]| {
    if parse_command(data).is_ok() {
        assert!(data.len() >= 3);
    }
});
