#![no_main]
//! The fee schedule and block list parsers must return an error, never panic, on any bytes; a
//! schedule that loads must quote its own services without panicking.
use libfuzzer_sys::fuzz_target;
use mtu::office::model::ServiceKind;
use mtu::office::schedule::{BlockList, QuoteRequest, Schedule};

fuzz_target!(|data: &[u8]| {
    let _ = BlockList::from_json(data);
    if let Ok(schedule) = Schedule::from_json(data) {
        for service in ServiceKind::ALL {
            let req = QuoteRequest { service, category: None, grade: None, replacement: None, supplies: Vec::new() };
            let _ = schedule.quote(&req);
        }
    }
});
