//! Compaction of Delta tables: a partition's small files rewritten into few large ones.
//!
//! Silver commits a file per table per batch (every two seconds under load), and a Delta
//! reader holds every live file of the table in memory: without compaction both the commit
//! time and the memory of every process that opens the table grow without end (measured in
//! docs/BENCHMARKS.md). delta-rs' own `optimize` needs its DataFusion feature, a large part of
//! the dependency tree for one bin-packing loop, so this is ours.
//!
//! A compaction commit removes the small files and adds the rewritten ones, all with
//! `dataChange: false`: readers of new data (the gold job's feed, Delta streaming readers)
//! skip it, and delta-rs' conflict checker lets it pass concurrent appends. It also carries a
//! `txn` action of its own app id ([`COMPACT_APP_ID`]): two compactions of the same files would
//! otherwise both commit (delta-rs only refuses double removes with `dataChange: true`) and
//! duplicate the rows, while a concurrent commit with the same app id is a conflict, so the
//! later one fails and is dropped. Removed files stay on disk until a `VACUUM`.

use std::collections::BTreeMap;

use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::{
    DeltaTable, DeltaTableError, Path as StorePath,
    arrow::{
        array::{ArrayRef, RecordBatch, StringArray, new_null_array},
        compute::cast,
        datatypes::SchemaRef,
    },
    kernel::{
        Action, Remove, Transaction,
        transaction::{CommitBuilder, CommitProperties, TransactionError},
    },
    parquet::{
        arrow::arrow_reader::ParquetRecordBatchReaderBuilder, basic::Compression, file::properties::WriterProperties,
    },
    protocol::DeltaOperation,
    writer::{DeltaWriter, RecordBatchWriter},
};
use tracing::{debug, info};

use crate::{Error, Lake, Result, delta::open_or_create, schema};

/// Rows per row group of a compacted file. The Parquet writer buffers a whole row group before
/// it writes it out (default: a million rows, a whole day of a busy table in memory at once).
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

/// The `txn` app id compaction commits carry (see the module docs).
pub const COMPACT_APP_ID: &str = "reco-compact";

/// When and how much to compact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactPolicy {
    /// A partition is compacted once it holds this many files smaller than `target_bytes`.
    pub min_files: usize,
    /// Size of the files compaction writes; files at least this large are left alone. A
    /// rewrite holds one input file and one output row group ([`ROW_GROUP_ROWS`]) in memory.
    pub target_bytes: u64,
}

impl Default for CompactPolicy {
    fn default() -> Self {
        CompactPolicy { min_files: 32, target_bytes: 16 * 1024 * 1024 }
    }
}

/// What one compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactStats {
    pub files_removed: usize,
    pub files_added: usize,
    pub bytes_removed: u64,
    pub bytes_added: u64,
    /// Rewrites dropped because another compaction committed first.
    pub conflicts: usize,
}

impl CompactStats {
    fn add(&mut self, other: CompactStats) {
        self.files_removed += other.files_removed;
        self.files_added += other.files_added;
        self.bytes_removed += other.bytes_removed;
        self.bytes_added += other.bytes_added;
        self.conflicts += other.conflicts;
    }
}

/// Compacts the silver and dead-letter tables of one topic (Delta only: the Parquet batch log
/// has no remove). Keeps its table handles between runs, so a run reads only the new commits.
#[derive(Debug)]
pub struct Compactor {
    tables: Vec<(DeltaTable, SchemaRef)>,
    policy: CompactPolicy,
}

impl Compactor {
    pub async fn open(lake: &Lake, topic: &str, with_rating: bool, policy: CompactPolicy) -> Result<Compactor> {
        let silver_schema = schema::silver_schema(with_rating);
        let deadletter_schema = schema::deadletter_schema();
        let silver =
            open_or_create(lake, &crate::silver_key(topic), silver_schema.clone(), &[schema::EVENT_DATE]).await?;
        let deadletter = open_or_create(lake, &crate::deadletter_key(topic), deadletter_schema.clone(), &[]).await?;
        Ok(Compactor { tables: vec![(silver, silver_schema), (deadletter, deadletter_schema)], policy })
    }

    pub fn policy(&self) -> CompactPolicy {
        self.policy
    }

    /// Compacts every partition that has reached the policy's file count, one commit per table.
    pub async fn run(&mut self) -> Result<CompactStats> {
        let mut total = CompactStats::default();
        for (table, schema) in &mut self.tables {
            total.add(compact_table(table, schema, self.policy).await?);
        }
        Ok(total)
    }
}

/// A live file of the table: relative path, size, and the `remove` that retires it.
#[derive(Clone)]
struct Candidate {
    path: String,
    size: u64,
    remove: Remove,
    partition: Vec<(String, Option<String>)>,
}

async fn compact_table(table: &mut DeltaTable, schema: &SchemaRef, policy: CompactPolicy) -> Result<CompactStats> {
    let name = table.table_url().to_string();
    let err = |source| Error::Delta { table: name.clone(), source: Box::new(source) };
    table.update_state().await.map_err(err)?;
    let snapshot = table.snapshot().map_err(err)?;
    let read_version = snapshot.version();

    let mut partitions: BTreeMap<Vec<(String, Option<String>)>, Vec<Candidate>> = BTreeMap::new();
    for file in snapshot.log_data().iter() {
        let size = file.size().max(0) as u64;
        if size >= policy.target_bytes {
            continue;
        }
        let mut partition: Vec<_> = file.partition_values_map().into_iter().collect();
        partition.sort();
        let candidate =
            Candidate { path: file.path().into_owned(), size, remove: file.remove_action(false), partition };
        partitions.entry(candidate.partition.clone()).or_default().push(candidate);
    }
    let bins: Vec<Vec<Candidate>> = partitions
        .into_values()
        .filter(|files| files.len() >= policy.min_files.max(2))
        .flat_map(|files| bin_pack(files, policy.target_bytes))
        .collect();
    if bins.is_empty() {
        return Ok(CompactStats::default());
    }

    let mut stats = CompactStats::default();
    let mut actions = Vec::new();
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .build();
    let mut writer = RecordBatchWriter::for_table(table)
        .map_err(err)?
        .with_target_file_size(policy.target_bytes)
        .with_writer_properties(properties);
    for bin in bins {
        for file in bin {
            // Through the table's object store, so this works wherever the table lives. A
            // candidate is smaller than the target, which bounds the bytes held here.
            let location = StorePath::from(file.path.as_str());
            let store_err = |e: deltalake::ObjectStoreError| err(DeltaTableError::from(e));
            let bytes =
                table.object_store().get(&location).await.map_err(store_err)?.bytes().await.map_err(store_err)?;
            for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.with_batch_size(8192).build()? {
                writer.write(with_partition_columns(&batch?, schema, &file.partition)?).await.map_err(err)?;
            }
            stats.files_removed += 1;
            stats.bytes_removed += file.size;
            actions.push(Action::Remove(file.remove));
        }
        // One bin at a time: a flush ends the bin's files, so bins never mix.
        for mut add in writer.flush().await.map_err(err)? {
            add.data_change = false;
            stats.files_added += 1;
            stats.bytes_added += add.size.max(0) as u64;
            actions.push(Action::Add(add));
        }
    }

    commit(table, read_version as i64, actions, policy.target_bytes, stats).await
}

/// Commits a rewrite as one Optimize (no data change), fenced by the version it read: when a
/// concurrent compaction wins, this one's files stay orphans and it reports a conflict.
async fn commit(
    table: &mut DeltaTable,
    read_version: i64,
    actions: Vec<Action>,
    target_bytes: u64,
    mut stats: CompactStats,
) -> Result<CompactStats> {
    let name = table.table_url().to_string();
    let err = |source| Error::Delta { table: name.clone(), source: Box::new(source) };
    let snapshot = table.snapshot().map_err(err)?;
    let operation = DeltaOperation::Optimize { predicate: None, target_size: target_bytes as i64 };
    let txn = Transaction::new(COMPACT_APP_ID, read_version);
    let result = CommitBuilder::from(CommitProperties::default().with_application_transactions(vec![txn]))
        .with_actions(actions)
        .build(Some(snapshot), table.log_store(), operation)
        .await;
    match result {
        Ok(done) => {
            info!(
                table = %name,
                version = done.version(),
                removed = stats.files_removed,
                added = stats.files_added,
                bytes = stats.bytes_added,
                "compacted"
            );
        }
        Err(DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_),
        }) => {
            // Another compactor got there first; the files written here are orphans, never
            // visible (a VACUUM deletes them).
            debug!(table = %name, "compaction lost to a concurrent one; dropped");
            stats = CompactStats { conflicts: 1, ..CompactStats::default() };
        }
        Err(e) => return Err(err(e)),
    }
    table.update_state().await.map_err(err)?;
    Ok(stats)
}

/// Groups files into bins of at most `target` bytes (a file larger than the remaining room
/// starts a new bin); only bins of two or more files are worth a rewrite.
fn bin_pack(files: Vec<Candidate>, target: u64) -> Vec<Vec<Candidate>> {
    let mut bins: Vec<Vec<Candidate>> = Vec::new();
    let mut room = 0;
    for file in files {
        match bins.last_mut() {
            Some(bin) if file.size <= room => {
                room -= file.size;
                bin.push(file);
            }
            _ => {
                room = target.saturating_sub(file.size);
                bins.push(vec![file]);
            }
        }
    }
    bins.retain(|bin| bin.len() >= 2);
    bins
}

/// The batch with the table's full schema: data files of a partitioned table do not store the
/// partition columns, so they are rebuilt from the file's partition values.
fn with_partition_columns(
    batch: &RecordBatch,
    schema: &SchemaRef,
    partition: &[(String, Option<String>)],
) -> Result<RecordBatch> {
    let rows = batch.num_rows();
    let columns = schema
        .fields()
        .iter()
        .map(|field| {
            if let Some(column) = batch.column_by_name(field.name()) {
                return Ok(column.clone());
            }
            let value = partition.iter().find(|(k, _)| k == field.name()).map(|(_, v)| v.as_deref());
            match value {
                Some(Some(v)) => Ok(cast(&StringArray::from(vec![v; rows]), field.data_type())?),
                Some(None) => Ok(new_null_array(field.data_type(), rows)),
                None => Err(Error::Arrow(format!("column {} is neither in the file nor a partition", field.name()))),
            }
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64) -> Candidate {
        Candidate {
            path: format!("f{size}"),
            size,
            remove: Remove { path: String::new(), data_change: false, ..Default::default() },
            partition: Vec::new(),
        }
    }

    fn sizes(bins: &[Vec<Candidate>]) -> Vec<Vec<u64>> {
        bins.iter().map(|b| b.iter().map(|f| f.size).collect()).collect()
    }

    #[test]
    fn bins_stay_under_the_target_and_single_files_are_left_alone() {
        let bins = bin_pack([4, 3, 3, 5, 9, 1].map(file).to_vec(), 10);
        // 4+3+3 fills a bin; 5 alone is not worth a rewrite; 9 does not fit beside it; 1 does.
        assert_eq!(sizes(&bins), vec![vec![4, 3, 3], vec![9, 1]]);
        let bins = bin_pack([2, 2, 2, 2, 2, 2, 2].map(file).to_vec(), 6);
        assert_eq!(sizes(&bins), vec![vec![2, 2, 2], vec![2, 2, 2]]);
    }
}
