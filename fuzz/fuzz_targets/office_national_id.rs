#![no_main]
//! National ID, plate, VIN, engine number and phone checks must answer, never panic, on any text.
use libfuzzer_sys::fuzz_target;
use mtu::office::validate;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let today = mtu::office::model::Date::new(2026, 12, 1).expect("a real date");
        let _ = validate::NationalId::parse(text, today);
        let (letters, digits) = text.split_at(text.char_indices().nth(text.chars().count() / 2).map_or(0, |(i, _)| i));
        let _ = validate::PlateRules::default().parse(letters, digits);
        let _ = validate::parse_vin(text);
        let _ = validate::parse_engine_no(text);
        let _ = validate::parse_phone(text);
        let _ = validate::normalise_name_ar(text);
    }
});
