//! The rpk-style command line: every command speaks the Kafka protocol through `shoal_client`,
//! like any other client, against `--brokers` (default 127.0.0.1:9092).

pub mod cluster;
pub mod consume;
pub mod group;
pub mod produce;
pub mod topic;

use std::time::Duration;

use clap::Args;

use shoal_client::{Client, ClientConfig};

#[derive(Args, Debug, Clone)]
pub struct ConnectArgs {
    /// Bootstrap brokers, comma separated HOST:PORT.
    #[arg(long, short = 'b', default_value = "127.0.0.1:9092", global = true)]
    pub brokers: String,
    /// Socket timeout for each request, in milliseconds.
    #[arg(long, default_value_t = 10_000, global = true)]
    pub socket_timeout_ms: u64,
}

impl ConnectArgs {
    pub fn connect(&self) -> Result<Client, String> {
        let config = ClientConfig {
            brokers: self
                .brokers
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            client_id: "shoal-cli".to_string(),
            socket_timeout: Duration::from_millis(self.socket_timeout_ms),
            ..ClientConfig::default()
        };
        Client::connect(config).map_err(|e| e.to_string())
    }
}

/// `key=value` pairs (topic configs).
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("'{s}' is not key=value"))?;
    Ok((k.trim().to_string(), v.trim().to_string()))
}
