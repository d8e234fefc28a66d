//! `reco serve`: the HTTP API against a Kafka cluster.

use std::{process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context;
use reco_api::{AppState, ServedWindow, TrendingCache};
use reco_kafka::{EventProducer, ProducerSettings};
use reco_telemetry::Telemetry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    cli::{HttpArgs, LakeArgs, ServeArgs},
    shutdown,
};

/// How often the API looks for newly published gold windows.
const TRENDING_REFRESH: Duration = Duration::from_secs(1);

/// The in-memory view of the gold tables behind `GET /trending`.
pub fn trending_cache(lake: &LakeArgs, top_n: usize) -> anyhow::Result<Arc<TrendingCache>> {
    let windows = reco_gold::window::Config::default()
        .windows
        .into_iter()
        .map(|w| ServedWindow { name: w.name.to_owned(), length_us: w.length_us })
        .collect();
    Ok(TrendingCache::new(lake.lake()?, windows, top_n.max(1)))
}

/// How long shutdown waits for queued events to reach the broker.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let telemetry = Arc::new(Telemetry::new());
    let shutdown = shutdown::on_signal();
    let trending = trending_cache(&args.lake, args.top_n)?;
    // A bucket that does not exist or credentials that do not work stop the service now, not
    // at the first GET /trending.
    trending.lake().check(false).await?;
    let api = Api::bind(&args.http, &args.kafka.kafka_bootstrap_servers, telemetry, Some(trending)).await?;
    info!(addr = %api.listener.local_addr()?, kafka = %args.kafka.kafka_bootstrap_servers, "reco serve listening");
    api.run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// The API component, shared by `serve` and `up`: bound listener plus state.
pub struct Api {
    pub listener: TcpListener,
    pub state: AppState,
}

impl Api {
    pub async fn bind(
        http: &HttpArgs,
        bootstrap: &str,
        telemetry: Arc<Telemetry>,
        trending: Option<Arc<TrendingCache>>,
    ) -> anyhow::Result<Api> {
        let config = http.api_config()?;
        let producer = EventProducer::new(ProducerSettings {
            bootstrap_servers: bootstrap.to_owned(),
            ack_timeout: http.ack_timeout(),
            ..ProducerSettings::default()
        })
        .context("cannot create the Kafka producer")?;
        let listener = TcpListener::bind(http.http_addr)
            .await
            .with_context(|| format!("cannot listen on {} (set --http-addr / RECO_HTTP_ADDR)", http.http_addr))?;
        let state = AppState { producer, telemetry, config: Arc::new(config), trending };
        Ok(Api { listener, state })
    }

    /// Serves until `shutdown`, drains in-flight requests, then flushes the producer.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let producer = self.state.producer.clone();
        let refresher = self.state.trending.clone().map(|cache| {
            let shutdown = shutdown.clone();
            tokio::spawn(cache.run(TRENDING_REFRESH, shutdown))
        });
        reco_api::serve(self.listener, self.state, shutdown).await.context("HTTP server failed")?;
        if let Some(task) = refresher {
            task.abort();
        }
        if let Err(e) = producer.flush(FLUSH_TIMEOUT).await {
            warn!(error = %e, "some produced events may not have been delivered at shutdown");
        }
        info!("API stopped");
        Ok(())
    }
}
