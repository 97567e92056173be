//! `shoal cluster status`: the active controller, live brokers, and brokers that hold replicas
//! but are not live (fenced or down), from a Metadata request.

use std::collections::BTreeSet;

use clap::Subcommand;

use crate::cli::ConnectArgs;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Controller, live brokers, fenced (or down) brokers, leaderless partitions.
    Status,
}

pub fn run(connect: &ConnectArgs, command: ClusterCommand) -> Result<(), String> {
    let mut client = connect.connect()?;
    match command {
        ClusterCommand::Status => {
            let meta = client.metadata(None, false).map_err(|e| e.to_string())?;
            println!(
                "cluster id: {}",
                meta.cluster_id.as_deref().unwrap_or("(none)")
            );
            if meta.controller_id < 0 {
                println!("controller: none (no quorum)");
            } else {
                println!("controller: {}", meta.controller_id);
            }
            let live: BTreeSet<i32> = meta.brokers.iter().map(|b| b.node_id).collect();
            for b in &meta.brokers {
                println!("broker {}: live at {}", b.node_id, b.addr());
            }
            let mut replicas = BTreeSet::new();
            let mut leaderless = 0;
            for t in &meta.topics {
                for p in &t.partitions {
                    replicas.extend(p.replicas.iter().copied());
                    if p.leader < 0 {
                        leaderless += 1;
                    }
                }
            }
            let fenced: Vec<String> = replicas.difference(&live).map(|b| b.to_string()).collect();
            if fenced.is_empty() {
                println!("fenced brokers: none");
            } else {
                println!("fenced brokers: {}", fenced.join(","));
            }
            println!("leaderless partitions: {leaderless}");
        }
    }
    Ok(())
}
