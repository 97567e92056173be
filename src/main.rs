//! `shoal`: the broker (`shoal serve`) and an rpk-style command line that speaks the Kafka
//! protocol like any client.

use std::path::PathBuf;
use std::process::ExitCode;

mod cli;

use clap::{Args, Parser, Subcommand};

use cli::consume::ConsumeArgs;
use cli::group::GroupCommand;
use cli::produce::ProduceArgs;
use cli::topic::TopicCommand;
use cli::ConnectArgs;
use shoal_broker::config::NodeConfig;

#[derive(Parser)]
#[command(
    name = "shoal",
    version,
    about = "Kafka-compatible, thread-per-core message broker on io_uring"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a node (defaults: data in ./shoal-data, Kafka listener 127.0.0.1:9092, one shard per core).
    Serve(ServeArgs),
    /// Create, list, describe and delete topics.
    Topic {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: TopicCommand,
    },
    /// Produce stdin lines as records.
    Produce {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        args: ProduceArgs,
    },
    /// Print records of a topic.
    Consume {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(flatten)]
        args: ConsumeArgs,
    },
    /// Cluster status: controller, live and fenced brokers.
    Cluster {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: cli::cluster::ClusterCommand,
    },
    /// List and describe consumer groups (with lag).
    Group {
        #[command(flatten)]
        connect: ConnectArgs,
        #[command(subcommand)]
        command: GroupCommand,
    },
}

#[derive(Args)]
struct ServeArgs {
    /// TOML config file (every field optional; topic defaults use Kafka names).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Kafka listener HOST:PORT.
    #[arg(long)]
    listen: Option<String>,
    /// Address advertised to clients in Metadata (default: the listener).
    #[arg(long)]
    advertise: Option<String>,
    /// Number of shards (pinned executors); default: all available cores.
    #[arg(long)]
    cores: Option<usize>,
    /// Node id (Kafka's node.id; also the Raft id, >= 1).
    #[arg(long)]
    node_id: Option<i32>,
    /// Metadata quorum, KRaft-style: "1@HOST:PORT,2@HOST:PORT,3@HOST:PORT" (cluster ports).
    #[arg(long)]
    controller_quorum_voters: Option<String>,
    /// Admin listener HOST:PORT for `GET /metrics` (default 127.0.0.1:9644; "" for none).
    #[arg(long)]
    admin_listen: Option<String>,
    /// Node-to-node listener HOST:PORT (default: this node's address in the voters).
    #[arg(long)]
    cluster_listen: Option<String>,
}

/// Request buffers up to this size come from malloc's heaps, not from a fresh mmap each.
const MALLOC_MMAP_THRESHOLD_BYTES: i32 = 32 << 20;
/// Free memory malloc keeps at a heap's top before giving it back to the kernel.
const MALLOC_TRIM_THRESHOLD_BYTES: i32 = 1 << 30;

/// Keeps freed request buffers in the process for reuse. glibc serves large allocations (a
/// produce frame of 1 MiB) with a fresh mmap and unmaps them on free, so every frame is written
/// into pages the kernel must fault in, and on this VM first touch is slow (0.35-1.9 GB/s).
/// Measured: broker CPU per GB produced 0.71 against 0.94 (median of 5 interleaved runs,
/// bench/results/produce-cpu/). Set before any thread starts.
fn keep_freed_memory_for_reuse() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters; no other thread exists yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD_BYTES);
        libc::mallopt(libc::M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD_BYTES);
    }
}

fn serve(args: ServeArgs) -> Result<(), String> {
    keep_freed_memory_for_reuse();
    let mut config = match &args.config {
        Some(path) => NodeConfig::load(path)?,
        None => NodeConfig::default(),
    };
    if let Some(d) = args.data_dir {
        config.data_dir = d;
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(a) = args.advertise {
        config.advertise = Some(a);
    }
    if let Some(c) = args.cores {
        config.cores = Some(c);
    }
    if let Some(n) = args.node_id {
        config.node_id = n;
    }
    if let Some(v) = args.controller_quorum_voters {
        config.controller_quorum_voters = v;
    }
    if let Some(l) = args.admin_listen {
        config.admin_listen = l;
    }
    if let Some(l) = args.cluster_listen {
        config.cluster_listen = Some(l);
    }
    shoal_broker::node::run(config)
}

/// A client command piped into `head` ends like other Unix tools when the pipe closes
/// (SIGPIPE's default action) instead of panicking in `println!`. The server keeps Rust's
/// ignored SIGPIPE: a closed client socket is an error on that connection only.
fn exit_quietly_on_closed_stdout() {
    // SAFETY: restores the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        exit_quietly_on_closed_stdout();
    }
    let result = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Topic { connect, command } => cli::topic::run(&connect, command),
        Command::Produce { connect, args } => cli::produce::run(&connect, args),
        Command::Consume { connect, args } => cli::consume::run(&connect, args),
        Command::Group { connect, command } => cli::group::run(&connect, command),
        Command::Cluster { connect, command } => cli::cluster::run(&connect, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shoal: error: {e}");
            ExitCode::FAILURE
        }
    }
}
