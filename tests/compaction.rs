//! Compaction end to end (`shoal serve`, real clients, SIGKILL during cleaning).

use std::collections::BTreeMap;
use std::time::Duration;

use rand::{rngs::StdRng, Rng, SeedableRng};
use shoal_client::{Acks, Client, ClientConfig, FetchOptions};
use shoal_storage::batch::{self, ProducerFields, RecordSpec};
use shoal_testkit::{topic_name, Broker, BrokerOptions};

/// A node whose cleaner looks for work every 100 ms, paced at 1 GiB/s (unpaced, here).
fn compacting_broker() -> (Broker, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("shoal.toml");
    std::fs::write(
        &config,
        "log_cleaner_backoff_ms = 100\nlog_cleaner_io_bytes_per_second_max = 1073741824\n",
    )
    .unwrap();
    let broker = Broker::start_with(BrokerOptions {
        extra_args: vec!["--config".into(), config.display().to_string()],
        ..BrokerOptions::default()
    });
    (broker, dir)
}

const COMPACT_TOPIC: &[&str] = &[
    "cleanup.policy=compact",
    // Rolled by time; large enough for any client batch (else RECORD_LIST_TOO_LARGE).
    "segment.bytes=1048576",
    "segment.ms=300",
    "min.cleanable.dirty.ratio=0.01",
    "delete.retention.ms=1000",
];

fn client_round(lib: &str) {
    let (broker, _config) = compacting_broker();
    let topic = topic_name("compact");
    broker.create_topic_with(&topic, 1, COMPACT_TOPIC);
    let out = broker.python(
        "compaction_check.py",
        &["--topic", &topic, "--lib", lib, "--timeout", "90"],
    );
    assert!(out.contains("updates: 1000 records"), "{out}");
    assert!(out.contains("deletes: 900 records"), "{out}");
    if lib == "confluent" {
        assert!(
            out.contains("configs: cleanup.policy compact -> compact,delete"),
            "{out}"
        );
    }
}

#[test]
fn confluent_kafka_reads_the_latest_value_per_key_and_deletes_go() {
    client_round("confluent");
}

#[test]
fn kafka_python_reads_the_latest_value_per_key_and_deletes_go() {
    client_round("kafka-python");
}

/// Every record of partition 0 from offset 0 to the high watermark: (offset, key, value).
fn read_back(addr: &str, topic: &str) -> Vec<(i64, Vec<u8>, Option<Vec<u8>>)> {
    let mut client = Client::connect(ClientConfig {
        brokers: vec![addr.to_string()],
        socket_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    })
    .unwrap();
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let fetched = client
            .fetch(
                topic,
                &[(0, offset)],
                FetchOptions {
                    max_wait_ms: 0,
                    ..FetchOptions::default()
                },
            )
            .unwrap();
        let p = &fetched[0];
        assert_eq!(p.error_code, 0, "fetch at {offset}");
        if p.records.is_empty() {
            break;
        }
        for r in &p.records {
            assert!(r.offset >= offset && r.offset < p.high_watermark);
            out.push((
                r.offset,
                r.key.clone().unwrap().to_vec(),
                r.value.as_ref().map(|v| v.to_vec()),
            ));
            offset = r.offset + 1;
        }
    }
    out
}

/// Acceptance 2: SIGKILL the node at random moments while its cleaner runs, and abort it at
/// every step of the swap (`SHOAL_CLEANER_CRASH_AT`); after each restart every key's latest
/// acknowledged value is there, no record appears twice, and the log ends on a batch boundary
/// at the high watermark. `SHOAL_COMPACTION_SEED` reproduces a run.
#[test]
fn sigkill_during_cleaning_keeps_every_latest_value() {
    const ROUNDS: u64 = 24;
    const KEYS: u64 = 40;
    const STEPS: [&str; 4] = ["written", "manifest", "deleted", "renamed"];
    let seed: u64 = std::env::var("SHOAL_COMPACTION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0xC0FFEE);
    eprintln!("compaction crash test seed {seed} (SHOAL_COMPACTION_SEED)");
    let (mut broker, _config) = compacting_broker();
    let topic = topic_name("crash");
    broker.create_topic_with(
        &topic,
        1,
        &[
            "cleanup.policy=compact",
            // Segments roll by time (small ones, merged by the cleaner up to 64 KiB).
            "segment.bytes=65536",
            "segment.ms=100",
            "min.cleanable.dirty.ratio=0.01",
        ],
    );
    let mut latest: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    let (mut cleaned, mut finished) = (0, 0);
    let mut count = |broker: &Broker| {
        let log = broker.stderr_all();
        cleaned += log.matches("cleaned: CleanReport").count();
        finished += log.matches("finishing an interrupted cleaner swap").count();
    };
    for round in 0..ROUNDS {
        let mut rng = StdRng::seed_from_u64(seed.wrapping_add(round));
        let mut client = Client::connect(ClientConfig {
            brokers: vec![broker.addr()],
            socket_timeout: Duration::from_secs(10),
            ..ClientConfig::default()
        })
        .unwrap();
        for b in 0..rng.gen_range(5..20) {
            let mut pairs = Vec::new();
            for r in 0..10 {
                let key = format!("k{:03}", rng.gen_range(0..KEYS)).into_bytes();
                pairs.push((key, format!("r{round}-b{b}-{r}").into_bytes()));
            }
            let specs: Vec<RecordSpec<'_>> = pairs
                .iter()
                .enumerate()
                .map(|(i, (k, v))| RecordSpec {
                    timestamp_delta: i as i64,
                    key: Some(k),
                    value: Some(v),
                    headers: &[],
                })
                .collect();
            let batch = batch::build_batch(shoal_testkit::now_ms(), ProducerFields::NONE, &specs);
            client
                .produce(&topic, 0, batch.freeze(), Acks::All)
                .unwrap()
                .expect("acked");
            for (k, v) in pairs {
                latest.insert(k, v);
            }
        }
        if round % 3 == 2 {
            let step = STEPS[(round / 3) as usize % STEPS.len()];
            count(&broker);
            broker.kill();
            std::env::set_var("SHOAL_CLEANER_CRASH_AT", step);
            broker.restart();
            std::env::remove_var("SHOAL_CLEANER_CRASH_AT");
            let exited = broker.exited_within(Duration::from_secs(20));
            assert!(
                exited.is_some(),
                "round {round}: the cleaner never reached step {step}"
            );
        } else {
            std::thread::sleep(Duration::from_millis(rng.gen_range(0..800)));
        }
        count(&broker);
        broker.restart();
        let got = read_back(&broker.addr(), &topic);
        assert!(
            got.windows(2).all(|w| w[0].0 < w[1].0),
            "round {round}: a record twice or out of order"
        );
        let mut seen: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        for (_, k, v) in &got {
            seen.insert(k.clone(), v.clone().expect("no tombstones here"));
        }
        assert_eq!(
            seen, latest,
            "round {round} (seed {seed}): latest values differ"
        );
        // Whole batches up to the high watermark (stored_batches asserts progress to it).
        let batches = shoal_testkit::stored_batches(&broker.addr(), &topic, 1);
        let hw = shoal_testkit::high_watermarks(&broker.addr(), &topic, 1)[0];
        let last = batches.last().expect("batches").1;
        assert_eq!(
            last.base_offset + i64::from(last.last_offset_delta) + 1,
            hw,
            "round {round}"
        );
    }
    count(&broker);
    eprintln!("{cleaned} passes completed, {finished} interrupted swaps finished by recovery");
    assert!(cleaned >= 3, "the cleaner completed {cleaned} passes");
    assert!(
        finished >= 3,
        "recovery finished {finished} interrupted swaps"
    );
}
