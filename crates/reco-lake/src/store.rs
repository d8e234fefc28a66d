//! Where the lake lives: a local folder or an object store (`s3://`, `gs://`, `az://`).
//!
//! delta-rs ships its cloud stores as separate crates (`deltalake-aws` pulls the AWS SDK, a
//! DynamoDB client and an STS client: minutes of build for a lock table we do not need). The
//! `object_store` crate it builds on already carries S3, GCS and Azure clients, so reco
//! registers them with delta-rs itself, configured from the standard environment variables
//! (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`,
//! `AWS_ALLOW_HTTP`, `GOOGLE_SERVICE_ACCOUNT`, `AZURE_STORAGE_ACCOUNT_NAME`, ...).
//!
//! Commits stay safe without a lock table: delta-rs writes `_delta_log/<version>.json` with a
//! create-only put, which `object_store` sends to S3 as `If-None-Match: *`; of two writers of
//! one version, one gets 412 and retries as a conflict. Every store reco supports has
//! conditional writes (AWS S3 since 2024, MinIO, R2, GCS, Azure).
//!
//! Every request of reco's own to the store (reading data files, gold checkpoints, the gold
//! lease) runs on one small runtime owned by this module: the HTTP client's pooled
//! connections belong to the runtime that opened them, and synchronous readers (silver's
//! de-duplication state, gold's input) can wait on it from any thread.

use std::{
    collections::HashMap,
    future::Future,
    path::{Path, PathBuf},
    sync::{Arc, OnceLock},
};

use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore, logstore_factories,
    object_store_factories,
};
use object_store::{
    ObjectStore, ObjectStoreExt, aws::AmazonS3Builder, azure::MicrosoftAzureBuilder, gcp::GoogleCloudStorageBuilder,
    local::LocalFileSystem, path::Path as ObjectPath, prefix::PrefixStore,
};
use url::Url;

use crate::{Error, Result};

/// URL schemes of the object stores reco reads and writes.
pub const SCHEMES: &[&str] = &["s3", "s3a", "gs", "az", "abfs", "abfss"];

/// The variables a store of `scheme` reads its credentials and endpoint from (for messages).
pub fn credential_variables(scheme: &str) -> &'static str {
    match scheme {
        "s3" | "s3a" => "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, AWS_ALLOW_HTTP",
        "gs" => "GOOGLE_SERVICE_ACCOUNT (or GOOGLE_APPLICATION_CREDENTIALS)",
        _ => "AZURE_STORAGE_ACCOUNT_NAME, AZURE_STORAGE_ACCOUNT_KEY (or AZURE_CLIENT_ID/SECRET, AZURE_TENANT_ID)",
    }
}

/// The store at the root of `url`'s bucket or container, configured from the environment and
/// then `options` (object_store's keys, as delta-rs takes storage options: `aws_endpoint`,
/// `aws_access_key_id`, …; keys a store does not know are left to delta-rs).
fn bucket_store(url: &Url, options: &HashMap<String, String>) -> Result<Arc<dyn ObjectStore>> {
    let err = |source: object_store::Error| Error::Store { location: url.to_string(), source: Box::new(source) };
    let known = |k: &String| k.to_ascii_lowercase();
    Ok(match url.scheme() {
        "s3" | "s3a" => {
            let mut b = AmazonS3Builder::from_env().with_url(url.as_str());
            for (k, v) in options {
                if let Ok(key) = known(k).parse() {
                    b = b.with_config(key, v);
                }
            }
            Arc::new(b.build().map_err(err)?)
        }
        "gs" => {
            let mut b = GoogleCloudStorageBuilder::from_env().with_url(url.as_str());
            for (k, v) in options {
                if let Ok(key) = known(k).parse() {
                    b = b.with_config(key, v);
                }
            }
            Arc::new(b.build().map_err(err)?)
        }
        "az" | "abfs" | "abfss" => {
            let mut b = MicrosoftAzureBuilder::from_env().with_url(url.as_str());
            for (k, v) in options {
                if let Ok(key) = known(k).parse() {
                    b = b.with_config(key, v);
                }
            }
            Arc::new(b.build().map_err(err)?)
        }
        scheme => return Err(Error::UnsupportedLocation { location: url.to_string(), scheme: scheme.to_owned() }),
    })
}

/// The store rooted at the lake: keys are relative to the lake location.
pub(crate) fn lake_store(
    url: &Url,
    local: Option<&Path>,
    options: &HashMap<String, String>,
) -> Result<Arc<dyn ObjectStore>> {
    match local {
        Some(root) => Ok(Arc::new(
            LocalFileSystem::new_with_prefix(root)
                .map_err(|e| Error::Store { location: root.display().to_string(), source: Box::new(e) })?,
        )),
        None => Ok(Arc::new(PrefixStore::new(bucket_store(url, options)?, ObjectPath::from(url.path())))),
    }
}

#[derive(Debug)]
struct Stores;

impl ObjectStoreFactory for Stores {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> deltalake::DeltaResult<(ObjectStoreRef, ObjectPath)> {
        let store = bucket_store(url, &config.raw).map_err(|e| deltalake::DeltaTableError::Generic(e.to_string()))?;
        Ok((store, ObjectPath::from(url.path())))
    }
}

impl LogStoreFactory for Stores {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
        // The default log store commits with a create-only put: safe on any store with
        // conditional writes, no lock table needed (see the module docs).
        Ok(default_logstore(prefixed_store, root_store, location, options))
    }
}

/// Makes delta-rs open `s3://`, `gs://` and `az://` tables through reco's stores. Idempotent.
pub fn register() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let stores = Arc::new(Stores);
        for scheme in SCHEMES {
            let Ok(url) = Url::parse(&format!("{scheme}://")) else { continue };
            object_store_factories().insert(url.clone(), stores.clone());
            logstore_factories().insert(url, stores.clone());
        }
    });
}

/// The runtime reco's own store requests run on (see the module docs).
fn io_runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("reco-lake-io")
            .enable_all()
            .build()
            .expect("cannot start the lake I/O runtime")
    })
}

/// Runs `f` on the lake I/O runtime and waits for it.
pub(crate) async fn io<F>(f: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    match io_runtime().spawn(f).await {
        Ok(out) => out,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

/// Runs `f` on the lake I/O runtime and blocks this thread until it is done. For synchronous
/// readers; from an async task it blocks the worker for the duration, as a file read does.
pub(crate) fn io_blocking<F>(f: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    io_runtime().spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().expect("the lake I/O runtime dropped a request")
}

/// A local lake location as an absolute folder; `None` for object store URLs.
/// The scheme of `location` if it is a URL (`s3` of `s3://bucket`), not a path.
pub(crate) fn url_scheme(location: &str) -> Option<&str> {
    let (scheme, _) = location.split_once("://")?;
    (!scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))).then_some(scheme)
}

pub(crate) fn local_folder(location: &str) -> Result<Option<PathBuf>> {
    if let Some(scheme) = url_scheme(location) {
        return match scheme {
            "file" => Url::parse(location)
                .ok()
                .and_then(|u| u.to_file_path().ok())
                .map(Some)
                .ok_or_else(|| Error::UnsupportedLocation { location: location.to_owned(), scheme: "file".into() }),
            s if SCHEMES.contains(&s) => Ok(None),
            s => Err(Error::UnsupportedLocation { location: location.to_owned(), scheme: s.to_owned() }),
        };
    }
    Ok(Some(PathBuf::from(location)))
}

/// Small objects of reco's own in the lake (gold checkpoints, the gold lease), read and written
/// the same way in a folder and in an object store. Keys are relative to the lake.
impl crate::Lake {
    /// The object at `key`; `None` when there is none.
    pub async fn get_object(&self, key: &str) -> Result<Option<bytes::Bytes>> {
        let (store, path) = (self.store().clone(), ObjectPath::from(key));
        let got = io(async move {
            match store.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await;
        got.map_err(|e| self.store_error(key, e))
    }

    /// Writes `bytes` at `key`. With `create_only`, an existing object is left alone and the
    /// answer is `false` (a create-only put: `If-None-Match: *` on S3, a hard link in a folder).
    pub async fn put_object(&self, key: &str, bytes: bytes::Bytes, create_only: bool) -> Result<bool> {
        let (store, path) = (self.store().clone(), ObjectPath::from(key));
        let mode = if create_only { object_store::PutMode::Create } else { object_store::PutMode::Overwrite };
        let put = io(async move {
            match store.put_opts(&path, bytes.into(), mode.into()).await {
                Ok(_) => Ok(true),
                Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })
        .await;
        put.map_err(|e| self.store_error(key, e))
    }

    /// The names of the objects directly under the folder `key` (not recursive).
    pub async fn list_objects(&self, key: &str) -> Result<Vec<String>> {
        let (store, path) = (self.store().clone(), ObjectPath::from(key));
        let listed = io(async move {
            match store.list_with_delimiter(Some(&path)).await {
                Ok(list) => {
                    Ok(list.objects.into_iter().filter_map(|o| o.location.filename().map(str::to_owned)).collect())
                }
                Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
                Err(e) => Err(e),
            }
        })
        .await;
        listed.map_err(|e| self.store_error(key, e))
    }

    /// Deletes the object at `key`, if any.
    pub async fn delete_object(&self, key: &str) -> Result<()> {
        let (store, path) = (self.store().clone(), ObjectPath::from(key));
        let deleted = io(async move {
            match store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(e),
            }
        })
        .await;
        deleted.map_err(|e| self.store_error(key, e))
    }

    fn store_error(&self, key: &str, source: object_store::Error) -> Error {
        Error::Store { location: format!("{}/{key}", self.display()), source: Box::new(source) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_folders_object_stores_or_refused() {
        assert_eq!(local_folder("./data").unwrap(), Some(PathBuf::from("./data")));
        assert_eq!(local_folder("/srv/lake").unwrap(), Some(PathBuf::from("/srv/lake")));
        assert_eq!(local_folder("file:///srv/lake").unwrap(), Some(PathBuf::from("/srv/lake")));
        assert_eq!(local_folder("s3://bucket/lake").unwrap(), None);
        assert_eq!(local_folder("gs://bucket").unwrap(), None);
        for refused in ["hdfs://nn/lake", "http://host/lake", "ftp://x/y"] {
            let e = local_folder(refused).unwrap_err().to_string();
            assert!(e.contains(refused) && e.contains("LAKEHOUSE_PATH"), "{e}");
        }
    }
}
