//! `reco serve`: the HTTP API against a Kafka cluster.

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::ExitCode,
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use reco_api::{AppState, HistoryConfig, SimilarCache, TrendingCache, UserHistories};
use reco_kafka::{EventProducer, ProducerSettings};
use reco_telemetry::Telemetry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{
    cli::{HttpArgs, LakeArgs, RulesArgs, ServeArgs},
    shutdown,
};

/// `reco serve` is the edge service: every interface by default.
pub const SERVE_ADDR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8000);

/// How often the API looks for newly published gold windows and neighbour lists.
const TRENDING_REFRESH: Duration = Duration::from_secs(1);

/// The in-memory view of the gold tables behind `GET /trending`.
pub fn trending_cache(lake: &LakeArgs, top_n: usize) -> anyhow::Result<Arc<TrendingCache>> {
    Ok(TrendingCache::new(lake.lake()?, reco_core::TRENDING_WINDOWS.to_vec(), top_n.max(1)))
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
    let bootstrap = &args.kafka.kafka_bootstrap_servers;
    let kafka = Kafka { bootstrap, compression: ProducerSettings::default().compression };
    let api = Api::bind(&args.http, &args.rules, SERVE_ADDR, kafka, telemetry, Some(trending)).await?;
    info!(addr = %api.listener.local_addr()?, kafka = %bootstrap, "reco serve listening");
    api.run(shutdown).await?;
    Ok(ExitCode::SUCCESS)
}

/// Where the API's producer sends and how.
pub struct Kafka<'a> {
    pub bootstrap: &'a str,
    /// librdkafka `compression.type` (see [`ProducerSettings::compression`]).
    pub compression: &'static str,
}

/// The API component, shared by `serve` and `up`: bound listeners plus state.
pub struct Api {
    pub listener: TcpListener,
    /// The separate /metrics listener (`--metrics-addr`), if any.
    pub metrics: Option<TcpListener>,
    pub state: AppState,
    bootstrap: String,
}

impl Api {
    pub async fn bind(
        http: &HttpArgs,
        rules: &RulesArgs,
        default_addr: SocketAddr,
        kafka: Kafka<'_>,
        telemetry: Arc<Telemetry>,
        trending: Option<Arc<TrendingCache>>,
    ) -> anyhow::Result<Api> {
        let rules = rules.rules()?;
        let config = http.api_config(rules.clone())?;
        let addr = http.http_addr.unwrap_or(default_addr);
        let producer = EventProducer::new(ProducerSettings {
            bootstrap_servers: kafka.bootstrap.to_owned(),
            ack_timeout: http.ack_timeout(),
            compression: kafka.compression,
            ..ProducerSettings::default()
        })
        .context("cannot create the Kafka producer")?;
        let topics = reco_core::EventType::ALL.map(reco_core::EventType::topic);
        producer.warm_up(&topics, Duration::from_secs(1)).await;
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (set --http-addr / RECO_HTTP_ADDR)"))?;
        let metrics = match http.metrics_addr {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (set --metrics-addr / RECO_METRICS_ADDR)"))?,
            ),
            None => None,
        };
        if config.tokens.is_none() && !addr.ip().is_loopback() {
            warn!(
                %addr,
                "the API listens beyond this machine without tokens: anyone who reaches it can post events \
                 (set RECO_API_TOKENS_FILE; see docs/OPERATIONS.md, \"Exposing the API\")"
            );
        }
        if let Some(tokens) = &config.tokens {
            info!(names = ?tokens.names(), "POST /events requires a bearer token");
        }
        // Recommendations come from the same lake as trending.
        let similar = trending.as_ref().map(|t| SimilarCache::new(t.lake().clone()));
        let horizon = Duration::from_secs(http.history_days.max(1) * 24 * 3600);
        let histories = Some(UserHistories::new(HistoryConfig::default(), rules, horizon));
        let state = AppState { producer, telemetry, config: Arc::new(config), trending, similar, histories };
        Ok(Api { listener, metrics, state, bootstrap: kafka.bootstrap.to_owned() })
    }

    /// Where /metrics is served.
    pub fn metrics_url(&self) -> anyhow::Result<String> {
        let addr = match &self.metrics {
            Some(listener) => listener.local_addr()?,
            None => self.listener.local_addr()?,
        };
        Ok(format!("http://{addr}/metrics"))
    }

    /// Serves until `shutdown`, drains in-flight requests, then flushes the producer.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let producer = self.state.producer.clone();
        let refresher = self.state.trending.clone().map(|cache| {
            let shutdown = shutdown.clone();
            tokio::spawn(cache.run(TRENDING_REFRESH, shutdown))
        });
        let similar = self.state.similar.clone().map(|cache| {
            let shutdown = shutdown.clone();
            tokio::spawn(cache.run(TRENDING_REFRESH, shutdown))
        });
        let follower = self.state.histories.clone().map(|h| tokio::spawn(h.run(self.bootstrap.clone())));
        let reloader = self.state.config.tokens.clone().map(|tokens| tokio::spawn(reload_on_sighup(tokens)));
        let metrics = self.metrics.map(|listener| {
            let app = reco_api::metrics_app(self.state.telemetry.clone());
            let shutdown = shutdown.clone();
            tokio::spawn(
                async move { axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await },
            )
        });
        reco_api::serve(self.listener, self.state, shutdown).await.context("HTTP server failed")?;
        for task in [refresher, similar, follower, reloader].into_iter().flatten() {
            task.abort();
        }
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        if let Err(e) = producer.flush(FLUSH_TIMEOUT).await {
            warn!(error = %e, "some produced events may not have been delivered at shutdown");
        }
        info!("API stopped");
        Ok(())
    }
}

/// Re-reads the token file at every SIGHUP; a file that does not parse leaves the previous
/// tokens in force.
async fn reload_on_sighup(tokens: Arc<reco_api::Tokens>) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hangup) = signal(SignalKind::hangup()) else {
        warn!("cannot install the SIGHUP handler; the token file is read only at start");
        return;
    };
    while hangup.recv().await.is_some() {
        match tokens.reload() {
            Ok(n) => info!(tokens = n, names = ?tokens.names(), "token file reloaded"),
            Err(e) => warn!(error = %e, "token file not reloaded; the previous tokens stay in force"),
        }
    }
}
