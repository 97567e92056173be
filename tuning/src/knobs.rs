//! The settings a sweep varies: producer, topic, message and consumer knobs, each optional.

use serde::{Deserialize, Serialize};
use shoal_bench::workload::{format_number, Workload};

pub const SETTINGS_MAX: usize = 400;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Knob {
    LingerMs,
    BatchSize,
    Acks,
    Compression,
    MaxInFlight,
    Idempotence,
    Partitions,
    MessageSize,
    FetchMinBytes,
    FetchWaitMaxMs,
}

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum KnobError {
    #[error("{knob}: cannot parse {value:?}")]
    Parse { knob: &'static str, value: String },
    #[error("{0} has no values")]
    Empty(&'static str),
    #[error("{total} settings is more than {SETTINGS_MAX}")]
    TooMany { total: usize },
    #[error("setting {label}: {reason}")]
    Invalid { label: String, reason: String },
}

impl Knob {
    /// The property name (Kafka's), as printed in recommendations.
    pub fn property(self) -> &'static str {
        match self {
            Knob::LingerMs => "linger.ms",
            Knob::BatchSize => "batch.size",
            Knob::Acks => "acks",
            Knob::Compression => "compression.type",
            Knob::MaxInFlight => "max.in.flight.requests.per.connection",
            Knob::Idempotence => "enable.idempotence",
            Knob::Partitions => "partitions (topic)",
            Knob::MessageSize => "message size (bytes)",
            Knob::FetchMinBytes => "fetch.min.bytes",
            Knob::FetchWaitMaxMs => "fetch.wait.max.ms",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Knob::LingerMs => "l",
            Knob::BatchSize => "b",
            Knob::Acks => "acks",
            Knob::Compression => "c",
            Knob::MaxInFlight => "inflight",
            Knob::Idempotence => "idem",
            Knob::Partitions => "p",
            Knob::MessageSize => "msg",
            Knob::FetchMinBytes => "fmin",
            Knob::FetchWaitMaxMs => "fwait",
        }
    }

    /// Is this a producer property (goes into the recommendation's client properties)?
    pub fn is_producer_property(self) -> bool {
        !matches!(
            self,
            Knob::Partitions | Knob::MessageSize | Knob::FetchMinBytes | Knob::FetchWaitMaxMs
        )
    }

    /// Canonical value text (sizes in bytes, numbers without trailing zeros).
    pub fn parse_value(self, v: &str) -> Result<String, KnobError> {
        let v = v.trim();
        let bad = || KnobError::Parse {
            knob: self.property(),
            value: v.to_string(),
        };
        let int = |s: &str| -> Result<u64, KnobError> {
            parse_size(s).or_else(|| s.parse().ok()).ok_or_else(bad)
        };
        match self {
            Knob::LingerMs => {
                let x: f64 = v.parse().map_err(|_| bad())?;
                if !(0.0..=900_000.0).contains(&x) {
                    return Err(bad());
                }
                Ok(format_number(x))
            }
            Knob::Acks => match v {
                "0" | "1" | "all" => Ok(v.to_string()),
                "-1" => Ok("all".into()),
                _ => Err(bad()),
            },
            Knob::Compression => match v {
                "none" | "gzip" | "snappy" | "lz4" | "zstd" => Ok(v.to_string()),
                _ => Err(bad()),
            },
            Knob::Idempotence => v.parse::<bool>().map(|b| b.to_string()).map_err(|_| bad()),
            _ => int(v).map(|n| n.to_string()),
        }
    }

    fn apply(self, w: &mut Workload, v: &str) {
        let num = || v.parse::<u64>().expect("parsed by parse_value");
        match self {
            Knob::LingerMs => w.producer.linger_ms = v.parse().expect("parsed"),
            Knob::BatchSize => w.producer.batch_size = num(),
            Knob::Acks => w.producer.acks = v.to_string(),
            Knob::Compression => w.producer.compression = v.to_string(),
            Knob::Idempotence => w.producer.idempotence = v == "true",
            Knob::MaxInFlight => {
                w.producer.extra.insert(self.property().into(), v.into());
            }
            Knob::Partitions => w.partitions_per_topic = num() as u32,
            Knob::MessageSize => w.message_size = num() as u32,
            Knob::FetchMinBytes | Knob::FetchWaitMaxMs => {
                w.consumer.insert(self.property().into(), v.into());
            }
        }
    }

    fn label_value(self, v: &str) -> String {
        match self {
            Knob::BatchSize | Knob::MessageSize | Knob::FetchMinBytes => {
                v.parse().map(short_bytes).unwrap_or_else(|_| v.to_string())
            }
            _ => v.to_string(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dimension {
    pub knob: Knob,
    pub values: Vec<String>,
}

impl Dimension {
    pub fn parse(knob: Knob, list: &str) -> Result<Dimension, KnobError> {
        let values = list
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .map(|s| knob.parse_value(s))
            .collect::<Result<Vec<_>, _>>()?;
        if values.is_empty() {
            return Err(KnobError::Empty(knob.property()));
        }
        Ok(Dimension { knob, values })
    }
}

/// One combination of knob values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Setting {
    pub label: String,
    pub values: Vec<(Knob, String)>,
}

impl Setting {
    pub fn get(&self, knob: Knob) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| *k == knob)
            .map(|(_, v)| v.as_str())
    }

    /// The workload of this setting; errors on combinations librdkafka would refuse.
    pub fn apply(&self, base: &Workload) -> Result<Workload, KnobError> {
        let mut w = base.clone();
        for (k, v) in &self.values {
            k.apply(&mut w, v);
        }
        let invalid = |reason: String| KnobError::Invalid {
            label: self.label.clone(),
            reason,
        };
        if w.producer.idempotence {
            if w.producer.acks != "all" {
                return Err(invalid("enable.idempotence=true needs acks=all".into()));
            }
            let inflight = w.producer.extra.get(Knob::MaxInFlight.property());
            if inflight.is_some_and(|v| v.parse::<u64>().is_ok_and(|n| n > 5)) {
                return Err(invalid(
                    "enable.idempotence=true needs max.in.flight.requests.per.connection <= 5"
                        .into(),
                ));
            }
        }
        w.validate().map_err(invalid)?;
        Ok(w)
    }
}

/// Every combination, the last dimension fastest-varying; labels name linger and batch
/// always and other knobs only when they vary.
pub fn settings(dims: &[Dimension]) -> Result<Vec<Setting>, KnobError> {
    let total: usize = dims.iter().map(|d| d.values.len()).product();
    if total > SETTINGS_MAX {
        return Err(KnobError::TooMany { total });
    }
    let mut out: Vec<Vec<(Knob, String)>> = vec![Vec::new()];
    for d in dims {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                d.values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push((d.knob, v.clone()));
                    p
                })
            })
            .collect();
    }
    Ok(out
        .into_iter()
        .map(|values| Setting {
            label: label(dims, &values),
            values,
        })
        .collect())
}

fn label(dims: &[Dimension], values: &[(Knob, String)]) -> String {
    values
        .iter()
        .filter(|(k, _)| {
            matches!(k, Knob::LingerMs | Knob::BatchSize)
                || dims.iter().any(|d| d.knob == *k && d.values.len() > 1)
        })
        .map(|(k, v)| format!("{}={}", k.short(), k.label_value(v)))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn short_bytes(b: u64) -> String {
    if b >= 1 << 20 && b.is_multiple_of(1 << 20) {
        format!("{}M", b >> 20)
    } else if b >= 1024 && b.is_multiple_of(1024) {
        format!("{}k", b >> 10)
    } else {
        b.to_string()
    }
}

/// `16k`, `1M` style sizes (binary units).
pub fn parse_size(s: &str) -> Option<u64> {
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1024),
        'm' | 'M' => (&s[..s.len() - 1], 1024 * 1024),
        _ => return None,
    };
    num.parse::<u64>().ok().map(|n| n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Workload {
        Workload::from_toml(
            "name='x'\ntopics=1\npartitions_per_topic=16\nmessage_size=1024\nproducers_per_topic=1\nconsumers_per_subscription=0\nproducer_rate=1000\nduration_s=3\n",
        )
        .unwrap()
    }

    #[test]
    fn settings_enumerate_and_label_what_varies() {
        let dims = vec![
            Dimension::parse(Knob::LingerMs, "0,1,5,20").unwrap(),
            Dimension::parse(Knob::BatchSize, "16k,128k,1M").unwrap(),
            Dimension::parse(Knob::Acks, "all").unwrap(),
            Dimension::parse(Knob::Compression, "none,lz4").unwrap(),
        ];
        let s = settings(&dims).unwrap();
        assert_eq!(s.len(), 24);
        assert_eq!(s[0].label, "l=0 b=16k c=none");
        assert_eq!(s[23].label, "l=20 b=1M c=lz4");
        let w = s[23].apply(&base()).unwrap();
        assert_eq!(w.producer.batch_size, 1 << 20);
        assert_eq!(w.producer.compression, "lz4");
        assert_eq!(w.producer.linger_ms, 20.0);
    }

    #[test]
    fn every_knob_reaches_the_workload() {
        let dims: Vec<Dimension> = [
            (Knob::MaxInFlight, "5"),
            (Knob::Idempotence, "true"),
            (Knob::Partitions, "4"),
            (Knob::MessageSize, "100"),
            (Knob::FetchMinBytes, "64k"),
            (Knob::FetchWaitMaxMs, "10"),
        ]
        .iter()
        .map(|(k, v)| Dimension::parse(*k, v).unwrap())
        .collect();
        let s = settings(&dims).unwrap();
        let w = s[0].apply(&base()).unwrap();
        assert_eq!(
            w.producer.extra["max.in.flight.requests.per.connection"],
            "5"
        );
        assert!(w.producer.idempotence);
        assert_eq!(w.partitions_per_topic, 4);
        assert_eq!(w.message_size, 100);
        assert_eq!(w.consumer["fetch.min.bytes"], "65536");
        assert_eq!(w.consumer["fetch.wait.max.ms"], "10");
    }

    #[test]
    fn refuses_what_librdkafka_would() {
        let dims = vec![
            Dimension::parse(Knob::Acks, "1").unwrap(),
            Dimension::parse(Knob::Idempotence, "true").unwrap(),
        ];
        let e = settings(&dims).unwrap()[0].apply(&base()).unwrap_err();
        assert!(e.to_string().contains("needs acks=all"), "{e}");
        assert!(Dimension::parse(Knob::Acks, "2").is_err());
        assert!(Dimension::parse(Knob::BatchSize, "x").is_err());
        assert!(matches!(
            Dimension::parse(Knob::LingerMs, ","),
            Err(KnobError::Empty(_))
        ));
    }
}
