//! `GET /trending`: the newest complete window of a gold table, served from memory.
//!
//! A background task ([`TrendingCache::run`]) checks the gold tables every refresh interval
//! and, only when a table changed (a new Delta version, a replaced Parquet file), reads its
//! newest complete window (and the newest window of all, which may be provisional: published
//! before the watermark passed its end, served only with `provisional=true`) into memory. Requests never scan a table; `at=` requests read the one small
//! file of the window that was current then. Responses carry an `ETag` (window, computation
//! time and limit) and `Cache-Control`, so clients and CDNs revalidate cheaply.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use chrono::{DateTime, NaiveDate, Utc};
use reco_core::{ErrorKind, FieldError, WindowSpec};
use reco_lake::{GoldTable, Lake, TrendingRow, gold::table_name};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use utoipa::{IntoParams, ToSchema};

use crate::{ApiError, AppState};

const DEFAULT_LIMIT: usize = 20;
/// Seconds a client or CDN may reuse a response without asking again.
const MAX_AGE_SECS: u32 = 5;

type Window = (i64, Arc<Vec<TrendingRow>>);

#[derive(Debug, Default)]
struct Latest {
    /// The newest window whose rows say `complete`.
    complete: Option<Window>,
    /// The newest window published, complete or provisional.
    any: Option<Window>,
}

fn is_complete(rows: &[TrendingRow]) -> bool {
    rows.first().is_some_and(|r| r.complete)
}

/// The newest window of each gold table, refreshed when the table changes.
#[derive(Debug)]
pub struct TrendingCache {
    lake: Lake,
    windows: Vec<WindowSpec>,
    /// Rows stored per window (the gold job's top N): the largest `limit`.
    max_limit: usize,
    latest: RwLock<HashMap<String, Latest>>,
    tables: Mutex<HashMap<String, GoldTable>>,
}

impl TrendingCache {
    pub fn new(lake: Lake, windows: Vec<WindowSpec>, max_limit: usize) -> Arc<TrendingCache> {
        Arc::new(TrendingCache { lake, windows, max_limit, latest: RwLock::default(), tables: Mutex::default() })
    }

    /// The lake the gold tables are read from.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// Picks up new gold versions; tables that do not exist yet are skipped.
    pub async fn refresh(&self) -> Result<(), reco_lake::Error> {
        let mut tables = self.tables.lock().await;
        for w in &self.windows {
            let name = table_name(w.name);
            let changed = match tables.get_mut(&name) {
                Some(t) => t.refresh().await?,
                None => match GoldTable::open_existing(&self.lake, &name).await? {
                    Some(t) => {
                        tables.insert(name.clone(), t);
                        true
                    }
                    None => false,
                },
            };
            if !changed {
                continue;
            }
            let Some(table) = tables.get(&name) else { continue };
            // Newest first, until a complete one: the provisional windows above it are at most
            // one window length of slides (the open windows when the input went idle).
            let files: Vec<(i64, reco_lake::DataFile)> =
                table.row_sets().iter().rev().map(|(s, p)| (*s, p.clone())).collect();
            let latest = tokio::task::spawn_blocking(move || -> Result<Latest, reco_lake::Error> {
                let mut latest = Latest::default();
                for (start, path) in files {
                    let rows = Arc::new(reco_lake::gold::read_gold(&path)?);
                    let complete = is_complete(&rows);
                    latest.any.get_or_insert_with(|| (start, rows.clone()));
                    if complete {
                        latest.complete = Some((start, rows));
                        break;
                    }
                }
                Ok(latest)
            })
            .await
            .map_err(|e| reco_lake::Error::Arrow(e.to_string()))??;
            self.latest.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(w.name.to_owned(), latest);
        }
        Ok(())
    }

    /// The items of the newest window of the shortest length (provisional ones included: a
    /// fill wants what is trending now), rank order; the next length when it has none.
    pub(crate) fn fill_items(&self) -> Vec<String> {
        let mut by_length: Vec<&WindowSpec> = self.windows.iter().collect();
        by_length.sort_by_key(|w| w.length_us);
        by_length
            .iter()
            .find_map(|w| self.latest(w.name, true).filter(|(_, rows)| !rows.is_empty()))
            .map(|(_, rows)| rows.iter().map(|r| r.item_id.clone()).collect())
            .unwrap_or_default()
    }

    /// Refreshes every `interval` until `shutdown`; errors are logged and retried.
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        loop {
            if let Err(e) = self.refresh().await {
                tracing::warn!(error = %e, "cannot refresh the trending cache from the gold tables");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    }

    /// Start of the oldest window the table keeps (`None`: no window, or no table yet).
    async fn oldest_start(&self, window: &WindowSpec) -> Option<i64> {
        let tables = self.tables.lock().await;
        tables.get(&table_name(window.name))?.row_sets().keys().next().copied()
    }

    fn latest(&self, window: &str, provisional: bool) -> Option<Window> {
        let latest = self.latest.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let l = latest.get(window)?;
        if provisional { l.any.clone() } else { l.complete.clone() }
    }

    /// The newest window that had ended by `at_us` (complete unless `provisional`).
    async fn at(&self, window: &WindowSpec, at_us: i64, provisional: bool) -> Result<Option<Window>, ApiError> {
        let files: Vec<(i64, reco_lake::DataFile)> = {
            let tables = self.tables.lock().await;
            let Some(table) = tables.get(&table_name(window.name)) else { return Ok(None) };
            let ended = table.row_sets().range(..=at_us.saturating_sub(window.length_us)).rev();
            // A provisional window is followed (in time) by at most a window length of others.
            ended
                .take(if provisional { 1 } else { 1 + (window.length_us / 60_000_000) as usize })
                .map(|(s, p)| (*s, p.clone()))
                .collect()
        };
        tokio::task::spawn_blocking(move || {
            for (start, file) in files {
                let rows = reco_lake::gold::read_gold(&file).map_err(|e| internal(e.to_string()))?;
                if provisional || is_complete(&rows) {
                    return Ok(Some((start, Arc::new(rows))));
                }
            }
            Ok(None)
        })
        .await
        .map_err(|e| internal(e.to_string()))?
    }

    /// Whether the lake answers (readiness): its folder exists, or its store can be listed.
    pub async fn lake_reachable(&self) -> Result<(), String> {
        match self.lake.local_root() {
            Some(root) => std::fs::metadata(root).map(|_| ()).map_err(|e| format!("{}: {e}", root.display())),
            None => self.lake.check(false).await.map_err(|e| e.to_string()),
        }
    }
}

fn internal(message: String) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TrendingQuery {
    /// Window length: `1h` or `24h`.
    window: Option<String>,
    /// Items to return, 1 to the number stored per window (default 20).
    limit: Option<String>,
    /// Return the window that was current at this time (RFC 3339, a date, or Unix seconds).
    at: Option<String>,
    /// `true`: the newest window even if the watermark has not passed its end yet (published
    /// provisionally after the input went idle); default `false`: the newest complete window.
    provisional: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TrendingItem {
    rank: i32,
    item_id: String,
    score: f64,
    views: i64,
    clicks: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct TrendingResponse {
    window: String,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    /// False for a provisional window: the watermark has not passed its end, so events may
    /// still change it.
    complete: bool,
    computed_at: DateTime<Utc>,
    items: Vec<TrendingItem>,
}

fn bad_param(field: &str, message: String) -> ApiError {
    let detail = FieldError { index: None, field: Some(field.to_owned()), kind: ErrorKind::InvalidField, message };
    let summary = format!("query parameter {field}: {}", detail.message);
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_parameter", summary).details(vec![detail])
}

fn parse_at(s: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_micros());
    }
    s.parse::<i64>().ok().and_then(|secs| secs.checked_mul(1_000_000))
}

fn ts(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

#[utoipa::path(
    get,
    path = "/trending",
    tag = "trending",
    params(TrendingQuery),
    responses(
        (status = 200, description = "The latest published window", body = TrendingResponse),
        (status = 304, description = "Not modified (If-None-Match)"),
        (status = 400, description = "A query parameter is invalid", body = crate::error::ErrorBody),
        (status = 404, description = "No window published yet", body = crate::error::ErrorBody),
        (status = 503, description = "Trending is not configured on this server", body = crate::error::ErrorBody),
    )
)]
pub(crate) async fn get_trending(
    State(state): State<AppState>,
    Query(q): Query<TrendingQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(cache) = state.trending.as_ref() else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "trending_unavailable",
            "this server has no lakehouse configured to serve trending from",
        ));
    };
    let names: Vec<&str> = cache.windows.iter().map(|w| w.name).collect();
    let requested = q.window.as_deref().unwrap_or("1h");
    let Some(window) = cache.windows.iter().find(|w| w.name == requested) else {
        return Err(bad_param("window", format!("must be one of {}, got {requested:?}", names.join(", "))));
    };
    let limit = parse_limit(q.limit.as_deref(), cache.max_limit)?;
    let provisional = parse_provisional(q.provisional.as_deref())?;
    let found = match q.at.as_deref() {
        None => cache.latest(window.name, provisional),
        Some(s) => {
            let Some(at_us) = parse_at(s) else {
                return Err(bad_param("at", format!("must be an RFC 3339 time, a date or Unix seconds, got {s:?}")));
            };
            cache.at(window, at_us, provisional).await?
        }
    };
    let Some((start_us, rows)) = found else {
        return Err(no_window(cache, window, &q, provisional).await);
    };
    let computed_at_us = rows.first().map_or(0, |r| r.computed_at_us);
    let complete = is_complete(&rows);
    let etag = format!("\"{}-{start_us}-{computed_at_us}-{complete}-{limit}\"", window.name);
    Ok(crate::cached_json(&headers, &etag, MAX_AGE_SECS, || TrendingResponse {
        window: window.name.to_owned(),
        window_start: ts(start_us),
        window_end: ts(start_us + window.length_us),
        complete,
        computed_at: ts(computed_at_us),
        items: rows
            .iter()
            .take(limit)
            .map(|r| TrendingItem {
                rank: r.rank,
                item_id: r.item_id.clone(),
                score: r.score,
                views: r.views,
                clicks: r.clicks,
            })
            .collect(),
    }))
}

/// `limit`: 1 to the cache's maximum, the default when absent.
fn parse_limit(limit: Option<&str>, max: usize) -> Result<usize, ApiError> {
    match limit {
        None => Ok(DEFAULT_LIMIT.min(max)),
        Some(s) => match s.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(bad_param("limit", format!("must be an integer from 1 to {max}, got {s:?}"))),
        },
    }
}

/// `provisional`: true or false (1 or 0), false when absent.
fn parse_provisional(provisional: Option<&str>) -> Result<bool, ApiError> {
    match provisional {
        None | Some("false") | Some("0") => Ok(false),
        Some("true") | Some("1") => Ok(true),
        Some(s) => Err(bad_param("provisional", format!("must be true or false, got {s:?}"))),
    }
}

/// The 404 when no window answers: removed by retention, not published yet, or only
/// provisional so far, each said as such.
async fn no_window(cache: &TrendingCache, window: &WindowSpec, q: &TrendingQuery, provisional: bool) -> ApiError {
    // Before the oldest kept window, "not published by then" can be wrong: the gold job's
    // retention removes windows that ended a week (by default) behind its watermark.
    if let (Some(at), Some(oldest)) = (q.at.as_deref().and_then(parse_at), cache.oldest_start(window).await)
        && at < oldest + window.length_us
    {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "no_window",
            format!(
                "no {} window that had ended by {} is kept: the oldest kept ends at {}; earlier windows held \
                 no events, or the gold job removed them (RECO_GOLD_RETENTION_HOURS behind its watermark, a \
                 week by default); `reco gold backfill --from … --to …` recomputes them from silver",
                window.name,
                ts(at).to_rfc3339(),
                ts(oldest + window.length_us).to_rfc3339()
            ),
        );
    }
    let when = if q.at.is_some() { " by that time" } else { " yet" };
    // Say so when only provisional windows exist (a short replay, a quiet first hour).
    let hint = if !provisional && q.at.is_none() && cache.latest(window.name, true).is_some() {
        "; a provisional one is readable with provisional=true"
    } else {
        ""
    };
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_window",
        format!(
            "no {}{} window has been published{when}; the gold job publishes one when the watermark passes a window's end{hint}",
            if provisional { "" } else { "complete " },
            window.name
        ),
    )
}
