#![no_main]
//! HQ's readers of what a van sends must refuse, never panic: a zstd body, the JSON Lines batch
//! inside it (records in the export format).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = van_hq::ingest::parse_batch(data);
    if let Ok(inner) = van_hq::ingest::decompress(data) {
        let _ = van_hq::ingest::parse_batch(&inner);
    }
});
