//! The CLI as a consumer group member and group admin, against a real `shoal serve`:
//! `shoal consume --group`, `shoal group describe|seek|delete`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use shoal_testkit::{wait_until, Broker};

const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs `shoal ARGS -b ADDR` to completion (bounded), feeding `stdin`.
fn shoal(addr: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(shoal_testkit::shoal_bin())
        .args(args)
        .args(["-b", addr])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn shoal");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).expect("write stdin");
    }
    drop(input);
    // Drain pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        out.read_to_end(&mut v).map(|_| v)
    });
    let err_thread = std::thread::spawn(move || {
        let mut v = Vec::new();
        err.read_to_end(&mut v).map(|_| v)
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait shoal") {
            break status;
        }
        if start.elapsed() > COMMAND_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`shoal {}` did not finish within {COMMAND_TIMEOUT:?}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out_thread.join().unwrap().expect("read stdout"),
        stderr: err_thread.join().unwrap().expect("read stderr"),
    }
}

/// Like [`shoal`], panicking with stderr unless it succeeds; returns stdout.
fn shoal_ok(addr: &str, args: &[&str], stdin: Option<&str>) -> String {
    let out = shoal(addr, args, stdin);
    assert!(
        out.status.success(),
        "`shoal {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Creates a topic and produces `v0..v{n}` with keys `k{i}` (spread over partitions by murmur2).
fn topic_with_records(addr: &str, topic: &str, partitions: u32, n: u32) {
    shoal_ok(
        addr,
        &["topic", "create", topic, "-p", &partitions.to_string()],
        None,
    );
    produce(addr, topic, 0..n);
}

fn produce(addr: &str, topic: &str, range: std::ops::Range<u32>) {
    let input: String = range.map(|i| format!("k{i}:v{i}\n")).collect();
    shoal_ok(addr, &["produce", topic, "-K", ":"], Some(&input));
}

/// Lines `PARTITION VALUE` -> (partition, value).
fn parse_records(out: &str) -> Vec<(i32, String)> {
    out.lines()
        .map(|l| {
            let (p, v) = l.split_once(' ').expect("'%p %v' line");
            (p.parse().expect("partition"), v.to_string())
        })
        .collect()
}

/// (partition, value) as printed by `-f '%p %v\\n'`.
type Records = Vec<(i32, String)>;

/// partition -> (current offset or None, log end offset, lag).
type Rows = BTreeMap<i32, (Option<i64>, i64, i64)>;

/// `group describe` of `topic`: (output, rows, total lag).
fn describe(addr: &str, group: &str, topic: &str) -> (String, Rows, i64) {
    let out = shoal_ok(addr, &["group", "describe", group, "-t", topic], None);
    let mut rows = BTreeMap::new();
    let mut total = None;
    for line in out.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() == 5 && cols[0] == topic {
            rows.insert(
                cols[1].parse().unwrap(),
                (
                    cols[2].parse().ok(),
                    cols[3].parse().unwrap(),
                    cols[4].parse().unwrap(),
                ),
            );
        }
        if let Some(t) = line.strip_prefix("TOTAL LAG: ") {
            total = Some(t.trim().parse().unwrap());
        }
    }
    (out, rows, total.expect("TOTAL LAG line"))
}

fn values(range: std::ops::Range<u32>) -> BTreeSet<String> {
    range.map(|i| format!("v{i}")).collect()
}

#[test]
fn group_consumes_resume_from_commits_then_seek_and_delete() {
    let broker = Broker::start();
    let addr = broker.addr.as_str();
    topic_with_records(addr, "t", 4, 100);

    let consume = |n: &str| {
        let out = shoal_ok(
            addr,
            &[
                "consume",
                "t",
                "--group",
                "g",
                "--from-beginning",
                "-n",
                n,
                "-f",
                "%p %v\\n",
            ],
            None,
        );
        parse_records(&out)
    };
    let first = consume("60");
    assert_eq!(first.len(), 60, "first consumer prints exactly -n 60");
    let second = consume("40");
    assert_eq!(second.len(), 40, "second consumer prints exactly -n 40");
    let all: Vec<&String> = first.iter().chain(&second).map(|(_, v)| v).collect();
    let distinct: BTreeSet<String> = all.iter().map(|v| v.to_string()).collect();
    assert_eq!(distinct.len(), 100, "no duplicates across the two runs");
    assert_eq!(
        distinct,
        values(0..100),
        "together exactly the produced records"
    );

    // Both consumers left and committed everything they printed.
    let (out, rows, total) = describe(addr, "g", "t");
    assert!(
        out.contains("State: Empty"),
        "stopped group is Empty:\n{out}"
    );
    assert_eq!(rows.len(), 4, "a row per partition:\n{out}");
    assert_eq!(total, 0, "lag 0 after consuming everything:\n{out}");
    let mut committed_sum = 0;
    for (p, (current, end, lag)) in &rows {
        assert_eq!(
            *current,
            Some(*end),
            "partition {p} committed at its end:\n{out}"
        );
        assert_eq!(*lag, 0);
        committed_sum += end;
    }
    assert_eq!(committed_sum, 100);

    // Seek back to the beginning: the whole topic is lag again.
    let out = shoal_ok(
        addr,
        &["group", "seek", "g", "--topic", "t", "--to", "earliest"],
        None,
    );
    let new_offsets: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(new_offsets.len(), 4, "one line per partition:\n{out}");
    assert!(new_offsets.iter().all(|l| l.ends_with(" 0")), "{out}");
    let (out, rows, total) = describe(addr, "g", "t");
    assert_eq!(total, 100, "seek to earliest: lag is everything:\n{out}");
    assert!(rows.values().all(|(c, _, _)| *c == Some(0)), "{out}");

    // An explicit offset is clamped to each partition's log; a timestamp in the future
    // means the end.
    let out = shoal_ok(
        addr,
        &["group", "seek", "g", "--topic", "t", "--to", "3", "-p", "0"],
        None,
    );
    assert!(out.lines().nth(1).unwrap().ends_with(" 3"), "{out}");
    let far = "@99999999999999";
    shoal_ok(
        addr,
        &["group", "seek", "g", "--topic", "t", "--to", far],
        None,
    );
    let (out, _, total) = describe(addr, "g", "t");
    assert_eq!(total, 0, "seek past the last timestamp: at the end:\n{out}");

    // A consumer of the reset group re-reads from the seeked offsets.
    shoal_ok(
        addr,
        &["group", "seek", "g", "--topic", "t", "--to", "earliest"],
        None,
    );
    let again = consume("100");
    let distinct: BTreeSet<String> = again.into_iter().map(|(_, v)| v).collect();
    assert_eq!(
        distinct,
        values(0..100),
        "re-read everything after seek to earliest"
    );

    // Bad input: clear errors.
    let out = shoal(
        addr,
        &["group", "seek", "g", "--topic", "t", "--to", "soon"],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected earliest, latest"));
    let out = shoal(
        addr,
        &["group", "seek", "g", "--topic", "nope", "--to", "latest"],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown topic nope"));

    // Delete the stopped group; it is gone afterwards.
    let out = shoal_ok(addr, &["group", "delete", "g"], None);
    assert!(out.contains("g: deleted"), "{out}");
    let (out, rows, _) = describe(addr, "g", "t");
    assert!(rows.is_empty(), "no committed offsets after delete:\n{out}");
    let list = shoal_ok(addr, &["group", "list"], None);
    assert!(!list.lines().any(|l| l.starts_with("g ")), "{list}");
    let out = shoal(addr, &["group", "delete", "g"], None);
    assert!(!out.status.success(), "deleting a deleted group fails");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("could not delete") && err.contains("g:"),
        "{err}"
    );

    // -e: a new group member stops once its partitions are read to the end, and commits.
    let out = shoal_ok(
        addr,
        &[
            "consume",
            "t",
            "-g",
            "g-end",
            "--from-beginning",
            "-e",
            "-f",
            "%p %v\\n",
        ],
        None,
    );
    let distinct: BTreeSet<String> = parse_records(&out).into_iter().map(|(_, v)| v).collect();
    assert_eq!(distinct, values(0..100), "-e reads everything, then exits");
    let (out, _, total) = describe(addr, "g-end", "t");
    assert_eq!(total, 0, "{out}");
    drop(broker);
}

/// A running `shoal consume --group`, its stdout lines collected on a thread.
struct Member {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Member {
    fn spawn(addr: &str, topic: &str, group: &str) -> Member {
        let mut child = Command::new(shoal_testkit::shoal_bin())
            .args(["consume", topic, "--group", group, "--from-beginning"])
            .args([
                "--session-timeout-ms",
                "6000",
                "--heartbeat-interval-ms",
                "300",
            ])
            .args(["--commit-interval-ms", "200", "-f", "%p %v\\n", "-b", addr])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn shoal consume");
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Member { child, lines }
    }

    fn records(&self) -> Vec<(i32, String)> {
        parse_records(&self.lines.lock().unwrap().join("\n"))
    }

    /// SIGTERM (like Ctrl-C): the member commits, leaves and exits 0 (bounded wait).
    fn stop(mut self) {
        let pid = self.child.id() as libc::pid_t;
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "consumer exited with {status} after SIGTERM"
                );
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "consumer did not exit within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stable_with_members(addr: &str, group: &str, n: usize) -> bool {
    let out = shoal(addr, &["group", "describe", group], None);
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success()
        && text.contains("State: Stable")
        && text.contains(&format!("Members: {n}\n"))
}

#[test]
fn concurrent_members_share_partitions_and_admin_refuses_active_group() {
    let broker = Broker::start();
    let addr = broker.addr.as_str();
    shoal_ok(addr, &["topic", "create", "s", "-p", "4"], None);

    let a = Member::spawn(addr, "s", "g2");
    wait_until(Duration::from_secs(60), "first member joins g2", || {
        stable_with_members(addr, "g2", 1)
    });
    let b = Member::spawn(addr, "s", "g2");
    wait_until(
        Duration::from_secs(60),
        "g2 rebalances to two stable members",
        || stable_with_members(addr, "g2", 2),
    );

    // An active group can be neither reset nor deleted.
    let out = shoal(
        addr,
        &["group", "seek", "g2", "--topic", "s", "--to", "earliest"],
        None,
    );
    assert!(!out.status.success(), "seek of an active group must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Stable") && err.contains("stop its consumers"),
        "{err}"
    );
    let out = shoal(addr, &["group", "delete", "g2"], None);
    assert!(!out.status.success(), "delete of an active group must fail");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NonEmptyGroup") || err.contains("68"), "{err}");

    produce(addr, "s", 0..100);
    wait_until(
        Duration::from_secs(60),
        "the two members print all 100 records",
        || {
            let all: BTreeSet<String> = a
                .records()
                .into_iter()
                .chain(b.records())
                .map(|(_, v)| v)
                .collect();
            all.len() == 100
        },
    );
    let (ra, rb) = (a.records(), b.records());
    assert!(
        !ra.is_empty() && !rb.is_empty(),
        "each member gets some: {} / {}",
        ra.len(),
        rb.len()
    );
    assert_eq!(
        ra.len() + rb.len(),
        100,
        "no record printed twice in a stable group"
    );
    let pa: BTreeSet<i32> = ra.iter().map(|(p, _)| *p).collect();
    let pb: BTreeSet<i32> = rb.iter().map(|(p, _)| *p).collect();
    assert!(
        pa.is_disjoint(&pb),
        "members own disjoint partitions: {pa:?} {pb:?}"
    );
    let union: BTreeSet<String> = ra.into_iter().chain(rb).map(|(_, v)| v).collect();
    assert_eq!(union, values(0..100));

    a.stop();
    b.stop();
    // Both committed what they printed before leaving.
    let (out, _, total) = describe(addr, "g2", "s");
    assert!(out.contains("State: Empty"), "{out}");
    assert_eq!(total, 0, "{out}");
    shoal_ok(addr, &["group", "delete", "g2"], None);
    drop(broker);
}

/// A librdkafka group member (range assignor) on a thread, recording (partition, value).
struct RdMember {
    stop: Arc<std::sync::atomic::AtomicBool>,
    seen: Arc<Mutex<Vec<(i32, String)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RdMember {
    fn spawn(addr: &str, topic: &str, group: &str) -> RdMember {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::message::Message;
        let consumer: BaseConsumer = rdkafka::config::ClientConfig::new()
            .set("bootstrap.servers", addr)
            .set("group.id", group)
            .set("partition.assignment.strategy", "range")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "300")
            .create()
            .expect("rdkafka consumer");
        consumer.subscribe(&[topic]).expect("subscribe");
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    match consumer.poll(Duration::from_millis(100)) {
                        Some(Ok(m)) => {
                            let v = String::from_utf8_lossy(m.payload().unwrap_or_default());
                            seen.lock().unwrap().push((m.partition(), v.to_string()));
                        }
                        Some(Err(e)) => eprintln!("rdkafka member: {e}"),
                        None => {}
                    }
                }
                // Dropping the consumer leaves the group.
            })
        };
        RdMember {
            stop,
            seen,
            thread: Some(thread),
        }
    }
}

impl Drop for RdMember {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `shoal consume --group` and librdkafka in one group, each in turn the leader (the one that
/// joins first): the consumer protocol bytes (subscription, range assignment) interoperate.
#[test]
fn shoal_and_librdkafka_members_share_a_group() {
    let broker = Broker::start();
    let addr = broker.addr.as_str();
    for shoal_leads in [true, false] {
        let (topic, group) = if shoal_leads {
            ("i1", "mixed1")
        } else {
            ("i2", "mixed2")
        };
        shoal_ok(addr, &["topic", "create", topic, "-p", "4"], None);
        let (shoal_member, rd_member);
        if shoal_leads {
            shoal_member = Member::spawn(addr, topic, group);
            wait_until(Duration::from_secs(60), "shoal member joins", || {
                stable_with_members(addr, group, 1)
            });
            rd_member = RdMember::spawn(addr, topic, group);
        } else {
            rd_member = RdMember::spawn(addr, topic, group);
            wait_until(Duration::from_secs(60), "librdkafka member joins", || {
                stable_with_members(addr, group, 1)
            });
            shoal_member = Member::spawn(addr, topic, group);
        }
        wait_until(
            Duration::from_secs(60),
            &format!("{group} stable with shoal and librdkafka"),
            || stable_with_members(addr, group, 2),
        );
        produce(addr, topic, 0..100);
        let both = || -> (Records, Records) {
            (
                shoal_member.records(),
                rd_member.seen.lock().unwrap().clone(),
            )
        };
        wait_until(
            Duration::from_secs(60),
            "the two members get all records",
            || {
                let (s, r) = both();
                s.len() + r.len() >= 100
            },
        );
        let (s, r) = both();
        assert!(
            !s.is_empty() && !r.is_empty(),
            "shoal_leads={shoal_leads}: each gets some: shoal {} librdkafka {}",
            s.len(),
            r.len()
        );
        let ps: BTreeSet<i32> = s.iter().map(|(p, _)| *p).collect();
        let pr: BTreeSet<i32> = r.iter().map(|(p, _)| *p).collect();
        assert!(ps.is_disjoint(&pr), "disjoint partitions: {ps:?} {pr:?}");
        assert_eq!(ps.len() + pr.len(), 4, "range: 2 + 2 of 4 partitions");
        let union: BTreeSet<String> = s.into_iter().chain(r).map(|(_, v)| v).collect();
        assert_eq!(union, values(0..100));
        shoal_member.stop();
        drop(rd_member);
    }
    drop(broker);
}
