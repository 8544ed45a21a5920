#![no_main]
//! Export lines come from vans over the network at HQ: parsing and verifying any bytes must return
//! an error, never panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut verifier = mtu::journal::ChainVerifier::from_genesis(None);
        for (i, line) in text.lines().enumerate() {
            if let Ok(rec) = mtu::journal::export::parse_line(line, i + 1) {
                let _ = verifier.check(&rec);
            }
        }
    }
});
