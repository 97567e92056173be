//! `shoal group list|describe|seek|delete`: consumer groups as the coordinator reports them,
//! with lag; offset resets and deletion for stopped groups.

use clap::Subcommand;

use crate::cli::ConnectArgs;
use shoal_client::{Client, OffsetSpec};
use shoal_protocol::errors;

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
    /// Reset a stopped group's committed offsets of a topic (like `kafka-consumer-groups
    /// --reset-offsets --execute`). The group must be Empty or Dead.
    Seek {
        group: String,
        #[arg(long, short = 't')]
        topic: String,
        /// earliest, latest, an OFFSET (clamped to the log's range) or @TIMESTAMP_MS (first
        /// record at or after it; latest if none).
        #[arg(long, value_parser = parse_seek_target)]
        to: SeekTarget,
        /// Only these partitions (default: all).
        #[arg(long, short = 'p', value_delimiter = ',')]
        partitions: Vec<i32>,
    },
    /// Delete groups without members, with their committed offsets.
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTarget {
    Earliest,
    Latest,
    Offset(i64),
    Timestamp(i64),
}

pub fn parse_seek_target(s: &str) -> Result<SeekTarget, String> {
    let bad = || format!("'{s}': expected earliest, latest, OFFSET or @TIMESTAMP_MS");
    match s {
        "earliest" => Ok(SeekTarget::Earliest),
        "latest" => Ok(SeekTarget::Latest),
        _ => {
            let (digits, at) = match s.strip_prefix('@') {
                Some(rest) => (rest, true),
                None => (s, false),
            };
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let n: i64 = digits.parse().map_err(|_| bad())?;
            Ok(if at {
                SeekTarget::Timestamp(n)
            } else {
                SeekTarget::Offset(n)
            })
        }
    }
}

/// The offset to commit for a partition whose log spans `earliest..latest`: Kafka's
/// reset-offsets rules (an offset outside the log is clamped; a timestamp past every record
/// means the end). `found` is ListOffsets' answer for a timestamp (-1: none).
pub fn seek_offset(target: SeekTarget, earliest: i64, latest: i64, found: Option<i64>) -> i64 {
    assert!(0 <= earliest && earliest <= latest);
    match target {
        SeekTarget::Earliest => earliest,
        SeekTarget::Latest => latest,
        SeekTarget::Offset(o) => o.clamp(earliest, latest),
        SeekTarget::Timestamp(_) => match found {
            Some(o) if o >= 0 => o.clamp(earliest, latest),
            _ => latest,
        },
    }
}

fn seek(
    client: &mut Client,
    group: &str,
    topic: &str,
    target: SeekTarget,
    partitions: Vec<i32>,
) -> Result<(), String> {
    let desc = client.describe_group(group).map_err(|e| e.to_string())?;
    if desc.state != "Empty" && desc.state != "Dead" {
        return Err(format!(
            "group {group} is {} with {} member(s); stop its consumers before seeking \
             (only Empty or Dead groups can be reset)",
            desc.state,
            desc.members.len()
        ));
    }
    let info = client.topic(topic).map_err(|e| e.to_string())?;
    let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
    let partitions = if partitions.is_empty() {
        all
    } else {
        if let Some(p) = partitions.iter().find(|p| !all.contains(p)) {
            return Err(format!("topic {topic} has no partition {p}"));
        }
        partitions
    };
    let err = |e: shoal_client::ClientError| e.to_string();
    let earliest = client
        .list_offsets(topic, &partitions, OffsetSpec::Earliest)
        .map_err(err)?;
    let latest = client
        .list_offsets(topic, &partitions, OffsetSpec::Latest)
        .map_err(err)?;
    let found = match target {
        SeekTarget::Timestamp(ms) => Some(
            client
                .list_offsets(topic, &partitions, OffsetSpec::Timestamp(ms))
                .map_err(err)?,
        ),
        _ => None,
    };
    let mut offsets = Vec::with_capacity(partitions.len());
    for (i, &p) in partitions.iter().enumerate() {
        assert!(earliest[i].partition == p && latest[i].partition == p);
        let (lo, hi) = (earliest[i].offset.max(0), latest[i].offset.max(0));
        let f = found.as_ref().map(|f| f[i].offset);
        offsets.push((topic.to_string(), p, seek_offset(target, lo.min(hi), hi, f)));
    }
    let coordinator = client.coordinator_id(group).map_err(err)?;
    let code = client
        .commit_offsets(coordinator, group, -1, "", &offsets)
        .map_err(err)?;
    if code != errors::NONE {
        return Err(format!(
            "commit offsets for group {group}: {} ({code}){}",
            errors::name(code),
            if code == errors::UNKNOWN_MEMBER_ID || code == errors::ILLEGAL_GENERATION {
                " (did a consumer join meanwhile?)"
            } else {
                ""
            }
        ));
    }
    println!("{:<30} {:>9} {:>16}", "TOPIC", "PARTITION", "NEW-OFFSET");
    for (t, p, o) in &offsets {
        println!("{t:<30} {p:>9} {o:>16}");
    }
    Ok(())
}

fn delete(client: &mut Client, groups: &[String]) -> Result<(), String> {
    let outcomes = client.delete_groups(groups).map_err(|e| e.to_string())?;
    let mut failed = Vec::new();
    for o in &outcomes {
        if o.error_code == errors::NONE {
            println!("{}: deleted", o.group_id);
        } else {
            let hint = match o.error_code {
                errors::NON_EMPTY_GROUP => ": the group has members; stop its consumers first",
                errors::GROUP_ID_NOT_FOUND => ": no such group",
                _ => "",
            };
            let line = format!(
                "{}: {} ({}){hint}",
                o.group_id,
                errors::name(o.error_code),
                o.error_code
            );
            println!("{line}");
            failed.push(line);
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("could not delete: {}", failed.join("; ")))
    }
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
        GroupCommand::Seek {
            group,
            topic,
            to,
            partitions,
        } => seek(&mut client, &group, &topic, to, partitions)?,
        GroupCommand::Delete { groups } => delete(&mut client, &groups)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seek_targets_parse() {
        assert_eq!(parse_seek_target("earliest"), Ok(SeekTarget::Earliest));
        assert_eq!(parse_seek_target("latest"), Ok(SeekTarget::Latest));
        assert_eq!(parse_seek_target("42"), Ok(SeekTarget::Offset(42)));
        assert_eq!(parse_seek_target("@1700"), Ok(SeekTarget::Timestamp(1700)));
        for bad in ["", "@", "-1", "x", "@-5", "1e3", "99999999999999999999"] {
            assert!(parse_seek_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn seek_offsets_follow_reset_rules() {
        assert_eq!(seek_offset(SeekTarget::Earliest, 5, 9, None), 5);
        assert_eq!(seek_offset(SeekTarget::Latest, 5, 9, None), 9);
        assert_eq!(seek_offset(SeekTarget::Offset(7), 5, 9, None), 7);
        assert_eq!(seek_offset(SeekTarget::Offset(2), 5, 9, None), 5);
        assert_eq!(seek_offset(SeekTarget::Offset(20), 5, 9, None), 9);
        assert_eq!(seek_offset(SeekTarget::Timestamp(1), 5, 9, Some(6)), 6);
        assert_eq!(seek_offset(SeekTarget::Timestamp(1), 5, 9, Some(-1)), 9);
    }
}
