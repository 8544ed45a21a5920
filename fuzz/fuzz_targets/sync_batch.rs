#![no_main]
//! Upload batches come from vans over the network at HQ: reading any bytes as a zstd batch of
//! export lines must return an error or records, never panic, and never inflate past the bound.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mtu::sync::wire::decode_batch(data, 64 * 1024);
    // The same bytes as an uncompressed batch: a valid zstd frame around them.
    if let Ok(frame) = zstd::bulk::compress(data, 1) {
        let _ = mtu::sync::wire::decode_batch(&frame, 64 * 1024);
    }
});
