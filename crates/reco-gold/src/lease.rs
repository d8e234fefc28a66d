//! One gold writer per lake: a lease in the lake itself, kept with create-only writes.
//!
//! The lease is a sequence of small objects `_leases/gold/<seq>.json`, each naming a holder
//! and an expiry. Taking the lease, renewing it and releasing it all create the next number
//! with a create-only put (`If-None-Match: *` on S3, a hard link in a folder), so of two jobs
//! that both decide the lease is free, exactly one creates the next number and the other
//! learns it lost. A holder that finds its renewal's number taken stops: someone took over
//! because it missed its renewals (a long pause), and it must not write again.
//!
//! A waiting job takes the lease when the newest record is released, expired (by the waiter's
//! clock: hosts must keep their clocks in sync, as NTP does, to within a fraction of the TTL),
//! or names a process of this host that is gone (a restarted `reco up` or `reco gold` on one
//! machine does not wait out the TTL of the process it replaces).

use std::{
    collections::HashSet,
    sync::{Mutex, OnceLock},
    time::Duration,
};

use reco_lake::Lake;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::{Error, Result};

/// Lake-relative folder of the lease records.
pub const DIR: &str = "_leases/gold";

/// Records kept behind the newest.
const KEEP: u64 = 3;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Record {
    seq: u64,
    /// Unique per lease taken: `host:pid:uuid`.
    holder: String,
    host: String,
    pid: u32,
    /// Wall clock, ms since the epoch.
    expires_at_ms: i64,
    released: bool,
}

/// Holders alive in this process (a dropped, unreleased lease of this process is free).
fn live() -> &'static Mutex<HashSet<String>> {
    static LIVE: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    LIVE.get_or_init(Default::default)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".into())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Record {
    /// Whether a waiter may take the lease after this record.
    fn free(&self, now_ms: i64) -> bool {
        if self.released || self.expires_at_ms <= now_ms {
            return true;
        }
        if self.host != hostname() {
            return false;
        }
        if self.pid == std::process::id() {
            return !live().lock().is_ok_and(|l| l.contains(&self.holder));
        }
        // Linux: a process of this host that no longer exists holds nothing.
        std::path::Path::new("/proc/self").exists() && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// The gold lease, held.
#[derive(Debug)]
pub struct Lease {
    lake: Lake,
    ttl: Duration,
    record: Record,
    renewed: std::time::Instant,
}

impl Lease {
    /// Takes the lease of `lake`, waiting while another live job holds it; `None` when
    /// `shutdown` comes first.
    pub async fn acquire(lake: &Lake, ttl: Duration, shutdown: &CancellationToken) -> Result<Option<Lease>> {
        let holder = format!("{}:{}:{}", hostname(), std::process::id(), uuid::Uuid::now_v7());
        let mut told = None;
        loop {
            let newest = newest(lake).await?;
            let now = now_ms();
            let next = match &newest {
                None => Some(0),
                Some(r) if r.free(now) => Some(r.seq + 1),
                Some(_) => None,
            };
            if let Some(seq) = next {
                let record = Record {
                    seq,
                    holder: holder.clone(),
                    host: hostname(),
                    pid: std::process::id(),
                    expires_at_ms: now + ttl.as_millis() as i64,
                    released: false,
                };
                if create(lake, &record).await? {
                    live().lock().map_err(|_| Error::Lease("lease registry poisoned".into()))?.insert(holder.clone());
                    if let Some(previous) = newest.filter(|r| !r.released) {
                        info!(previous = previous.holder, "gold lease taken over from a job that stopped renewing it");
                    }
                    info!(holder, ttl_s = ttl.as_secs(), "gold lease taken; this job writes the gold tables");
                    let lease = Lease { lake: lake.clone(), ttl, record, renewed: std::time::Instant::now() };
                    lease.prune().await;
                    return Ok(Some(lease));
                }
                continue; // another job created it first: read who
            }
            let held = newest.expect("a held lease has a record");
            if told.as_ref() != Some(&held.holder) {
                warn!(
                    holder = held.holder,
                    expires_in_s = (held.expires_at_ms - now) / 1000,
                    "another gold job holds this lake's lease; waiting (one gold writer per lake)"
                );
                told = Some(held.holder.clone());
            }
            let wait = Duration::from_millis((held.expires_at_ms - now).clamp(100, 1000) as u64);
            tokio::select! {
                () = shutdown.cancelled() => return Ok(None),
                () = tokio::time::sleep(wait.min(ttl / 4)) => {}
            }
        }
    }

    /// Renews the lease once a third of its TTL has passed. An error means another job took
    /// it: this one must stop writing.
    pub async fn renew(&mut self) -> Result<()> {
        if self.renewed.elapsed() < self.ttl / 3 {
            return Ok(());
        }
        let mut next = self.record.clone();
        next.seq += 1;
        next.expires_at_ms = now_ms() + self.ttl.as_millis() as i64;
        if !create(&self.lake, &next).await? {
            let by = newest(&self.lake).await?.map(|r| r.holder).unwrap_or_default();
            return Err(Error::Lease(format!(
                "the lease of {} was taken by {by} after this job missed its renewals (TTL {} s); \
                 stopping without writing again",
                self.lake.display(),
                self.ttl.as_secs()
            )));
        }
        self.record = next;
        self.renewed = std::time::Instant::now();
        self.prune().await;
        Ok(())
    }

    /// After a failed write: the holder of a newer lease, if another job took this one over.
    /// A paused job (a long GC stop, SIGSTOP, a frozen VM) can resume between its renewal and
    /// its commit; the fence then refuses the commit, and this names why.
    pub async fn taken_by(&self) -> Option<String> {
        match newest(&self.lake).await {
            Ok(Some(newest)) if newest.seq > self.record.seq && newest.holder != self.record.holder => {
                Some(newest.holder)
            }
            _ => None,
        }
    }

    /// The lease number this job holds now (it grows with every renewal).
    pub fn seq(&self) -> i64 {
        self.record.seq as i64
    }

    /// Gives the lease up so a waiting job takes over at once.
    pub async fn release(mut self) {
        let mut next = self.record.clone();
        next.seq += 1;
        next.released = true;
        match create(&self.lake, &next).await {
            Ok(true) => self.record = next,
            Ok(false) => {}
            Err(e) => warn!(error = %e, "could not release the gold lease; a successor waits for its expiry"),
        }
    }

    async fn prune(&self) {
        let Ok(names) = self.lake.list_objects(DIR).await else { return };
        for seq in seqs(&names).into_iter().filter(|s| s + KEEP < self.record.seq) {
            let _ = self.lake.delete_object(&key(seq)).await;
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut l) = live().lock() {
            l.remove(&self.record.holder);
        }
    }
}

fn key(seq: u64) -> String {
    format!("{DIR}/{seq:020}.json")
}

fn seqs(names: &[String]) -> Vec<u64> {
    let mut seqs: Vec<u64> = names.iter().filter_map(|n| n.strip_suffix(".json")?.parse().ok()).collect();
    seqs.sort_unstable();
    seqs
}

async fn newest(lake: &Lake) -> Result<Option<Record>> {
    let Some(seq) = seqs(&lake.list_objects(DIR).await?).pop() else { return Ok(None) };
    let Some(bytes) = lake.get_object(&key(seq)).await? else { return Ok(None) };
    serde_json::from_slice(&bytes).map(Some).map_err(|e| Error::Lease(format!("{}: {e}", key(seq))))
}

async fn create(lake: &Lake, record: &Record) -> Result<bool> {
    let json = serde_json::to_vec(record).map_err(|e| Error::Lease(e.to_string()))?;
    Ok(lake.put_object(&key(record.seq), json.into(), true).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(expires_at_ms: i64) -> Record {
        Record { seq: 1, holder: "h".into(), host: hostname(), pid: std::process::id(), expires_at_ms, released: false }
    }

    #[test]
    fn a_record_is_free_when_released_expired_or_its_process_is_gone() {
        let now = now_ms();
        let mut r = record(now + 60_000);
        // This process, a holder not alive here: free; alive: held.
        assert!(r.free(now));
        live().lock().unwrap().insert("h".into());
        assert!(!r.free(now));
        assert!(r.free(now + 60_000), "expired");
        r.released = true;
        assert!(r.free(now));
        live().lock().unwrap().remove("h");

        let other_host = Record { host: "elsewhere".into(), ..record(now + 60_000) };
        assert!(!other_host.free(now));
        assert!(other_host.free(now + 60_001));
        let gone = Record { pid: u32::MAX - 1, ..record(now + 60_000) };
        assert!(gone.free(now), "no such process on this host");
    }
}
