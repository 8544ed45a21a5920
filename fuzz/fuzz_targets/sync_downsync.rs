#![no_main]
//! Down-sync answers reach the van over a mobile link and bundle files reach HQ from operators:
//! any bytes given to the envelope checks (bundle pages, dossier answers), the dossier query
//! reader, or HQ's publish check must give an error or a verified value, never a panic.
use libfuzzer_sys::fuzz_target;
use mtu::sync::wire::bundle::{DossierQuery, verify_bundles, verify_dossier};

fuzz_target!(|data: &[u8]| {
    let hq = ed25519_dalek::SigningKey::from_bytes(&[77u8; 32]).verifying_key();
    let after = data.first().map_or(0, |b| u64::from(*b));
    let _ = verify_bundles(data, &hq, "MTU-F-1", after);
    let text = String::from_utf8_lossy(data);
    let _ = verify_dossier(data, &hq, "MTU-F-1", &text, 1_796_119_200_000_000);
    if let Ok(q) = DossierQuery::parse(&text) {
        // What parses is what the van would send again.
        assert_eq!(DossierQuery::parse(&q.to_query()).ok(), Some(q));
    }
    let _ = van_hq::downsync::check_bundle(data, Some("MTU-F-1"));
    let _ = van_hq::downsync::check_bundle(data, None);
});
