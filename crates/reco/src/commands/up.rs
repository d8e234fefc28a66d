//! `reco up`: the whole platform in one process, for one machine with no Docker and no JVM.
//!
//! Components (broker, API, silver job, gold job) run as tasks sharing one
//! metrics registry and one shutdown token. If any component stops with an error, the others
//! are stopped too and `reco up` exits non-zero: half a platform running is worse than none.

use std::{process::ExitCode, sync::Arc, time::Instant};

use anyhow::Context;
use reco_telemetry::Telemetry;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::{
    cli::{BrokerStorageKind, UpArgs},
    commands::{
        broker::start_with_topics,
        serve::{Api, Kafka, trending_cache},
    },
    shutdown,
};

/// `reco up` is for this machine: loopback unless --http-addr says otherwise.
const LOCAL_ADDR: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8000);

pub async fn run(args: UpArgs, started: Instant) -> anyhow::Result<ExitCode> {
    let shutdown = shutdown::on_signal();
    let telemetry = Arc::new(Telemetry::new());
    // Every setting is checked before anything starts, so a mistake leaves nothing to undo
    // (a bad tokens file found after the broker created its topics would leave them behind).
    args.http.api_config(args.rules.rules()?)?;
    let mut gold = args.gold.config(&args.lake)?;
    gold.validate().map_err(|e| anyhow::anyhow!("gold: {e}"))?;
    let lake = args.lake.lake()?;
    lake.check(true).await?;
    // The broker's SQLite log lives in the lake folder, or in ./data when the lake is remote.
    let broker_data = match (&args.broker_data, lake.local_root()) {
        (Some(dir), _) => dir.clone(),
        (None, Some(root)) => root.to_path_buf(),
        (None, None) => std::path::PathBuf::from("./data"),
    };
    reco_lake::check_local(&broker_data)?;
    std::fs::create_dir_all(&broker_data)
        .with_context(|| format!("cannot create the broker's data folder {}", broker_data.display()))?;

    let (broker, storage_note, _lock) =
        start_with_topics(args.broker_addr, None, args.broker_storage, &broker_data, &args.topics).await?;
    let bootstrap = broker.bootstrap();
    let trending = trending_cache(&args.lake, args.gold.top_n)?;
    // Uncompressed to the embedded broker: see `ProducerSettings::compression`.
    let kafka = Kafka { bootstrap: &bootstrap, compression: "none" };
    let api = Api::bind(&args.http, &args.rules, LOCAL_ADDR, kafka, telemetry.clone(), Some(trending)).await?;
    let http_addr = api.listener.local_addr()?;
    let metrics_url = api.metrics_url()?;

    let mut silver = silver_config(&args, &bootstrap).await?;

    // One process: gold reads each silver flush as it lands rather than at its next poll.
    let flushed = Arc::new(tokio::sync::Notify::new());
    silver.committed = Some(flushed.clone());
    gold.silver_committed = Some(flushed);
    // Woken at each flush, gold needs no faster poll here; each extra look is a log listing
    // (and, in the soak, extra gold commits) for nothing.
    if args.gold.active_poll_interval_ms.is_none() {
        gold.active_poll_interval = gold.poll_interval;
    }

    let mut components = JoinSet::new();
    components.spawn({
        let (telemetry, shutdown) = (telemetry.clone(), shutdown.clone());
        async move { ("silver", reco_silver::run(silver, telemetry, shutdown).await.map_err(anyhow::Error::from)) }
    });
    components.spawn({
        let (telemetry, shutdown) = (telemetry.clone(), shutdown.clone());
        async move { ("gold", reco_gold::run(gold, telemetry, shutdown).await.map_err(anyhow::Error::from)) }
    });
    components.spawn({
        let shutdown = shutdown.clone();
        async move { ("api", api.run(shutdown).await) }
    });

    println!("reco up: ready in {} ms", started.elapsed().as_millis());
    println!(
        "  API        http://{http_addr}  (POST /events, GET /trending, GET /items/{{id}}/similar, GET /users/{{id}}/recommendations, GET /health/ready, GET /openapi.json)"
    );
    if !args.http.no_console {
        println!("  console    http://{http_addr}/  (the pipeline live, trending, recommendations; in a browser)");
    }
    println!("  metrics    {metrics_url}");
    println!("  broker     {bootstrap}  (Kafka protocol; storage: {storage_note})");
    println!("  lakehouse  {}  (format: {:?}; silver and gold jobs running)", lake.display(), args.lake.storage_format);
    println!("Press Ctrl-C to stop.");

    let failed = supervise(components, &shutdown).await;
    broker.stop().await;
    info!("reco up stopped");
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// Silver's settings under `reco up`: its own group on its own broker, one worker.
async fn silver_config(args: &UpArgs, bootstrap: &str) -> anyhow::Result<reco_silver::SilverConfig> {
    let mut silver = args.silver.config(bootstrap, &args.lake, &args.rules)?;
    // One process, one worker, on a broker no one else uses (the data folder is locked): the
    // group is forgotten at start (a member left by a killed `reco up` would hold the round
    // for its session timeout) and the worker joins as a dynamic member. The coordinator
    // pauses static members 3 s in each of JoinGroup and SyncGroup, waiting for peers that
    // never come here: the first event posted after ready reached silver 6.5 s later. Now the
    // lone member leads its round at once. (Lag stays visible: silver commits the table's
    // offsets to the group as it takes its partitions.)
    if silver.instance_id.is_none()
        && let Err(e) = reco_kafka::group::delete_group(bootstrap, &silver.group_id).await
    {
        warn!(error = %e, "could not reset silver's consumer group; its first round may wait for an old member");
    }
    // A memory broker starts with empty topics at every start while the lake keeps its
    // offsets: that reset is expected, so silver reads the new log rather than refusing it.
    // And what it acknowledged dies with it: silver reads it all before stopping.
    if args.broker_storage == BrokerStorageKind::Memory {
        if args.silver.on_offset_reset.is_none() {
            silver.on_offset_reset = reco_silver::OnOffsetReset::Continue;
        }
        silver.drain_on_stop = Some(std::time::Duration::from_secs(15));
    }
    Ok(silver)
}

/// Waits for every component; whatever ends first stops the rest. True when one failed.
async fn supervise(mut components: JoinSet<(&'static str, anyhow::Result<()>)>, shutdown: &CancellationToken) -> bool {
    let mut failed = false;
    while let Some(joined) = components.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => {
                error!(component = name, error = %format!("{e:#}"), "component failed; stopping reco up");
                failed = true;
            }
            Err(e) => {
                error!(error = %e, "component panicked; stopping reco up");
                failed = true;
            }
        }
        // Whatever ended first, the rest follow.
        shutdown.cancel();
    }
    failed
}
