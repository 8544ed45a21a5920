#![no_main]
//! The `~HS` host status parser must return an error, never panic, on any bytes.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mtu::devices::zpl::status::parse_host_status_reply(data);
    let _ = mtu::devices::zpl::status::take_frames(data, 3);
    let _ = mtu::devices::zpl::status::parse_host_identification(data);
});
