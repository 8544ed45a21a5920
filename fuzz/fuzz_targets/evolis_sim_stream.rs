#![no_main]
//! The simulated Evolis printer's command-stream parser must never panic on any bytes.
use libfuzzer_sys::fuzz_target;
use mtu::sim::SimDevice;
use mtu::sim::card::EvolisSim;

fuzz_target!(|data: &[u8]| {
    // Default timing: waits are only returned as SimOut::Wait, never slept here.
    let mut sim = EvolisSim::new();
    let now = std::time::Instant::now();
    // Open a sequence so the bitmap paths are reachable, then feed the input in two chunks.
    let _ = sim.receive(b"\x1bSs\r\x1bSr\r", now);
    let (a, b) = data.split_at(data.len() / 2);
    let _ = sim.receive(a, now);
    let _ = sim.receive(b, now);
    let _ = sim.status();
});
