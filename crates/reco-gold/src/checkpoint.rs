//! Gold checkpoints, one series per aggregate: `<lake>/_checkpoints/<dir>/<seq>.json` (the
//! silver versions consumed and the aggregate's own fields) next to the files the aggregate
//! keeps beside it (trending's pane counts: `panes-<seq>-<uuid>.parquet`). A checkpoint is only
//! written after everything it calls published was written to the gold tables, so resuming
//! from it can only re-publish (a replace, harmless), never skip. The manifest is written
//! with a create-only put (a hard link in a folder, `If-None-Match: *` on S3), which fails if
//! the name exists: two gold jobs on one lake notice each other instead of interleaving their
//! state (the lease, `lease.rs`, keeps the second one from starting in the first place).

use std::collections::BTreeMap;

use reco_lake::Lake;
use serde_json::{Map, Value};

use crate::{Error, Result, aggregate::Saved};

/// Checkpoints kept besides the newest (a reader may still be loading one).
const KEEP: u64 = 1;

/// The manifest fields every aggregate's checkpoint has; the rest is the aggregate's.
const SEQ: &str = "seq";
const WRITTEN_AT: &str = "written_at";
const SILVER_VERSIONS: &str = "silver_versions";

/// A checkpoint loaded to resume from.
#[derive(Debug)]
pub struct Restored {
    pub seq: u64,
    /// Last silver version consumed per table.
    pub silver_versions: BTreeMap<String, i64>,
    pub saved: Saved,
}

/// The checkpoint series of one aggregate.
#[derive(Debug)]
pub struct Checkpoints {
    lake: Lake,
    /// `_checkpoints/<aggregate's folder>`.
    dir: String,
    /// `(field, prefix, extension)` of the files beside each manifest.
    files: &'static [(&'static str, &'static str, &'static str)],
    next_seq: u64,
}

impl Checkpoints {
    /// Opens an aggregate's checkpoint folder (`_checkpoints/<dir>`, with the files its
    /// checkpoints hold: [`crate::aggregate::Aggregate::files`]) and loads its newest checkpoint, if any.
    pub async fn open(
        lake: &Lake,
        dir: &str,
        files: &'static [(&'static str, &'static str, &'static str)],
    ) -> Result<(Checkpoints, Option<Restored>)> {
        let mut cp = Checkpoints { lake: lake.clone(), dir: format!("_checkpoints/{dir}"), files, next_seq: 0 };
        let Some(seq) = cp.manifests().await?.last().copied() else { return Ok((cp, None)) };
        let mut body = cp.read_manifest(seq).await?;
        let silver_versions = body
            .remove(SILVER_VERSIONS)
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| cp.error(seq, e))?
            .unwrap_or_default();
        body.remove(SEQ);
        body.remove(WRITTEN_AT);
        let mut files = Vec::new();
        for (field, _, _) in cp.files {
            let Some(name) = body.get(*field).and_then(Value::as_str) else { continue };
            let key = format!("{}/{name}", cp.dir);
            let bytes = lake.get_object(&key).await?.ok_or_else(|| Error::Checkpoint(format!("{key} is missing")))?;
            files.push((*field, bytes.to_vec()));
        }
        cp.next_seq = seq + 1;
        Ok((cp, Some(Restored { seq, silver_versions, saved: Saved { body, files } })))
    }

    /// The body of the newest checkpoint in `_checkpoints/<dir>` (manifest only).
    pub async fn newest_body(lake: &Lake, dir: &str) -> Result<Option<Map<String, Value>>> {
        let cp = Checkpoints { lake: lake.clone(), dir: format!("_checkpoints/{dir}"), files: &[], next_seq: 0 };
        match cp.manifests().await?.last() {
            Some(seq) => cp.read_manifest(*seq).await.map(Some),
            None => Ok(None),
        }
    }

    /// `lake/_checkpoints/…/<seq>.json: message`, for errors about a checkpoint.
    pub fn error(&self, seq: u64, message: impl std::fmt::Display) -> Error {
        Error::Checkpoint(format!("{}/{}: {message}", self.lake.display(), self.manifest_key(seq)))
    }

    /// Writes a checkpoint of `saved` having consumed `silver_versions`.
    pub async fn write(&mut self, saved: Saved, silver_versions: &BTreeMap<String, i64>) -> Result<()> {
        let seq = self.next_seq;
        let mut manifest = saved.body;
        let mut written = Vec::new();
        for (field, bytes) in saved.files {
            let (prefix, ext) =
                self.files.iter().find(|(f, _, _)| *f == field).map_or((field, "bin"), |(_, p, e)| (*p, *e));
            let name = format!("{prefix}-{seq:020}-{}.{ext}", uuid::Uuid::now_v7());
            self.lake.put_object(&format!("{}/{name}", self.dir), bytes.into(), false).await?;
            manifest.insert(field.to_owned(), Value::String(name.clone()));
            written.push(name);
        }
        manifest.insert(SEQ.into(), seq.into());
        manifest.insert(WRITTEN_AT.into(), chrono::Utc::now().to_rfc3339().into());
        let versions = serde_json::to_value(silver_versions).map_err(|e| Error::Checkpoint(e.to_string()))?;
        manifest.insert(SILVER_VERSIONS.into(), versions);
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Checkpoint(e.to_string()))?;
        if !self.lake.put_object(&self.manifest_key(seq), json.into(), true).await? {
            for name in written {
                self.lake.delete_object(&format!("{}/{name}", self.dir)).await?;
            }
            return Err(
                self.error(seq, "was written by someone else: another gold job runs on this lake; run only one")
            );
        }
        self.next_seq = seq + 1;
        self.prune(seq).await;
        Ok(())
    }

    /// Removes checkpoints older than the newest `KEEP + 1` and files no manifest names.
    async fn prune(&self, newest: u64) {
        let Ok(names) = self.lake.list_objects(&self.dir).await else { return };
        let mut named = Vec::new();
        for seq in seqs(&names) {
            if seq + KEEP < newest {
                let _ = self.lake.delete_object(&self.manifest_key(seq)).await;
                continue;
            }
            if let Ok(m) = self.read_manifest(seq).await {
                named.extend(self.files.iter().filter_map(|(f, _, _)| m.get(*f)?.as_str().map(str::to_owned)));
            }
        }
        for name in names {
            let ours = self.files.iter().any(|(_, prefix, _)| name.starts_with(&format!("{prefix}-")));
            if ours && !named.contains(&name) {
                let _ = self.lake.delete_object(&format!("{}/{name}", self.dir)).await;
            }
        }
    }

    fn manifest_key(&self, seq: u64) -> String {
        format!("{}/{seq:020}.json", self.dir)
    }

    async fn read_manifest(&self, seq: u64) -> Result<Map<String, Value>> {
        let key = self.manifest_key(seq);
        let bytes = self.lake.get_object(&key).await?.ok_or_else(|| Error::Checkpoint(format!("{key} is missing")))?;
        serde_json::from_slice(&bytes).map_err(|e| self.error(seq, e))
    }

    async fn manifests(&self) -> Result<Vec<u64>> {
        Ok(seqs(&self.lake.list_objects(&self.dir).await?))
    }
}

fn seqs(names: &[String]) -> Vec<u64> {
    let mut seqs: Vec<u64> = names.iter().filter_map(|n| n.strip_suffix(".json")?.parse().ok()).collect();
    seqs.sort_unstable();
    seqs
}
