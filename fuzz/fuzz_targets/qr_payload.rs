#![no_main]
//! The QR payload reader must return an error, never panic, on any text (a scanned QR is untrusted).
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mtu::render::qr::QrPayload::parse(text);
        let _ = mtu::render::qr::base45_decode(text);
    }
    // Also feed the bytes as a well-formed base45 body, to reach the binary layout parser.
    let wrapped = format!("{}{}", mtu::render::qr::PREFIX, mtu::render::qr::base45_encode(data));
    let _ = mtu::render::qr::QrPayload::parse(&wrapped);
});
