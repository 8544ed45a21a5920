#![no_main]
//! The Mercury response decoder and its parsers must never panic, whatever arrives on the line.
use libfuzzer_sys::fuzz_target;
use mtu::devices::mercury::codec::{ResponseDecoder, VersionInfo, parse_read_data, parse_tag_count};

fuzz_target!(|data: &[u8]| {
    let mut dec = ResponseDecoder::new();
    // Feed in two uneven pieces to exercise partial frames.
    let cut = data.first().map(|b| usize::from(*b) % (data.len() + 1)).unwrap_or(0);
    for piece in [&data[..cut], &data[cut..]] {
        dec.push(piece);
        while let Some(r) = dec.next_frame() {
            let _ = VersionInfo::parse(&r.data);
            let _ = parse_tag_count(&r.data);
            let _ = parse_read_data(&r.data);
        }
    }
});
