//! Incremental reading of a silver table: the data files committed since a given version
//! (Delta: the `add` actions of newer commits; Parquet: newer batch-log entries). This is what
//! lets the gold job read only what is new, and resume from the versions it checkpointed.

use crate::{DataFile, Error, Format, Lake, Result, Upstream, delta, parquet_log, silver_key};
use deltalake::{DeltaTable, DeltaTableError, kernel::Action, logstore::get_actions};

#[derive(Debug)]
pub struct SilverFeed {
    lake: Lake,
    topic: String,
    delta: Option<DeltaTable>,
    /// Parquet: the newest batch-log entry seen.
    parquet_latest: i64,
    /// What the writers of the commits read since the last [`SilverFeed::take_upstreams`] knew
    /// of Kafka, oldest first.
    upstreams: Vec<Upstream>,
    /// Delta: the newest version seen.
    delta_latest: Option<i64>,
}

impl SilverFeed {
    pub fn new(lake: &Lake, topic: &str) -> SilverFeed {
        SilverFeed {
            lake: lake.clone(),
            topic: topic.to_owned(),
            delta: None,
            parquet_latest: -1,
            upstreams: Vec::new(),
            delta_latest: None,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// What silver knew of Kafka (partition counts, partitions not read to the end, log ends)
    /// when it made each commit [`SilverFeed::files_between`] read since the last call, oldest
    /// first: every writer's, not only the newest one's (two workers' commits interleave, and
    /// each speaks for its own partitions).
    pub fn take_upstreams(&mut self) -> Vec<Upstream> {
        std::mem::take(&mut self.upstreams)
    }

    /// The newest committed version; `None` while the table does not exist yet.
    pub async fn latest(&mut self) -> Result<Option<i64>> {
        match self.lake.format {
            Format::Delta => {
                // A listing of the log from the newest version known, no snapshot update: gold
                // reads the commits themselves (`files_between`), never the table's file list.
                let known = self.delta_latest;
                let Some(table) = self.delta_table().await? else { return Ok(None) };
                let name = table.table_url().to_string();
                let start = known.or(table.version().map(|v| v as i64)).unwrap_or(0).max(0);
                let latest = table
                    .log_store()
                    .get_latest_version(start as _)
                    .await
                    .map_err(|e| Error::Delta { table: name, source: Box::new(e) })?;
                self.delta_latest = Some(latest as i64);
                Ok(Some(latest as i64))
            }
            Format::Parquet => {
                while parquet_log::entry_silver_files(&self.lake, &self.topic, self.parquet_latest + 1)?.is_some() {
                    self.parquet_latest += 1;
                }
                Ok((self.parquet_latest >= 0).then_some(self.parquet_latest))
            }
        }
    }

    /// Data files added by the versions after `after` (all, when `None`) up to `upto`.
    pub async fn files_between(&mut self, after: Option<i64>, upto: i64) -> Result<Vec<DataFile>> {
        let after = after.unwrap_or(-1);
        match self.lake.format {
            Format::Delta => {
                let key = silver_key(&self.topic);
                let Some(table) = self.delta_table().await? else { return Ok(Vec::new()) };
                let info = added_files(table, after, upto).await?;
                self.upstreams.extend(info.upstreams);
                let added = info.files;
                Ok(added.into_iter().map(|rel| self.lake.data_file(&format!("{key}/{rel}"))).collect())
            }
            Format::Parquet => {
                let mut out = Vec::new();
                for v in (after + 1)..=upto {
                    let info = parquet_log::entry_silver_files(&self.lake, &self.topic, v)?.ok_or_else(|| {
                        Error::BatchLog { path: format!("{} entry {v}", self.topic), message: "missing".into() }
                    })?;
                    self.upstreams.extend(info.upstream);
                    out.extend(info.files);
                }
                Ok(out)
            }
        }
    }

    /// Every data file of the table as of `latest()` (backfill).
    pub async fn snapshot(&mut self) -> Result<(Option<i64>, Vec<DataFile>)> {
        let latest = self.latest().await?;
        let files = match (self.lake.format, latest) {
            (_, None) => Vec::new(),
            (Format::Delta, Some(v)) => {
                let (lake, key) = (self.lake.clone(), silver_key(&self.topic));
                match self.delta_table().await? {
                    Some(table) => {
                        let name = table.table_url().to_string();
                        let at = table.update_incremental(Some(v as _)).await;
                        at.map_err(|e| Error::Delta { table: name, source: Box::new(e) })?;
                        delta::files(&lake, &key, table)?
                    }
                    None => Vec::new(),
                }
            }
            (Format::Parquet, Some(v)) => {
                let files = self.files_between(None, v).await?;
                self.upstreams.clear(); // a snapshot has no use for them; a long log would pile them up
                files
            }
        };
        Ok((latest, files))
    }

    async fn delta_table(&mut self) -> Result<Option<&mut DeltaTable>> {
        if self.delta.is_none() {
            let key = silver_key(&self.topic);
            if !crate::exists(&self.lake, &format!("{key}/_delta_log")).await? {
                return Ok(None);
            }
            let url = self.lake.table_url(&key);
            match self.lake.open_delta(url.clone()).await {
                Ok(t) => self.delta = Some(t),
                Err(DeltaTableError::NotATable(_)) => return Ok(None),
                Err(e) => return Err(Error::delta(url, e)),
            }
        }
        Ok(self.delta.as_mut())
    }
}

/// Commits of a Delta table after `after`, up to `upto`: the relative paths added with
/// `dataChange`, and the [`Upstream`] each `commitInfo` holds. Compaction rewrites
/// (`dataChange: false`) carry no new rows and are skipped, as Delta streaming readers do.
async fn added_files(table: &DeltaTable, after: i64, upto: i64) -> Result<AddedFiles> {
    let name = table.table_url().to_string();
    let err = |source| Error::Delta { table: name.clone(), source: Box::new(source) };
    let mut out = AddedFiles::default();
    for v in (after + 1)..=upto {
        let bytes = table.log_store().read_commit_entry(v as _).await.map_err(err)?.ok_or_else(|| Error::Delta {
            table: name.clone(),
            source: Box::new(deltalake::DeltaTableError::Generic(format!(
                "commit {v} is gone from the log (log retention); recompute with `reco gold backfill`"
            ))),
        })?;
        for action in get_actions(v as _, &bytes).map_err(err)? {
            match action {
                Action::Add(add) if add.data_change => out.files.push(add.path),
                Action::CommitInfo(info) => {
                    if let Some(u) = info.info.get(crate::delta::UPSTREAM) {
                        out.upstreams.extend(serde_json::from_value(u.clone()).ok());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

#[derive(Debug, Default)]
struct AddedFiles {
    files: Vec<String>,
    upstreams: Vec<Upstream>,
}
