//! A node: one process, one shard per core. Starts the pinned executors, joins them into a
//! channel mesh, opens the partitions each owns, serves Kafka connections, and shuts down cleanly
//! on SIGINT/SIGTERM (in-flight appends finish, logs are synced and closed).

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};

use crate::config::NodeConfig;
use crate::context::NodeContext;
use crate::shard::{Shard, ShardMessage};
use shoal_sync::Notify;

/// How often a shard checks for shutdown and runs partition ticks.
const TICK_INTERVAL_MS: u64 = 100;
/// The longest a SIGTERM waits for the controller to move this node's leaderships.
const CONTROLLED_SHUTDOWN_MS_MAX: u64 = 15_000;
/// Replication channels accepted for a shard and not yet taken over by it.
const REPLICA_ACCEPTS_QUEUED_MAX: usize = 64;
/// Start-up waits this long for a quorum of one to register and unfence this broker.
const UNFENCE_WAIT_SINGLE_MS: u64 = 10_000;
/// ... and this long for a multi-node quorum before serving anyway.
const UNFENCE_WAIT_CLUSTER_MS: u64 = 3_000;

fn split_host_port(addr: &str) -> Result<(String, i32), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("'{addr}' is not HOST:PORT"))?;
    let port: u16 = port.parse().map_err(|_| format!("'{addr}': bad port"))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port as i32))
}

/// Blocks SIGINT and SIGTERM in the calling thread (and the threads it spawns later); returns
/// the set, for `sigwait`.
fn block_shutdown_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-mask calls on a sigset we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// Blocks SIGINT/SIGTERM in this thread (and every thread it spawns later) and waits for them on a
/// dedicated thread: the first sets `shutdown`, a second one exits at once.
fn install_signal_thread(node: Arc<NodeContext>) {
    let set = block_shutdown_signals();
    // SAFETY: sigwait on the set this thread blocked.
    unsafe {
        std::thread::Builder::new()
            .name("shoal-signals".into())
            .spawn(move || {
                let mut signalled = false;
                loop {
                    let mut sig: libc::c_int = 0;
                    if libc::sigwait(&set, &mut sig) != 0 {
                        continue;
                    }
                    if std::mem::replace(&mut signalled, true) {
                        eprintln!("shoal: second signal, exiting now");
                        std::process::exit(130);
                    }
                    eprintln!("shoal: signal {sig}, moving leaderships away, then shutting down");
                    let node = node.clone();
                    std::thread::spawn(move || {
                        controlled_shutdown(&node);
                        eprintln!("shoal: shutting down (syncing logs)");
                        node.shutdown.store(true, Ordering::SeqCst);
                    });
                }
            })
            .expect("spawn signal thread");
    }
}

/// Kafka's controlled shutdown: the controller moves this node's leaderships to other in-sync
/// replicas (or to none, where it is the only one); wait until this node's metadata shows
/// that, at most `CONTROLLED_SHUTDOWN_MS_MAX`, so clients are sent elsewhere before it goes.
fn controlled_shutdown(node: &NodeContext) {
    let me = node.config.node_id;
    let leads_nothing = |m: &crate::metadata::MetadataSnapshot| {
        m.topics
            .values()
            .all(|t| t.parts.iter().all(|p| p.leader != me))
    };
    let started = Instant::now();
    if let Err(e) = node.metadata.begin_controlled_shutdown() {
        eprintln!("shoal: controlled shutdown not started ({e}); shutting down anyway");
        return;
    }
    let timeout = Duration::from_millis(CONTROLLED_SHUTDOWN_MS_MAX);
    if node.metadata.wait_for_blocking(timeout, leads_nothing) {
        eprintln!(
            "shoal: leaderships moved in {} ms",
            started.elapsed().as_millis()
        );
    } else {
        eprintln!(
            "shoal: leaderships not moved after {CONTROLLED_SHUTDOWN_MS_MAX} ms (no controller?); shutting down anyway"
        );
    }
}

/// Start-up stages of a shard, for the watchdog's report.
const STAGE_NAMES: [&str; 4] = [
    "starting its executor",
    "joining the shard mesh",
    "opening its partitions",
    "listening",
];

/// Seconds a node may take to start before the watchdog restarts the process.
const STARTUP_MS_MAX: u64 = 10_000;
/// Start attempts before giving up.
const START_ATTEMPTS_MAX: u32 = 3;

/// A rare start-up stall has been seen under heavy load (nothing printed, no shard ready; the
/// suspect is glommio's channel-mesh rendezvous). Nothing is served before every shard is ready,
/// so re-executing the process is safe: the watchdog names the stuck stage of each shard and
/// restarts, at most `START_ATTEMPTS_MAX` times.
fn start_watchdog(ready: Arc<AtomicBool>, stages: Arc<Vec<std::sync::atomic::AtomicU8>>) {
    std::thread::Builder::new()
        .name("shoal-start-watchdog".into())
        .spawn(move || {
            // SIGINT/SIGTERM belong to the signal thread (see install_signal_thread).
            block_shutdown_signals();
            let deadline = std::time::Instant::now() + Duration::from_millis(STARTUP_MS_MAX);
            while std::time::Instant::now() < deadline {
                if ready.load(Ordering::SeqCst) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let report: Vec<String> = stages
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    let stage = st.load(Ordering::SeqCst) as usize;
                    format!("shard {i}: {}", STAGE_NAMES[stage.min(STAGE_NAMES.len() - 1)])
                })
                .collect();
            let attempt: u32 = std::env::var("SHOAL_START_ATTEMPT")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            eprintln!(
                "shoal: start-up stalled for {STARTUP_MS_MAX} ms (attempt {attempt}/{START_ATTEMPTS_MAX}): {}",
                report.join(", ")
            );
            if attempt >= START_ATTEMPTS_MAX {
                eprintln!("shoal: error: start-up failed {attempt} times; giving up");
                std::process::exit(75);
            }
            use std::os::unix::process::CommandExt;
            let exe = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
            let err = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env("SHOAL_START_ATTEMPT", (attempt + 1).to_string())
                .exec();
            eprintln!("shoal: error: restarting after a stalled start-up: {err}");
            std::process::exit(75);
        })
        .expect("spawn start-up watchdog");
}

/// File whose lock marks a data dir as owned by a running node (Kafka's `.lock`).
pub const DATA_DIR_LOCK_FILE: &str = ".lock";

/// Takes the data dir's exclusive lock for the life of the returned file: two nodes on one
/// data dir would append to the same segments and corrupt them.
fn lock_data_dir(data_dir: &std::path::Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let path = data_dir.join(DATA_DIR_LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("data dir lock {}: {e}", path.display()))?;
    // SAFETY: flock on a descriptor we own.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        let error = std::io::Error::last_os_error();
        return Err(if error.kind() == std::io::ErrorKind::WouldBlock {
            format!(
                "data dir {} is in use by another shoal process (lock {}); stop it or use another --data-dir",
                data_dir.display(),
                path.display()
            )
        } else {
            format!("data dir lock {}: {error}", path.display())
        });
    }
    Ok(file)
}

pub fn run(config: NodeConfig) -> Result<(), String> {
    config.validate()?;
    // Before any thread is spawned (the metadata driver and the cluster transport start below),
    // so SIGINT/SIGTERM only ever reach the signal thread.
    block_shutdown_signals();
    let report = crate::io::probe::probe_host();
    match report.check() {
        Ok(warnings) => warnings.iter().for_each(|w| log::warn!("{w}")),
        Err(e) => return Err(e.to_string()),
    }
    if !config.data_dir.exists() {
        std::fs::create_dir_all(&config.data_dir)
            .and_then(|()| {
                match config
                    .data_dir
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                {
                    // The new directory's entry is durable only once its parent is synced.
                    Some(parent) => std::fs::File::open(parent)?.sync_all(),
                    None => Ok(()),
                }
            })
            .map_err(|e| format!("data dir {}: {e}", config.data_dir.display()))?;
    }
    let _data_dir_lock = lock_data_dir(&config.data_dir)?;
    let core_ids = core_affinity::get_core_ids().unwrap_or_default();
    let available = core_ids.len().max(1);
    let nr_shards = config.cores.unwrap_or(available).max(1);
    let pin = nr_shards <= core_ids.len();
    if !pin {
        log::warn!("{nr_shards} shards on {available} cores: shards are not pinned");
    }
    let (advertised_host, advertised_port) = split_host_port(config.advertised())?;
    let voters = config.voters()?;
    let (handoff, replica_accepts): (Vec<_>, Vec<_>) = (0..nr_shards)
        .map(|_| crossbeam::channel::bounded(REPLICA_ACCEPTS_QUEUED_MAX))
        .unzip();
    let metadata = crate::metadata::start(crate::metadata::DriverConfig {
        node_id: config.node_id,
        voters: voters
            .iter()
            .map(|(id, addr)| crate::metadata::Peer {
                id: *id,
                cluster_addr: addr.clone(),
            })
            .collect(),
        cluster_listen: config.cluster_listen_addr()?,
        data_dir: config.data_dir.clone(),
        nr_shards,
        kafka_endpoint: format!("{advertised_host}:{advertised_port}"),
        rack: config.rack.clone(),
        request_timeout_ms: config.controller_request_timeout_ms,
        controller: shoal_cluster::metadata::ControllerConfig {
            broker_heartbeat_interval_ms: config.broker_heartbeat_interval_ms,
            broker_session_timeout_ms: config.broker_session_timeout_ms,
            auto_leader_rebalance_enable: config.auto_leader_rebalance_enable,
            leader_imbalance_check_interval_ms: config.leader_imbalance_check_interval_ms,
        },
        queue_max: config.metadata_queue_max,
        send_queue_max: config.cluster_send_queue_max,
        replica_handoff: Arc::new(handoff),
        frame_bytes_max: config.cluster_frame_bytes_max,
    })
    .map_err(|e| format!("metadata in {}: {e}", config.data_dir.display()))?;
    // Serve once this broker is registered and unfenced, so its partitions have their leader
    // back. A quorum of one gets there in milliseconds; a multi-node cluster needs its peers, so
    // it waits a bounded while and then serves anyway (clients retry LEADER_NOT_AVAILABLE).
    let unfence_wait = if voters.len() > 1 {
        Duration::from_millis(UNFENCE_WAIT_CLUSTER_MS)
    } else {
        Duration::from_millis(UNFENCE_WAIT_SINGLE_MS)
    };
    if !metadata.wait_for_blocking(unfence_wait, |m| !m.fenced) {
        if voters.len() > 1 {
            log::warn!(
                "not registered with a controller after {} ms; serving fenced until the quorum forms",
                unfence_wait.as_millis()
            );
        } else {
            return Err(format!(
                "the metadata quorum of one did not register this broker within {} ms",
                unfence_wait.as_millis()
            ));
        }
    }
    let started = Arc::new(AtomicBool::new(false));
    let stages: Arc<Vec<std::sync::atomic::AtomicU8>> = Arc::new(
        (0..nr_shards)
            .map(|_| std::sync::atomic::AtomicU8::new(0))
            .collect(),
    );
    start_watchdog(started.clone(), stages.clone());
    let listen = config.listen.clone();
    // Shards bind with SO_REUSEPORT, which would let a second node share the port unnoticed:
    // refuse if something already accepts connections there. (Not a plain SO_REUSEADDR bind: it
    // fails for ~60 s after a crash while the old server-side sockets sit in TIME_WAIT.)
    let listen_addrs: Vec<std::net::SocketAddr> =
        std::net::ToSocketAddrs::to_socket_addrs(listen.as_str())
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?
            .collect();
    for a in &listen_addrs {
        if let Ok(s) = std::net::TcpStream::connect_timeout(a, Duration::from_millis(500)) {
            // A connection to itself (same ephemeral port) is not a listener.
            if s.local_addr().ok() != s.peer_addr().ok() {
                return Err(format!("cannot listen on {listen}: address already in use"));
            }
        }
    }
    let node = Arc::new(NodeContext {
        config,
        nr_shards,
        metadata,
        shutdown: AtomicBool::new(false),
        connections: AtomicUsize::new(0),
        advertised_host,
        advertised_port,
        replica_accepts,
        peer_cluster_addrs: voters
            .iter()
            .map(|(id, addr)| (*id as i32, addr.clone()))
            .collect(),
    });
    install_signal_thread(node.clone());

    let mesh: MeshBuilder<ShardMessage, _> =
        MeshBuilder::full(nr_shards, node.config.shard_queue_depth_max);
    let (ready_tx, ready_rx) = crossbeam::channel::bounded::<Result<(), String>>(nr_shards);
    let mut handles = Vec::with_capacity(nr_shards);
    for id in 0..nr_shards {
        let placement = if pin {
            Placement::Fixed(core_ids.get(id).map_or(id, |c| c.id))
        } else {
            Placement::Unbound
        };
        let node = node.clone();
        let mesh = mesh.clone();
        let ready_tx = ready_tx.clone();
        let stages = stages.clone();
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("shoal-shard-{id}"))
            .spawn(move || async move { shard_main(id, node, mesh, ready_tx, stages).await })
            .map_err(|e| format!("starting shard {id}: {e}"))?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..nr_shards {
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                node.shutdown.store(true, Ordering::SeqCst);
                return Err(e);
            }
            Err(_) => return Err("a shard exited during start-up".into()),
        }
    }
    started.store(true, Ordering::SeqCst);
    eprintln!("shoal: listening on {listen}");
    eprintln!(
        "shoal: node {} with {nr_shards} shard(s), data in {}, advertised as {}:{}",
        node.config.node_id,
        node.config.data_dir.display(),
        node.advertised_host,
        node.advertised_port
    );
    let mut result = Ok(());
    for h in handles {
        match h.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => result = Err(e),
            Err(e) => result = Err(format!("shard failed: {e}")),
        }
    }
    eprintln!("shoal: stopped");
    result
}

async fn shard_main(
    id: usize,
    node: Arc<NodeContext>,
    mesh: MeshBuilder<ShardMessage, glommio::channels::channel_mesh::Full>,
    ready: crossbeam::channel::Sender<Result<(), String>>,
    stages: Arc<Vec<std::sync::atomic::AtomicU8>>,
) -> Result<(), String> {
    let shard = Shard::new(id, node.clone());
    stages[id].store(1, Ordering::SeqCst);
    if node.nr_shards > 1 {
        let (senders, receivers) = mesh
            .join()
            .await
            .map_err(|_| format!("shard {id}: joining the shard mesh failed"))?;
        shard.set_peers(senders);
        let receivers = Rc::new(receivers);
        for peer in 0..node.nr_shards {
            if peer == id {
                continue;
            }
            let receivers = receivers.clone();
            let shard = shard.clone();
            glommio::spawn_local(async move {
                while let Ok(Some(message)) = receivers.recv_from(peer).await {
                    shard.handle_message(message);
                }
            })
            .detach();
        }
    } else {
        drop(mesh);
    }
    stages[id].store(2, Ordering::SeqCst);
    shard.open_replicas().await;
    stages[id].store(3, Ordering::SeqCst);
    let listener = match TcpListener::bind(node.config.listen.as_str()) {
        Ok(l) => l,
        Err(e) => {
            let msg = format!("cannot listen on {}: {e}", node.config.listen);
            let _ = ready.send(Err(msg.clone()));
            return Err(msg);
        }
    };
    let admin = (id == 0 && !node.config.admin_listen.is_empty())
        .then(|| bind_admin(&node.config.admin_listen))
        .flatten();
    let _ = ready.send(Ok(()));
    drop(ready);

    let stop = Rc::new(Notify::default());
    if let Some(listener) = admin {
        glommio::spawn_local(crate::admin::serve(shard.clone(), listener, stop.clone())).detach();
    }
    glommio::spawn_local(crate::replication::run(shard.clone(), stop.clone())).detach();
    {
        let shard = shard.clone();
        // Low priority: produce and fetch on this shard run first (glommio shares), and the
        // cleaner's I/O is paced by log_cleaner_io_bytes_per_second_max.
        let queue = glommio::executor().create_task_queue(
            glommio::Shares::Static(10),
            glommio::Latency::NotImportant,
            "log-cleaner",
        );
        glommio::spawn_local_into(
            async move {
                let backoff = Duration::from_millis(shard.ctx.config.log_cleaner_backoff_ms);
                let throttle = shoal_storage::IoThrottle::new(
                    shard.ctx.config.log_cleaner_io_bytes_per_second_max,
                );
                loop {
                    glommio::timer::sleep(backoff).await;
                    if shard.ctx.shutdown.load(Ordering::SeqCst) {
                        return;
                    }
                    shard.clean_logs(&throttle).await;
                }
            },
            queue,
        )
        .expect("cleaner task queue")
        .detach();
    }
    let ticker = {
        let shard = shard.clone();
        let stop = stop.clone();
        glommio::spawn_local(async move {
            let retention_every =
                Duration::from_millis(shard.ctx.config.retention_check_interval_ms);
            let mut last_retention = Instant::now();
            loop {
                glommio::timer::sleep(Duration::from_millis(TICK_INTERVAL_MS)).await;
                if shard.ctx.shutdown.load(Ordering::SeqCst) {
                    stop.notify_all();
                    return;
                }
                let retention_due = last_retention.elapsed() >= retention_every;
                if retention_due {
                    last_retention = Instant::now();
                }
                shard.tick(retention_due).await;
            }
        })
    };

    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            stop.notified().await;
            None
        })
        .await;
        let Some(accepted) = accepted else { break };
        match accepted {
            Ok(stream) => {
                let open = node.connections.fetch_add(1, Ordering::SeqCst) + 1;
                if open > node.config.connections_max {
                    node.connections.fetch_sub(1, Ordering::SeqCst);
                    log::warn!(
                        "connections_max ({}) reached: closing new connection",
                        node.config.connections_max
                    );
                    drop(stream);
                    continue;
                }
                let shard = shard.clone();
                glommio::spawn_local(async move {
                    crate::connection::serve(shard.clone(), stream).await;
                    shard.ctx.connections.fetch_sub(1, Ordering::SeqCst);
                })
                .detach();
            }
            Err(e) => {
                log::warn!("shard {id}: accept: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    drop(listener);
    ticker.await;
    shard.close_all().await;
    Ok(())
}

/// The admin listener, or none (with a warning: metrics are not worth refusing to serve for).
fn bind_admin(addr: &str) -> Option<TcpListener> {
    match TcpListener::bind(addr) {
        Ok(l) => {
            let local = l.local_addr().map_or(addr.to_string(), |a| a.to_string());
            eprintln!("shoal: admin listening on {local} (GET /metrics)");
            Some(l)
        }
        Err(e) => {
            log::warn!("no admin listener: cannot listen on {addr}: {e}");
            None
        }
    }
}
