#![no_main]
//! The daemon's control socket request parser must answer an error, never panic, on any line.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mtu::control::parse_request(data);
});
