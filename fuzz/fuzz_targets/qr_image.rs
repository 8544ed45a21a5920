#![no_main]
//! `vanctl verify-qr --image` reads an untrusted photo: any bytes give an error or a text, never a
//! panic. PNG and JPEG signatures are put in front of the input to reach both decoders.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mtu::render::scan::qr_text_from_image(data);
    for head in [&b"\x89PNG\r\n\x1a\n"[..], &[0xFF, 0xD8, 0xFF][..]] {
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(data);
        let _ = mtu::render::scan::qr_text_from_image(&bytes);
    }
});
