#![no_main]
//! The simulated ZVT terminal's own frame reader must never panic on any byte stream.
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use mtu::sim::SimDevice;
use mtu::sim::payment::{SimOptions, ZvtSim};

fuzz_target!(|data: &[u8]| {
    let mut sim = ZvtSim::new(SimOptions { timing_scale: 0.0, ..Default::default() });
    for chunk in data.chunks(11) {
        let _ = sim.receive(chunk, Instant::now());
    }
    let _ = sim.status();
});
