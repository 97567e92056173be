//! Harness for the consumer-group integration tests: a real `shoal serve` process on a free
//! 127.0.0.1 port with its own data directory, killed (SIGKILL) on drop.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub struct Broker {
    child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().unwrap().port()
}

impl Broker {
    /// Starts a broker on a fresh port.
    pub fn start(data_dir: &Path) -> Broker {
        Broker::start_on(data_dir, &format!("127.0.0.1:{}", free_port()))
    }

    /// Starts a broker on `addr` and waits (bounded) until it listens. Retries while the port is
    /// still held by the previous (killed) process's closing connections.
    pub fn start_on(data_dir: &Path, addr: &str) -> Broker {
        let start = Instant::now();
        loop {
            match Broker::try_start_on(data_dir, addr) {
                Ok(b) => return b,
                Err(why)
                    if why.to_lowercase().contains("address already in use")
                        && start.elapsed() < Duration::from_secs(90) =>
                {
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(why) => panic!("shoal did not start on {addr}: {why}"),
            }
        }
    }

    fn try_start_on(data_dir: &Path, addr: &str) -> Result<Broker, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_shoal"))
            .args(["serve", "--cores", "2", "--listen", addr, "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shoal");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut first = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if first.len() < 20 {
                    first.push(line.clone());
                }
                if line.contains("shoal: listening on") {
                    let _ = tx.send(Ok(()));
                } else if line.contains("shoal: error:") {
                    let _ = tx.send(Err(line.clone()));
                }
                if std::env::var_os("SHOAL_TEST_LOG").is_some()
                    || line.contains("ERROR")
                    || line.contains("panic")
                {
                    eprintln!("[shoal] {line}");
                }
            }
            // stderr closed: the process exited (a no-op if it was ready).
            let _ = tx.send(Err(format!("shoal exited; first stderr lines: {first:?}")));
        });
        let outcome = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(r) => r,
            Err(_) => Err("no 'listening' line within 60 s".to_string()),
        };
        if let Err(why) = outcome {
            let _ = child.kill();
            let _ = child.wait();
            return Err(why);
        }
        Ok(Broker {
            child,
            addr: addr.to_string(),
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// SIGKILL, like a crash.
    pub fn kill(mut self) -> (PathBuf, String) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        (self.data_dir.clone(), self.addr.clone())
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `cond` until it holds, panicking with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for: {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
