use std::path::Path;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Delta table {table}: {source}")]
    Delta { table: String, source: Box<deltalake::DeltaTableError> },
    #[error("table {table} has a different schema than reco writes: {details}")]
    SchemaMismatch { table: String, details: String },
    /// A gold table written before the `complete` column existed (gold tables are derived
    /// data: recomputed from silver rather than migrated).
    #[error(
        "gold table {table} was written by an earlier reco (no `complete` column). Gold tables are \
         derived from silver: stop `reco gold`, move `{gold_dir}` and `{checkpoints}` aside, and start \
         `reco gold` again; it recomputes every window from silver (if silver's Delta log no longer \
         holds its first commits, run `reco gold backfill --from <first day> --to <tomorrow>` first)"
    )]
    OldGoldTable { table: String, gold_dir: String, checkpoints: String },
    #[error(
        "{location}: a URL, but the lakehouse is a local folder (or a mounted file system) in this \
         version; object storage ({scheme}://) is not supported yet. Set LAKEHOUSE_PATH \
         (--lakehouse-path) to a path"
    )]
    UnsupportedLocation { location: String, scheme: String },
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("batch log {path}: {message}")]
    BatchLog { path: String, message: String },
    #[error("Arrow/Parquet: {0}")]
    Arrow(String),
}

impl Error {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Error {
        Error::Io { path: path.display().to_string(), source }
    }

    pub(crate) fn delta(table: &Path, source: deltalake::DeltaTableError) -> Error {
        Error::Delta { table: table.display().to_string(), source: Box::new(source) }
    }
}

impl From<deltalake::arrow::error::ArrowError> for Error {
    fn from(e: deltalake::arrow::error::ArrowError) -> Self {
        Error::Arrow(e.to_string())
    }
}

impl From<deltalake::parquet::errors::ParquetError> for Error {
    fn from(e: deltalake::parquet::errors::ParquetError) -> Self {
        Error::Arrow(e.to_string())
    }
}
