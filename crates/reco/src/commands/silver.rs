//! `reco silver`: the Kafka → silver job as its own service, with its own metrics listener.

use std::process::ExitCode;

use reco_silver::{OnOffsetReset, SilverConfig};

use crate::cli::{OnOffsetResetArg, SilverArgs, SilverOptions};

pub async fn run(args: SilverArgs) -> anyhow::Result<ExitCode> {
    let config = args.silver.config(&args.kafka.kafka_bootstrap_servers, &args.lake, &args.rules)?;
    super::run_job("silver", args.metrics_addr, |telemetry, shutdown| reco_silver::run(config, telemetry, shutdown))
        .await
}

impl SilverOptions {
    pub fn config(
        &self,
        bootstrap: &str,
        lake: &crate::cli::LakeArgs,
        rules: &crate::cli::RulesArgs,
    ) -> anyhow::Result<SilverConfig> {
        let lake = lake.lake()?;
        let mut config = SilverConfig::new(bootstrap, lake);
        // The API's rules: what it accepted, silver keeps.
        config.rules = rules.rules()?;
        config.group_id = self.group_id.clone();
        config.instance_id = self.instance_id.clone();
        config.session_timeout = std::time::Duration::from_millis(self.session_timeout_ms);
        config.max_batch_bytes = self.max_batch_bytes;
        config.max_batch_age = std::time::Duration::from_millis(self.max_batch_age_ms);
        config.min_batch_age = std::time::Duration::from_millis(self.min_batch_age_ms.min(self.max_batch_age_ms));
        config.dedupe_horizon = std::time::Duration::from_secs(self.dedupe_horizon_secs);
        config.compact = (self.compact_min_files > 0).then(|| reco_lake::CompactPolicy {
            min_files: self.compact_min_files,
            target_bytes: self.compact_target_mb.max(1) * 1024 * 1024,
        });
        config.on_offset_reset = match self.on_offset_reset {
            Some(OnOffsetResetArg::Continue) => OnOffsetReset::Continue,
            Some(OnOffsetResetArg::Fail) | None => OnOffsetReset::Fail,
        };
        Ok(config)
    }
}
