#![no_main]
//! Reference data bundles from HQ (bookings, roster, schedule, block list, settings) must be
//! refused with an error, never panic, whatever the bytes; so must a session token of any text.
use libfuzzer_sys::fuzz_target;
use mtu::office::people::Sessions;
use mtu::office::refdata::{ServiceHours, parse_bundle};

fuzz_target!(|data: &[u8]| {
    let hours = ServiceHours::cairo_default();
    let _ = parse_bundle(data, "MTU-SIM-0001", &hours);
    if let Ok(token) = std::str::from_utf8(data) {
        let _ = Sessions::default().check(token, jiff::Timestamp::UNIX_EPOCH);
    }
});
