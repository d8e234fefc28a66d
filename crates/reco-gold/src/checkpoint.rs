//! Gold state checkpoints: `<lake>/_checkpoints/gold/<seq>.json` (the silver versions
//! consumed, the watermark and which windows were published) next to `panes-<seq>.parquet`
//! (the pane counts). A checkpoint is only written after every window it calls published was
//! written to the gold tables, so resuming from it can only re-publish windows (a replace,
//! harmless), never skip one. The manifest is committed by hard-linking a synced temporary
//! file to its final name, which fails if the name exists: two gold jobs on one lake notice
//! each other instead of interleaving their state.

use std::{
    collections::BTreeMap,
    fs::File,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use reco_lake::deltalake::{
    arrow::{
        array::{ArrayRef, AsArray, Int64Builder, RecordBatch, StringBuilder},
        datatypes::{DataType, Field, Int64Type, Schema},
    },
    parquet::{arrow::ArrowWriter, basic::Compression, file::properties::WriterProperties},
};
use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    window::{Config, Snapshot, Trending},
};

/// Checkpoints kept besides the newest (a reader may still be loading one).
const KEEP: u64 = 1;

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
    dir: PathBuf,
    next_seq: u64,
}

pub type Panes = Vec<(i64, String, u64, u64)>;

fn scheme(config: &Config) -> Vec<(String, i64, i64)> {
    config.windows.iter().map(|w| (w.name.to_owned(), w.length_us, w.slide_us)).collect()
}

impl Checkpoints {
    /// Opens the checkpoint folder and loads the newest checkpoint, if any.
    pub fn open(lake_root: &Path, config: &Config) -> Result<(Checkpoints, Option<(Manifest, Panes)>)> {
        let dir = lake_root.join("_checkpoints").join("gold");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let newest = manifests(&dir)?.last().copied();
        let mut cp = Checkpoints { dir, next_seq: 0 };
        let Some(seq) = newest else { return Ok((cp, None)) };
        let path = cp.manifest_path(seq);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| Error::Checkpoint(format!("{}: {e}", path.display())))?;
        if manifest.pane_us != config.pane_us || manifest.windows != scheme(config) {
            return Err(Error::Checkpoint(format!(
                "{} was made with panes of {} µs and windows {:?}; the configuration now has {} µs and {:?}. \
                 Move the checkpoint folder away and run `reco gold backfill` to recompute with the new scheme",
                path.display(),
                manifest.pane_us,
                manifest.windows,
                config.pane_us,
                scheme(config)
            )));
        }
        let panes = read_panes(&cp.dir.join(&manifest.panes_file))?;
        cp.next_seq = seq + 1;
        Ok((cp, Some((manifest, panes))))
    }

    /// The watermark of the newest checkpoint under `lake_root`, reading only its manifest.
    pub fn newest_watermark(lake_root: &Path, lateness_us: i64) -> Result<Option<i64>> {
        let dir = lake_root.join("_checkpoints").join("gold");
        if !dir.is_dir() {
            return Ok(None);
        }
        let Some(seq) = manifests(&dir)?.last().copied() else { return Ok(None) };
        let path = dir.join(format!("{seq:020}.json"));
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let manifest: Manifest =
            serde_json::from_str(&text).map_err(|e| Error::Checkpoint(format!("{}: {e}", path.display())))?;
        Ok(manifest.state.watermark_us.or(manifest.state.max_event_us.map(|m| m - lateness_us)))
    }

    fn manifest_path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.json"))
    }

    /// Writes a checkpoint of `trending` having consumed `silver_versions`.
    pub fn write(&mut self, trending: &Trending, silver_versions: &BTreeMap<String, i64>) -> Result<()> {
        let seq = self.next_seq;
        let panes_file = format!("panes-{seq:020}-{}.parquet", uuid::Uuid::now_v7());
        write_panes(&self.dir.join(&panes_file), trending)?;
        let manifest = Manifest {
            seq,
            written_at: chrono::Utc::now().to_rfc3339(),
            pane_us: trending.config().pane_us,
            windows: scheme(trending.config()),
            silver_versions: silver_versions.clone(),
            state: trending.snapshot(),
            panes_file,
        };
        let tmp = self.dir.join(format!(".tmp-{}.json", uuid::Uuid::now_v7()));
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Checkpoint(e.to_string()))?;
        let mut f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&json).and_then(|()| f.sync_all()).map_err(|e| Error::io(&tmp, e))?;
        let target = self.manifest_path(seq);
        let linked = std::fs::hard_link(&tmp, &target);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let _ = std::fs::remove_file(self.dir.join(&manifest.panes_file));
                return Err(Error::Checkpoint(format!(
                    "{} was written by someone else: another gold job runs on this lake; run only one",
                    target.display()
                )));
            }
            Err(e) => return Err(Error::io(&target, e)),
        }
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        self.next_seq = seq + 1;
        self.prune(seq);
        Ok(())
    }

    /// Removes checkpoints older than the newest `KEEP + 1` and pane files no manifest names.
    fn prune(&self, newest: u64) {
        let Ok(all) = manifests(&self.dir) else { return };
        let mut named = Vec::new();
        for seq in all {
            let path = self.manifest_path(seq);
            if seq + KEEP < newest {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            if let Ok(m) = std::fs::read_to_string(&path).map(|t| serde_json::from_str::<Manifest>(&t)) {
                named.extend(m.ok().map(|m| m.panes_file));
            }
        }
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("panes-") && !named.contains(&name) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

fn manifests(dir: &Path) -> Result<Vec<u64>> {
    let mut seqs: Vec<u64> = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
        .collect();
    seqs.sort_unstable();
    Ok(seqs)
}

fn panes_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("pane_start", DataType::Int64, false),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("views", DataType::Int64, false),
        Field::new("clicks", DataType::Int64, false),
    ]))
}

fn write_panes(path: &Path, trending: &Trending) -> Result<()> {
    let file = File::create(path).map_err(|e| Error::io(path, e))?;
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(Default::default())).build();
    let mut writer = ArrowWriter::try_new(file, panes_schema(), Some(props)).map_err(Error::arrow)?;
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
    let file = writer.into_inner().map_err(Error::arrow)?;
    file.sync_all().map_err(|e| Error::io(path, e))
}

fn read_panes(path: &Path) -> Result<Panes> {
    let batches = reco_lake::read::read_batches(path, &[])?;
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
