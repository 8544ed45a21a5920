#![no_main]
//! The format rules and the kinds catalogue judge records HQ receives from vans: any bytes in any
//! field must give a verdict, never a panic. (Behind `journal_record`'s hash check, which random
//! input never passes, so they get their own target.)
use libfuzzer_sys::fuzz_target;
use mtu::journal::{kinds, rules};

fuzz_target!(|data: &[u8]| {
    // First byte picks the kind (a catalogued one or the text that follows), second the sequence.
    let (pick, seq, rest) = match data {
        [p, s, rest @ ..] => (*p as usize, u64::from(*s % 4), rest),
        _ => return,
    };
    let (kind, payload) = match kinds::CATALOGUE.get(pick) {
        Some(spec) => (spec.kind.to_owned(), rest),
        None => {
            let split = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
            (String::from_utf8_lossy(&rest[..split]).into_owned(), rest.get(split + 1..).unwrap_or(&[]))
        }
    };
    let _ = rules::check_record(seq, "MTU-FUZZ-1", &kind, payload);
    let _ = rules::check_appended(&kind, payload);
});
