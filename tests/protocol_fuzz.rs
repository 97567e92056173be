//! Garbage never panics (or aborts) the decoders.

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use proptest::prelude::*;
use shoal_protocol::records::{decode_record_set, validate_produce_batch, Batches};
use shoal_protocol::request::decode_request;
use shoal_protocol::versions::{served, ADVERTISED};
use shoal_testkit::protocol::*;

fn served_pairs() -> Vec<(ApiKey, i16)> {
    ADVERTISED
        .iter()
        .flat_map(|r| {
            let (min, max) = served(r.api_key).unwrap();
            (min..=max).map(move |v| (r.api_key, v))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_frames_never_panic(frame in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Err(e) = decode_request(Bytes::from(frame)) {
            let _ = e.reply();
        }
    }

    #[test]
    fn random_bodies_of_served_requests_never_panic(
        index in any::<prop::sample::Index>(),
        body in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let pairs = served_pairs();
        let (api, v) = pairs[index.index(pairs.len())];
        if let Err(e) = decode_request(raw_frame(api, v, &body)) {
            let _ = e.reply();
        }
    }

    #[test]
    fn mutated_valid_requests_never_panic(
        index in any::<prop::sample::Index>(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let pairs = served_pairs();
        let (api, v) = pairs[index.index(pairs.len())];
        let (frame, _) = frame(&sample(api, v), v, 1);
        let mut bytes = frame.to_vec();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if let Err(e) = decode_request(Bytes::from(bytes)) {
            let _ = e.reply();
        }
    }

    #[test]
    fn random_record_sets_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let data = Bytes::from(data);
        let _ = decode_record_set(data.clone());
        let _ = validate_produce_batch(&data, usize::MAX);
        for batch in Batches::new(data).flatten() {
            let _ = batch;
        }
    }

    #[test]
    fn mutated_batches_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = batch().to_vec();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        // CRC checks catch most flips; decoding must fail cleanly either way.
        let _ = decode_record_set(Bytes::from(bytes));
    }
}
