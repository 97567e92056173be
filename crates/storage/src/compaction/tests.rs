//! Acceptance 1: the cleaner as a pure function over batches.

use super::*;
use crate::batch::{build_batch, set_base_offset, ProducerFields, RecordSpec};
use crate::producer::ProducerStateManager;

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// (key, value) of one record; None value = tombstone.
type Rec = (Option<String>, Option<String>);

fn codec_bits(codec: Compression) -> i16 {
    match codec {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// A stored batch at `base` holding `records` compressed with `codec`.
fn stored(
    base: i64,
    timestamp: i64,
    producer: ProducerFields,
    codec: Compression,
    records: &[Rec],
) -> Vec<u8> {
    let specs: Vec<RecordSpec<'_>> = records
        .iter()
        .enumerate()
        .map(|(i, (k, v))| RecordSpec {
            timestamp_delta: i as i64,
            key: k.as_deref().map(str::as_bytes),
            value: v.as_deref().map(str::as_bytes),
            headers: &[],
        })
        .collect();
    let mut plain = build_batch(timestamp, producer, &specs);
    set_base_offset(&mut plain, base);
    let header = BatchHeader::parse(&plain).unwrap();
    let body = codec::compress(codec, &plain[HEADER_BYTES..], codec::Framing::Xerial);
    let out = finish_batch(
        &header,
        &body,
        header.record_count,
        header.base_timestamp,
        header.attributes | codec_bits(codec),
    );
    batch::verify(&out).unwrap();
    out
}

/// Every record of a stored batch as (offset, timestamp, key, value).
fn contents(batch: &[u8]) -> Vec<(i64, i64, Rec)> {
    let decoded = DecodedBatch::decode(batch).unwrap();
    let h = decoded.header;
    let records = decoded.records().unwrap();
    records
        .iter()
        .map(|r| {
            let mut at = 0;
            let key = get_bytes(r.tail, &mut at).unwrap();
            let value = get_bytes(r.tail, &mut at).unwrap();
            let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
            (
                h.base_offset + i64::from(r.offset_delta),
                h.base_timestamp + r.timestamp_delta,
                (s(key), s(value)),
            )
        })
        .collect()
}

fn rec(k: &str, v: &str) -> Rec {
    (Some(k.into()), Some(v.into()))
}

/// A log of `rounds` batches; round r updates keys 0..keys with value "k-r".
fn updates(codec: Compression, keys: usize, rounds: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut base = 0;
    for r in 0..rounds {
        let records: Vec<Rec> = (0..keys)
            .map(|k| rec(&format!("key{k}"), &format!("{k}-{r}")))
            .collect();
        out.push(stored(
            base,
            1_000 + r as i64,
            ProducerFields::NONE,
            codec,
            &records,
        ));
        base += keys as i64;
    }
    out
}

fn map_of(batches: &[Vec<u8>]) -> OffsetMap {
    let mut map = OffsetMap::new();
    for b in batches {
        map.put_batch(b).unwrap().unwrap();
    }
    map
}

/// Cleans every batch; returns what remains (stored bytes).
fn clean_all(
    batches: &[Vec<u8>],
    map: &OffsetMap,
    now_ms: i64,
    producer_batches: &HashSet<(i64, i64)>,
) -> (Vec<Vec<u8>>, CleanStats) {
    let ctx = CleanContext {
        map,
        now_ms,
        delete_retention_ms: 100,
        producer_batches,
    };
    let mut stats = CleanStats::new();
    let mut out = Vec::new();
    for b in batches {
        match clean_batch(b, &ctx, &mut stats).unwrap() {
            Cleaned::Unchanged => out.push(b.clone()),
            Cleaned::Rewritten(new) => {
                batch::verify(&new).expect("a rewritten batch verifies");
                out.push(new)
            }
            Cleaned::Dropped => {}
        }
    }
    (out, stats)
}

#[test]
fn latest_value_per_key_survives_with_its_offset_in_every_codec() {
    for codec in CODECS {
        let log = updates(codec, 10, 5);
        let map = map_of(&log);
        assert_eq!(map.len(), 10);
        let (cleaned, stats) = clean_all(&log, &map, 0, &HashSet::new());
        assert_eq!(stats.records_kept, 10, "{codec:?}");
        assert_eq!(stats.records_dropped, 40, "{codec:?}");
        // Only the last round survives, unchanged (nothing in it was superseded).
        assert_eq!(cleaned, vec![log[4].clone()], "{codec:?}");
        let survivors = contents(&cleaned[0]);
        for (k, (offset, _, (key, value))) in survivors.iter().enumerate() {
            assert_eq!(*offset, 40 + k as i64);
            assert_eq!(key.as_deref(), Some(format!("key{k}").as_str()));
            assert_eq!(value.as_deref(), Some(format!("{k}-4").as_str()));
        }
    }
}

#[test]
fn partly_superseded_batches_keep_offsets_header_and_codec() {
    for codec in CODECS {
        // Batch 0: a=1 b=1 c=1 (offsets 0..2); batch 1: b=2 (offset 3).
        let b0 = stored(
            0,
            5_000,
            ProducerFields::NONE,
            codec,
            &[rec("a", "1"), rec("b", "1"), rec("c", "1")],
        );
        let b1 = stored(3, 6_000, ProducerFields::NONE, codec, &[rec("b", "2")]);
        let log = vec![b0.clone(), b1.clone()];
        let (cleaned, _) = clean_all(&log, &map_of(&log), 0, &HashSet::new());
        assert_eq!(cleaned.len(), 2);
        assert_eq!(cleaned[1], b1, "{codec:?}: the latest batch is untouched");
        let before = BatchHeader::parse(&b0).unwrap();
        let after = batch::verify(&cleaned[0]).unwrap();
        assert_eq!(after.base_offset, before.base_offset);
        assert_eq!(after.last_offset_delta, before.last_offset_delta);
        assert_eq!(after.record_count, 2);
        assert_eq!(after.compression().unwrap(), codec);
        assert_eq!(after.max_timestamp, before.max_timestamp);
        assert_eq!(after.base_timestamp, before.base_timestamp);
        assert_eq!(
            contents(&cleaned[0]),
            vec![(0, 5_000, rec("a", "1")), (2, 5_002, rec("c", "1"))],
            "{codec:?}"
        );
    }
}

#[test]
fn tombstones_stay_until_the_delete_horizon_then_go() {
    for codec in [Compression::None, Compression::Zstd] {
        let tombstone: Rec = (Some("a".into()), None);
        let log = vec![
            stored(
                0,
                1_000,
                ProducerFields::NONE,
                codec,
                &[rec("a", "1"), rec("b", "1")],
            ),
            stored(
                2,
                2_000,
                ProducerFields::NONE,
                codec,
                &[tombstone.clone(), rec("c", "1")],
            ),
        ];
        let map = map_of(&log);
        // First pass at t=10_000: the old "a" goes, the tombstone stays and gets its horizon
        // (now + delete.retention.ms 100); record timestamps are unchanged by the rebase.
        let (pass1, stats) = clean_all(&log, &map, 10_000, &HashSet::new());
        assert_eq!(stats.horizon_min_ms, 10_100);
        assert_eq!(contents(&pass1[0]), vec![(1, 1_001, rec("b", "1"))]);
        let h = BatchHeader::parse(&pass1[1]).unwrap();
        assert_ne!(h.attributes & ATTR_DELETE_HORIZON, 0, "horizon flag set");
        assert_eq!(h.base_timestamp, 10_100);
        assert_eq!(
            contents(&pass1[1]),
            vec![(2, 2_000, tombstone.clone()), (3, 2_001, rec("c", "1"))]
        );
        // Before the horizon the tombstone survives another pass unchanged.
        let (pass2, _) = clean_all(&pass1, &map_of(&pass1), 10_099, &HashSet::new());
        assert_eq!(pass2, pass1);
        // At the horizon it is removed; the rest keeps offsets and timestamps.
        let (pass3, stats) = clean_all(&pass2, &map_of(&pass2), 10_100, &HashSet::new());
        assert_eq!(stats.tombstones_dropped, 1);
        assert_eq!(contents(&pass3[1]), vec![(3, 2_001, rec("c", "1"))]);
        assert_eq!(BatchHeader::parse(&pass3[1]).unwrap().last_offset_delta, 1);
    }
}

#[test]
fn records_without_keys_are_dropped_and_refused() {
    let keyless: Rec = (None, Some("x".into()));
    let b = stored(
        0,
        0,
        ProducerFields::NONE,
        Compression::Gzip,
        &[keyless, rec("a", "1")],
    );
    assert_eq!(
        check_keys(&b),
        Err(BatchError::MissingKey { offset_delta: 0 })
    );
    let ok = stored(
        0,
        0,
        ProducerFields::NONE,
        Compression::Lz4,
        &[rec("a", "1")],
    );
    assert_eq!(check_keys(&ok), Ok(()));
    let log = vec![b];
    let (cleaned, stats) = clean_all(&log, &map_of(&log), 0, &HashSet::new());
    assert_eq!(stats.records_dropped, 1);
    assert_eq!(contents(&cleaned[0]), vec![(1, 1, rec("a", "1"))]);
}

#[test]
fn idempotent_producer_state_rebuilt_from_the_cleaned_log_is_the_original() {
    let pid = 7;
    let producer = |seq| ProducerFields {
        producer_id: pid,
        producer_epoch: 0,
        base_sequence: seq,
    };
    // The producer writes key "a" 8 times (one record per batch), then a plain producer
    // overwrites "a": every idempotent batch is emptied by the cleaner.
    let mut log = Vec::new();
    for i in 0..8 {
        log.push(stored(
            i,
            1_000 + i,
            producer(i as i32),
            Compression::Snappy,
            &[rec("a", &i.to_string())],
        ));
    }
    log.push(stored(
        8,
        2_000,
        ProducerFields::NONE,
        Compression::None,
        &[rec("a", "last")],
    ));
    let mut original = ProducerStateManager::new();
    for b in &log {
        original.record(&BatchHeader::parse(b).unwrap());
    }
    let remembered: HashSet<(i64, i64)> = original
        .get(pid)
        .unwrap()
        .batches
        .iter()
        .map(|b| (pid, b.first_offset))
        .collect();
    assert_eq!(remembered.len(), crate::producer::PRODUCER_BATCHES_MAX);
    let (cleaned, stats) = clean_all(&log, &map_of(&log), 0, &remembered);
    assert_eq!(stats.batches_emptied_kept, 5);
    assert_eq!(
        cleaned.len(),
        6,
        "5 empty producer batches + the latest record"
    );
    let mut rebuilt = ProducerStateManager::new();
    for b in &cleaned {
        let h = batch::verify(b).unwrap();
        if h.has_producer_id() {
            assert_eq!(h.record_count, 0);
            assert_eq!(h.compression().unwrap(), Compression::None);
        }
        rebuilt.record(&h);
    }
    assert_eq!(rebuilt, original);
    // The next batch in sequence is accepted, a retry of the last one is a duplicate.
    let next = stored(9, 3_000, producer(8), Compression::None, &[rec("a", "n")]);
    let retry = stored(0, 3_000, producer(7), Compression::None, &[rec("a", "7")]);
    let header = |b: &[u8]| BatchHeader::parse(b).unwrap();
    assert_eq!(
        rebuilt.check(&header(&next)).unwrap(),
        crate::producer::ProducerCheck::Append
    );
    assert!(matches!(
        rebuilt.check(&header(&retry)).unwrap(),
        crate::producer::ProducerCheck::Duplicate(b) if b.first_offset == 7
    ));
}

#[test]
fn control_batches_are_kept_as_they_are() {
    let mut b = stored(
        0,
        0,
        ProducerFields::NONE,
        Compression::None,
        &[rec("a", "1")],
    );
    let attributes = i16::from_be_bytes([b[ATTRIBUTES_AT], b[ATTRIBUTES_AT + 1]]) | 0x20;
    b[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = batch::compute_crc(&b);
    b[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    let later = stored(
        1,
        0,
        ProducerFields::NONE,
        Compression::None,
        &[rec("a", "2")],
    );
    let mut map = OffsetMap::new();
    map.put_batch(&later).unwrap().unwrap();
    let (cleaned, _) = clean_all(&[b.clone()], &map, 0, &HashSet::new());
    assert_eq!(cleaned, vec![b]);
}

#[test]
fn the_offset_map_refuses_keys_beyond_its_limits() {
    let mut map = OffsetMap::with_limits(2, 1 << 10);
    assert_eq!(map.put(b"a", 0), Ok(()));
    assert_eq!(map.put(b"b", 1), Ok(()));
    assert_eq!(map.put(b"a", 2), Ok(()), "a known key is updated");
    assert_eq!(map.put(b"c", 3), Err(MapFull));
    assert_eq!(map.get(b"a"), Some(2));
    let mut map = OffsetMap::with_limits(10, 3);
    assert_eq!(map.put(b"abc", 0), Ok(()));
    assert_eq!(map.put(b"d", 1), Err(MapFull));
}
