//! Gold tables as plain Parquet: one `<key>.parquet` per row set in the table's folder,
//! replaced by renaming a hidden temporary file over it.

use std::{collections::BTreeMap, path::PathBuf, time::SystemTime};

use super::{RowSet, Shape, file_name, parse_file_name};
use crate::{DataFile, Error, Lake, Result};

#[derive(Debug)]
pub(super) struct ParquetGold {
    dir: PathBuf,
    /// File name → (size, modified) as of the last refresh: a change means a new version.
    listing: BTreeMap<String, (u64, Option<SystemTime>)>,
}

impl ParquetGold {
    pub(super) fn open(lake: &Lake, key: &str) -> Result<ParquetGold> {
        let root = lake.local_root().ok_or_else(|| Error::ParquetOnObjectStore { location: lake.display() })?;
        let dir = root.join(key);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(ParquetGold { dir, listing: BTreeMap::new() })
    }

    /// Whether `file` lacks a column of `shape` (a table of an earlier reco).
    pub(super) fn lacks_columns(&self, file: &DataFile, shape: &Shape) -> bool {
        let path = PathBuf::from(&file.key);
        let Ok(file) = std::fs::File::open(&path) else { return false };
        let Ok(reader) = deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file) else {
            return false;
        };
        let found = reader.schema();
        shape.schema.fields().iter().any(|f| found.field_with_name(f.name()).is_err())
    }

    pub(super) fn refresh(&mut self, sets: &mut BTreeMap<i64, DataFile>) -> Result<bool> {
        let mut now = BTreeMap::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".parquet") {
                continue;
            }
            let meta = entry.metadata().ok();
            now.insert(name, (meta.as_ref().map_or(0, |m| m.len()), meta.and_then(|m| m.modified().ok())));
        }
        if now == self.listing {
            return Ok(false);
        }
        *sets = now
            .keys()
            .filter_map(|name| Some((parse_file_name(name)?, DataFile::local(self.dir.join(name), None))))
            .collect();
        self.listing = now;
        Ok(true)
    }

    pub(super) fn replace(
        &mut self,
        shape: &Shape,
        sets: &mut BTreeMap<i64, DataFile>,
        written: Vec<RowSet>,
        gone: Vec<i64>,
    ) -> Result<()> {
        for set in &written {
            let path = self.dir.join(file_name(shape, set.key));
            let tmp = self.dir.join(format!(".tmp-{}.parquet", uuid::Uuid::now_v7()));
            let mut files = Vec::new();
            crate::parquet_log::write_parquet_to(&tmp, &set.batch, &mut files)?;
            std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
            sets.insert(set.key, DataFile::local(path, None));
        }
        for key in gone {
            if let Some(file) = sets.remove(&key) {
                let path = PathBuf::from(&file.key);
                std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
            }
        }
        crate::parquet_log::sync_dir(&self.dir);
        Ok(())
    }
}
