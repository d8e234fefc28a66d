//! The embedded broker: tansu, a Kafka-protocol broker written in Rust, run in-process so that
//! `reco up` needs no JVM and no Docker.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use tansu_broker::{broker::Broker, coordinator::group::administrator::Controller};
use tansu_storage::StorageContainer;
use tokio::{net::TcpStream, task::JoinHandle, time::Instant};
use tracing::{error, info};
use url::Url;

use crate::{Error, Result};

/// How often the embedded broker deletes records past their topic's `retention.ms`.
///
/// Each pass reads and deletes at most the oldest 10,000 records of a partition (our patched
/// tansu-storage, third_party/README.md) and holds the broker's storage while it runs, so
/// passes are short and frequent: a pass that finds nothing expired costs about a millisecond,
/// one that deletes 10,000 records from each of 6 partitions about 0.4 s, and at one pass per
/// 5 s the broker can expire up to 2,000 records/s per partition.
pub const RETENTION_INTERVAL: Duration = Duration::from_secs(5);

/// Where the embedded broker keeps its log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BrokerStorage {
    /// Lost when the process stops; for tests and throwaway runs.
    Memory,
    /// A SQLite database file: survives restarts.
    Sqlite(PathBuf),
}

/// A running embedded broker. Stop it with [`EmbeddedBroker::stop`]; dropping it also stops it.
#[derive(Debug)]
pub struct EmbeddedBroker {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Starts the broker on `addr` and returns once it accepts connections.
    pub async fn start(addr: SocketAddr, storage: BrokerStorage) -> Result<Self> {
        Self::launch(addr, None, storage, RETENTION_INTERVAL).await
    }

    /// As [`EmbeddedBroker::start`], telling clients to connect to `advertised` (`host:port`)
    /// instead of `addr`: the address of a proxy in front of it (a TLS terminator, a port
    /// published by a container).
    pub async fn start_advertising(addr: SocketAddr, advertised: Option<&str>, storage: BrokerStorage) -> Result<Self> {
        Self::launch(addr, advertised, storage, RETENTION_INTERVAL).await
    }

    /// As [`EmbeddedBroker::start`], enforcing retention every `every` instead of every
    /// [`RETENTION_INTERVAL`]: for tests that watch records expire.
    pub async fn start_with_retention_interval(
        addr: SocketAddr,
        storage: BrokerStorage,
        every: Duration,
    ) -> Result<Self> {
        Self::launch(addr, None, storage, every).await
    }

    async fn launch(
        addr: SocketAddr,
        advertised: Option<&str>,
        storage: BrokerStorage,
        retention_every: Duration,
    ) -> Result<Self> {
        let fail = |message: String| Error::EmbeddedBroker { addr: addr.to_string(), message };
        // tansu binds inside its serve loop and a bind failure there would only be logged, so
        // check the port first to give the user a clear error instead of a hang.
        drop(
            std::net::TcpListener::bind(addr)
                .map_err(|e| fail(format!("cannot listen: {e} (is another broker running?)")))?,
        );
        // Clients must be told an address they can connect to, never 0.0.0.0.
        let advertised = advertised.map_or_else(|| addr_to_dial(addr).to_string(), str::to_owned);
        let listener = Url::parse(&format!("tcp://{addr}")).map_err(|e| fail(e.to_string()))?;
        let advertised = Url::parse(&format!("tcp://{advertised}")).map_err(|e| fail(e.to_string()))?;
        let mut storage_url = match &storage {
            BrokerStorage::Memory => Url::parse("memory://tansu/"),
            BrokerStorage::Sqlite(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
                }
                Url::parse(&sqlite_url_path(path).map_err(fail)?)
            }
        }
        .map_err(|e| fail(e.to_string()))?;
        // tansu reads its maintenance period (retention, compaction) from the storage URL.
        storage_url.set_query(Some(&format!("maintenance_interval={}ms", retention_every.as_millis().max(1))));

        let mut broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
            .node_id(tansu_broker::NODE_ID)
            .cluster_id("reco")
            .incarnation_id(uuid::Uuid::now_v7())
            .advertised_listener(advertised)
            .storage(storage_url)
            .listener(listener)
            .silent(true)
            .build()
            .await
            .map_err(|e| fail(format!("cannot start: {e:?}")))?;
        let task = tokio::spawn(async move {
            if let Err(e) = broker.serve(Instant::now()).await {
                error!(error = ?e, "embedded broker stopped with an error");
            }
        });
        let started = Instant::now();
        while TcpStream::connect(addr_to_dial(addr)).await.is_err() {
            if task.is_finished() || started.elapsed() > Duration::from_secs(10) {
                task.abort();
                return Err(fail("did not start accepting connections".into()));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        info!(%addr, ?storage, "embedded broker listening");
        Ok(EmbeddedBroker { addr, task })
    }

    /// The `bootstrap.servers` string clients should use.
    pub fn bootstrap(&self) -> String {
        addr_to_dial(self.addr).to_string()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, closes open ones and releases storage.
    ///
    /// tansu's cancellation token is private to its builder, so the serving task is aborted;
    /// that is safe because every write tansu acknowledges is already committed to storage.
    pub async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn addr_to_dial(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() { SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port())) } else { addr }
}

/// tansu resolves a `sqlite:` URL's path against the current directory, even when it looks
/// absolute. So the URL carries a path relative to the current directory: enough `..` to
/// reach `/` (extra `..` at the root are harmless), then the absolute path.
fn sqlite_url_path(path: &Path) -> Result<String, String> {
    let cwd = std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    let absolute = if path.is_absolute() { path.to_path_buf() } else { cwd.join(path) };
    let absolute = absolute.to_str().ok_or("the broker data path is not UTF-8")?;
    if absolute.contains(['?', '#', '%', ' ']) {
        return Err(format!("the broker data path {absolute:?} may not contain ?, #, % or spaces"));
    }
    let up = "../".repeat(cwd.components().count());
    Ok(format!("sqlite:{up}{}", absolute.trim_start_matches('/')))
}
