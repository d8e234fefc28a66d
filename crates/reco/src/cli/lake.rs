//! Where the lakehouse is and in which format.

use clap::{Args, ValueEnum};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StorageFormat {
    /// Delta Lake tables (default).
    Delta,
    /// Plain Parquet files plus a batch log.
    Parquet,
}

#[derive(Debug, Args)]
pub struct LakeArgs {
    /// The lakehouse (silver and gold tables): a folder, or an object store URL
    /// (`s3://bucket/prefix`, `gs://…`, `az://…`; credentials from the standard variables,
    /// e.g. AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL).
    #[arg(long, env = "LAKEHOUSE_PATH", default_value = "./data")]
    pub lakehouse_path: String,
    /// Table format of the silver and gold tables.
    #[arg(long, env = "STORAGE_FORMAT", value_enum, default_value_t = StorageFormat::Delta)]
    pub storage_format: StorageFormat,
}

impl LakeArgs {
    pub fn lake(&self) -> anyhow::Result<reco_lake::Lake> {
        let format = match self.storage_format {
            StorageFormat::Delta => reco_lake::Format::Delta,
            StorageFormat::Parquet => reco_lake::Format::Parquet,
        };
        reco_lake::Lake::open(&self.lakehouse_path, format)
            .map_err(|e| anyhow::anyhow!("lakehouse {}: {e}", self.lakehouse_path))
    }
}
