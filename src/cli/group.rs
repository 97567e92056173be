//! `shoal group list|describe`: consumer groups as the coordinator reports them, with lag.

use clap::Subcommand;

use crate::cli::ConnectArgs;
use crate::client::OffsetSpec;

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups.
    List,
    /// Members, committed offsets, log end offsets and lag per partition (like
    /// `kafka-consumer-groups --describe`).
    Describe {
        group: String,
        /// Topics to report offsets for (default: every topic).
        #[arg(long, short = 't')]
        topic: Vec<String>,
    },
}

pub fn run(connect: &ConnectArgs, command: GroupCommand) -> Result<(), String> {
    let mut client = connect.connect()?;
    match command {
        GroupCommand::List => {
            println!("{:<40} {:<16} {:<10}", "GROUP", "STATE", "PROTOCOL");
            for g in client.list_groups().map_err(|e| e.to_string())? {
                println!("{:<40} {:<16} {:<10}", g.group_id, g.state, g.protocol_type);
            }
        }
        GroupCommand::Describe { group, topic } => {
            let desc = client.describe_group(&group).map_err(|e| e.to_string())?;
            println!(
                "Group: {}\tState: {}\tProtocol: {} {}\tMembers: {}",
                desc.group_id,
                desc.state,
                desc.protocol_type,
                desc.protocol,
                desc.members.len()
            );
            for m in &desc.members {
                println!(
                    "\tMember: {}\tClient: {}\tHost: {}",
                    m.member_id, m.client_id, m.client_host
                );
            }
            let topics = if topic.is_empty() {
                client
                    .metadata(None, false)
                    .map_err(|e| e.to_string())?
                    .topics
                    .into_iter()
                    .filter(|t| !t.is_internal)
                    .map(|t| t.name)
                    .collect()
            } else {
                topic
            };
            println!(
                "\n{:<30} {:>9} {:>16} {:>16} {:>10}",
                "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG"
            );
            let mut total_lag = 0i64;
            for t in topics {
                let committed = client
                    .committed_offsets(&group, &t)
                    .map_err(|e| e.to_string())?;
                if committed.iter().all(|c| c.offset < 0) {
                    continue;
                }
                let partitions: Vec<i32> = committed.iter().map(|c| c.partition).collect();
                let ends = client
                    .list_offsets(&t, &partitions, OffsetSpec::Latest)
                    .map_err(|e| e.to_string())?;
                for c in &committed {
                    let end = ends
                        .iter()
                        .find(|e| e.partition == c.partition)
                        .map_or(-1, |e| e.offset);
                    let (current, lag) = if c.offset >= 0 {
                        (c.offset.to_string(), (end - c.offset).max(0))
                    } else {
                        ("-".to_string(), 0)
                    };
                    total_lag += lag;
                    println!(
                        "{:<30} {:>9} {:>16} {:>16} {:>10}",
                        t, c.partition, current, end, lag
                    );
                }
            }
            println!("\nTOTAL LAG: {total_lag}");
        }
    }
    Ok(())
}
