//! `reco gold`: the silver → gold trending job as its own service, and `reco gold backfill`.

use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use reco_gold::GoldConfig;

use crate::cli::{BackfillArgs, GoldAction, GoldArgs, GoldOptions, LakeArgs};

pub async fn run(args: GoldArgs) -> anyhow::Result<ExitCode> {
    if let Some(GoldAction::Backfill(backfill)) = args.action {
        return run_backfill(backfill).await;
    }
    let config = args.gold.config(&args.lake)?;
    super::run_job("gold", args.metrics_addr, |telemetry, shutdown| reco_gold::run(config, telemetry, shutdown)).await
}

async fn run_backfill(args: BackfillArgs) -> anyhow::Result<ExitCode> {
    let config = args.gold.config(&args.lake)?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{spinner} backfill [{bar:40}] {pos}/{len} silver files  {per_sec}  eta {eta}")
            .context("progress bar template")?
            .progress_chars("=> "),
    );
    let report = reco_gold::backfill(&config, args.from, args.to, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })
    .await
    .context("backfill failed")?;
    bar.finish();
    let windows: Vec<String> = report.windows.iter().map(|(w, n)| format!("{n} × {w}")).collect();
    println!(
        "backfill: {} silver files, {} events counted, windows replaced: {}",
        report.files,
        report.events,
        windows.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// `--active-poll-interval-ms` of a gold job on its own: polling is how it learns of silver's
/// commits, and 200 ms keeps "window closable → published" under a second (docs/BENCHMARKS.md).
/// Each look lists the two silver logs (docs/OPERATIONS.md on the request cost).
pub const DEFAULT_ACTIVE_POLL_INTERVAL_MS: u64 = 200;

impl GoldOptions {
    pub fn config(&self, lake: &LakeArgs) -> anyhow::Result<GoldConfig> {
        anyhow::ensure!(self.top_n > 0, "--top-n must be at least 1");
        anyhow::ensure!(
            self.view_weight.is_finite() && self.click_weight.is_finite(),
            "--view-weight and --click-weight must be finite numbers"
        );
        let mut config = GoldConfig::new(lake.lake()?);
        let w = &mut config.window;
        w.top_n = self.top_n;
        w.view_weight = self.view_weight;
        w.click_weight = self.click_weight;
        w.lateness_us = self.allowed_lateness_secs.saturating_mul(1_000_000);
        w.horizon_us = self.state_horizon_secs.saturating_mul(1_000_000);
        w.idle_timeout_us = self.idle_timeout_ms.saturating_mul(1_000);
        config.poll_interval = Duration::from_millis(self.poll_interval_ms.max(1));
        let active = self.active_poll_interval_ms.unwrap_or(DEFAULT_ACTIVE_POLL_INTERVAL_MS);
        config.active_poll_interval = Duration::from_millis(active.max(1));
        config.checkpoint_interval = Duration::from_secs(self.checkpoint_interval_secs);
        anyhow::ensure!(self.lease_ttl_secs >= 3, "--lease-ttl-secs must be at least 3");
        config.lease_ttl = Duration::from_secs(self.lease_ttl_secs);
        anyhow::ensure!(
            self.neighbors_half_life_days.is_finite() && self.neighbors_half_life_days >= 0.0,
            "--neighbors-half-life-days must be a number of days, 0 or more"
        );
        if !self.neighbors {
            config.neighbors = None;
        }
        if let Some(n) = config.neighbors.as_mut() {
            n.half_life_us = (self.neighbors_half_life_days * 86_400e6) as i64;
            n.history = self.neighbors_history;
            n.top_k = self.neighbors_top_k;
            n.candidates = n.candidates.max(self.neighbors_top_k);
        }
        config.retention = (self.retention_hours > 0).then(|| Duration::from_secs(self.retention_hours * 3600));
        config.validate().map_err(|e| {
            anyhow::anyhow!(
                "{e} (see --allowed-lateness-secs, --state-horizon-secs, --retention-hours, --neighbors-history, \
                 --neighbors-top-k)"
            )
        })?;
        Ok(config)
    }
}
