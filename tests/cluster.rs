//! Three-node clusters of real `shoal serve` processes (issue 10): metadata through the Raft
//! quorum, leaders spread over nodes, forwarding, controller failover under SIGKILL, an isolated
//! node behind cut links, and a whole-cluster SIGKILL. The tests run one at a time (a lock): each
//! starts three brokers on a 2-core machine.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use shoal_testkit::raw::RawConn;
use shoal_testkit::{
    describe_output, run_python, topic_name as unique, wait_for, Broker, BrokerOptions, Cluster,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Controller failover must finish within this (issue 10).
const FAILOVER_MAX: Duration = Duration::from_secs(5);

/// The controller id as `node` reports it in Metadata (-1: none).
fn controller_of(node: &Broker) -> i32 {
    let mut conn = RawConn::connect(&node.addr());
    conn.metadata(&[]).controller_id.0
}

/// Waits until every live node names the same controller, one of `allowed`; returns it.
fn agreed_controller(nodes: &[&Broker], allowed: &[i32], timeout: Duration) -> i32 {
    wait_for("the live nodes to agree on a controller", timeout, || {
        let ids: BTreeSet<i32> = nodes.iter().map(|n| controller_of(n)).collect();
        match ids.iter().next() {
            Some(&id) if ids.len() == 1 && allowed.contains(&id) => Ok(id),
            _ => Err(format!("controllers reported: {ids:?}")),
        }
    })
}

/// From now on, on a thread: how long until every one of `addrs` names the same controller,
/// one of `allowed` (`None`: not within `timeout`).
fn time_to_agreement(
    addrs: Vec<String>,
    allowed: Vec<i32>,
    timeout: Duration,
) -> std::thread::JoinHandle<Option<Duration>> {
    let start = Instant::now();
    std::thread::spawn(move || {
        while start.elapsed() < timeout {
            let ids: BTreeSet<i32> = addrs
                .iter()
                .map(|a| RawConn::connect(a).metadata(&[]).controller_id.0)
                .collect();
            if ids.len() == 1 && ids.iter().all(|id| allowed.contains(id)) {
                return Some(start.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    })
}

/// `shoal topic describe` through `node`: leader per partition, parsed from its output.
fn describe_leaders(node: &Broker, topic: &str) -> Result<Vec<i32>, String> {
    let out = node.cli_output(&["topic", "describe", topic], None);
    if !out.status.success() {
        return Err(describe_output("shoal topic describe", &out));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut leaders = BTreeMap::new();
    for line in text.lines().filter(|l| l.contains("Partition: ")) {
        let field = |name: &str| -> Option<i32> {
            line.split('\t')
                .find_map(|f| f.trim().strip_prefix(name))
                .and_then(|v| v.trim().parse().ok())
        };
        if let (Some(p), Some(l)) = (field("Partition:"), field("Leader:")) {
            leaders.insert(p, l);
        }
    }
    Ok(leaders.into_values().collect())
}

/// CreateTopics sent to `node` itself (not routed to the controller by a client library):
/// the error code and how long the answer took.
fn create_on(node: &Broker, topic: &str, partitions: i32) -> (i16, Option<String>, Duration) {
    let mut conn = RawConn::connect(&node.addr());
    let t0 = Instant::now();
    let response = conn.create_topics_v5(topic, partitions);
    let r = &response.topics[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
        t0.elapsed(),
    )
}

fn topics_on(node: &Broker) -> BTreeMap<String, uuid::Uuid> {
    let mut conn = RawConn::connect(&node.addr());
    let md = conn.metadata(&[]);
    let _ = &md;
    let all = {
        use kafka_protocol::messages::MetadataRequest;
        let req = MetadataRequest::default().with_topics(None);
        let md: kafka_protocol::messages::MetadataResponse = conn.request(12, &req);
        md
    };
    all.topics
        .iter()
        .filter_map(|t| Some((t.name.as_ref()?.0.to_string(), t.topic_id)))
        .collect()
}

fn produce_lines(node: &Broker, topic: &str, lines: usize) {
    let input: String = (0..lines).map(|i| format!("{topic}-{i}\n")).collect();
    node.cli(&["produce", topic], Some(input.as_bytes()));
}

fn consume_count(node: &Broker, topic: &str, n: usize) -> usize {
    let out = node.cli(
        &["consume", topic, "--from-beginning", "-n", &n.to_string()],
        None,
    );
    out.lines().filter(|l| l.starts_with(topic)).count()
}

#[test]
fn three_nodes_spread_leaders_and_a_group_reads_everything_once() {
    let _serial = serial();
    let t0 = Instant::now();
    let mut c = Cluster::start(3, BrokerOptions::default());
    agreed_controller(
        &c.nodes.iter().collect::<Vec<_>>(),
        &[1, 2, 3],
        Duration::from_secs(10),
    );
    // A peer sending garbage on the cluster port loses that connection, nothing else.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", c.cluster_ports[0])).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GARBAGE-NOT-A-SHOAL-PEER").unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf);
        assert!(
            matches!(n, Ok(0)) || n.is_err(),
            "garbage on the cluster port: connection not closed ({n:?})"
        );
    }
    c.node(2).cli(
        &["topic", "create", "purchases", "-p", "6", "-r", "1"],
        None,
    );
    let views: Vec<Vec<i32>> = (1..=3)
        .map(|i| {
            wait_for(
                &format!("node {i} to describe purchases with a leader per partition"),
                Duration::from_secs(10),
                || {
                    let l = describe_leaders(c.node(i), "purchases")?;
                    if l.len() == 6 && l.iter().all(|&x| x > 0) {
                        Ok(l)
                    } else {
                        Err(format!("leaders {l:?}"))
                    }
                },
            )
        })
        .collect();
    assert!(
        views.iter().all(|v| v == &views[0]),
        "nodes disagree on leaders: {views:?}"
    );
    for node in 1..=3 {
        let led = views[0].iter().filter(|&&l| l == node).count();
        assert_eq!(led, 2, "node {node} leads {led} of 6: {:?}", views[0]);
    }

    let args: Vec<String> = [
        "--bootstrap",
        &c.bootstrap(),
        "--topic",
        "purchases",
        "--no-create",
        "--partitions",
        "6",
        "--client",
        "confluent",
        "--groups",
        "g:3",
        "--count",
        "30000",
        "--timeout",
        "90",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_python("groups_queue.py", &args, Duration::from_secs(180));
    assert!(
        out.status.success(),
        "{}\n--- node stderr ---\n{}\n{}\n{}",
        describe_output("groups_queue.py", &out),
        c.nodes[0].stderr(),
        c.nodes[1].stderr(),
        c.nodes[2].stderr()
    );

    // The group's coordinator is the node leading its __consumer_offsets partition, whichever
    // node is asked.
    let group = "g-purchases";
    let offsets = describe_leaders(c.node(1), "__consumer_offsets").expect("describe offsets");
    let partition = shoal_testkit::java_partition(group, offsets.len() as i32);
    let leader = offsets[partition as usize];
    for i in 1..=3 {
        let named = shoal_testkit::find_coordinator(&c.node(i).addr(), group);
        assert_eq!(
            named, leader,
            "node {i} names coordinator {named}, metadata names {leader}"
        );
    }
    // A partition's data APIs answer only on its leader (after the group check, which counts
    // every record of the topic).
    let (p, leader) = (0usize, views[0][0]);
    let other = (1..=3).find(|&i| i as i32 != leader).unwrap();
    let mut conn = RawConn::connect(&c.node(other).addr());
    let rec = shoal_testkit::raw::record(Some(b"k"), b"v", shoal_testkit::now_ms());
    let (code, _) = conn.produce("purchases", p as i32, std::slice::from_ref(&rec));
    assert_eq!(
        code, 6,
        "Produce to node {other}, which does not lead partition {p}"
    );
    let (code, _) = conn.list_offset("purchases", p as i32, -1);
    assert_eq!(code, 6, "ListOffsets on node {other}, not the leader");
    let mut conn = RawConn::connect(&c.node(leader as usize).addr());
    let (code, _) = conn.produce("purchases", p as i32, &[rec]);
    assert_eq!(code, 0, "Produce to the leader");

    // Growing the topic and changing a config through node 3: every node shows both, and the
    // new partitions' leaders keep the spread even.
    c.node(3)
        .cli(&["topic", "add-partitions", "purchases", "-n", "9"], None);
    c.node(3).cli(
        &[
            "topic",
            "alter-config",
            "purchases",
            "--set",
            "retention.ms=3600000",
        ],
        None,
    );
    for i in 1..=3 {
        let leaders = wait_for(
            &format!("node {i} to describe 9 led partitions of purchases"),
            Duration::from_secs(10),
            || match describe_leaders(c.node(i), "purchases")? {
                l if l.len() == 9 && l.iter().all(|&x| x > 0) => Ok(l),
                l => Err(format!("leaders {l:?}")),
            },
        );
        for node in 1..=3 {
            let led = leaders.iter().filter(|&&l| l == node).count();
            assert_eq!(
                led, 3,
                "node {node} leads {led} of 9 after growing: {leaders:?}"
            );
        }
        let describe = c.node(i).cli(&["topic", "describe", "purchases"], None);
        assert!(
            describe.contains("retention.ms=3600000"),
            "node {i} after alter-config:\n{describe}"
        );
    }

    eprintln!(
        "three-node group test: {:?}; groups_queue.py: {}",
        t0.elapsed(),
        String::from_utf8_lossy(&out.stdout).trim()
    );
}

#[test]
fn controller_sigkill_during_creations_fails_over_without_losing_topics() {
    let _serial = serial();
    let mut c = Cluster::start(3, BrokerOptions::default());
    let all: Vec<i32> = vec![1, 2, 3];
    let mut acknowledged: BTreeSet<String> = BTreeSet::new();
    let mut unknown: BTreeSet<String> = BTreeSet::new();
    let prefix = unique("ctl");
    let mut failovers = Vec::new();
    for round in 0..2 {
        let controller = agreed_controller(
            &c.nodes.iter().collect::<Vec<_>>(),
            &all,
            Duration::from_secs(10),
        );
        let others: Vec<usize> = (1..=3).filter(|&i| i as i32 != controller).collect();
        // Data on a topic the controller leads, to read back after it restarts.
        let data_topic = format!("{prefix}-data{round}");
        c.node(others[0]).create_topic(&data_topic, 3);
        produce_lines(c.node(others[0]), &data_topic, 30);
        let led_by_controller: Vec<usize> = describe_leaders(c.node(others[0]), &data_topic)
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, &l)| l == controller)
            .map(|(p, _)| p)
            .collect();
        // Creations through a surviving node, with the controller killed in the middle.
        let mut election = None;
        for k in 0..12 {
            if k == 4 {
                c.node(controller as usize).kill();
                election = Some(time_to_agreement(
                    others.iter().map(|&i| c.node(i).addr()).collect(),
                    others.iter().map(|&i| i as i32).collect(),
                    FAILOVER_MAX * 4,
                ));
            }
            let name = format!("{prefix}-r{round}-{k}");
            let (code, msg, took) = create_on(c.node(others[k % 2]), &name, 1);
            match code {
                0 => {
                    acknowledged.insert(name);
                }
                36 => {
                    // TOPIC_ALREADY_EXISTS on a first attempt would mean it was created twice.
                    panic!("{name}: TOPIC_ALREADY_EXISTS on its only attempt: {msg:?}");
                }
                7 | 41 => {
                    assert!(
                        took < Duration::from_secs(8),
                        "{name}: error after {took:?}"
                    );
                    unknown.insert(name);
                }
                other => panic!("{name}: unexpected error {other} {msg:?}"),
            }
        }
        let failover = election.unwrap().join().unwrap();
        let failover = failover.unwrap_or_else(|| panic!("round {round}: no new controller"));
        failovers.push(failover);
        let survivors: Vec<&Broker> = others.iter().map(|&i| &c.nodes[i - 1]).collect();
        let new_controller = controller_of(survivors[0]);
        eprintln!("round {round}: controller {controller} SIGKILLed; both survivors named {new_controller} after {failover:?}");
        // The killed node's partitions have no leader until it returns.
        wait_for(
            "the killed node's partitions to show leader -1",
            Duration::from_secs(10),
            || {
                let l = describe_leaders(survivors[0], &data_topic)?;
                let ok = led_by_controller.iter().all(|&p| l[p] == -1);
                if ok {
                    Ok(())
                } else {
                    Err(format!("leaders {l:?}"))
                }
            },
        );
        if let Some(&p) = led_by_controller.first() {
            let mut conn = RawConn::connect(&survivors[0].addr());
            let rec = shoal_testkit::raw::record(None, b"v", shoal_testkit::now_ms());
            let (code, _) = conn.produce(&data_topic, p as i32, &[rec]);
            assert_eq!(code, 5, "Produce to a partition whose leader is down");
        }
        c.node(controller as usize).restart();
        wait_for(
            "the restarted node to lead its partitions again",
            Duration::from_secs(15),
            || {
                let l = describe_leaders(c.node(others[0]), &data_topic)?;
                if led_by_controller.iter().all(|&p| l[p] == controller) {
                    Ok(())
                } else {
                    Err(format!("leaders {l:?}"))
                }
            },
        );
        assert_eq!(
            consume_count(c.node(controller as usize), &data_topic, 30),
            30,
            "records of {data_topic} after the restart"
        );
        // Leadership that went away and came back is a new leader epoch (KIP-320), and
        // librdkafka, which sends it in every Fetch, reads everything through it.
        let meta = RawConn::connect(&c.node(others[0]).addr()).metadata(&[&data_topic]);
        for part in &meta.topics[0].partitions {
            let moved = led_by_controller.contains(&(part.partition_index as usize));
            assert_eq!(
                part.leader_epoch > 0,
                moved,
                "partition {} leader epoch {} (its leader was killed: {moved})",
                part.partition_index,
                part.leader_epoch
            );
        }
        let read = shoal_testkit::rdk::consume(
            &c.bootstrap(),
            &data_topic,
            3,
            rdkafka::Offset::Beginning,
            30,
        );
        assert_eq!(read.len(), 30, "librdkafka read of {data_topic}");
    }
    // Every acknowledged topic exists, once, with one id on every node.
    let views: Vec<BTreeMap<String, uuid::Uuid>> = (1..=3)
        .map(|i| {
            wait_for(
                "every node to see every acknowledged topic",
                Duration::from_secs(10),
                || {
                    let t = topics_on(c.node(i));
                    let missing: Vec<&String> = acknowledged
                        .iter()
                        .filter(|n| !t.contains_key(*n))
                        .collect();
                    if missing.is_empty() {
                        Ok(t)
                    } else {
                        Err(format!("node {i} misses {missing:?}"))
                    }
                },
            )
        })
        .collect();
    for v in &views[1..] {
        let a: BTreeMap<_, _> = views[0]
            .iter()
            .filter(|(n, _)| n.starts_with(&prefix))
            .collect();
        let b: BTreeMap<_, _> = v.iter().filter(|(n, _)| n.starts_with(&prefix)).collect();
        assert_eq!(a, b, "nodes disagree on topics and ids");
    }
    // Outcome-unknown creations either exist or not; a retry must answer TOPIC_ALREADY_EXISTS
    // for those that do and create the others exactly once.
    for name in &unknown {
        let existed = views[0].contains_key(name);
        let (code, msg, _) = create_on(c.node(1), name, 1);
        let expected = if existed { 36 } else { 0 };
        assert_eq!(
            code, expected,
            "retry of {name} (existed: {existed}): {msg:?}"
        );
    }
    let worst = failovers.iter().max().unwrap();
    assert!(*worst < FAILOVER_MAX, "failover took {worst:?}");
    eprintln!(
        "controller failovers (SIGKILL to both survivors naming the new controller): {failovers:?}; {} acknowledged, {} outcome-unknown",
        acknowledged.len(),
        unknown.len()
    );
}

#[test]
fn an_isolated_node_fails_controller_requests_and_catches_up_after_healing() {
    let _serial = serial();
    let mut c = Cluster::start_with(3, BrokerOptions::default(), true);
    let controller = agreed_controller(
        &c.nodes.iter().collect::<Vec<_>>(),
        &[1, 2, 3],
        Duration::from_secs(10),
    );
    // Isolate a node that is not the controller, so the majority keeps its controller.
    let isolated = (1..=3).find(|&i| i as i32 != controller).unwrap();
    let majority: Vec<usize> = (1..=3).filter(|&i| i != isolated).collect();
    let prefix = unique("iso");
    c.isolate(isolated, true);
    for k in 0..3 {
        let name = format!("{prefix}-maj{k}");
        let (code, msg, _) = create_on(c.node(majority[k % 2]), &name, 2);
        assert_eq!(code, 0, "{name} through the majority: {msg:?}");
    }
    let (code, msg, took) = create_on(c.node(isolated), &format!("{prefix}-iso"), 1);
    assert!(
        code == 7 || code == 41,
        "CreateTopics on the isolated node: code {code} {msg:?} after {took:?}"
    );
    assert!(
        took < Duration::from_secs(7),
        "the isolated node answered after {took:?}"
    );
    eprintln!("isolated node {isolated}: CreateTopics failed with {code} ({msg:?}) after {took:?}");
    c.isolate(isolated, false);
    wait_for(
        "the healed node to catch up on the topics created without it",
        Duration::from_secs(15),
        || {
            let t = topics_on(c.node(isolated));
            let missing: Vec<String> = (0..3)
                .map(|k| format!("{prefix}-maj{k}"))
                .filter(|n| !t.contains_key(n))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("missing {missing:?}"))
            }
        },
    );
}

#[test]
fn sigkill_all_three_and_start_again_keeps_metadata_and_data() {
    let _serial = serial();
    let mut c = Cluster::start(3, BrokerOptions::default());
    agreed_controller(
        &c.nodes.iter().collect::<Vec<_>>(),
        &[1, 2, 3],
        Duration::from_secs(10),
    );
    let topic = unique("all");
    c.node(1).create_topic(&topic, 6);
    produce_lines(c.node(2), &topic, 60);
    let before = topics_on(c.node(3));
    for node in c.nodes.iter_mut() {
        node.kill();
    }
    for node in c.nodes.iter_mut() {
        node.spawn();
    }
    for node in c.nodes.iter_mut() {
        node.wait_started();
    }
    agreed_controller(
        &c.nodes.iter().collect::<Vec<_>>(),
        &[1, 2, 3],
        Duration::from_secs(10),
    );
    wait_for(
        "every partition to have a leader again",
        Duration::from_secs(15),
        || {
            let l = describe_leaders(c.node(1), &topic)?;
            if l.len() == 6 && l.iter().all(|&x| x > 0) {
                Ok(())
            } else {
                Err(format!("leaders {l:?}"))
            }
        },
    );
    for i in 1..=3 {
        assert_eq!(
            topics_on(c.node(i)),
            before,
            "node {i}: topics after the restart"
        );
    }
    assert_eq!(consume_count(c.node(3), &topic, 60), 60);
    produce_lines(c.node(1), &topic, 6);
    assert_eq!(consume_count(c.node(2), &topic, 66), 66);
}
