#![no_main]
//! The simulators' ledger file reader must return an error, never panic, on any bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mtu::sim::ledger::parse(data);
});
