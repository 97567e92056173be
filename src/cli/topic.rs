//! `shoal topic create|list|describe|delete|add-partitions|alter-config`.

use clap::Subcommand;

use crate::cli::{parse_key_value, ConnectArgs};
use shoal_client::{ConfigResource, NewTopic, OffsetSpec};

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions.
        #[arg(short = 'p', long, default_value_t = 1)]
        partitions: i32,
        /// Replication factor.
        #[arg(short = 'r', long, default_value_t = 1)]
        replicas: i16,
        /// Topic config, Kafka name (repeatable): -c retention.ms=86400000
        #[arg(short = 'c', long = "config", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Only check that the topic could be created.
        #[arg(long)]
        dry_run: bool,
    },
    /// List topics.
    List,
    /// Show partitions (leader, replicas, ISR, log start/end offsets) and non-default configs.
    Describe { name: String },
    /// Delete topics.
    Delete { names: Vec<String> },
    /// Grow a topic to a larger partition count (keyed records of new keys may move).
    AddPartitions {
        name: String,
        /// The new total number of partitions.
        #[arg(short = 'n', long = "num")]
        count: i32,
    },
    /// Change topic configs: --set key=value and --delete key (repeatable).
    AlterConfig {
        name: String,
        #[arg(short = 's', long = "set", value_parser = parse_key_value)]
        set: Vec<(String, String)>,
        #[arg(short = 'd', long = "delete")]
        delete: Vec<String>,
    },
}

pub fn run(connect: &ConnectArgs, command: TopicCommand) -> Result<(), String> {
    let mut client = connect.connect()?;
    match command {
        TopicCommand::Create {
            name,
            partitions,
            replicas,
            configs,
            dry_run,
        } => {
            let outcome = client
                .create_topics(
                    &[NewTopic {
                        name: name.clone(),
                        partitions,
                        replication_factor: replicas,
                        configs,
                    }],
                    dry_run,
                )
                .map_err(|e| e.to_string())?;
            for o in outcome {
                o.result().map_err(|e| e.to_string())?;
                let verb = if dry_run { "would create" } else { "created" };
                println!(
                    "{verb} topic {} ({partitions} partitions, replication factor {replicas})",
                    o.name
                );
            }
        }
        TopicCommand::List => {
            let meta = client.metadata(None, false).map_err(|e| e.to_string())?;
            println!("{:<40} {:>10} {:>8}", "NAME", "PARTITIONS", "REPLICAS");
            for t in meta.topics {
                let replicas = t.partitions.first().map_or(0, |p| p.replicas.len());
                println!("{:<40} {:>10} {:>8}", t.name, t.partitions.len(), replicas);
            }
        }
        TopicCommand::Describe { name } => {
            let meta = client
                .metadata(Some(std::slice::from_ref(&name)), false)
                .map_err(|e| e.to_string())?;
            let topic = meta
                .topics
                .into_iter()
                .find(|t| t.name == name)
                .ok_or_else(|| format!("topic {name} not found"))?;
            if topic.error_code != 0 {
                return Err(format!(
                    "topic {name}: {}",
                    shoal_protocol::errors::name(topic.error_code)
                ));
            }
            // Offsets come from each partition's leader; a leaderless partition shows -1.
            let led: Vec<i32> = topic
                .partitions
                .iter()
                .filter(|p| p.leader >= 0)
                .map(|p| p.partition)
                .collect();
            let starts = client
                .list_offsets(&name, &led, OffsetSpec::Earliest)
                .unwrap_or_default();
            let ends = client
                .list_offsets(&name, &led, OffsetSpec::Latest)
                .unwrap_or_default();
            let configs = client
                .describe_configs(&ConfigResource::Topic(name.clone()), &[])
                .map_err(|e| e.to_string())?;
            let custom: Vec<String> = configs
                .iter()
                .filter(|c| !c.is_default)
                .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("")))
                .collect();
            let rf = topic.partitions.first().map_or(0, |p| p.replicas.len());
            println!(
                "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
                name,
                uuid::Uuid::from_bytes(topic.topic_id),
                topic.partitions.len(),
                rf,
                custom.join(",")
            );
            let join = |v: &[i32]| {
                v.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            for p in &topic.partitions {
                let start = starts
                    .iter()
                    .find(|o| o.partition == p.partition)
                    .map_or(-1, |o| o.offset);
                let end = ends
                    .iter()
                    .find(|o| o.partition == p.partition)
                    .map_or(-1, |o| o.offset);
                // Under-replicated partitions stand out (kafka-topics lists them on request).
                let flag = if p.isr.len() < p.replicas.len() {
                    "\tUNDER-REPLICATED"
                } else {
                    ""
                };
                println!(
                    "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}\tLogStartOffset: {}\tLogEndOffset: {}{flag}",
                    name,
                    p.partition,
                    p.leader,
                    join(&p.replicas),
                    join(&p.isr),
                    start,
                    end
                );
            }
        }
        TopicCommand::Delete { names } => {
            if names.is_empty() {
                return Err("name at least one topic".into());
            }
            for o in client.delete_topics(&names).map_err(|e| e.to_string())? {
                o.result().map_err(|e| e.to_string())?;
                println!("deleted topic {}", o.name);
            }
        }
        TopicCommand::AddPartitions { name, count } => {
            let o = client
                .create_partitions(&name, count)
                .map_err(|e| e.to_string())?;
            o.result().map_err(|e| e.to_string())?;
            println!("topic {name} now has {count} partitions");
        }
        TopicCommand::AlterConfig { name, set, delete } => {
            if set.is_empty() && delete.is_empty() {
                return Err("give at least one --set key=value or --delete key".into());
            }
            let changes: Vec<(String, Option<String>)> = set
                .into_iter()
                .map(|(k, v)| (k, Some(v)))
                .chain(delete.into_iter().map(|k| (k, None)))
                .collect();
            let o = client
                .alter_topic_configs(&name, &changes)
                .map_err(|e| e.to_string())?;
            o.result().map_err(|e| e.to_string())?;
            for (k, v) in &changes {
                match v {
                    Some(v) => println!("{name}: set {k}={v}"),
                    None => println!("{name}: deleted {k} (back to the default)"),
                }
            }
        }
    }
    Ok(())
}
