//! `GET /items/{item_id}/similar`: an item's neighbours from the gold table `item_neighbors`,
//! served from memory.
//!
//! A background task ([`SimilarCache::run`]) checks the table every refresh interval and reads
//! only the data files that changed: the table holds one file per bucket of items, so a new
//! version re-reads the buckets the gold job rewrote, and requests never touch the lake.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use chrono::{DateTime, Utc};
use reco_core::{ErrorKind, FieldError};
use reco_lake::{
    GoldTable, Lake,
    gold::neighbors::{TABLE, read_neighbors},
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};

use crate::{ApiError, AppState};

const DEFAULT_LIMIT: usize = 10;
/// Seconds a client or CDN may reuse a response without asking again.
const MAX_AGE_SECS: u32 = 5;

/// One item's list as published.
#[derive(Debug)]
pub(crate) struct List {
    /// `(neighbour, score, support)` in rank order.
    pub(crate) items: Vec<(String, f64, i64)>,
    computed_at_us: i64,
}

#[derive(Debug, Default)]
struct Held {
    /// Item → its list.
    lists: HashMap<String, Arc<List>>,
    /// Bucket → (the data file read, the items it held).
    buckets: HashMap<i64, (String, Vec<String>)>,
}

/// Every item's neighbour list, refreshed when the table changes.
#[derive(Debug)]
pub struct SimilarCache {
    lake: Lake,
    table: Mutex<Option<GoldTable>>,
    held: RwLock<Held>,
}

impl SimilarCache {
    pub fn new(lake: Lake) -> Arc<SimilarCache> {
        Arc::new(SimilarCache { lake, table: Mutex::default(), held: RwLock::default() })
    }

    /// Picks up a new version of the table, reading the buckets whose file changed.
    pub async fn refresh(&self) -> Result<(), reco_lake::Error> {
        let mut table = self.table.lock().await;
        let changed = match table.as_mut() {
            Some(t) => t.refresh().await?,
            None => match GoldTable::open_existing(&self.lake, TABLE).await? {
                Some(t) => {
                    *table = Some(t);
                    true
                }
                None => false,
            },
        };
        let Some(table) = table.as_ref().filter(|_| changed) else { return Ok(()) };
        let files: Vec<(i64, reco_lake::DataFile)> = table.row_sets().iter().map(|(k, f)| (*k, f.clone())).collect();
        let stale: Vec<(i64, reco_lake::DataFile)> = {
            let held = self.held.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            files.iter().filter(|(k, f)| held.buckets.get(k).is_none_or(|(key, _)| *key != f.key)).cloned().collect()
        };
        let read = tokio::task::spawn_blocking(move || -> Result<Vec<_>, reco_lake::Error> {
            stale.into_iter().map(|(k, f)| Ok((k, f.key.clone(), read_neighbors(&f)?))).collect()
        })
        .await
        .map_err(|e| reco_lake::Error::Arrow(e.to_string()))??;
        let mut held = self.held.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let live: std::collections::HashSet<i64> = files.iter().map(|(k, _)| *k).collect();
        let gone: Vec<i64> = held.buckets.keys().filter(|k| !live.contains(k)).copied().collect();
        for bucket in gone {
            if let Some((_, items)) = held.buckets.remove(&bucket) {
                items.iter().for_each(|i| _ = held.lists.remove(i));
            }
        }
        for (bucket, key, rows) in read {
            if let Some((_, items)) = held.buckets.remove(&bucket) {
                items.iter().for_each(|i| _ = held.lists.remove(i));
            }
            // Item → ((rank, neighbour, score, support) rows, computed_at).
            type Rows = (Vec<(i32, String, f64, i64)>, i64);
            let mut lists: HashMap<String, Rows> = HashMap::new();
            for r in rows {
                let list = lists.entry(r.item_id).or_insert_with(|| (Vec::new(), r.computed_at_us));
                list.0.push((r.rank, r.neighbor_id, r.score, r.support));
            }
            let items: Vec<String> = lists.keys().cloned().collect();
            for (item, (mut rows, computed_at_us)) in lists {
                rows.sort_by_key(|r| r.0);
                let items = rows.into_iter().map(|(_, n, s, c)| (n, s, c)).collect();
                held.lists.insert(item, Arc::new(List { items, computed_at_us }));
            }
            held.buckets.insert(bucket, (key, items));
        }
        Ok(())
    }

    /// Refreshes every `interval` until `shutdown`; errors are logged and retried.
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "cannot refresh the item neighbours from the gold table");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    pub(crate) fn list(&self, item: &str) -> Option<Arc<List>> {
        self.held.read().unwrap_or_else(std::sync::PoisonError::into_inner).lists.get(item).cloned()
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SimilarQuery {
    /// Items to return, 1 to the number stored per item (default 10).
    limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SimilarItem {
    item_id: String,
    /// Cosine of the damped, decayed co-visits (docs/ARCHITECTURE.md, "Gold: item neighbours").
    score: f64,
    /// Co-visits counted into the score.
    support: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct SimilarResponse {
    item_id: String,
    items: Vec<SimilarItem>,
    computed_at: DateTime<Utc>,
}

/// Most similar items first.
#[utoipa::path(
    get,
    path = "/items/{item_id}/similar",
    tag = "recommendations",
    params(("item_id" = String, Path, description = "The item"), SimilarQuery),
    responses(
        (status = 200, description = "The item's neighbours", body = SimilarResponse),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, description = "A query parameter is invalid", body = crate::error::ErrorBody),
        (status = 404, description = "Gold has no neighbours for this item", body = crate::error::ErrorBody),
        (status = 503, description = "Recommendations are not configured on this server", body = crate::error::ErrorBody),
    )
)]
pub(crate) async fn get_similar(
    State(state): State<AppState>,
    Path(item_id): Path<String>,
    Query(q): Query<SimilarQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(cache) = state.similar.as_ref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "similar_unavailable",
            "this server has no lakehouse configured to serve recommendations from",
        ));
    };
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => n,
            _ => {
                let message = format!("must be an integer from 1 to 1000, got {s:?}");
                let detail =
                    FieldError { index: None, field: Some("limit".into()), kind: ErrorKind::InvalidField, message };
                let summary = format!("query parameter limit: {}", detail.message);
                return Err(ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", summary).details(vec![detail]));
            }
        },
    };
    let Some(list) = cache.list(&item_id) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_item",
            format!(
                "no neighbours for item {item_id:?}: gold has not seen it in a session with another item (or the \
                 gold job has not published it yet)"
            ),
        ));
    };
    // Per URL, so the item is already part of the key.
    let etag = format!("\"{}-{limit}\"", list.computed_at_us);
    Ok(crate::cached_json(&headers, &etag, MAX_AGE_SECS, || SimilarResponse {
        item_id,
        items: list
            .items
            .iter()
            .take(limit)
            .map(|(i, score, support)| SimilarItem { item_id: i.clone(), score: *score, support: *support })
            .collect(),
        computed_at: DateTime::from_timestamp_micros(list.computed_at_us).unwrap_or_default(),
    }))
}
