//! The crate's one error type: which table or file, and what the store or format said.

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
        "{location}: the lakehouse is a folder or an object store URL (s3://bucket/prefix, \
         gs://bucket/prefix, az://container/prefix); {scheme}:// is not supported. Set LAKEHOUSE_PATH \
         (--lakehouse-path) to one of those"
    )]
    UnsupportedLocation { location: String, scheme: String },
    /// A local lakehouse location that cannot be the folder meant.
    #[error("LAKEHOUSE_PATH={location} (--lakehouse-path): {reason}")]
    BadFolder { location: String, reason: String },
    #[error(
        "{location}: STORAGE_FORMAT=parquet needs a local lakehouse folder: its batch log commits \
         by hard link, which object stores do not have. Use STORAGE_FORMAT=delta (the default) on \
         object storage"
    )]
    ParquetOnObjectStore { location: String },
    #[error("{location}: {source}")]
    Store { location: String, source: Box<object_store::Error> },
    #[error(
        "LAKEHOUSE_PATH={location} cannot be used: {source}. Check that the bucket exists and that \
         the credentials can list and write it ({variables})"
    )]
    StoreCheck { location: String, variables: &'static str, source: Box<object_store::Error> },
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

    pub(crate) fn delta(table: impl std::fmt::Display, source: deltalake::DeltaTableError) -> Error {
        Error::Delta { table: table.to_string(), source: Box::new(source) }
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
