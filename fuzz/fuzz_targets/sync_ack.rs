#![no_main]
//! HQ's answers reach the van over a mobile link: an acknowledgement or error body of any bytes
//! (and any status) must give an error or a verified acknowledgement, never a panic, and the
//! uplink machine fed that answer must stay usable.
use libfuzzer_sys::fuzz_target;
use mtu::journal::Record;
use mtu::sync::machine::{JournalView, Response, Uplink, UplinkConfig};
use mtu::sync::wire;

/// A journal of five records whose hashes are their seq repeated.
struct Five;

impl JournalView for Five {
    fn head(&self) -> Result<(u64, [u8; 32]), String> {
        Ok((5, [5; 32]))
    }
    fn hash_at(&self, seq: u64) -> Result<Option<[u8; 32]>, String> {
        Ok((1..=5).contains(&seq).then_some([seq as u8; 32]))
    }
    fn read(&self, _from: u64, _max: usize) -> Result<Vec<Record>, String> {
        Err("no records in the fuzz journal".into())
    }
}

fuzz_target!(|data: &[u8]| {
    let hq = ed25519_dalek::SigningKey::from_bytes(&[77u8; 32]).verifying_key();
    let _ = wire::verify_ack(data, &hq);
    let _ = wire::parse_error(data);
    let now = std::time::Instant::now();
    let mut up = Uplink::new(UplinkConfig::default(), "MTU-F-1", hq, None, now, 1);
    if let Some(req) = up.poll_request(now, 0, &Five) {
        let status = data.first().map_or(200, |b| if b % 2 == 0 { 200 } else { 400 + u16::from(*b) });
        up.handle_response(now, req.id, &Response { status, body: data.to_vec() }, &Five);
        while up.poll_event().is_some() {}
        let _ = up.poll_timeout();
        let _ = up.status();
    }
});
