//! The README walkthrough (issue 3, acceptance 2) and the `shoal` CLI.
//!
//! - `readme_quickstart_runs_as_written`: the shell and Python blocks of README.md's Quickstart
//!   section are run verbatim, in a private network namespace where the broker listens on the
//!   default 127.0.0.1:9092 (so nothing needs rewriting and no other broker can interfere).
//! - `walkthrough_with_shoal_kcat_and_python`: the same story spelled out against a broker on a
//!   free port: topic `chat`, two lines with `shoal produce`, `shoal consume --from-beginning`,
//!   then kcat and confluent-kafka, then delete.
//! - `cli_producer_partitions_keys_like_kafka`: `shoal produce --key-separator` puts each key in
//!   the partition Kafka's murmur2 partitioner picks; `--partition` and `consume --partition`.

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use rdkafka::Offset;
use shoal_testkit::{
    describe_output, kafka_partition, kcat_bin, python_bin, rdk, repo_root, run, shoal_bin, Broker,
};

fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

fn kcat(broker: &Broker, args: &[&str], stdin: Option<&[u8]>) -> String {
    let mut cmd = Command::new(kcat_bin());
    cmd.arg("-b").arg(broker.addr()).args(args);
    let output = run(cmd, stdin, Duration::from_secs(60));
    assert!(
        output.status.success(),
        "{}",
        describe_output(&format!("kcat {}", args.join(" ")), &output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn walkthrough_with_shoal_kcat_and_python() {
    let broker = Broker::start();
    broker.cli(&["topic", "create", "chat", "-p", "1"], None);
    let list = broker.cli(&["topic", "list"], None);
    assert!(
        lines(&list)
            .iter()
            .any(|l| l.split_whitespace().next() == Some("chat")),
        "topic list:\n{list}"
    );
    let describe = broker.cli(&["topic", "describe", "chat"], None);
    assert!(describe.contains("chat"), "topic describe:\n{describe}");

    broker.cli(&["produce", "chat"], Some(b"hello\nworld\n"));
    let consumed = broker.cli(&["consume", "chat", "--from-beginning", "-n", "2"], None);
    assert_eq!(lines(&consumed), ["hello", "world"], "shoal consume output");

    kcat(
        &broker,
        &["-P", "-t", "chat"],
        Some(b"from kcat 1\nfrom kcat 2\n"),
    );
    let consumed = kcat(
        &broker,
        &["-C", "-t", "chat", "-o", "beginning", "-e"],
        None,
    );
    assert_eq!(
        lines(&consumed),
        ["hello", "world", "from kcat 1", "from kcat 2"],
        "kcat -C output"
    );

    let python = broker.python(
        "walkthrough_confluent.py",
        &[
            "--topic",
            "chat",
            "--produce",
            "from python",
            "--expect",
            "5",
        ],
    );
    assert_eq!(
        lines(&python),
        [
            "hello",
            "world",
            "from kcat 1",
            "from kcat 2",
            "from python"
        ],
        "confluent-kafka output"
    );
    let consumed = broker.cli(&["consume", "chat", "--from-beginning", "-n", "5"], None);
    assert_eq!(
        lines(&consumed),
        [
            "hello",
            "world",
            "from kcat 1",
            "from kcat 2",
            "from python"
        ],
        "shoal consume sees what the other clients produced"
    );

    broker.cli(&["topic", "delete", "chat"], None);
    let list = broker.cli(&["topic", "list"], None);
    assert!(
        !lines(&list)
            .iter()
            .any(|l| l.split_whitespace().next() == Some("chat")),
        "chat still listed after delete:\n{list}"
    );
}

#[test]
fn cli_producer_partitions_keys_like_kafka() {
    let broker = Broker::start();
    broker.cli(&["topic", "create", "keys", "-p", "8"], None);
    let mut input = String::new();
    for i in 0..1000 {
        input.push_str(&format!("key-{}:value-{i}\n", i % 53));
    }
    broker.cli(
        &["produce", "keys", "--key-separator", ":"],
        Some(input.as_bytes()),
    );
    broker.cli(
        &["produce", "keys", "--partition", "3"],
        Some(b"pinned-1\npinned-2\n"),
    );

    let consumed = rdk::consume(&broker.addr(), "keys", 8, Offset::Beginning, 1002);
    let mut last_seq: HashMap<Vec<u8>, i64> = HashMap::new();
    let mut by_partition: Vec<Vec<&shoal_testkit::Consumed>> = vec![Vec::new(); 8];
    for c in &consumed {
        by_partition[c.partition as usize].push(c);
    }
    for (partition, records) in by_partition.iter_mut().enumerate() {
        records.sort_by_key(|c| c.offset);
        for c in records.iter() {
            let value = String::from_utf8_lossy(&c.value).into_owned();
            if let Some(seq) = value.strip_prefix("value-") {
                let key = c.key.clone().expect("keyed line has a key");
                assert_eq!(
                    c.partition,
                    kafka_partition(&key, 8),
                    "shoal produce put key {:?} in partition {partition}; Kafka's murmur2 picks {}",
                    String::from_utf8_lossy(&key),
                    kafka_partition(&key, 8)
                );
                let seq: i64 = seq.parse().unwrap();
                let previous = last_seq.insert(key.clone(), seq).unwrap_or(-1);
                assert!(previous < seq, "key {key:?}: {seq} after {previous}");
            } else {
                assert!(value.starts_with("pinned-"), "unexpected value {value:?}");
                assert_eq!(
                    c.partition, 3,
                    "--partition 3 record in partition {partition}"
                );
                assert_eq!(c.key, None, "line without --key-separator has no key");
            }
        }
    }
    assert_eq!(last_seq.len(), 53, "every key seen");

    let pinned = broker.cli(
        &[
            "consume",
            "keys",
            "--partition",
            "3",
            "--from-beginning",
            "-n",
            &(by_partition[3].len()).to_string(),
        ],
        None,
    );
    let pinned = lines(&pinned);
    assert_eq!(
        pinned.len(),
        by_partition[3].len(),
        "consume --partition 3:\n{pinned:?}"
    );
    assert_eq!(&pinned[pinned.len() - 2..], ["pinned-1", "pinned-2"]);
    let all = broker.cli(&["consume", "keys", "--from-beginning", "-n", "1002"], None);
    assert_eq!(
        lines(&all).len(),
        1002,
        "consume -n 1002 prints one line per record"
    );
}

/// One step of the README's Quickstart.
#[derive(Debug)]
enum Step {
    Shell {
        command: String,
        expect: Vec<String>,
    },
    Python {
        code: String,
        expect: Vec<String>,
    },
}

/// Commands that set things up rather than demonstrate them: the test has already built and
/// installed everything, and starts the broker itself.
fn is_setup(command: &str) -> bool {
    let c = command.trim();
    let words: Vec<&str> = c.split_whitespace().collect();
    let serve = words.contains(&"serve")
        && (c.starts_with("shoal")
            || c.contains("target/release/shoal")
            || c.starts_with("cargo run"));
    serve
        || c.starts_with("cargo ")
        || c.starts_with("pip ")
        || c.starts_with("pip3 ")
        || c.contains("-m pip ")
        || c.contains("-m venv")
        || c.starts_with("source ")
        || c.starts_with(". ")
        || c.starts_with("sudo ")
        || c.starts_with("apt")
        || c.starts_with("scripts/")
        || c.starts_with("./scripts/")
        || c.starts_with("git ")
        || c.starts_with("cd ")
}

/// The Quickstart section's steps: fenced `sh`/`bash`/`shell`/`console` blocks (a `$ ` prompt
/// marks commands; in `console` blocks the unprompted lines after a command are its expected
/// output) and `python` blocks, in order.
fn quickstart_steps(readme: &str) -> Vec<Step> {
    let mut in_section = false;
    let mut section_level = 0;
    let mut section = Vec::new();
    let mut in_fence = false;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_fence = !in_fence;
        }
        if !in_fence && line.starts_with('#') {
            let level = line.chars().take_while(|&c| c == '#').count();
            if in_section && level <= section_level {
                break;
            }
            if !in_section && line.to_lowercase().contains("quickstart") {
                in_section = true;
                section_level = level;
                continue;
            }
        }
        if in_section {
            section.push(line);
        }
    }
    assert!(
        in_section,
        "README.md has no Quickstart section (a heading containing \"Quickstart\")"
    );
    let mut steps = Vec::new();
    let mut i = 0;
    while i < section.len() {
        let line = section[i];
        let Some(info) = line.strip_prefix("```") else {
            i += 1;
            continue;
        };
        let info = info.trim().to_lowercase();
        let mut body = Vec::new();
        i += 1;
        while i < section.len() && !section[i].starts_with("```") {
            body.push(section[i]);
            i += 1;
        }
        i += 1;
        match info.as_str() {
            "python" | "py" | "python3" => steps.push(Step::Python {
                code: body.join("\n"),
                expect: Vec::new(),
            }),
            "sh" | "bash" | "shell" | "console" | "" => {
                let console = info == "console" || body.iter().any(|l| l.starts_with("$ "));
                let mut pending = String::new();
                for raw in body {
                    let prompted = raw.strip_prefix("$ ");
                    if console && prompted.is_none() && pending.is_empty() {
                        // Expected output of the previous command.
                        if let Some(Step::Shell { expect, .. }) = steps.last_mut() {
                            if !raw.trim().is_empty() {
                                expect.push(raw.trim().to_string());
                            }
                        }
                        continue;
                    }
                    let text = prompted.unwrap_or(raw);
                    if pending.is_empty()
                        && (text.trim().is_empty() || text.trim_start().starts_with('#'))
                    {
                        continue;
                    }
                    if let Some(cont) = text.strip_suffix('\\') {
                        pending.push_str(cont);
                        pending.push(' ');
                        continue;
                    }
                    pending.push_str(text);
                    let command = std::mem::take(&mut pending);
                    if !is_setup(&command) {
                        steps.push(Step::Shell {
                            command,
                            expect: Vec::new(),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    steps
}

/// README commands may name the binary as `shoal`, `./target/release/shoal` or
/// `cargo run --release --`; all mean the binary under test (on PATH as `shoal`).
fn normalize(command: &str) -> String {
    let mut c = command.to_string();
    for prefix in [
        "cargo run --release -q -- ",
        "cargo run -q --release -- ",
        "cargo run --release -- ",
        "cargo run -- ",
        "./target/release/shoal ",
        "target/release/shoal ",
    ] {
        c = c.replace(prefix, "shoal ");
    }
    c
}

/// Values a step produces: the lines of a `printf '...' |` feeding `shoal produce` or `kcat -P`
/// (minus the key, with a key separator), or the `value=b"..."` of a Python block.
fn produced_values(step: &Step) -> Vec<String> {
    match step {
        Step::Shell { command, .. } => {
            let producing = command.contains(" produce ") || command.contains(" -P");
            let Some(rest) = command.trim_start().strip_prefix("printf '") else {
                return Vec::new();
            };
            let Some(end) = rest.find('\'') else {
                return Vec::new();
            };
            if !producing {
                return Vec::new();
            }
            let separator = if let Some(pos) = command.find("-K") {
                command[pos + 2..].trim_start().chars().next()
            } else if let Some(pos) = command.find("--key-separator") {
                command[pos + 15..]
                    .trim_start()
                    .trim_start_matches('=')
                    .chars()
                    .next()
            } else {
                None
            };
            rest[..end]
                .split("\\n")
                .filter(|l| !l.is_empty())
                .map(|l| match separator {
                    Some(sep) => l.split_once(sep).map_or(l, |(_, v)| v).to_string(),
                    None => l.to_string(),
                })
                .collect()
        }
        Step::Python { code, .. } => code
            .split("value=b\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .map(|v| v.to_string())
            .collect(),
    }
}

#[test]
fn readme_quickstart_runs_as_written() {
    let readme_path = repo_root().join("README.md");
    let readme = std::fs::read_to_string(&readme_path)
        .unwrap_or_else(|e| panic!("{}: {e}", readme_path.display()));
    let steps = quickstart_steps(&readme);
    let mentions = |needle: &str| {
        steps.iter().any(|s| match s {
            Step::Shell { command, .. } => command.contains(needle),
            Step::Python { code, .. } => code.contains(needle),
        })
    };
    for needle in [
        "topic create chat",
        "produce chat",
        "consume chat",
        "kcat",
        "confluent_kafka",
    ] {
        assert!(
            mentions(needle),
            "README Quickstart has no step with {needle:?}: {steps:#?}"
        );
    }

    // A script that runs inside `unshare --net`: loopback up, broker on the default listener,
    // every step in order, each bounded, outputs kept for the checks below.
    let dir = tempfile::tempdir().unwrap();
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::os::unix::fs::symlink(shoal_bin(), bin_dir.join("shoal")).unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let venv_bin = python_bin().parent().unwrap().to_path_buf();
    let mut script = format!(
        "set -u\nexport PATH={bin}:{venv}:$PATH\ncd {work}\nip link set lo up || exit 90\n\
         shoal serve --data-dir {data} >{dir}/broker.log 2>&1 &\nbroker=$!\n\
         for i in $(seq 300); do grep -q 'shoal: listening on' {dir}/broker.log && break; sleep 0.1; done\n\
         grep -q 'shoal: listening on' {dir}/broker.log || {{ kill -9 $broker; exit 91; }}\n",
        bin = bin_dir.display(),
        venv = venv_bin.display(),
        work = work.display(),
        data = dir.path().join("shoal-data").display(),
        dir = dir.path().display(),
    );
    for (i, step) in steps.iter().enumerate() {
        let file = dir.path().join(format!("step{i}"));
        match step {
            Step::Shell { command, .. } => {
                std::fs::write(&file, normalize(command)).unwrap();
                script.push_str(&format!(
                    "timeout 60 bash {f} </dev/null >{f}.out 2>{f}.err; echo $? >{f}.rc\n",
                    f = file.display()
                ));
            }
            Step::Python { code, .. } => {
                std::fs::write(&file, code).unwrap();
                script.push_str(&format!(
                    "timeout 60 python {f} </dev/null >{f}.out 2>{f}.err; echo $? >{f}.rc\n",
                    f = file.display()
                ));
            }
        }
    }
    script.push_str("kill -9 $broker\nwait $broker 2>/dev/null\nexit 0\n");
    let script_path = dir.path().join("quickstart.sh");
    std::fs::write(&script_path, &script).unwrap();

    let mut cmd = Command::new("unshare");
    cmd.arg("--net").arg("bash").arg(&script_path);
    let output = run(
        cmd,
        None,
        Duration::from_secs(60 * (steps.len() as u64 + 2)),
    );
    let broker_log = std::fs::read_to_string(dir.path().join("broker.log")).unwrap_or_default();
    assert!(
        output.status.success(),
        "{}\n--- broker log ---\n{broker_log}",
        describe_output("quickstart script in a private network namespace", &output)
    );

    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    for (i, step) in steps.iter().enumerate() {
        let rc = read(&dir.path().join(format!("step{i}.rc")))
            .trim()
            .to_string();
        let out = read(&dir.path().join(format!("step{i}.out")));
        let err = read(&dir.path().join(format!("step{i}.err")));
        let (what, expect) = match step {
            Step::Shell { command, expect } => (command.clone(), expect),
            Step::Python { expect, .. } => ("the Python block".to_string(), expect),
        };
        eprintln!("README step {i}: `{what}` -> exit {rc}\n{out}");
        assert_eq!(
            rc, "0",
            "README step {i} `{what}` failed (exit {rc}; 124 = timed out after 60 s)\n--- stdout ---\n{out}\n--- stderr ---\n{err}\n--- broker log ---\n{broker_log}"
        );
        for line in expect {
            assert!(
                out.lines().any(|l| l.trim() == line),
                "README step {i} `{what}`: the README shows output {line:?}, got:\n{out}"
            );
        }
    }
    // Each consuming step shows every value produced by the steps before it (and, for a
    // Python block that produces then consumes, its own).
    let mut produced: Vec<String> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        produced.extend(produced_values(step));
        let consumer = match step {
            Step::Shell { command, .. } => command.contains("consume") || command.contains(" -C"),
            Step::Python { code, .. } => code.contains("Consumer"),
        };
        if consumer {
            let out = read(&dir.path().join(format!("step{i}.out")));
            for value in &produced {
                assert!(
                    out.contains(value.as_str()),
                    "README step {i} ({step:?}) does not show the produced value {value:?}; its output:\n{out}\n--- broker log ---\n{broker_log}"
                );
            }
        }
    }
}

#[test]
fn quickstart_parser_reads_sh_console_and_python_blocks() {
    let readme = "# Shoal\n\n```sh\ncargo build --release\n```\n\n## Quickstart\n\nStart it:\n\n\
```sh\n./target/release/shoal serve &\nshoal topic create chat -p 1\nprintf 'a\\nb\\n' | \\\n  shoal produce chat\n```\n\n\
```console\n$ shoal consume chat --from-beginning -n 2\na\nb\n```\n\n```python\nfrom confluent_kafka import Producer\n```\n\n\
## Tests\n\n```sh\nscripts/test\nshoal topic delete chat\n```\n";
    let steps = quickstart_steps(readme);
    let shown: Vec<String> = steps
        .iter()
        .map(|s| match s {
            Step::Shell { command, expect } => {
                format!("sh:{}|{}", normalize(command), expect.join(","))
            }
            Step::Python { code, .. } => format!("py:{code}"),
        })
        .collect();
    assert_eq!(
        shown,
        [
            "sh:shoal topic create chat -p 1|",
            "sh:printf 'a\\nb\\n' |    shoal produce chat|",
            "sh:shoal consume chat --from-beginning -n 2|a,b",
            "py:from confluent_kafka import Producer",
        ]
    );
    assert_eq!(produced_values(&steps[1]), ["a", "b"]);
    let kcat = Step::Shell {
        command: "printf 'k1:hi there\\n' | kcat -b 127.0.0.1:9092 -t chat -P -K:".to_string(),
        expect: Vec::new(),
    };
    assert_eq!(produced_values(&kcat), ["hi there"]);
    let python = Step::Python {
        code: "p.produce(\"chat\", key=b\"k2\", value=b\"hello from python\")".to_string(),
        expect: Vec::new(),
    };
    assert_eq!(produced_values(&python), ["hello from python"]);
}
