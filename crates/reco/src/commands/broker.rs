//! `reco broker`: only the embedded Kafka-protocol broker (tansu), with the platform's topics.
//!
//! For running `reco serve`, `reco silver` and `reco gold` as separate processes on one
//! machine without Kafka: the cluster shape, minus the cluster. Its data lives where `reco up`
//! keeps it (`LAKEHOUSE_PATH/_broker`), so the two can take turns on one folder.

use std::{process::ExitCode, time::Instant};

use reco_kafka::{BrokerStorage, EmbeddedBroker};
use tracing::info;

use crate::{
    cli::{BrokerArgs, BrokerStorageKind},
    commands::topics::ensure_and_log,
    shutdown,
};

pub async fn run(args: BrokerArgs, started: Instant) -> anyhow::Result<ExitCode> {
    let shutdown = shutdown::on_signal();
    let storage = match args.broker_storage {
        BrokerStorageKind::Sqlite => BrokerStorage::Sqlite(args.lakehouse_path.join("_broker").join("tansu.db")),
        BrokerStorageKind::Memory => BrokerStorage::Memory,
    };
    let broker = EmbeddedBroker::start(args.broker_addr, storage.clone()).await?;
    let bootstrap = broker.bootstrap();
    let mut specs = args.topics.specs();
    for spec in &mut specs {
        spec.replication_factor.get_or_insert(1);
    }
    ensure_and_log(&bootstrap, &specs).await?;
    let storage_note = match &storage {
        BrokerStorage::Sqlite(path) => path.display().to_string(),
        BrokerStorage::Memory => "memory (lost at exit)".into(),
    };
    println!("reco broker: ready in {} ms", started.elapsed().as_millis());
    println!("  broker     {bootstrap}  (Kafka protocol; storage: {storage_note})");
    println!("  use        KAFKA_BOOTSTRAP_SERVERS={bootstrap} reco serve | silver | gold");
    println!("Press Ctrl-C to stop.");
    shutdown.cancelled().await;
    broker.stop().await;
    info!("reco broker stopped");
    Ok(ExitCode::SUCCESS)
}
