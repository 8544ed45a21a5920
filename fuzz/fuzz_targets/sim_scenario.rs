#![no_main]
//! The van-sim scenario parser must return an error, never panic, on any text.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mtu::sim::host::Scenario::parse(text, "fuzz.toml");
    }
});
