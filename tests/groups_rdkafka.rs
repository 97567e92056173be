//! Consumer groups against a real `shoal` process with librdkafka (the `rdkafka` crate):
//! a distributed queue (3 members share 6 partitions, every record exactly once), publish/
//! subscribe (a second group gets everything), take-over from committed offsets when a member
//! leaves, and committed offsets + membership across a broker SIGKILL/restart.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use shoal_testkit::rdk::DeliveryCounts;
use shoal_testkit::{wait_until, Broker};

const WAIT: Duration = Duration::from_secs(120);

fn create_topic(addr: &str, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .expect("admin client");
    let topics = [NewTopic::new(topic, partitions, TopicReplication::Fixed(1))];
    let results =
        futures_lite::future::block_on(admin.create_topics(&topics, &AdminOptions::new()))
            .expect("CreateTopics");
    for r in results {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

/// Produces values `range` as decimal strings; value i goes to partition i % partitions.
fn produce(addr: &str, topic: &str, partitions: i32, range: std::ops::Range<u64>) {
    let producer: BaseProducer<DeliveryCounts> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "5")
        .create_with_context(DeliveryCounts::default())
        .expect("producer");
    let n = range.end - range.start;
    for i in range {
        let value = i.to_string();
        let mut record = BaseRecord::to(topic)
            .partition((i % partitions as u64) as i32)
            .key(&value)
            .payload(&value);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "send: {e}"
                    );
                    record = r;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    let ctx = producer.context();
    assert_eq!(ctx.failed.load(Ordering::SeqCst), 0, "failed deliveries");
    assert_eq!(
        ctx.ok.load(Ordering::SeqCst) as u64,
        n,
        "every record acknowledged"
    );
}

/// Commits processed positions before partitions are taken away, so a rebalance re-delivers
/// nothing; counts the assignments received.
#[derive(Default, Clone)]
struct CommitOnRevoke {
    assigns: Arc<AtomicUsize>,
}
impl ClientContext for CommitOnRevoke {}
impl ConsumerContext for CommitOnRevoke {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(_) = rebalance {
            self.assigns.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            if tpl.count() > 0 {
                if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                    eprintln!("commit on revoke: {e}");
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Seen {
    member: String,
    partition: i32,
    offset: i64,
    value: u64,
}

/// A group member on its own thread: polls, records what it sees, commits after each burst.
struct Member {
    name: String,
    /// Assignments received (rebalances this member took part in).
    assigns: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    assigned: Arc<Mutex<Vec<i32>>>,
    thread: Option<JoinHandle<()>>,
}

fn consumer_config(addr: &str, group: &str, name: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", addr)
        .set("group.id", group)
        .set("client.id", name)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("topic.metadata.refresh.interval.ms", "1000");
    c
}

impl Member {
    fn spawn(
        addr: &str,
        group: &str,
        topic: &str,
        name: &str,
        seen: Arc<Mutex<Vec<Seen>>>,
    ) -> Member {
        Member::spawn_with(consumer_config(addr, group, name), topic, name, seen)
    }

    fn spawn_with(
        config: ClientConfig,
        topic: &str,
        name: &str,
        seen: Arc<Mutex<Vec<Seen>>>,
    ) -> Member {
        let context = CommitOnRevoke::default();
        let assigns = context.assigns.clone();
        let consumer: BaseConsumer<CommitOnRevoke> =
            config.create_with_context(context).expect("consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = Arc::new(AtomicBool::new(false));
        let assigned = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, assigned, name) = (stop.clone(), assigned.clone(), name.to_string());
            std::thread::spawn(move || {
                let mut uncommitted = 0;
                while !stop.load(Ordering::SeqCst) {
                    let got = match consumer.poll(Duration::from_millis(100)) {
                        Some(Ok(m)) => {
                            let value = std::str::from_utf8(m.payload().unwrap_or_default())
                                .expect("utf-8 value")
                                .parse()
                                .expect("numeric value");
                            seen.lock().unwrap().push(Seen {
                                member: name.clone(),
                                partition: m.partition(),
                                offset: m.offset(),
                                value,
                            });
                            uncommitted += 1;
                            true
                        }
                        Some(Err(e)) => {
                            eprintln!("{name}: poll: {e}");
                            false
                        }
                        None => false,
                    };
                    // Commit every 500 records and whenever a burst ends.
                    if uncommitted >= 500 || (!got && uncommitted > 0) {
                        match consumer.commit_consumer_state(CommitMode::Sync) {
                            Ok(()) => uncommitted = 0,
                            Err(e) => eprintln!("{name}: commit: {e}"),
                        }
                    }
                    if let Ok(a) = consumer.assignment() {
                        let mut ps: Vec<i32> = a.elements().iter().map(|e| e.partition()).collect();
                        ps.sort();
                        *assigned.lock().unwrap() = ps;
                    }
                }
                if uncommitted > 0 {
                    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
                        eprintln!("{name}: final commit: {e}");
                    }
                }
                // Dropping closes the consumer: it leaves the group.
            })
        };
        Member {
            name: name.to_string(),
            assigns,
            stop,
            assigned,
            thread: Some(thread),
        }
    }

    fn assigned(&self) -> Vec<i32> {
        self.assigned.lock().unwrap().clone()
    }

    fn close(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().unwrap().join().expect("member thread");
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn values_of(seen: &Mutex<Vec<Seen>>) -> Vec<u64> {
    seen.lock().unwrap().iter().map(|s| s.value).collect()
}

/// Every value in `range` seen exactly once.
fn assert_exactly_once(seen: &Mutex<Vec<Seen>>, range: std::ops::Range<u64>, what: &str) {
    let values = values_of(seen);
    let unique: BTreeSet<u64> = values.iter().copied().collect();
    let expected: BTreeSet<u64> = range.collect();
    let missing: Vec<_> = expected.difference(&unique).take(5).collect();
    assert!(
        missing.is_empty(),
        "{what}: missing values, e.g. {missing:?}"
    );
    assert_eq!(
        values.len(),
        expected.len(),
        "{what}: {} duplicates",
        values.len() - unique.len()
    );
}

#[test]
fn queue_pubsub_and_takeover_from_committed_offsets() {
    let broker = Broker::start();
    let addr = broker.addr.clone();
    create_topic(&addr, "orders", 6);

    // 1. Distributed queue: three members share six partitions, two each.
    let queue_seen = Arc::new(Mutex::new(Vec::new()));
    let members: Vec<Member> = (0..3)
        .map(|i| {
            Member::spawn(
                &addr,
                "queue",
                "orders",
                &format!("q{i}"),
                queue_seen.clone(),
            )
        })
        .collect();
    wait_until(WAIT, "each of 3 members has 2 of the 6 partitions", || {
        let all: Vec<Vec<i32>> = members.iter().map(|m| m.assigned()).collect();
        let union: BTreeSet<i32> = all.iter().flatten().copied().collect();
        all.iter().all(|a| a.len() == 2) && union.len() == 6
    });
    produce(&addr, "orders", 6, 0..30_000);
    wait_until(WAIT, "queue group consumed 30,000 records", || {
        queue_seen.lock().unwrap().len() >= 30_000
    });
    std::thread::sleep(Duration::from_millis(500)); // let any duplicate show up
    assert_exactly_once(&queue_seen, 0..30_000, "queue group");
    {
        let seen = queue_seen.lock().unwrap();
        for m in &members {
            let mine: Vec<&Seen> = seen.iter().filter(|s| s.member == m.name).collect();
            assert_eq!(mine.len(), 10_000, "{} consumed its two partitions", m.name);
            assert!(mine.iter().all(|s| m.assigned().contains(&s.partition)));
        }
        // Offsets are dense per partition: 5,000 records each, 0..5000.
        let mut per_partition: BTreeMap<i32, BTreeSet<i64>> = BTreeMap::new();
        for s in seen.iter() {
            per_partition
                .entry(s.partition)
                .or_default()
                .insert(s.offset);
        }
        for (p, offsets) in per_partition {
            assert_eq!(offsets, (0..5_000).collect(), "partition {p}");
        }
    }

    // 2. Publish/subscribe: another group receives everything too.
    let audit_seen = Arc::new(Mutex::new(Vec::new()));
    let audit = Member::spawn(&addr, "audit", "orders", "audit0", audit_seen.clone());
    wait_until(WAIT, "audit group consumed 30,000 records", || {
        audit_seen.lock().unwrap().len() >= 30_000
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_exactly_once(&audit_seen, 0..30_000, "audit group");
    assert_eq!(audit.assigned(), (0..6).collect::<Vec<_>>());

    // 3. A member leaves: the other two take over its partitions from committed offsets.
    let mut members = members;
    let gone = members.pop().unwrap();
    let gone_name = gone.name.clone();
    gone.close();
    wait_until(
        WAIT,
        "the remaining 2 members have 3 partitions each",
        || {
            let all: Vec<Vec<i32>> = members.iter().map(|m| m.assigned()).collect();
            let union: BTreeSet<i32> = all.iter().flatten().copied().collect();
            all.iter().all(|a| a.len() == 3) && union.len() == 6
        },
    );
    produce(&addr, "orders", 6, 30_000..36_000);
    wait_until(WAIT, "queue group consumed 36,000 records", || {
        queue_seen.lock().unwrap().len() >= 36_000
    });
    wait_until(WAIT, "audit group consumed 36,000 records", || {
        audit_seen.lock().unwrap().len() >= 36_000
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_exactly_once(&queue_seen, 0..36_000, "queue group after a member left");
    assert_exactly_once(&audit_seen, 0..36_000, "audit group");
    assert!(
        queue_seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.value >= 30_000)
            .all(|s| s.member != gone_name),
        "the departed member consumed nothing new"
    );
    for m in members {
        m.close();
    }
    audit.close();

    // 4. Committed offsets, as any client sees them: the end of every partition.
    let checker: BaseConsumer = consumer_config(&addr, "queue", "checker").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..6 {
        tpl.add_partition("orders", p);
    }
    let committed = checker
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("OffsetFetch");
    for e in committed.elements() {
        assert_eq!(
            e.offset(),
            Offset::Offset(6_000),
            "queue committed offset of partition {}",
            e.partition()
        );
    }
    drop(broker);
}

#[test]
fn offsets_and_membership_survive_a_broker_crash() {
    let broker = Broker::start();
    let addr = broker.addr.clone();
    create_topic(&addr, "events", 3);
    produce(&addr, "events", 3, 0..3_000);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let member = Member::spawn(&addr, "durable", "events", "d0", seen.clone());
    wait_until(WAIT, "3,000 records consumed", || {
        seen.lock().unwrap().len() >= 3_000
    });
    // Let the member commit and settle.
    std::thread::sleep(Duration::from_secs(2));
    let admin_view: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .create()
        .unwrap();
    let describe = |c: &BaseConsumer| -> (String, Vec<String>) {
        let list = c
            .fetch_group_list(Some("durable"), Duration::from_secs(30))
            .expect("DescribeGroups");
        let g = &list.groups()[0];
        (
            g.state().to_string(),
            g.members().iter().map(|m| m.id().to_string()).collect(),
        )
    };
    let (state, members_before) = describe(&admin_view);
    assert_eq!(state, "Stable");
    assert_eq!(members_before.len(), 1);
    drop(admin_view);

    // SIGKILL and restart on the same address and data.
    let mut broker = broker;
    broker.restart();
    produce(&addr, "events", 3, 3_000..3_300);
    wait_until(WAIT, "the member consumed the 300 new records", || {
        seen.lock().unwrap().len() >= 3_300
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_exactly_once(&seen, 0..3_300, "member across the restart");
    let admin_view: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &addr)
        .create()
        .unwrap();
    let (state, members_after) = describe(&admin_view);
    assert_eq!(state, "Stable");
    assert_eq!(
        members_after, members_before,
        "the member kept its membership across the restart"
    );
    member.close();

    // A new consumer of the group resumes from the committed offsets: nothing re-read.
    let mut broker = broker;
    broker.restart();
    produce(&addr, "events", 3, 3_300..3_330);
    let seen2 = Arc::new(Mutex::new(Vec::new()));
    let member = Member::spawn(&addr, "durable", "events", "d1", seen2.clone());
    wait_until(WAIT, "30 new records consumed", || {
        seen2.lock().unwrap().len() >= 30
    });
    std::thread::sleep(Duration::from_millis(1_000));
    assert_exactly_once(&seen2, 3_300..3_330, "resumed consumer");
    member.close();
}

/// A `kcat -G` consumer (librdkafka 2.0.2) in its own process, so it can be SIGKILLed.
struct KcatMember {
    child: std::process::Child,
    seen: Arc<Mutex<Vec<(i32, i64, u64)>>>,
}

impl KcatMember {
    fn spawn(addr: &str, group: &str, topic: &str) -> KcatMember {
        use std::io::BufRead;
        let mut child = std::process::Command::new("kcat")
            .args(["-b", addr, "-G", group, "-f", "%p %o %s\\n", "-q", "-u"])
            .args(["-X", "auto.offset.reset=earliest"])
            .args([
                "-X",
                "session.timeout.ms=6000",
                "-X",
                "heartbeat.interval.ms=500",
            ])
            .args(["-X", "auto.commit.interval.ms=100", "-X", "client.id=kcat"])
            .arg(topic)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("kcat must be installed (/usr/bin/kcat) for this test");
        let out = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                let f: Vec<&str> = line.split(' ').collect();
                if let [p, o, v] = f[..] {
                    sink.lock().unwrap().push((
                        p.parse().unwrap(),
                        o.parse().unwrap(),
                        v.parse().unwrap(),
                    ));
                }
            }
        });
        KcatMember { child, seen }
    }
}

impl Drop for KcatMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn committed(addr: &str, group: &str, topic: &str, partitions: i32) -> BTreeMap<i32, i64> {
    let c: BaseConsumer = consumer_config(addr, group, "checker").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let got = c
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("OffsetFetch");
    got.elements()
        .iter()
        .map(|e| {
            let o = match e.offset() {
                Offset::Offset(o) => o,
                _ => -1,
            };
            (e.partition(), o)
        })
        .collect()
}

#[test]
fn killed_member_partitions_move_to_the_others_from_committed_offsets() {
    let broker = Broker::start();
    let addr = broker.addr.clone();
    create_topic(&addr, "jobs", 6);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let members: Vec<Member> = (0..2)
        .map(|i| Member::spawn(&addr, "crash", "jobs", &format!("c{i}"), seen.clone()))
        .collect();
    let kcat = KcatMember::spawn(&addr, "crash", "jobs");
    wait_until(
        WAIT,
        "the two in-process members have 2 partitions each",
        || members.iter().all(|m| m.assigned().len() == 2),
    );
    let mine: BTreeSet<i32> = members.iter().flat_map(|m| m.assigned()).collect();
    let kcat_partitions: BTreeSet<i32> = (0..6).filter(|p| !mine.contains(p)).collect();
    assert_eq!(kcat_partitions.len(), 2);
    produce(&addr, "jobs", 6, 0..12_000);
    wait_until(WAIT, "kcat consumed its 4,000 records", || {
        kcat.seen.lock().unwrap().len() >= 4_000
    });
    wait_until(WAIT, "the members consumed their 8,000 records", || {
        seen.lock().unwrap().len() >= 8_000
    });
    // kcat auto-commits (every 5 s: kcat does not take a shorter interval); once it has
    // committed progress on its partitions it dies without leaving the group.
    wait_until(WAIT, "kcat committed progress", || {
        let c = committed(&addr, "crash", "jobs", 6);
        kcat_partitions.iter().all(|p| c[p] > 0)
    });
    let kcat_seen = kcat.seen.lock().unwrap().clone();
    drop(kcat); // SIGKILL
    let at_kill = committed(&addr, "crash", "jobs", 6);
    produce(&addr, "jobs", 6, 12_000..18_000);
    // Within session.timeout.ms (6 s) + a rebalance the survivors own all six partitions.
    wait_until(
        Duration::from_secs(30),
        "the survivors own kcat's partitions",
        || {
            let all: BTreeSet<i32> = members.iter().flat_map(|m| m.assigned()).collect();
            all.len() == 6
        },
    );
    wait_until(WAIT, "everything consumed", || {
        let values: BTreeSet<u64> = seen
            .lock()
            .unwrap()
            .iter()
            .map(|s| s.value)
            .chain(kcat_seen.iter().map(|k| k.2))
            .collect();
        values.len() == 18_000
    });
    std::thread::sleep(Duration::from_millis(500));
    let seen = seen.lock().unwrap().clone();
    // The survivors resumed kcat's partitions exactly at the committed offsets.
    for p in &kcat_partitions {
        let first = seen
            .iter()
            .filter(|s| s.partition == *p)
            .map(|s| s.offset)
            .min();
        assert_eq!(
            first,
            Some(at_kill[p]),
            "partition {p} resumed from its committed offset"
        );
    }
    // Nothing lost; re-reads only of what kcat consumed after its last commit.
    let kcat_values: BTreeSet<u64> = kcat_seen.iter().map(|k| k.2).collect();
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    for v in seen
        .iter()
        .map(|s| s.value)
        .chain(kcat_values.iter().copied())
    {
        *counts.entry(v).or_default() += 1;
    }
    assert_eq!(counts.len(), 18_000, "no record lost");
    for (v, n) in &counts {
        assert!(
            *n == 1 || (*n == 2 && kcat_values.contains(v)),
            "value {v} seen {n} times"
        );
    }
    for m in members {
        m.close();
    }
}

#[test]
fn partitions_are_the_unit_of_parallelism() {
    let broker = Broker::start();
    let addr = broker.addr.clone();
    create_topic(&addr, "wide", 6);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut members: Vec<Member> = (0..3)
        .map(|i| Member::spawn(&addr, "scale", "wide", &format!("s{i}"), seen.clone()))
        .collect();
    let spread = |members: &[Member], sizes: &[usize]| {
        let mut got: Vec<usize> = members.iter().map(|m| m.assigned().len()).collect();
        got.sort();
        let union: BTreeSet<i32> = members.iter().flat_map(|m| m.assigned()).collect();
        got == sizes && union.len() == 6
    };
    wait_until(WAIT, "3 members x 2 partitions", || {
        spread(&members, &[2, 2, 2])
    });
    // A fourth and fifth member: the rebalance spreads the partitions.
    for i in 3..5 {
        members.push(Member::spawn(
            &addr,
            "scale",
            "wide",
            &format!("s{i}"),
            seen.clone(),
        ));
    }
    wait_until(WAIT, "5 members share 6 partitions", || {
        spread(&members, &[1, 1, 1, 1, 2])
    });
    // A sixth and seventh: one partition each, and one idle member.
    for i in 5..7 {
        members.push(Member::spawn(
            &addr,
            "scale",
            "wide",
            &format!("s{i}"),
            seen.clone(),
        ));
    }
    wait_until(WAIT, "7 members: six with one partition, one idle", || {
        spread(&members, &[0, 1, 1, 1, 1, 1, 1])
    });
    produce(&addr, "wide", 6, 0..600);
    wait_until(WAIT, "600 records consumed", || {
        seen.lock().unwrap().len() >= 600
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_exactly_once(&seen, 0..600, "7-member group");
    let idle = members
        .iter()
        .find(|m| m.assigned().is_empty())
        .unwrap()
        .name
        .clone();
    assert!(
        seen.lock().unwrap().iter().all(|s| s.member != idle),
        "the idle member consumed nothing"
    );
    for m in members {
        m.close();
    }
}

#[test]
fn static_member_restart_within_session_timeout_causes_no_rebalance() {
    let broker = Broker::start();
    let addr = broker.addr.clone();
    create_topic(&addr, "static", 6);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let config = |name: &str| {
        let mut c = consumer_config(&addr, "statics", name);
        c.set("group.instance.id", format!("instance-{name}"));
        c
    };
    let mut members: Vec<Member> = (0..3)
        .map(|i| {
            Member::spawn_with(
                config(&format!("m{i}")),
                "static",
                &format!("m{i}"),
                seen.clone(),
            )
        })
        .collect();
    wait_until(WAIT, "3 static members x 2 partitions", || {
        let union: BTreeSet<i32> = members.iter().flat_map(|m| m.assigned()).collect();
        members.iter().all(|m| m.assigned().len() == 2) && union.len() == 6
    });
    // Let the group settle, then restart m2: a static member sends no LeaveGroup on close.
    std::thread::sleep(Duration::from_secs(1));
    let before: Vec<Vec<i32>> = members.iter().map(|m| m.assigned()).collect();
    let assigns_before: Vec<usize> = members
        .iter()
        .map(|m| m.assigns.load(Ordering::SeqCst))
        .collect();
    members.pop().unwrap().close();
    let restarted = Member::spawn_with(config("m2"), "static", "m2", seen.clone());
    wait_until(
        WAIT,
        "the restarted member gets its partitions back",
        || restarted.assigned() == before[2],
    );
    produce(&addr, "static", 6, 0..600);
    members.push(restarted);
    wait_until(WAIT, "600 records consumed", || {
        seen.lock().unwrap().len() >= 600
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_exactly_once(&seen, 0..600, "static group");
    for (i, m) in members.iter().take(2).enumerate() {
        assert_eq!(m.assigned(), before[i], "{} kept its partitions", m.name);
        assert_eq!(
            m.assigns.load(Ordering::SeqCst),
            assigns_before[i],
            "{} saw no rebalance while m2 restarted",
            m.name
        );
    }
    for m in members {
        m.close();
    }
}
