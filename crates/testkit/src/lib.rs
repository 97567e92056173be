//! The one harness of Shoal's integration tests (root `tests/` and `bench/tests/`):
//!
//! - [`Broker`]: a real `shoal serve` process with its own free port and temporary data dir;
//!   kill (SIGKILL), terminate (SIGTERM), pause/resume (SIGSTOP/SIGCONT), restart on the same
//!   data; [`Cluster`] is N of them (a single node is a cluster of one).
//! - the `shoal` CLI, the Python clients in `tests/clients/` and kcat, each run with a bounded
//!   wait that fails with the process's output; [`wait_for`] for everything else.
//! - [`raw`]: a hand-driven Kafka connection; [`rdk`]: librdkafka helpers; [`protocol`] and
//!   [`fake_broker`]: codec fixtures and a scripted broker for client tests; [`storage`]: an
//!   in-process log on glommio with a model to check it against.
//!
//! Architecture invariant: only tests depend on this crate.

pub mod fake_broker;
pub mod powerfs;
pub mod protocol;
pub mod raw;
pub mod rdk;
pub mod storage;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// How long `shoal serve` may take to accept connections (a cold start creates the data dir).
pub const BROKER_START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a clean shutdown (SIGTERM) may take.
pub const BROKER_STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Default bound for one CLI invocation.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound for one client script (produce + consume of ~10k records, plus interpreter start).
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
/// Output shown of a failing child process, per stream, in bytes (the tail is kept).
const OUTPUT_SHOWN_BYTES_MAX: usize = 16 * 1024;

/// The `shoal` binary under test: `$SHOAL_BIN`, else the `shoal` that cargo built beside the
/// running test executable (`target/<profile>/deps/<test>` → `target/<profile>/shoal`;
/// `cargo test --workspace` builds it). For a target dir shared between worktrees, where
/// another checkout may overwrite cargo's build while the tests run, copy it aside and point
/// `SHOAL_BIN` at the copy.
pub fn shoal_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SHOAL_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let bin = profile_dir.join("shoal");
    assert!(
        bin.exists(),
        "no shoal binary at {}: build it (`cargo build --release --bin shoal`; `cargo test --workspace` does) or set SHOAL_BIN",
        bin.display()
    );
    bin
}

/// The repository's top directory (this crate lives in `crates/testkit`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A port that was free a moment ago: bind port 0 and let the kernel pick (ephemeral range,
/// so it never collides with a default Kafka port such as 9092).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// The tail of `bytes` as text, for failure messages.
pub fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(OUTPUT_SHOWN_BYTES_MAX);
    let text = String::from_utf8_lossy(&bytes[start..]).into_owned();
    if start > 0 {
        format!("[... {start} bytes cut ...]\n{text}")
    } else {
        text
    }
}

pub fn describe_output(what: &str, output: &Output) -> String {
    format!(
        "{what}: {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--------------",
        output.status,
        tail(&output.stdout),
        tail(&output.stderr)
    )
}

/// Options of one broker process.
#[derive(Clone, Debug)]
pub struct BrokerOptions {
    /// `--cores`: 2 by default so that partitions spread over two shards and requests get
    /// forwarded between shards, as on any real machine.
    pub cores: usize,
    /// Extra `shoal serve` arguments (e.g. `--config FILE`).
    pub extra_args: Vec<String>,
    /// Data dir somewhere else than the broker's temp dir (e.g. on a power-cut test fs).
    pub data_dir: Option<PathBuf>,
}

impl Default for BrokerOptions {
    fn default() -> Self {
        BrokerOptions {
            cores: 2,
            extra_args: Vec::new(),
            data_dir: None,
        }
    }
}

/// A `shoal serve` child process. Killed (SIGKILL) on drop; the data dir lives as long as the
/// `Broker`, so it can be restarted on the same data.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
    /// `127.0.0.1:PORT`, the bootstrap address for clients.
    pub addr: String,
    options: BrokerOptions,
    /// Holds `data/` (the broker's data dir) and the stdout/stderr logs of every start.
    dir: tempfile::TempDir,
    starts: u32,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_with(BrokerOptions::default())
    }

    /// A broker with its admin listener on an ephemeral port ([`Broker::admin_addr`]).
    pub fn start_with_admin() -> Broker {
        Broker::start_with(BrokerOptions {
            extra_args: vec!["--admin-listen".into(), "127.0.0.1:0".into()],
            ..BrokerOptions::default()
        })
    }

    pub fn start_with(options: BrokerOptions) -> Broker {
        let mut broker = Broker::unstarted(options, free_port());
        broker.spawn_and_wait();
        broker
    }

    /// A broker with its own data dir and `port`, not started yet (see [`Cluster`]).
    fn unstarted(options: BrokerOptions, port: u16) -> Broker {
        let dir = tempfile::Builder::new()
            .prefix("shoal-test-")
            .tempdir()
            .expect("create temp dir");
        if options.data_dir.is_none() {
            std::fs::create_dir_all(dir.path().join("data")).expect("create data dir");
        }
        Broker {
            child: None,
            port,
            addr: format!("127.0.0.1:{port}"),
            options,
            dir,
            starts: 0,
        }
    }

    /// Starts a broker that was stopped (`kill`, `terminate`) without waiting for it to be
    /// ready; pair with [`Broker::wait_started`]. Cluster nodes start together this way.
    pub fn spawn(&mut self) {
        self.spawn_only();
    }

    /// Bounded wait for a [`Broker::spawn`]ed broker to be ready.
    pub fn wait_started(&mut self) {
        self.wait_ready();
    }

    /// `127.0.0.1:PORT`, the bootstrap address for clients.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    pub fn data_dir(&self) -> PathBuf {
        match &self.options.data_dir {
            Some(dir) => dir.clone(),
            None => self.dir.path().join("data"),
        }
    }

    fn stderr_path(&self) -> PathBuf {
        self.dir.path().join(format!("stderr.{}.log", self.starts))
    }

    fn stdout_path(&self) -> PathBuf {
        self.dir.path().join(format!("stdout.{}.log", self.starts))
    }

    /// The whole stderr of the current (or last) broker process.
    pub fn stderr_all(&self) -> String {
        std::fs::read(self.stderr_path())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    /// Stderr of the current (or last) broker process (its tail).
    pub fn stderr(&self) -> String {
        std::fs::read(self.stderr_path())
            .map(|bytes| tail(&bytes))
            .unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is running").id()
    }

    fn spawn_and_wait(&mut self) {
        self.spawn_only();
        self.wait_ready();
    }

    fn spawn_only(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        self.starts += 1;
        let stderr = File::create(self.stderr_path()).expect("create stderr log");
        let stdout = File::create(self.stdout_path()).expect("create stdout log");
        let mut cmd = Command::new(shoal_bin());
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(self.addr())
            .arg("--cores")
            .arg(self.options.cores.to_string())
            .args(self.admin_args())
            .args(&self.options.extra_args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {:?}: {e}", shoal_bin()));
        self.child = Some(child);
    }

    /// Bounded wait until the broker printed its ready line and accepts connections.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + BROKER_START_TIMEOUT;
        let ready_line = format!("shoal: listening on {}", self.addr());
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().expect("try_wait") {
                self.child = None;
                let sockets = Command::new("ss")
                    .args([
                        "-tan",
                        &format!("( sport = :{} or dport = :{} )", self.port, self.port),
                    ])
                    .output()
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                panic!(
                    "shoal serve (port {}, start #{}) exited during startup: {status}\n--- stderr ---\n{}\n--- sockets on the port (ss) ---\n{sockets}",
                    self.port,
                    self.starts,
                    self.stderr()
                );
            }
            let printed = self.stderr().contains(&ready_line);
            if printed
                && TcpStream::connect_timeout(
                    &format!("127.0.0.1:{}", self.port).parse().unwrap(),
                    Duration::from_secs(1),
                )
                .is_ok()
            {
                return;
            }
            if Instant::now() > deadline {
                let _ = self.child.as_mut().unwrap().kill();
                let _ = self.child.as_mut().unwrap().wait();
                self.child = None;
                panic!(
                    "shoal serve did not become ready within {:?} (ready line {:?} printed: {printed}; \
                     port {} accepting: no)\n--- stderr ---\n{}",
                    BROKER_START_TIMEOUT,
                    ready_line,
                    self.port,
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL and reap: no chance to flush or sync anything.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait (bounded) for a clean exit; returns the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("broker is running");
        // SAFETY: plain kill(2) on our own child's pid, which has not been reaped yet.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM)");
        let deadline = Instant::now() + BROKER_STOP_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "shoal serve did not exit within {:?} of SIGTERM\n--- stderr ---\n{}",
                    BROKER_STOP_TIMEOUT,
                    self.stderr()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGSTOP: the process keeps its sockets and state but runs nothing (a long GC pause, a
    /// frozen VM) until [`Broker::resume`].
    pub fn pause(&mut self) {
        self.signal(libc::SIGSTOP, "SIGSTOP");
    }

    /// SIGCONT after [`Broker::pause`].
    pub fn resume(&mut self) {
        self.signal(libc::SIGCONT, "SIGCONT");
    }

    fn signal(&mut self, signal: libc::c_int, name: &str) {
        let child = self.child.as_ref().expect("broker is running");
        // SAFETY: plain kill(2) on our own child's pid, which has not been reaped yet.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
        assert_eq!(rc, 0, "kill({name})");
    }

    /// Start again on the same data dir and port (after `kill` or `terminate`).
    ///
    /// First a bounded wait until nothing listens on the port any more: the kernel tears down
    /// a dead process's io_uring asynchronously, and listeners referenced by its in-flight
    /// accepts outlive the reaped process by a few milliseconds.
    pub fn restart(&mut self) {
        self.kill();
        let addr: std::net::SocketAddr = self.addr().parse().unwrap();
        wait_for(
            "the old broker's listeners to close",
            Duration::from_secs(10),
            || match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(_) => Err("port still accepts connections".to_string()),
                Err(_) => Ok(()),
            },
        );
        self.spawn_and_wait();
    }

    /// Panics (with stderr) if the broker process has exited.
    pub fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("broker was stopped by the test");
        if let Some(status) = child.try_wait().expect("try_wait") {
            self.child = None;
            panic!(
                "shoal serve exited unexpectedly: {status}\n--- stderr ---\n{}",
                self.stderr()
            );
        }
    }

    /// Bounded wait for the broker process to exit (e.g. after a suspected crash): its exit
    /// status, or `None` if it is still running after `timeout`.
    pub fn exited_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Some(status) = child.try_wait().expect("try_wait") {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Re-panics with `what`, the original panic and whether the broker process crashed.
    pub fn fail_with(&mut self, what: &str, panic: &(dyn std::any::Any + Send)) -> ! {
        let msg = panic_message(panic);
        let state = match self.exited_within(Duration::from_secs(2)) {
            Some(status) => format!("the broker process EXITED ({status})"),
            None => "the broker process is still running".to_string(),
        };
        panic!("{what}: {msg}\n[{state}]");
    }

    /// No admin listener unless the test asks for one ([`Broker::start_with_admin`]): every
    /// extra listening socket is one more chance to take a port `free_port` handed out.
    fn admin_args(&self) -> Vec<&'static str> {
        if self
            .options
            .extra_args
            .iter()
            .any(|a| a == "--admin-listen")
        {
            Vec::new()
        } else {
            vec!["--admin-listen", ""]
        }
    }

    /// The admin listener's address, from the start-up line (`--admin-listen 127.0.0.1:0`).
    pub fn admin_addr(&self) -> String {
        let stderr = self.stderr();
        stderr
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("shoal: admin listening on "))
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no admin listener line in:\n{stderr}"))
            .to_string()
    }

    /// `GET path` on the admin listener: (status line, body).
    pub fn admin_get(&self, path: &str) -> (String, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.admin_addr()).expect("connect admin");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: shoal\r\n\r\n").unwrap();
        let mut response = String::new();
        s.read_to_string(&mut response)
            .expect("read admin response");
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        let status = head.lines().next().unwrap_or_default().to_string();
        (status, body.to_string())
    }

    /// The value of an unlabelled sample (a counter, a histogram's `_count`) on `/metrics`.
    pub fn metric(&self, name: &str) -> f64 {
        let (status, body) = self.admin_get("/metrics");
        assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
        body.lines()
            .filter_map(|l| l.split_once(' '))
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} is not on /metrics:\n{body}"))
    }

    /// Runs `shoal ARGS... --brokers ADDR` (bounded), returns its output, whatever the exit code.
    pub fn cli_output(&self, args: &[&str], stdin: Option<&[u8]>) -> Output {
        let mut cmd = Command::new(shoal_bin());
        cmd.args(args).arg("--brokers").arg(self.addr());
        run(cmd, stdin, CLI_TIMEOUT)
    }

    /// Runs `shoal ARGS... --brokers ADDR` and asserts success; returns stdout.
    pub fn cli(&self, args: &[&str], stdin: Option<&[u8]>) -> String {
        let output = self.cli_output(args, stdin);
        assert!(
            output.status.success(),
            "{}\n--- broker stderr ---\n{}",
            describe_output(&format!("shoal {}", args.join(" ")), &output),
            self.stderr()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// `shoal topic create NAME -p PARTITIONS`.
    pub fn create_topic(&self, name: &str, partitions: i32) {
        self.create_topic_with(name, partitions, &[]);
    }

    /// `shoal topic create NAME -p PARTITIONS -c KEY=VALUE ...` (Kafka topic config names).
    pub fn create_topic_with(&self, name: &str, partitions: i32, configs: &[&str]) {
        let partitions = partitions.to_string();
        let mut args = vec!["topic", "create", name, "-p", &partitions];
        for c in configs {
            args.extend(["-c", c]);
        }
        self.cli(&args, None);
    }

    /// Runs a Python script from `tests/clients/` with `--bootstrap ADDR` prepended to `args`
    /// and asserts exit code 0; returns stdout.
    pub fn python(&self, script: &str, args: &[&str]) -> String {
        let mut all = vec!["--bootstrap".to_string(), self.addr()];
        all.extend(args.iter().map(|s| s.to_string()));
        let output = run_python(script, &all, SCRIPT_TIMEOUT);
        assert!(
            output.status.success(),
            "{}\n--- broker stderr ---\n{}",
            describe_output(&format!("python {script} {}", all.join(" ")), &output),
            self.stderr()
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "--- shoal serve stderr (port {}, start {}) ---\n{}",
                self.port,
                self.starts,
                self.stderr()
            );
        }
    }
}

pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "(non-string panic)".to_string())
}

/// Runs `cmd` with optional stdin, killing it after `timeout` (then panics with its output).
pub fn run(mut cmd: Command, stdin: Option<&[u8]>, timeout: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let shown = format!("{cmd:?}");
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {shown}: {e}"));
    let stdin_writer = stdin.map(|data| {
        let data = data.to_vec();
        let mut pipe = child.stdin.take().unwrap();
        thread::spawn(move || {
            // A child that exits early closes the pipe: not our error to report here.
            let _ = pipe.write_all(&data);
        })
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out_pipe.read_to_end(&mut buf);
        buf
    });
    let err_reader = thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if Instant::now() > deadline {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait");
        }
        thread::sleep(Duration::from_millis(20));
    };
    if let Some(writer) = stdin_writer {
        let _ = writer.join();
    }
    let output = Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    };
    if timed_out {
        panic!(
            "{}",
            describe_output(&format!("{shown} timed out after {timeout:?}"), &output)
        );
    }
    output
}

/// The Python of the venv made by `scripts/install-deps` (or `$SHOAL_PYTHON`).
pub fn python_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SHOAL_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = repo_root().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "{} not found: run scripts/install-deps (or set SHOAL_PYTHON)",
        venv.display()
    );
    venv
}

pub fn clients_dir() -> PathBuf {
    repo_root().join("tests/clients")
}

/// Runs `tests/clients/SCRIPT ARGS` with the venv's Python (bounded), whatever its exit code.
pub fn run_python(script: &str, args: &[String], timeout: Duration) -> Output {
    let path = clients_dir().join(script);
    assert!(path.exists(), "{} does not exist", path.display());
    let mut cmd = Command::new(python_bin());
    cmd.arg("-u").arg(path).args(args);
    cmd.env("PYTHONDONTWRITEBYTECODE", "1");
    run(cmd, None, timeout)
}

/// Debian's kcat; a clear failure if it is missing.
pub fn kcat_bin() -> PathBuf {
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let candidate = Path::new(dir).join("kcat");
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("kcat not found on PATH: run scripts/install-deps (apt package kcat)");
}

/// Bounded poll: calls `f` until it returns `Some`, or panics with `what` and the last state.
pub fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(value) => return value,
            Err(last) => {
                if Instant::now() > deadline {
                    panic!("timed out after {timeout:?} waiting for {what}; last: {last}");
                }
            }
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// `topic` as a Metadata response reports it (asserting it exists without error), and the
/// whole response.
pub fn topic_metadata(
    addr: &str,
    topic: &str,
) -> (
    kafka_protocol::messages::metadata_response::MetadataResponseTopic,
    kafka_protocol::messages::MetadataResponse,
) {
    let md = raw::RawConn::connect(addr).metadata(&[topic]);
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .unwrap_or_else(|| panic!("no topic {topic} in metadata: {md:?}"))
        .clone();
    assert_eq!(t.error_code, 0, "metadata of {topic}: {md:?}");
    (t, md)
}

/// Latest offset (high watermark) of every partition of `topic`, through ListOffsets.
pub fn high_watermarks(addr: &str, topic: &str, partitions: i32) -> Vec<i64> {
    let mut conn = raw::RawConn::connect(addr);
    (0..partitions)
        .map(|p| {
            let (error, offset) = conn.list_offset(topic, p, -1);
            assert_eq!(error, 0, "ListOffsets latest {topic}/{p}");
            offset
        })
        .collect()
}

/// [`wait_for`] for a condition without a value: panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    wait_for(what, timeout, || {
        if cond() {
            Ok(())
        } else {
            Err("condition not met yet".to_string())
        }
    })
}

/// N broker processes forming one metadata quorum: node ids 1..=N, each with its own Kafka port,
/// cluster port and data dir, every node a voter (`--controller-quorum-voters`). With
/// `proxied`, every directed cluster link i→j goes through a [`LinkProxy`] the test can cut.
pub struct Cluster {
    pub nodes: Vec<Broker>,
    /// Cluster (node-to-node) port of each node, index = id - 1.
    pub cluster_ports: Vec<u16>,
    /// `links[(from, to)]`: the proxy carrying from's connections to `to` (when proxied).
    pub links: std::collections::BTreeMap<(usize, usize), LinkProxy>,
}

impl Cluster {
    /// Starts `n` nodes with `options` and waits until each is ready.
    pub fn start(n: usize, options: BrokerOptions) -> Cluster {
        Cluster::start_with(n, options, false)
    }

    pub fn start_with(n: usize, options: BrokerOptions, proxied: bool) -> Cluster {
        assert!(n >= 1, "a cluster has at least one node");
        let kafka_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let cluster_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
        let mut links = std::collections::BTreeMap::new();
        let mut nodes = Vec::with_capacity(n);
        for id in 1..=n {
            let voters: Vec<String> = (1..=n)
                .map(|peer| {
                    let port = if proxied && peer != id {
                        let proxy = LinkProxy::start(cluster_ports[peer - 1]);
                        let port = proxy.port;
                        links.insert((id, peer), proxy);
                        port
                    } else {
                        cluster_ports[peer - 1]
                    };
                    format!("{peer}@127.0.0.1:{port}")
                })
                .collect();
            let mut node_options = options.clone();
            node_options.extra_args.extend([
                "--node-id".to_string(),
                id.to_string(),
                "--controller-quorum-voters".to_string(),
                voters.join(","),
                "--cluster-listen".to_string(),
                format!("127.0.0.1:{}", cluster_ports[id - 1]),
            ]);
            nodes.push(Broker::unstarted(node_options, kafka_ports[id - 1]));
        }
        for node in nodes.iter_mut() {
            node.spawn();
        }
        for node in nodes.iter_mut() {
            node.wait_started();
        }
        Cluster {
            nodes,
            cluster_ports,
            links,
        }
    }

    /// The node with id `id` (1-based, as Kafka broker ids).
    pub fn node(&mut self, id: usize) -> &mut Broker {
        &mut self.nodes[id - 1]
    }

    /// Every node's address, comma separated (`bootstrap.servers`).
    pub fn bootstrap(&self) -> String {
        let addrs: Vec<&str> = self.nodes.iter().map(|n| n.addr.as_str()).collect();
        addrs.join(",")
    }

    /// Cuts (or heals) every proxied link to and from node `id`.
    pub fn isolate(&self, id: usize, cut: bool) {
        for ((from, to), link) in &self.links {
            if *from == id || *to == id {
                link.set_cut(cut);
            }
        }
    }
}

/// A TCP proxy on loopback for one directed cluster link; `set_cut(true)` drops its open
/// connections and refuses (closes) new ones until healed.
pub struct LinkProxy {
    pub port: u16,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    epoch: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl LinkProxy {
    pub fn start(target_port: u16) -> LinkProxy {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let epoch = Arc::new(AtomicU64::new(0));
        let (c, e) = (cut.clone(), epoch.clone());
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let my_epoch = e.load(Ordering::SeqCst);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let (c, e) = (c.clone(), e.clone());
                    thread::spawn(move || {
                        use std::io::{Read, Write};
                        let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
                        let mut buf = vec![0u8; 64 << 10];
                        loop {
                            if c.load(Ordering::SeqCst) || e.load(Ordering::SeqCst) != my_epoch {
                                break;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                Err(err)
                                    if err.kind() == std::io::ErrorKind::WouldBlock
                                        || err.kind() == std::io::ErrorKind::TimedOut => {}
                                Err(_) => break,
                            }
                        }
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        LinkProxy { port, cut, epoch }
    }

    pub fn set_cut(&self, cut: bool) {
        use std::sync::atomic::Ordering;
        self.cut.store(cut, Ordering::SeqCst);
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }
}

/// The partition Kafka's default partitioner picks for a non-null key.
pub fn kafka_partition(key: &[u8], partitions: i32) -> i32 {
    shoal_protocol::partitioner::partition_for_key(key, partitions)
}

/// A unique-enough topic name for one test.
pub fn topic_name(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
            % 1_000_000_000
    )
}

/// One record a test produced, in produce order (`seq`).
#[derive(Clone, Debug)]
pub struct Produced {
    pub seq: usize,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp: i64,
}

/// One record a test consumed back.
#[derive(Clone, Debug)]
pub struct Consumed {
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
    pub headers: Vec<(String, Vec<u8>)>,
    pub timestamp: i64,
    pub partition: i32,
    pub offset: i64,
}

/// Distinct keys of `make_records`: several per partition, many records per key.
pub const KEYS: usize = 97;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Deterministic keyed records with headers (incl. a duplicated header key, which Kafka
/// allows) and CreateTime timestamps in the recent past, one per millisecond.
pub fn make_records(count: usize, client: &str) -> Vec<Produced> {
    let base_ts = now_ms() - 10 * 60 * 1000;
    (0..count)
        .map(|i| Produced {
            seq: i,
            key: format!("key-{}", i % KEYS).into_bytes(),
            value: format!("{client}-value-{i}-{}", "x".repeat(i % 50)).into_bytes(),
            headers: vec![
                ("seq".to_string(), i.to_string().into_bytes()),
                ("client".to_string(), client.as_bytes().to_vec()),
                ("dup".to_string(), b"first".to_vec()),
                ("dup".to_string(), b"second".to_vec()),
            ],
            timestamp: base_ts + i as i64,
        })
        .collect()
}

/// What `verify` compares.
#[derive(Clone, Copy, Debug)]
pub struct Checks {
    pub headers: bool,
    pub timestamps: bool,
}

impl Checks {
    pub const ALL: Checks = Checks {
        headers: true,
        timestamps: true,
    };
}

/// Everything produced was consumed exactly once, each key in Kafka's murmur2 partition, per
/// key in produce order, offsets of each partition 0..n, headers and timestamps intact, and at
/// the offsets the delivery reports gave (if any). Returns records per partition.
pub fn verify(
    produced: &[Produced],
    consumed: &[Consumed],
    partitions: i32,
    delivered: Option<&std::collections::HashMap<usize, (i32, i64)>>,
    checks: Checks,
) -> Vec<usize> {
    use std::collections::HashMap;
    assert_eq!(
        consumed.len(),
        produced.len(),
        "consumed {} records, produced {}",
        consumed.len(),
        produced.len()
    );
    let mut by_value: HashMap<&[u8], &Consumed> = HashMap::new();
    for c in consumed {
        let previous = by_value.insert(&c.value, c);
        assert!(
            previous.is_none(),
            "record consumed twice: {:?}",
            String::from_utf8_lossy(&c.value)
        );
    }
    let mut per_partition: Vec<Vec<(i64, usize, &[u8])>> = vec![Vec::new(); partitions as usize];
    for p in produced {
        let c = by_value.get(&p.value[..]).unwrap_or_else(|| {
            panic!(
                "record seq {} (key {:?}) was not consumed",
                p.seq,
                String::from_utf8_lossy(&p.key)
            )
        });
        assert_eq!(c.key.as_deref(), Some(&p.key[..]), "seq {}: key", p.seq);
        let want = kafka_partition(&p.key, partitions);
        assert_eq!(
            c.partition,
            want,
            "key {:?} landed in partition {}, Kafka's murmur2 partitioner picks {want}",
            String::from_utf8_lossy(&p.key),
            c.partition
        );
        if checks.headers {
            assert_eq!(c.headers, p.headers, "seq {}: headers", p.seq);
        }
        if checks.timestamps {
            assert_eq!(c.timestamp, p.timestamp, "seq {}: timestamp", p.seq);
        }
        if let Some(delivered) = delivered {
            let report = delivered
                .get(&p.seq)
                .unwrap_or_else(|| panic!("seq {}: no delivery report", p.seq));
            assert_eq!(
                *report,
                (c.partition, c.offset),
                "seq {}: delivery report (partition, offset) vs where it was consumed",
                p.seq
            );
        }
        per_partition[c.partition as usize].push((c.offset, p.seq, &p.key));
    }
    let mut counts = Vec::new();
    for (partition, rows) in per_partition.iter_mut().enumerate() {
        rows.sort();
        for (i, (offset, _, _)) in rows.iter().enumerate() {
            assert_eq!(
                *offset, i as i64,
                "partition {partition}: offsets are not contiguous from 0"
            );
        }
        let mut last_seq: HashMap<&[u8], usize> = HashMap::new();
        for (offset, seq, key) in rows.iter() {
            if let Some(previous) = last_seq.insert(key, *seq) {
                assert!(
                    previous < *seq,
                    "partition {partition}: key {:?} out of order at offset {offset} (seq {seq} after {previous})",
                    String::from_utf8_lossy(key)
                );
            }
        }
        counts.push(rows.len());
    }
    counts
}

/// Reads every batch header of every partition of `topic` through the raw client, for checks
/// on how records are stored (compression codec, producer ids, CRCs).
pub fn stored_batches(addr: &str, topic: &str, partitions: i32) -> Vec<(i32, raw::BatchHeader)> {
    let mut conn = raw::RawConn::connect(addr);
    let mut out = Vec::new();
    for partition in 0..partitions {
        let mut offset = 0i64;
        for _ in 0..100_000 {
            let response = conn.fetch(topic, partition, offset);
            let data = raw::single_fetch_partition(&response, topic, partition);
            assert_eq!(data.error_code, 0, "fetch {topic}/{partition}@{offset}");
            let records = data.records.clone().unwrap_or_default();
            let batches = raw::batch_headers(&records);
            let mut progressed = false;
            for b in batches {
                if b.base_offset + b.last_offset_delta as i64 >= offset {
                    offset = b.base_offset + b.last_offset_delta as i64 + 1;
                    out.push((partition, b));
                    progressed = true;
                }
            }
            if offset >= data.high_watermark {
                break;
            }
            assert!(
                progressed,
                "fetch {topic}/{partition}@{offset}: no batch returned below the high watermark {}",
                data.high_watermark
            );
        }
    }
    out
}

/// Idempotent producer's batches: one producer id throughout, and per partition the sequence
/// numbers run gapless from 0.
pub fn check_idempotent_batches(batches: &[(i32, raw::BatchHeader)]) {
    assert!(!batches.is_empty(), "no batches stored");
    let producer_id = batches[0].1.producer_id;
    assert!(
        producer_id >= 0,
        "idempotent batches carry a producer id: {:?}",
        batches[0]
    );
    let mut next_sequence = std::collections::HashMap::new();
    for (partition, b) in batches {
        assert_eq!(b.producer_id, producer_id, "partition {partition}: {b:?}");
        let want = next_sequence.entry(*partition).or_insert(0);
        assert_eq!(
            b.base_sequence, *want,
            "partition {partition}: sequence gap at {b:?}"
        );
        *want += b.record_count;
    }
}

/// Kafka's group → `__consumer_offsets` partition: `Utils.abs(groupId.hashCode()) % n`, written
/// here from Java's String.hashCode as an oracle independent of the broker.
pub fn java_partition(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    (h & 0x7fff_ffff) % partitions
}

/// The coordinator node id `addr` names for `group` (FindCoordinator v3), after a bounded wait
/// for it to have one.
pub fn find_coordinator(addr: &str, group: &str) -> i32 {
    use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
    use kafka_protocol::protocol::StrBytes;
    wait_for(
        &format!("{addr} to name a coordinator for {group}"),
        Duration::from_secs(15),
        || {
            let mut conn = raw::RawConn::connect(addr);
            let req = FindCoordinatorRequest::default()
                .with_key(StrBytes::from_string(group.to_string()))
                .with_key_type(0);
            let r: FindCoordinatorResponse = conn.request(3, &req);
            if r.error_code == 0 {
                Ok(r.node_id.0)
            } else {
                Err(format!("error {}", r.error_code))
            }
        },
    )
}
