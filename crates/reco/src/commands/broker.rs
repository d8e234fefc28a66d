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
    let (broker, storage_note, _lock) = start_with_topics(
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
/// platform's topics; returns it with a line saying where its data lives and the lock that
/// keeps a second broker off its folder (hold it while the broker runs). Shared with `reco up`.
pub async fn start_with_topics(
    addr: SocketAddr,
    advertised: Option<&str>,
    kind: BrokerStorageKind,
    lake: &Path,
    topics: &TopicArgs,
) -> anyhow::Result<(EmbeddedBroker, String, std::fs::File)> {
    reco_lake::check_local(lake)?;
    // Locked with either storage: two memory brokers on one folder mean two `reco up` whose
    // silver jobs write one lake from two different logs.
    let dir = lake.join("_broker");
    let lock = lock_data(&dir)?;
    let storage = match kind {
        BrokerStorageKind::Sqlite => BrokerStorage::Sqlite(dir.join("tansu.db")),
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
    Ok((broker, note, lock))
}

/// An exclusive lock on the broker's data folder, released when the process ends (however it
/// ends). Two brokers on one SQLite file would both accept writes and interleave them.
fn lock_data(dir: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow::anyhow!("cannot create the broker's data folder {}: {e}", dir.display()))?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "the broker data in {} is in use by another `reco up` or `reco broker`; stop it, or give this one \
             its own LAKEHOUSE_PATH (or --broker-data)",
            dir.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => anyhow::bail!("cannot lock {}: {e}", path.display()),
    }
}
