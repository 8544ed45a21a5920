#![no_main]
//! The `^HV` tag data line parser must return an error, never panic, on any bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mtu::devices::zpl::status::take_tag_lines(data);
});
