#![no_main]
//! The simulated Evolis printer's command-stream parser must never panic on any bytes, whether
//! they arrive between commands (vendor tags, garbage), inside a command head, or as panel data.
use libfuzzer_sys::fuzz_target;
use mtu::sim::SimDevice;
use mtu::sim::card::EvolisSim;

fuzz_target!(|data: &[u8]| {
    let now = std::time::Instant::now();
    // Open a sequence so the bitmap paths are reachable; also start inside a colour panel and a
    // compressed one, the data paths of the vendor library's stream.
    for prefix in [&b"\x1bSs\r\x1bSr\r"[..], b"\x1bSs\r\x1bSr\r\x1bDb;y;256;", b"\x1bSs\r\x1bSv\r\x1bDbc;k;2;1016;"] {
        // Default timing: waits are only returned as SimOut::Wait, never slept here.
        let mut sim = EvolisSim::new();
        let _ = sim.receive(prefix, now);
        let (a, b) = data.split_at(data.len() / 2);
        let _ = sim.receive(a, now);
        let _ = sim.receive(b, now);
        let _ = sim.status();
    }
});
