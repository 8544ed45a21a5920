//! Whatever bytes a van (or anyone) sends, HQ answers with a refusal, never a panic.

mod common;

use common::{NOW, Van, hq, lines};
use proptest::prelude::*;
use van_hq::ingest::{self, AuthHeaders};

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bodies_are_refused_not_panicking(body in proptest::collection::vec(any::<u8>(), 0..2048),
            text in ".{0,600}") {
        let _ = ingest::decompress(&body);
        let _ = ingest::parse_batch(&body);
        let _ = ingest::parse_batch(text.as_bytes());
        let _ = ingest::decompress(&zstd::encode_all(body.as_slice(), 1).unwrap());
    }

}

proptest! {
    // Each case opens a fresh database (fsyncs): fewer cases.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_uploads_checkpoints_and_headers_never_panic(text in ".{0,400}", cut in 0usize..4000,
            van in ".{0,40}", time in ".{0,40}", nonce in "[0-9a-fA-F]{0,40}", sig in "[0-9a-f]{0,130}") {
        let hq = hq();
        let mut v = Van::new("V1", 1);
        v.append_n(2);
        ingest::enroll(&hq.store, &v.id, &v.public_hex(), NOW).unwrap();
        let mut batch = lines(&v.records);
        batch.truncate(cut.min(batch.len()));
        batch.extend_from_slice(text.as_bytes());
        let _ = ingest::ingest(&hq.store, &hq.key, "V1", &batch, NOW);
        let _ = ingest::checkpoint(&hq.store, &hq.key, "V1", text.as_bytes(), NOW);
        let h = AuthHeaders { van: Some(&van), time: Some(&time), nonce: Some(&nonce), signature: Some(&sig) };
        let _ = ingest::authenticate(&hq.store, &h, "POST", "/v1/records", text.as_bytes(), NOW);
        let h = AuthHeaders { van: Some("V1"), time: Some(&time), nonce: Some(&nonce), signature: Some(&sig) };
        prop_assert!(ingest::authenticate(&hq.store, &h, "POST", "/v1/records", b"", NOW).is_err());
    }
}
