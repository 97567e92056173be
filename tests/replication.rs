//! Replication with real `shoal` processes and librdkafka (issue 11): a topic of RF=3 and
//! `min.insync.replicas=2` keeps every acknowledged record through SIGKILL, restarts, SIGSTOP,
//! network partitions and controlled shutdowns. Every check asks: was any acknowledged
//! record lost or duplicated?

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

use shoal_testkit::*;

/// One cluster test at a time: each runs several brokers on the machine's two cores.
fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Partition states as a node's Metadata reports them: (leader, replicas, isr).
fn partitions_of(addr: &str, topic: &str) -> Vec<(i32, Vec<i32>, Vec<i32>)> {
    let (t, _) = topic_metadata(addr, topic);
    let mut parts: Vec<_> = t
        .partitions
        .iter()
        .map(|p| {
            let ids = |v: &Vec<kafka_protocol::messages::BrokerId>| -> Vec<i32> {
                let mut ids: Vec<i32> = v.iter().map(|b| b.0).collect();
                ids.sort();
                ids
            };
            (
                p.partition_index,
                (
                    p.leader_id.0,
                    p.replica_nodes.iter().map(|b| b.0).collect(),
                    ids(&p.isr_nodes),
                ),
            )
        })
        .collect();
    parts.sort_by_key(|(i, _)| *i);
    parts.into_iter().map(|(_, s)| s).collect()
}

fn create_replicated(node: &Broker, topic: &str, partitions: i32, min_isr: i32) {
    node.cli(
        &[
            "topic",
            "create",
            topic,
            "-p",
            &partitions.to_string(),
            "-r",
            "3",
            "-c",
            &format!("min.insync.replicas={min_isr}"),
        ],
        None,
    );
}

/// A new RF=3 topic, once every partition has its preferred leader and a full ISR; returns
/// its name and node 1's address.
fn replicated_topic(
    cluster: &mut Cluster,
    prefix: &str,
    partitions: i32,
    min_isr: i32,
) -> (String, String) {
    let topic = topic_name(prefix);
    create_replicated(cluster.node(1), &topic, partitions, min_isr);
    let addr1 = cluster.node(1).addr();
    wait_until(Duration::from_secs(20), "topic settled", || {
        settled(&partitions_of(&addr1, &topic))
    });
    (topic, addr1)
}

/// A config file for the test's nodes (written into the first node's dir).
fn config_file(dir: &std::path::Path, lines: &str) -> std::path::PathBuf {
    let path = dir.join("replication-test.toml");
    std::fs::write(&path, lines).expect("write config");
    path
}

/// Every delivery, with when its report arrived.
#[derive(Default)]
struct Acks {
    /// value (the record's number) → (partition, offset, when)
    ok: Mutex<BTreeMap<u64, (i32, i64, Instant)>>,
    failed: Mutex<Vec<(u64, String)>>,
}

#[derive(Clone, Default)]
struct AckContext(Arc<Acks>);
impl ClientContext for AckContext {}
impl ProducerContext for AckContext {
    type DeliveryOpaque = Box<u64>;
    fn delivery(&self, result: &DeliveryResult<'_>, n: Box<u64>) {
        match result {
            Ok(m) => {
                let when = Instant::now();
                let acked = (m.partition(), m.offset(), when);
                self.0.ok.lock().unwrap().insert(*n, acked);
            }
            Err((e, _)) => self.0.failed.lock().unwrap().push((*n, e.to_string())),
        }
    }
}

/// An idempotent acks=all librdkafka producer writing numbered records at about `rate` per
/// second until `stop`; returns the number of records it sent.
fn spawn_producer(
    bootstrap: String,
    topic: String,
    rate: u64,
    acks: Arc<Acks>,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let producer: BaseProducer<AckContext> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "120000")
            .set("partitioner", "murmur2_random")
            .create_with_context(AckContext(acks))
            .expect("producer");
        let started = Instant::now();
        let mut n = 0u64;
        while !stop.load(Ordering::SeqCst) {
            let due = started.elapsed().as_millis() as u64 * rate / 1000;
            while n < due {
                let key = n.to_string();
                let record = BaseRecord::with_opaque_to(&topic, Box::new(n))
                    .key(&key)
                    .payload(&key);
                match producer.send(record) {
                    Ok(()) => n += 1,
                    Err((e, _)) => {
                        eprintln!("produce queue: {e}");
                        break;
                    }
                }
            }
            producer.poll(Duration::from_millis(5));
        }
        let deadline = Instant::now() + Duration::from_secs(150);
        while producer.in_flight_count() > 0 && Instant::now() < deadline {
            producer.poll(Duration::from_millis(50));
        }
        assert_eq!(producer.in_flight_count(), 0, "deliveries still pending");
        n
    })
}

fn consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "500")
        .set("session.timeout.ms", "10000")
        .create()
        .expect("consumer")
}

/// A consumer group member reading into `seen` (value → times read) until `stop`.
fn spawn_group_reader(
    bootstrap: String,
    topic: String,
    seen: Arc<Mutex<BTreeMap<u64, usize>>>,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<()> {
    thread::spawn(move || {
        let c = consumer(&bootstrap, &format!("{topic}-readers"));
        c.subscribe(&[&topic]).expect("subscribe");
        while !stop.load(Ordering::SeqCst) {
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let v = std::str::from_utf8(m.payload().unwrap_or_default())
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .expect("numbered record");
                    *seen.lock().unwrap().entry(v).or_insert(0) += 1;
                }
                Some(Err(e)) => eprintln!("group reader: {e}"),
                None => {}
            }
        }
    })
}

/// Reads `topic` from the beginning until every acknowledged record is in, and checks the
/// log: each acknowledged record once, where its ack said, in order per partition. Returns the
/// number of records read.
fn check_log(bootstrap: &str, topic: &str, partitions: i32, acks: &Acks) -> usize {
    let acked = acks.ok.lock().unwrap().clone();
    let c = consumer(bootstrap, &format!("{topic}-check-{}", now_ms()));
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut read: BTreeMap<u64, Vec<(i32, i64)>> = BTreeMap::new();
    let mut last: BTreeMap<i32, (i64, u64)> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut missing = acked.len();
    while missing > 0 {
        assert!(
            Instant::now() < deadline,
            "{missing} acknowledged records never read back"
        );
        let Some(Ok(m)) = c.poll(Duration::from_millis(200)) else {
            continue;
        };
        let v: u64 = std::str::from_utf8(m.payload().unwrap_or_default())
            .unwrap()
            .parse()
            .unwrap();
        let (p, o) = (m.partition(), m.offset());
        if let Some(&(po, pv)) = last.get(&p) {
            assert!(o > po, "partition {p}: offset {o} after {po}");
            assert!(
                v > pv,
                "partition {p}: record {v} at {o} after record {pv} at {po}: out of order"
            );
        }
        last.insert(p, (o, v));
        let copies = read.entry(v).or_default();
        copies.push((p, o));
        assert_eq!(
            copies.len(),
            1,
            "record {v} stored twice: {copies:?} (idempotence broken)"
        );
        if let Some(&(ap, ao, _)) = acked.get(&v) {
            assert_eq!((p, o), (ap, ao), "record {v} not where its ack said");
            missing -= 1;
        }
    }
    read.len()
}

fn leaders_of(states: &[(i32, Vec<i32>, Vec<i32>)]) -> BTreeMap<i32, usize> {
    let mut counts = BTreeMap::new();
    for (leader, _, _) in states {
        *counts.entry(*leader).or_insert(0) += 1;
    }
    counts
}

/// Every partition led by its first replica with the whole replica set in sync.
fn settled(states: &[(i32, Vec<i32>, Vec<i32>)]) -> bool {
    states.iter().all(|(leader, replicas, isr)| {
        let mut all = replicas.clone();
        all.sort();
        replicas.first() == Some(leader) && &all == isr
    })
}

/// When the first record acknowledged after `since` on each of `partitions` was acknowledged.
fn stalls(acks: &Acks, since: Instant, partitions: &[i32]) -> BTreeMap<i32, Option<Duration>> {
    let ok = acks.ok.lock().unwrap();
    partitions
        .iter()
        .map(|&p| {
            let first = ok
                .values()
                .filter(|(part, _, when)| *part == p && *when > since)
                .map(|(_, _, when)| *when - since)
                .min();
            (p, first)
        })
        .collect()
}

#[test]
fn acks_all_survives_sigkill_restart_and_sigstop_with_nothing_lost_or_doubled() {
    let _serial = serial();
    const PARTITIONS: i32 = 6;
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), "leader_imbalance_check_interval_ms = 2000\n");
    let options = BrokerOptions {
        extra_args: vec!["--config".into(), config.display().to_string()],
        ..BrokerOptions::default()
    };
    let mut cluster = Cluster::start(3, options);
    let (topic, addr1) = replicated_topic(&mut cluster, "chaos", PARTITIONS, 2);

    let acks = Arc::new(Acks::default());
    let stop_producing = Arc::new(AtomicBool::new(false));
    let stop_reading = Arc::new(AtomicBool::new(false));
    let bootstrap = cluster.bootstrap();
    let producer = spawn_producer(
        bootstrap.clone(),
        topic.clone(),
        2000,
        acks.clone(),
        stop_producing.clone(),
    );
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let reader = spawn_group_reader(
        bootstrap.clone(),
        topic.clone(),
        seen.clone(),
        stop_reading.clone(),
    );
    thread::sleep(Duration::from_secs(3));

    // SIGKILL the node leading the most partitions.
    let states = partitions_of(&addr1, &topic);
    let (&victim, _) = leaders_of(&states).iter().max_by_key(|(_, n)| **n).unwrap();
    let victim = victim as usize;
    let led: Vec<i32> = (0..PARTITIONS)
        .filter(|&p| states[p as usize].0 == victim as i32)
        .collect();
    let killed_at = Instant::now();
    cluster.node(victim).kill();
    let survivor = if victim == 1 { 2 } else { 1 };
    let survivor_addr = cluster.node(survivor).addr();
    wait_until(
        Duration::from_secs(30),
        "every partition led by a live node",
        || {
            partitions_of(&survivor_addr, &topic)
                .iter()
                .all(|(l, _, _)| *l > 0 && *l != victim as i32)
        },
    );
    let new_leaders_at = Instant::now();
    let described = cluster
        .node(survivor)
        .cli(&["topic", "describe", &topic], None);
    assert!(
        described.contains("UNDER-REPLICATED"),
        "describe does not flag the partitions missing node {victim}:\n{described}"
    );
    wait_until(
        Duration::from_secs(30),
        "acknowledgements on every partition the victim led",
        || stalls(&acks, killed_at, &led).values().all(|s| s.is_some()),
    );
    let kill_stalls = stalls(&acks, killed_at, &led);
    let elected_after = new_leaders_at.duration_since(killed_at);
    thread::sleep(Duration::from_secs(2));
    cluster.node(victim).restart();
    wait_until(
        Duration::from_secs(60),
        "the restarted node back in every ISR and leaders spread again",
        || settled(&partitions_of(&survivor_addr, &topic)),
    );

    // SIGSTOP another node for longer than the broker session, then SIGCONT it.
    let paused = (1..=3).find(|&n| n != victim).unwrap();
    let other = (1..=3).find(|&n| n != paused).unwrap();
    let other_addr = cluster.node(other).addr();
    let paused_led: Vec<i32> = partitions_of(&other_addr, &topic)
        .iter()
        .enumerate()
        .filter(|(_, (l, _, _))| *l == paused as i32)
        .map(|(p, _)| p as i32)
        .collect();
    let paused_at = Instant::now();
    cluster.node(paused).pause();
    thread::sleep(Duration::from_millis(4000));
    // Whatever the paused node acknowledged after its leaderships moved would be a lost
    // write waiting to happen; check_log below finds any such record missing.
    cluster.node(paused).resume();
    wait_until(
        Duration::from_secs(60),
        "the paused node back in every ISR and leaders spread again",
        || settled(&partitions_of(&other_addr, &topic)),
    );
    let pause_stalls = stalls(&acks, paused_at, &paused_led);
    thread::sleep(Duration::from_secs(2));
    stop_producing.store(true, Ordering::SeqCst);
    let sent = producer.join().expect("producer thread");
    let acked = acks.ok.lock().unwrap().len();
    let failed = acks.failed.lock().unwrap().clone();
    eprintln!(
        "sent {sent}, acknowledged {acked}, failed {} (first {:?})",
        failed.len(),
        failed.first()
    );
    eprintln!(
        "SIGKILL of node {victim} (led {led:?}): new leaders seen after {elected_after:?}, first ack after the kill {kill_stalls:?}"
    );
    eprintln!(
        "SIGSTOP of node {paused} (led {paused_led:?}): first ack after the pause {pause_stalls:?}"
    );
    assert!(
        acked as u64 + failed.len() as u64 == sent,
        "every record reported"
    );
    assert!(acked > 10_000, "only {acked} records acknowledged");

    let stored = check_log(&bootstrap, &topic, PARTITIONS, &acks);
    eprintln!("log holds {stored} records, every acknowledged one exactly once");
    // The group reads everything acknowledged (at least once: a rebalance may re-deliver).
    let ok = acks.ok.lock().unwrap().clone();
    let unread = || -> Vec<u64> {
        let seen = seen.lock().unwrap();
        ok.keys()
            .filter(|v| !seen.contains_key(v))
            .copied()
            .collect()
    };
    wait_for(
        "the group to read every acknowledged record",
        Duration::from_secs(90),
        || {
            let left = unread();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "{} unread, e.g. {:?}",
                    left.len(),
                    &left[..left.len().min(5)]
                ))
            }
        },
    );
    stop_reading.store(true, Ordering::SeqCst);
    reader.join().expect("reader thread");
    let seen = seen.lock().unwrap();
    let again = seen.values().filter(|&&n| n > 1).count();
    eprintln!(
        "group read {} distinct records; {again} delivered more than once (consumer side, after rebalances)",
        seen.len()
    );
}

fn record(n: u64) -> kafka_protocol::records::Record {
    let text = n.to_string();
    raw::record(Some(text.as_bytes()), text.as_bytes(), now_ms())
}

/// The replicas of partition 0 and the nodes outside it.
fn replicas_and_others(addr: &str, topic: &str, nodes: usize) -> (Vec<i32>, Vec<i32>) {
    let (_, replicas, _) = partitions_of(addr, topic)[0].clone();
    let others = (1..=nodes as i32)
        .filter(|n| !replicas.contains(n))
        .collect();
    (replicas, others)
}

#[test]
fn fewer_in_sync_replicas_than_min_insync_refuses_acks_all_never_silently() {
    let _serial = serial();
    let options = BrokerOptions {
        cores: 1,
        ..BrokerOptions::default()
    };
    // Five nodes: two of a partition's three replicas down leave a metadata quorum.
    let mut cluster = Cluster::start(5, options.clone());
    let (topic, addr1) = replicated_topic(&mut cluster, "minisr", 1, 2);
    let (replicas, others) = replicas_and_others(&addr1, &topic, 5);
    let watcher = cluster.node(others[0] as usize).addr();
    let (down, up) = (&replicas[..2], replicas[2]);
    for &n in down {
        cluster.node(n as usize).kill();
    }
    wait_until(
        Duration::from_secs(30),
        "the last live replica leading with an ISR of one",
        || {
            partitions_of(&watcher, &topic)[0].0 == up
                && partitions_of(&watcher, &topic)[0].2 == vec![up]
        },
    );
    let mut conn = raw::RawConn::connect(&cluster.node(up as usize).addr());
    let (code, _) = conn.produce_acks(&topic, 0, &[record(1)], -1, 5_000);
    assert_eq!(
        code, 19,
        "acks=all with ISR 1 < min.insync.replicas 2: NOT_ENOUGH_REPLICAS"
    );
    let (code, offset) = conn.produce_acks(&topic, 0, &[record(2)], 1, 5_000);
    assert_eq!(code, 0, "acks=1 goes through on the leader");
    assert!(offset >= 0);
    for &n in down {
        cluster.node(n as usize).restart();
    }
    wait_until(Duration::from_secs(60), "the ISR full again", || {
        settled(&partitions_of(&watcher, &topic))
    });
    let leader = partitions_of(&watcher, &topic)[0].0;
    let mut conn = raw::RawConn::connect(&cluster.node(leader as usize).addr());
    let (code, _) = conn.produce_acks(&topic, 0, &[record(3)], -1, 10_000);
    assert_eq!(code, 0, "acks=all works again after the restarts");
    drop(cluster);

    // Three nodes, two down: no metadata quorum either. acks=all must fail, not succeed.
    let mut cluster = Cluster::start(3, options);
    let (topic, addr1) = replicated_topic(&mut cluster, "noquorum", 1, 2);
    let leader = partitions_of(&addr1, &topic)[0].0 as usize;
    let followers: Vec<usize> = (1..=3).filter(|&n| n != leader).collect();
    for &n in &followers {
        cluster.node(n).kill();
    }
    let mut conn = raw::RawConn::connect(&cluster.node(leader).addr());
    let started = Instant::now();
    let (code, _) = conn.produce_acks(&topic, 0, &[record(4)], -1, 3_000);
    assert_ne!(code, 0, "acks=all without its followers must not succeed");
    eprintln!(
        "acks=all with both followers down: error {code} after {} ms",
        started.elapsed().as_millis()
    );
    for &n in &followers {
        cluster.node(n).restart();
    }
    let addr = cluster.node(leader).addr();
    wait_until(Duration::from_secs(60), "the ISR full again", || {
        settled(&partitions_of(&addr, &topic))
    });
    let leader = partitions_of(&addr, &topic)[0].0 as usize;
    let mut conn = raw::RawConn::connect(&cluster.node(leader).addr());
    let (code, _) = conn.produce_acks(&topic, 0, &[record(5)], -1, 10_000);
    assert_eq!(code, 0, "acks=all works again after the restarts");
}

/// The segment files of partition `p` on a node, concatenated (a replica's log bytes).
fn log_bytes(node: &Broker, topic: &str, p: i32) -> Vec<u8> {
    let dir = node.data_dir().join(format!("{topic}-{p}"));
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect()
}

#[test]
fn an_isolated_leader_acknowledges_nothing_and_truncates_after_healing() {
    let _serial = serial();
    let mut cluster = Cluster::start_with(3, BrokerOptions::default(), true);
    let (topic, addr1) = replicated_topic(&mut cluster, "isolated", 1, 2);
    let leader = partitions_of(&addr1, &topic)[0].0 as usize;
    let majority: Vec<usize> = (1..=3).filter(|&n| n != leader).collect();
    let leader_addr = cluster.node(leader).addr();
    let mut conn = raw::RawConn::connect(&leader_addr);
    let mut acked = Vec::new();
    for n in 0..50u64 {
        let (code, offset) = conn.produce_acks(&topic, 0, &[record(n)], -1, 5_000);
        assert_eq!(code, 0, "before the cut");
        acked.push((n, offset));
    }
    cluster.isolate(leader, true);
    let cut_at = Instant::now();
    // The proxies notice a cut within their 50 ms read timeout; what crossed before then was
    // replicated, and acknowledging it is right.
    thread::sleep(Duration::from_millis(300));
    // The isolated leader is still reachable by clients: nothing it takes may be acknowledged.
    let mut refused = 0;
    for n in 50..60u64 {
        let (code, offset) = conn.produce_acks(&topic, 0, &[record(n)], -1, 200);
        if code == 0 {
            acked.push((n, offset));
        } else {
            refused += 1;
        }
    }
    assert_eq!(
        refused, 10,
        "the isolated leader acknowledged acks=all writes: {acked:?}"
    );
    let watcher = cluster.node(majority[0]).addr();
    let new_leader = wait_for(
        "a new leader in the majority",
        Duration::from_secs(30),
        || match partitions_of(&watcher, &topic)[0].0 {
            l if l > 0 && l as usize != leader => Ok(l as usize),
            l => Err(format!("leader {l}")),
        },
    );
    eprintln!(
        "new leader {new_leader} seen {} ms after the cut (after ten refused 200 ms produces)",
        cut_at.elapsed().as_millis()
    );
    let mut conn = raw::RawConn::connect(&cluster.node(new_leader).addr());
    for n in 60..100u64 {
        let (code, offset) = conn.produce_acks(&topic, 0, &[record(n)], -1, 5_000);
        assert_eq!(code, 0, "the majority serves acks=all");
        acked.push((n, offset));
    }
    cluster.isolate(leader, false);
    wait_until(
        Duration::from_secs(60),
        "the old leader back in the ISR",
        || partitions_of(&watcher, &topic)[0].2.len() == 3,
    );
    // Its divergent tail (the ten refused writes) is gone: the three logs are the same bytes.
    wait_until(
        Duration::from_secs(30),
        "identical logs on all replicas",
        || {
            let logs: Vec<Vec<u8>> = (1..=3)
                .map(|n| log_bytes(cluster.node(n), &topic, 0))
                .collect();
            logs[0] == logs[1] && logs[1] == logs[2]
        },
    );
    if std::env::var("SHOAL_TEST_DUMP").is_ok() {
        for n in 1..=3 {
            eprintln!("=== node {n}\n{}", cluster.node(n).stderr());
        }
    }
    let stderr = cluster.node(leader).stderr_all();
    assert!(
        stderr.contains("truncating to"),
        "the old leader never truncated:\n{}",
        tail(stderr.as_bytes())
    );
    let leader_now = partitions_of(&watcher, &topic)[0].0 as usize;
    let records = raw::RawConn::connect(&cluster.node(leader_now).addr()).fetch_all(&topic, 0, 0);
    let stored: Vec<(u64, i64)> = records
        .iter()
        .map(|r| {
            let v = std::str::from_utf8(r.value.as_deref().unwrap()).unwrap();
            (v.parse().unwrap(), r.offset)
        })
        .collect();
    for a in &acked {
        assert!(
            stored.contains(a),
            "acknowledged record {a:?} lost: {stored:?}"
        );
    }
    let values: Vec<u64> = stored.iter().map(|(v, _)| *v).collect();
    let mut unique = values.clone();
    unique.dedup();
    assert_eq!(unique.len(), values.len(), "a record stored twice");
}

#[test]
fn controlled_shutdown_moves_leaderships_first_and_fails_no_delivery() {
    let _serial = serial();
    let mut cluster = Cluster::start(3, BrokerOptions::default());
    let (topic, addr1) = replicated_topic(&mut cluster, "shutdown", 6, 2);
    let acks = Arc::new(Acks::default());
    let stop = Arc::new(AtomicBool::new(false));
    let producer = spawn_producer(
        cluster.bootstrap(),
        topic.clone(),
        1000,
        acks.clone(),
        stop.clone(),
    );
    thread::sleep(Duration::from_secs(2));
    let leaving = 2usize;
    let led_before = leaders_of(&partitions_of(&addr1, &topic))
        .get(&(leaving as i32))
        .copied()
        .unwrap_or(0);
    assert!(led_before > 0, "node {leaving} leads nothing to move");
    let status = cluster.node(leaving).terminate();
    assert!(status.success(), "SIGTERM exit: {status:?}");
    let stderr = cluster.node(leaving).stderr_all();
    assert!(
        stderr.contains("leaderships moved in"),
        "node {leaving} exited before its leaderships moved:\n{}",
        tail(stderr.as_bytes())
    );
    assert_eq!(
        leaders_of(&partitions_of(&addr1, &topic)).get(&(leaving as i32)),
        None,
        "node {leaving} still leads after exiting"
    );
    thread::sleep(Duration::from_secs(2));
    cluster.node(leaving).restart();
    thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    let sent = producer.join().unwrap();
    let failed = acks.failed.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} deliveries failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert_eq!(acks.ok.lock().unwrap().len() as u64, sent);
    check_log(&cluster.bootstrap(), &topic, 6, &acks);
}

#[test]
fn a_group_keeps_its_committed_offsets_when_its_coordinator_dies() {
    use rdkafka::consumer::CommitMode;
    let _serial = serial();
    let mut cluster = Cluster::start(3, BrokerOptions::default());
    let (topic, _) = replicated_topic(&mut cluster, "offsets", 1, 2);
    let group = format!("{topic}-group");
    let bootstrap = cluster.bootstrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, rdkafka::Offset::Offset(42))
        .unwrap();
    let c = consumer(&bootstrap, &group);
    c.commit(&tpl, CommitMode::Sync).expect("commit offset 42");
    drop(c);
    let coordinator = find_coordinator(&cluster.node(1).addr(), &group) as usize;
    let offsets = cluster
        .nodes
        .iter()
        .map(|n| n.data_dir().join("__consumer_offsets-0"))
        .filter(|d| d.exists())
        .count();
    eprintln!("coordinator node {coordinator}; {offsets} nodes hold __consumer_offsets-0");
    cluster.node(coordinator).kill();
    let survivor = (1..=3).find(|&n| n != coordinator).unwrap();
    let survivor_addr = cluster.node(survivor).addr();
    wait_until(Duration::from_secs(30), "a new coordinator", || {
        find_coordinator(&survivor_addr, &group) as usize != coordinator
    });
    let others: Vec<String> = (1..=3)
        .filter(|&n| n != coordinator)
        .map(|n| cluster.node(n).addr())
        .collect();
    let c = consumer(&others.join(","), &group);
    let mut query = rdkafka::TopicPartitionList::new();
    query.add_partition(&topic, 0);
    let committed = wait_for(
        "the committed offset from the new coordinator",
        Duration::from_secs(30),
        || match c.committed_offsets(query.clone(), Duration::from_secs(5)) {
            Ok(t) => match t.find_partition(&topic, 0).map(|p| p.offset()) {
                Some(rdkafka::Offset::Offset(o)) => Ok(o),
                other => Err(format!("{other:?}")),
            },
            Err(e) => Err(e.to_string()),
        },
    );
    assert_eq!(
        committed, 42,
        "the committed offset did not survive its coordinator"
    );
}
