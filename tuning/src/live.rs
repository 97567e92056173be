//! The real endpoint: one `shoal-bench` run per step, topics deleted afterwards.

use crate::driver::{Endpoint, StepOutput, Target};
use crate::step::StepFigures;
use shoal_bench::kafka::{self, RunOptions};
use shoal_bench::workload::Workload;
use std::time::Instant;

pub struct KafkaEndpoint {
    /// Topics of this sweep start with it (`shoal-tune-<seed>`); they are deleted after each step.
    pub topic_prefix: String,
}

impl Endpoint for KafkaEndpoint {
    fn run_step(
        &mut self,
        target: &Target,
        w: &Workload,
        label: &str,
    ) -> Result<StepOutput, String> {
        let t0 = Instant::now();
        let r = kafka::run(
            w,
            &RunOptions {
                brokers: target.brokers.clone(),
                label: Some(label.to_string()),
                topic_prefix: self.topic_prefix.clone(),
                progress: false,
                on_start: None,
            },
        )?;
        let json = serde_json::to_string_pretty(&r).map_err(|e| e.to_string())?;
        if let Err(e) = kafka::delete_topics_with_prefix(&target.brokers, &self.topic_prefix) {
            eprintln!("shoal-tune: warning: could not delete this step's topics: {e}");
        }
        Ok(StepOutput {
            figures: StepFigures::from_result(&r),
            result_json: Some(json),
            elapsed_s: t0.elapsed().as_secs_f64(),
        })
    }
}
