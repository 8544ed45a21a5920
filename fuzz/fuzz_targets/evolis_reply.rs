#![no_main]
//! The Evolis reply parser must return an error, never panic, on any bytes.
use libfuzzer_sys::fuzz_target;
use mtu::devices::evolis::codec::{ReplyReader, parse_count, parse_reply, parse_volts};

fuzz_target!(|data: &[u8]| {
    let _ = parse_reply(data);
    let mut reader = ReplyReader::new();
    for chunk in data.chunks(5) {
        reader.push(chunk);
        while reader.next_reply().is_some() {}
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_volts(text);
        let _ = parse_count(text);
    }
});
