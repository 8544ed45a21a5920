#![no_main]
//! The ZVT frame decoder and message parsers must never panic, whatever the line carries.
use libfuzzer_sys::fuzz_target;
use mtu::devices::zvt::codec::{Apdu, EnquiryCompletion, FrameDecoder, LineEvent, StatusInfo, TerminalMsg};

fuzz_target!(|data: &[u8]| {
    let mut d = FrameDecoder::new();
    let mut ev = Vec::new();
    d.push(data, &mut ev);
    for e in ev {
        if let LineEvent::Frame(a) = e {
            let _ = TerminalMsg::from_apdu(&a);
        }
    }
    let _ = Apdu::decode(data);
    let _ = StatusInfo::parse(data);
    let _ = EnquiryCompletion::parse(data);
});
