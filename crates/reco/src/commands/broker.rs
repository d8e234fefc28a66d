//! `reco broker`: only the embedded Kafka-protocol broker (tansu), with the platform's topics.
//!
//! For running `reco serve`, `reco silver` and `reco gold` as separate processes on one
//! machine without Kafka: the cluster shape, minus the cluster. Its data lives where `reco up`
//! keeps it (`LAKEHOUSE_PATH/_broker`), so the two can take turns on one folder.

use std::{net::SocketAddr, path::Path, process::ExitCode, time::Instant};

use reco_kafka::{BrokerStorage, EmbeddedBroker};
use tracing::{info, warn};

use crate::{
    cli::{BrokerArgs, BrokerStorageKind, TopicArgs},
    commands::topics::ensure_and_log,
    shutdown,
};

pub async fn run(args: BrokerArgs, started: Instant) -> anyhow::Result<ExitCode> {
    let shutdown = shutdown::on_signal();
    let (broker, storage_note) = start_with_topics(
        args.broker_addr,
        args.broker_advertised_addr.as_deref(),
        args.broker_storage,
        &args.lakehouse_path,
        &args.topics,
    )
    .await?;
    let bootstrap = broker.bootstrap();
    println!("reco broker: ready in {} ms", started.elapsed().as_millis());
    println!("  broker     {bootstrap}  (Kafka protocol; storage: {storage_note})");
    println!("  use        KAFKA_BOOTSTRAP_SERVERS={bootstrap} reco serve | silver | gold");
    println!("Press Ctrl-C to stop.");
    shutdown.cancelled().await;
    broker.stop().await;
    info!("reco broker stopped");
    Ok(ExitCode::SUCCESS)
}

/// Starts the embedded broker (SQLite data in `lake/_broker`, or memory) and sets up the
/// platform's topics; returns it with a line saying where its data lives. Shared with `reco up`.
pub async fn start_with_topics(
    addr: SocketAddr,
    advertised: Option<&str>,
    kind: BrokerStorageKind,
    lake: &Path,
    topics: &TopicArgs,
) -> anyhow::Result<(EmbeddedBroker, String)> {
    reco_lake::check_local(lake)?;
    let storage = match kind {
        BrokerStorageKind::Sqlite => BrokerStorage::Sqlite(lake.join("_broker").join("tansu.db")),
        BrokerStorageKind::Memory => BrokerStorage::Memory,
    };
    let broker = EmbeddedBroker::start_advertising(addr, advertised, storage.clone()).await?;
    let mut specs = topics.specs();
    // One broker can hold one replica; asking the broker's default is pointless here.
    for spec in &mut specs {
        spec.replication_factor.get_or_insert(1);
    }
    match ensure_and_log(&broker.bootstrap(), &specs).await {
        Ok(()) => {}
        // Clients (this one too) are sent to the advertised address; behind a TLS proxy a
        // plaintext client cannot get through it, so the topics are set up through the proxy.
        Err(e) if advertised.is_some() => warn!(
            error = %format!("{e:#}"),
            "cannot set up the topics through the advertised address; run `reco topics init` there \
             with the proxy's security settings"
        ),
        Err(e) => return Err(e),
    }
    let note = match &storage {
        BrokerStorage::Sqlite(path) => path.display().to_string(),
        BrokerStorage::Memory => "memory (lost at exit)".into(),
    };
    Ok((broker, note))
}
