//! Gold state checkpoints: `<lake>/_checkpoints/gold/<seq>.json` (the silver versions
//! consumed, the watermark and which windows were published) next to `panes-<seq>.parquet`
//! (the pane counts). A checkpoint is only written after every window it calls published was
//! written to the gold tables, so resuming from it can only re-publish windows (a replace,
//! harmless), never skip one. The manifest is written with a create-only put (a hard link in
//! a folder, `If-None-Match: *` on S3), which fails if the name exists: two gold jobs on one
//! lake notice each other instead of interleaving their state (the lease, `lease.rs`, keeps
//! the second one from starting in the first place).

use std::{collections::BTreeMap, sync::Arc};

use reco_lake::{
    Lake,
    deltalake::{
        arrow::{
            array::{ArrayRef, AsArray, Int64Builder, RecordBatch, StringBuilder},
            datatypes::{DataType, Field, Int64Type, Schema},
        },
        parquet::{arrow::ArrowWriter, basic::Compression, file::properties::WriterProperties},
    },
};
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    window::{Config, Snapshot, Trending},
};

/// Checkpoints kept besides the newest (a reader may still be loading one).
const KEEP: u64 = 1;

/// Lake-relative folder of the checkpoints.
pub const DIR: &str = "_checkpoints/gold";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub seq: u64,
    pub written_at: String,
    /// The pane scheme the counts were made with; a different one cannot resume them.
    pub pane_us: i64,
    pub windows: Vec<(String, i64, i64)>,
    /// Last silver version consumed per topic.
    pub silver_versions: BTreeMap<String, i64>,
    pub state: Snapshot,
    pub panes_file: String,
}

#[derive(Debug)]
pub struct Checkpoints {
    lake: Lake,
    next_seq: u64,
}

pub type Panes = Vec<(i64, String, u64, u64)>;

fn scheme(config: &Config) -> Vec<(String, i64, i64)> {
    config.windows.iter().map(|w| (w.name.to_owned(), w.length_us, w.slide_us)).collect()
}

impl Checkpoints {
    /// Opens the checkpoint folder and loads the newest checkpoint, if any.
    pub async fn open(lake: &Lake, config: &Config) -> Result<(Checkpoints, Option<(Manifest, Panes)>)> {
        let newest = manifests(lake).await?.last().copied();
        let mut cp = Checkpoints { lake: lake.clone(), next_seq: 0 };
        let Some(seq) = newest else { return Ok((cp, None)) };
        let manifest = read_manifest(lake, seq).await?;
        if manifest.pane_us != config.pane_us || manifest.windows != scheme(config) {
            return Err(Error::Checkpoint(format!(
                "{}/{} was made with panes of {} µs and windows {:?}; the configuration now has {} µs and {:?}. \
                 Move the checkpoint folder away and run `reco gold backfill` to recompute with the new scheme",
                lake.display(),
                manifest_key(seq),
                manifest.pane_us,
                manifest.windows,
                config.pane_us,
                scheme(config)
            )));
        }
        let key = format!("{DIR}/{}", manifest.panes_file);
        let bytes = lake.get_object(&key).await?.ok_or_else(|| Error::Checkpoint(format!("{key} is missing")))?;
        let panes = tokio::task::spawn_blocking(move || read_panes(bytes))
            .await
            .map_err(|e| Error::Checkpoint(e.to_string()))??;
        cp.next_seq = seq + 1;
        Ok((cp, Some((manifest, panes))))
    }

    /// The watermark of the newest checkpoint of `lake`, reading only its manifest.
    pub async fn newest_watermark(lake: &Lake, lateness_us: i64) -> Result<Option<i64>> {
        let Some(seq) = manifests(lake).await?.last().copied() else { return Ok(None) };
        let manifest = read_manifest(lake, seq).await?;
        Ok(manifest.state.watermark_us.or(manifest.state.max_event_us.map(|m| m - lateness_us)))
    }

    /// Writes a checkpoint of `trending` having consumed `silver_versions`.
    pub async fn write(&mut self, trending: &Trending, silver_versions: &BTreeMap<String, i64>) -> Result<()> {
        let seq = self.next_seq;
        let panes_file = format!("panes-{seq:020}-{}.parquet", uuid::Uuid::now_v7());
        let panes = write_panes(trending)?;
        self.lake.put_object(&format!("{DIR}/{panes_file}"), panes.into(), false).await?;
        let manifest = Manifest {
            seq,
            written_at: chrono::Utc::now().to_rfc3339(),
            pane_us: trending.config().pane_us,
            windows: scheme(trending.config()),
            silver_versions: silver_versions.clone(),
            state: trending.snapshot(),
            panes_file,
        };
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Checkpoint(e.to_string()))?;
        if !self.lake.put_object(&manifest_key(seq), json.into(), true).await? {
            self.lake.delete_object(&format!("{DIR}/{}", manifest.panes_file)).await?;
            return Err(Error::Checkpoint(format!(
                "{}/{} was written by someone else: another gold job runs on this lake; run only one",
                self.lake.display(),
                manifest_key(seq)
            )));
        }
        self.next_seq = seq + 1;
        self.prune(seq).await;
        Ok(())
    }

    /// Removes checkpoints older than the newest `KEEP + 1` and pane files no manifest names.
    async fn prune(&self, newest: u64) {
        let Ok(names) = self.lake.list_objects(DIR).await else { return };
        let mut named = Vec::new();
        for seq in seqs(&names) {
            if seq + KEEP < newest {
                let _ = self.lake.delete_object(&manifest_key(seq)).await;
                continue;
            }
            if let Ok(m) = read_manifest(&self.lake, seq).await {
                named.push(m.panes_file);
            }
        }
        for name in names {
            if name.starts_with("panes-") && !named.contains(&name) {
                let _ = self.lake.delete_object(&format!("{DIR}/{name}")).await;
            }
        }
    }
}

fn manifest_key(seq: u64) -> String {
    format!("{DIR}/{seq:020}.json")
}

async fn read_manifest(lake: &Lake, seq: u64) -> Result<Manifest> {
    let key = manifest_key(seq);
    let bytes = lake.get_object(&key).await?.ok_or_else(|| Error::Checkpoint(format!("{key} is missing")))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Checkpoint(format!("{}/{key}: {e}", lake.display())))
}

fn seqs(names: &[String]) -> Vec<u64> {
    let mut seqs: Vec<u64> = names.iter().filter_map(|n| n.strip_suffix(".json")?.parse().ok()).collect();
    seqs.sort_unstable();
    seqs
}

async fn manifests(lake: &Lake) -> Result<Vec<u64>> {
    Ok(seqs(&lake.list_objects(DIR).await?))
}

fn panes_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("pane_start", DataType::Int64, false),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("views", DataType::Int64, false),
        Field::new("clicks", DataType::Int64, false),
    ]))
}

fn write_panes(trending: &Trending) -> Result<Vec<u8>> {
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(Default::default())).build();
    let mut writer = ArrowWriter::try_new(Vec::new(), panes_schema(), Some(props)).map_err(Error::arrow)?;
    let mut panes = trending.panes().peekable();
    while panes.peek().is_some() {
        let (mut p, mut i, mut v, mut c) =
            (Int64Builder::new(), StringBuilder::new(), Int64Builder::new(), Int64Builder::new());
        for (pane, item, views, clicks) in panes.by_ref().take(64 * 1024) {
            p.append_value(pane);
            i.append_value(item);
            v.append_value(views as i64);
            c.append_value(clicks as i64);
        }
        let columns: Vec<ArrayRef> =
            vec![Arc::new(p.finish()), Arc::new(i.finish()), Arc::new(v.finish()), Arc::new(c.finish())];
        let batch = RecordBatch::try_new(panes_schema(), columns).map_err(Error::arrow)?;
        writer.write(&batch).map_err(Error::arrow)?;
    }
    writer.into_inner().map_err(Error::arrow)
}

fn read_panes(bytes: reco_lake::bytes::Bytes) -> Result<Panes> {
    let batches = reco_lake::read::read_parquet_bytes(bytes, &[])?;
    let mut out = Vec::new();
    for b in batches {
        let col = |i: usize| b.column(i).clone();
        let (p, item, v, c) = (col(0), col(1), col(2), col(3));
        let (p, item) = (p.as_primitive::<Int64Type>(), item.as_string::<i32>());
        let (v, c) = (v.as_primitive::<Int64Type>(), c.as_primitive::<Int64Type>());
        for r in 0..b.num_rows() {
            out.push((p.value(r), item.value(r).to_owned(), v.value(r) as u64, c.value(r) as u64));
        }
    }
    Ok(out)
}
