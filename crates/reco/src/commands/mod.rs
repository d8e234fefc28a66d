//! One module per subcommand; each `run` turns parsed options into the crates' configs and runs them.

pub mod broker;
pub mod gold;
pub mod serve;
pub mod silver;
pub mod status;
pub mod topics;
pub mod traffic;
pub mod up;

use std::{future::Future, net::SocketAddr, process::ExitCode, sync::Arc};

use anyhow::Context;
use reco_telemetry::Telemetry;
use tokio_util::sync::CancellationToken;

/// Runs a job process: its own `/metrics` and `/health/live` listener on `metrics_addr`, the
/// job until a shutdown signal, then the listener's graceful stop.
pub async fn run_job<F, E>(
    name: &str,
    metrics_addr: SocketAddr,
    job: impl FnOnce(Arc<Telemetry>, CancellationToken) -> F,
) -> anyhow::Result<ExitCode>
where
    F: Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let telemetry = Arc::new(Telemetry::new());
    let shutdown = crate::shutdown::on_signal();
    let listener = tokio::net::TcpListener::bind(metrics_addr)
        .await
        .with_context(|| format!("cannot listen on {metrics_addr} (set --metrics-addr / RECO_METRICS_ADDR)"))?;
    tracing::info!(metrics = %listener.local_addr()?, "reco {name} metrics listening");
    let metrics = tokio::spawn({
        let app = reco_api::metrics_app(telemetry.clone());
        let shutdown = shutdown.clone();
        async move { axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await }
    });
    let result = job(telemetry, shutdown.clone()).await;
    shutdown.cancel();
    let _ = metrics.await;
    result.with_context(|| format!("{name} job failed"))?;
    Ok(ExitCode::SUCCESS)
}
