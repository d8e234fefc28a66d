//! `reco silver`: the Kafka → silver job as its own service, with its own metrics listener.

use std::{process::ExitCode, sync::Arc};

use anyhow::Context;
use reco_silver::SilverConfig;
use reco_telemetry::Telemetry;
use tokio::net::TcpListener;
use tracing::info;

use crate::{
    cli::{SilverArgs, SilverOptions},
    shutdown,
};

pub async fn run(args: SilverArgs) -> anyhow::Result<ExitCode> {
    let telemetry = Arc::new(Telemetry::new());
    let shutdown = shutdown::on_signal();
    let config = args.silver.config(&args.kafka.kafka_bootstrap_servers, &args.lake)?;
    let listener = TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {} (set --metrics-addr / RECO_METRICS_ADDR)", args.metrics_addr))?;
    info!(metrics = %listener.local_addr()?, "reco silver metrics listening");
    let metrics = tokio::spawn({
        let app = reco_api::metrics_app(telemetry.clone());
        let shutdown = shutdown.clone();
        async move { axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await }
    });
    let result = reco_silver::run(config, telemetry, shutdown.clone()).await;
    shutdown.cancel();
    let _ = metrics.await;
    result.context("silver job failed")?;
    Ok(ExitCode::SUCCESS)
}

impl SilverOptions {
    pub fn config(&self, bootstrap: &str, lake: &crate::cli::LakeArgs) -> anyhow::Result<SilverConfig> {
        let lake = lake.lake()?;
        let mut config = SilverConfig::new(bootstrap, lake);
        config.group_id = self.group_id.clone();
        config.instance_id = self.instance_id.clone();
        config.session_timeout = std::time::Duration::from_millis(self.session_timeout_ms);
        config.max_batch_bytes = self.max_batch_bytes;
        config.max_batch_age = std::time::Duration::from_millis(self.max_batch_age_ms);
        config.dedupe_horizon = std::time::Duration::from_secs(self.dedupe_horizon_secs);
        Ok(config)
    }
}
