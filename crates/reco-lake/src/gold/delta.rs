//! Gold tables in Delta: a replace is one commit removing the replaced row sets' files and
//! adding the new ones, fenced with the writer's lease number.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;
use deltalake::{
    DeltaTable,
    kernel::{
        Action, Remove, Transaction,
        transaction::{CommitBuilder, CommitProperties},
    },
    protocol::{DeltaOperation, SaveMode},
    writer::{DeltaWriter, RecordBatchWriter},
};

use super::{FENCE_APP_ID, RowSet, Shape, format_ts, read_key, stats_key};
use crate::{DataFile, Error, Lake, Result, delta::open_or_create};

#[derive(Debug)]
pub(super) struct DeltaGold {
    table: Box<DeltaTable>,
    /// The version the row-set map was built from.
    version: i64,
    /// Size of each live file, for its `remove` action.
    sizes: HashMap<String, i64>,
}

impl DeltaGold {
    pub(super) async fn open(lake: &Lake, key: &str, shape: &Shape) -> Result<DeltaGold> {
        let table = match open_or_create(lake, key, shape.schema.clone(), &[]).await {
            // A column this reco writes is missing: a table of an earlier reco.
            Err(Error::SchemaMismatch { details, .. })
                if details.rsplit_once("found ").is_some_and(|(_, found)| {
                    shape.schema.fields().iter().any(|f| !found.contains(&format!("\"{}\"", f.name())))
                }) =>
            {
                return Err(Error::OldGoldTable {
                    table: lake.table_url(key).to_string(),
                    gold_dir: lake.table_url("gold").to_string(),
                    checkpoints: lake.table_url("_checkpoints/gold").to_string(),
                });
            }
            other => other?,
        };
        Ok(DeltaGold { table: Box::new(table), version: -1, sizes: HashMap::new() })
    }

    pub(super) async fn refresh(
        &mut self,
        lake: &Lake,
        key: &str,
        shape: &Shape,
        sets: &mut BTreeMap<i64, DataFile>,
    ) -> Result<bool> {
        let name = self.table.table_url().to_string();
        let err = |source| Error::Delta { table: name.clone(), source: Box::new(source) };
        self.table.update_state().await.map_err(err)?;
        let latest = self.table.version().map_or(-1, |v| v as i64);
        if latest == self.version {
            return Ok(false);
        }
        // Rebuild from the snapshot: simple, and a few thousand files parse in milliseconds.
        sets.clear();
        self.sizes.clear();
        let snapshot = self.table.snapshot().map_err(err)?;
        for file in snapshot.log_data().iter() {
            let rel = file.path().to_string();
            let path = lake.data_file(&format!("{key}/{rel}"));
            let start = match file.stats().as_deref().and_then(|s| stats_key(s, shape.key)) {
                Some(s) => s,
                None => match read_key(&path, shape.key)? {
                    Some(s) => s,
                    None => continue,
                },
            };
            self.sizes.insert(rel, file.size());
            sets.insert(start, path);
        }
        self.version = latest;
        Ok(true)
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) async fn replace(
        &mut self,
        lake: &Lake,
        key: &str,
        shape: &Shape,
        sets: &mut BTreeMap<i64, DataFile>,
        written: Vec<RowSet>,
        gone: Vec<i64>,
        fence: Option<i64>,
    ) -> Result<()> {
        let name = self.table.table_url().to_string();
        let err = |source| Error::Delta { table: name.clone(), source: Box::new(source) };
        let mut actions = Vec::new();
        let mut added = Vec::new();
        for set in &written {
            let mut writer = RecordBatchWriter::for_table(&self.table).map_err(err)?;
            writer.write(set.batch.clone()).await.map_err(err)?;
            for add in writer.flush().await.map_err(err)? {
                added.push((set.key, add.path.clone(), add.size));
                actions.push(Action::Add(add));
            }
        }
        let replaced = written.iter().map(|s| s.key).chain(gone.iter().copied());
        let deletion_timestamp = Some(Utc::now().timestamp_millis());
        for k in replaced {
            let Some(file) = sets.get(&k) else { continue };
            let rel = relative(key, file);
            actions.push(Action::Remove(Remove {
                size: self.sizes.get(&rel).copied(),
                path: rel,
                data_change: true,
                deletion_timestamp,
                extended_file_metadata: Some(true),
                partition_values: Some(HashMap::new()),
                tags: None,
                deletion_vector: None,
                base_row_id: None,
                default_row_commit_version: None,
            }));
        }
        if actions.is_empty() {
            return Ok(());
        }
        let keys: Vec<String> =
            written.iter().map(|s| if shape.time_key { format_ts(s.key) } else { s.key.to_string() }).collect();
        let operation = DeltaOperation::Write {
            mode: SaveMode::Overwrite,
            partition_by: None,
            predicate: Some(format!("{} IN ({})", shape.key, keys.join(", "))),
        };
        let snapshot = self.table.snapshot().map_err(err)?;
        let txns = fence.map(|seq| Transaction::new(FENCE_APP_ID, seq)).into_iter().collect();
        let done = CommitBuilder::from(CommitProperties::default().with_application_transactions(txns))
            .with_actions(actions)
            .build(Some(snapshot), self.table.log_store(), operation)
            .await
            .map_err(err)?;
        let committed = done.version() as i64;
        self.table.update_state().await.map_err(err)?;
        for k in &gone {
            if let Some(f) = sets.remove(k) {
                self.sizes.remove(&relative(key, &f));
            }
        }
        for (k, rel, size) in added {
            let file = lake.data_file(&format!("{key}/{rel}"));
            if let Some(old) = sets.insert(k, file) {
                self.sizes.remove(&relative(key, &old));
            }
            self.sizes.insert(rel, size);
        }
        self.version = self.table.version().map_or(committed, |v| v as i64);
        Ok(())
    }
}

/// A data file's path relative to its table, as Delta actions name it.
fn relative(table_key: &str, file: &DataFile) -> String {
    let path = match file.local_path() {
        Some(local) => local.to_string_lossy().into_owned(),
        None => file.key.clone(),
    };
    match path.split_once(&format!("{table_key}/")) {
        Some((_, rel)) => rel.to_owned(),
        None => path,
    }
}
