#![no_main]
//! The ZVT exchange state machine must never panic on any byte stream, split anywhere, with
//! timeouts in between.
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mtu::devices::zvt::codec;
use mtu::devices::zvt::machine::{CommandKind, Exchange, Timers};

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let Ok(cmd) = codec::authorisation(190, Some(codec::EGP)) else { return };
    let Ok(mut ex) = Exchange::new(CommandKind::Purchase, &cmd, Timers::default(), t0) else { return };
    for (i, chunk) in data.chunks(7).enumerate() {
        let now = t0 + Duration::from_millis(i as u64 * 50);
        ex.handle_bytes(chunk, now);
        while ex.poll_transmit().is_some() {}
        while ex.poll_progress().is_some() {}
        if chunk.first() == Some(&0xEE) {
            ex.handle_timeout(now + Duration::from_secs(10));
        }
    }
    let _ = ex.finish();
});
