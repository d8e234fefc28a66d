//! Delta Lake tables, written with delta-rs' `RecordBatchWriter` and committed by us, so the
//! offsets travel in the same commit as the rows (`txn` actions).
//!
//! The silver table and the dead-letter table are two Delta tables, and Delta has no
//! multi-table commit. Order and offsets make them agree anyway: the dead-letter rows of a
//! batch are committed first (with the batch's end offsets as the dead-letter table's `txn`),
//! then the silver rows. After a crash between the two, the batch is re-read from the silver
//! offsets and its dead-letter rows below the dead-letter `txn` are skipped.

use std::collections::HashMap;

use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::{
    DeltaTable, DeltaTableError,
    arrow::datatypes::SchemaRef,
    kernel::{
        Action, StructType, Transaction,
        transaction::{CommitBuilder, CommitProperties, TransactionError},
    },
    logstore::get_actions,
    protocol::{DeltaOperation, SaveMode},
    writer::{DeltaWriter, RecordBatchWriter},
};

use crate::{
    CommitOutcome, CommitStats, DataFile, Error, Lake, Result, StoredOffsets, StreamBatch, app_id, deadletter_key,
    fault::crash_point,
    schema::{EVENT_DATE, deadletter_batch, deadletter_schema, silver_batch, silver_schema},
};

#[derive(Debug)]
pub struct DeltaTopic {
    lake: Lake,
    topic: String,
    with_rating: bool,
    silver: DeltaTable,
    deadletter: DeltaTable,
    silver_txns: Txns,
    deadletter_txns: Txns,
}

impl DeltaTopic {
    pub async fn open(lake: &Lake, topic: &str, with_rating: bool) -> Result<DeltaTopic> {
        let silver = open_or_create(lake, &crate::silver_key(topic), silver_schema(with_rating), &[EVENT_DATE]).await?;
        let deadletter = open_or_create(lake, &deadletter_key(topic), deadletter_schema(), &[]).await?;
        Ok(DeltaTopic {
            lake: lake.clone(),
            topic: topic.to_owned(),
            with_rating,
            silver,
            deadletter,
            silver_txns: Txns::default(),
            deadletter_txns: Txns::default(),
        })
    }

    pub async fn stored_offsets(&mut self, partitions: &[i32]) -> Result<StoredOffsets> {
        refresh(&mut self.silver).await?;
        refresh(&mut self.deadletter).await?;
        Ok(StoredOffsets {
            silver: self.silver_txns.versions(&self.silver, &self.topic, partitions).await?,
            deadletter: self.deadletter_txns.versions(&self.deadletter, &self.topic, partitions).await?,
        })
    }

    pub async fn commit(&mut self, batch: StreamBatch) -> Result<CommitOutcome> {
        let partitions: Vec<i32> = batch.offsets.keys().copied().collect();
        let stored = self.stored_offsets(&partitions).await?;
        for (p, (expected, _)) in &batch.offsets {
            if stored.silver.get(p) != expected.as_ref() {
                return Ok(CommitOutcome::Conflict { partition: *p });
            }
        }
        let mut stats = CommitStats::default();

        let deadletter: Vec<_> = batch
            .deadletter
            .into_iter()
            .filter(|r| stored.deadletter.get(&r.kafka_partition).is_none_or(|&done| r.kafka_offset >= done))
            .collect();
        if !deadletter.is_empty() {
            let txns = batch
                .offsets
                .iter()
                .filter(|(p, (_, end))| stored.deadletter.get(p).is_none_or(|done| end > done))
                .map(|(p, (_, end))| Transaction::new(app_id(&self.topic, *p), *end))
                .collect();
            let rows = deadletter.len();
            match write_and_commit(&mut self.deadletter, deadletter_batch(&deadletter)?, txns, Vec::new()).await? {
                Committed::Yes { bytes, .. } => {
                    stats.deadletter_rows = rows;
                    stats.bytes += bytes;
                }
                Committed::Conflict => return Ok(conflict(&batch.offsets)),
            }
            // The state a crash can leave: dead letters committed, silver rows not. The re-read
            // skips the dead letters below the stored offsets and decides the rest as before.
            crash_point("crash_between_commits");
        }

        let txns = batch.offsets.iter().map(|(p, (_, end))| Transaction::new(app_id(&self.topic, *p), *end)).collect();
        let rows = batch.silver.len();
        let metadata: Vec<(String, serde_json::Value)> = batch
            .upstream
            .as_ref()
            .and_then(|u| serde_json::to_value(u).ok())
            .map(|u| (UPSTREAM.to_owned(), u))
            .into_iter()
            .collect();
        let silver = silver_batch(&batch.silver, self.with_rating)?;
        match write_and_commit(&mut self.silver, silver, txns, metadata).await? {
            Committed::Yes { version, bytes } => {
                stats.version = version;
                stats.silver_rows = rows;
                stats.bytes += bytes;
                Ok(CommitOutcome::Committed(stats))
            }
            Committed::Conflict => Ok(conflict(&batch.offsets)),
        }
    }

    pub async fn silver_files(&mut self) -> Result<Vec<DataFile>> {
        refresh(&mut self.silver).await?;
        files(&self.lake, &crate::silver_key(&self.topic), &self.silver)
    }

    pub async fn deadletter_files(&mut self) -> Result<Vec<DataFile>> {
        refresh(&mut self.deadletter).await?;
        files(&self.lake, &deadletter_key(&self.topic), &self.deadletter)
    }
}

fn conflict(offsets: &std::collections::BTreeMap<i32, (Option<i64>, i64)>) -> CommitOutcome {
    CommitOutcome::Conflict { partition: offsets.keys().next().copied().unwrap_or_default() }
}

enum Committed {
    Yes { version: i64, bytes: u64 },
    Conflict,
}

fn table_path(table: &DeltaTable) -> String {
    table.table_url().to_string()
}

/// The `commitInfo` field of a silver commit holding its [`crate::Upstream`].
pub(crate) const UPSTREAM: &str = "recoUpstream";

/// Writes `batch` (possibly empty: a commit of offsets only) and commits it with `txns` and
/// `metadata` in its `commitInfo`.
async fn write_and_commit(
    table: &mut DeltaTable,
    batch: deltalake::arrow::array::RecordBatch,
    txns: Vec<Transaction>,
    metadata: Vec<(String, serde_json::Value)>,
) -> Result<Committed> {
    let name = table_path(table);
    let err = |source| Error::Delta { table: name.clone(), source: Box::new(source) };
    let mut adds = Vec::new();
    if batch.num_rows() > 0 {
        let mut writer = RecordBatchWriter::for_table(table).map_err(err)?;
        writer.write(batch).await.map_err(err)?;
        adds = writer.flush().await.map_err(err)?;
    }
    let bytes = adds.iter().map(|a| a.size.max(0) as u64).sum();
    crash_point("crash_before_commit");
    let snapshot = table.snapshot().map_err(err)?;
    let partition_by = snapshot.metadata().partition_columns();
    let operation = DeltaOperation::Write {
        mode: SaveMode::Append,
        partition_by: (!partition_by.is_empty()).then(|| partition_by.to_vec()),
        predicate: None,
    };
    let actions = adds.into_iter().map(Action::Add).collect();
    let properties = CommitProperties::default().with_application_transactions(txns).with_metadata(metadata);
    let result =
        CommitBuilder::from(properties).with_actions(actions).build(Some(snapshot), table.log_store(), operation).await;
    match result {
        Ok(finalized) => {
            let version = finalized.version() as i64;
            refresh(table).await?;
            Ok(Committed::Yes { version, bytes })
        }
        Err(DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_),
        }) => {
            refresh(table).await?;
            Ok(Committed::Conflict)
        }
        Err(e) => Err(err(e)),
    }
}

async fn refresh(table: &mut DeltaTable) -> Result<()> {
    let name = table_path(table);
    table.update_state().await.map_err(|source| Error::Delta { table: name, source: Box::new(source) })
}

/// The application-transaction versions (stored offsets) of one table, kept current by reading
/// only the commits made since the last look.
///
/// delta-rs answers `transaction_version` by replaying the log since the last checkpoint (up to
/// 100 JSON commits) on a blocking thread, every call; silver asks for every partition of both
/// tables before each commit, so that replay dominated the commit and its short-lived buffers
/// fragmented the heap. The log is append-only, so a version learned once only changes through
/// a later commit's `txn` action.
#[derive(Debug, Default)]
struct Txns {
    /// App id → version; `None`: looked up, the table has none.
    known: HashMap<String, Option<i64>>,
    /// The table version `known` is current as of.
    at: Option<i64>,
}

impl Txns {
    async fn versions(&mut self, table: &DeltaTable, topic: &str, partitions: &[i32]) -> Result<HashMap<i32, i64>> {
        let name = table_path(table);
        let err = |source| Error::Delta { table: name.clone(), source: Box::new(source) };
        let latest = table.version().map_or(-1, |v| v as i64);
        if let Some(at) = self.at
            && at < latest
            && self.apply_commits(table, at + 1, latest).await.is_err()
        {
            // A commit left the log (retention) before we read it: start over from the snapshot.
            self.known.clear();
        }
        self.at = Some(latest);
        let snapshot = table.snapshot().map_err(err)?;
        let mut out = HashMap::new();
        for &p in partitions {
            let app = app_id(topic, p);
            let version = match self.known.get(&app) {
                Some(v) => *v,
                None => {
                    let v = snapshot.transaction_version(table.log_store().as_ref(), &app).await.map_err(err)?;
                    self.known.insert(app, v);
                    v
                }
            };
            if let Some(v) = version {
                out.insert(p, v);
            }
        }
        Ok(out)
    }

    async fn apply_commits(&mut self, table: &DeltaTable, from: i64, to: i64) -> std::result::Result<(), ()> {
        for v in from..=to {
            let bytes = table.log_store().read_commit_entry(v as _).await.map_err(drop)?.ok_or(())?;
            for action in get_actions(v as _, &bytes).map_err(drop)? {
                if let Action::Txn(txn) = action
                    && let Some(known) = self.known.get_mut(&txn.app_id)
                {
                    *known = Some(txn.version);
                }
            }
        }
        Ok(())
    }
}

/// The live data files of `table`, which sits at lake-relative `key`.
pub(crate) fn files(lake: &Lake, key: &str, table: &DeltaTable) -> Result<Vec<DataFile>> {
    let snapshot = table.snapshot().map_err(|e| Error::delta(table_path(table), e))?;
    Ok(snapshot.log_data().iter().map(|file| lake.data_file(&format!("{key}/{}", file.path()))).collect())
}

/// Opens the Delta table at lake-relative `key`, creating it with `schema` on first use.
pub(crate) async fn open_or_create(
    lake: &Lake,
    key: &str,
    schema: SchemaRef,
    partition_by: &[&str],
) -> Result<DeltaTable> {
    if let Some(root) = lake.local_root() {
        let path = root.join(key);
        std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
    }
    let url = lake.table_url(key);
    let shown = url.to_string();
    let expected: StructType = schema.as_ref().try_into_kernel().map_err(|e| Error::delta(&shown, e.into()))?;
    match lake.open_delta(url.clone()).await {
        Ok(table) => {
            let actual = table.snapshot().map_err(|e| Error::delta(&shown, e))?.schema();
            if actual.as_ref() != &expected {
                return Err(Error::SchemaMismatch {
                    table: shown,
                    details: format!("expected {expected:?}, found {actual:?}"),
                });
            }
            Ok(table)
        }
        Err(DeltaTableError::NotATable(_)) | Err(DeltaTableError::InvalidTableLocation(_)) => {
            let created = deltalake::operations::create::CreateBuilder::new()
                .with_location(url.as_str())
                .with_storage_options(lake.options().clone())
                .with_columns(expected.fields().cloned())
                .with_partition_columns(partition_by.iter().map(|s| s.to_string()))
                .with_save_mode(SaveMode::Ignore)
                .await;
            match created {
                Ok(table) => Ok(table),
                // Another worker created it a moment earlier.
                Err(_) => lake.open_delta(url).await.map_err(|e| Error::delta(&shown, e)),
            }
        }
        Err(e) => Err(Error::delta(&shown, e)),
    }
}
