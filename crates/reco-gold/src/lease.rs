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
    sync::{Arc, Mutex, OnceLock},
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

/// Unique per lease taken: `host:pid:uuid`.
fn new_holder() -> String {
    format!("{}:{}:{}", hostname(), std::process::id(), uuid::Uuid::now_v7())
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
        let holder = new_holder();
        let mut told = None;
        loop {
            let held = match Lease::take(lake, ttl, &holder).await? {
                Ok(lease) => return Ok(Some(lease)),
                Err(held) => held,
            };
            let now = now_ms();
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

    /// Takes the lease of `lake` now unless a live job holds it: `Err` names that job.
    pub async fn try_take(lake: &Lake, ttl: Duration) -> Result<std::result::Result<Lease, String>> {
        Ok(Lease::take(lake, ttl, &new_holder()).await?.map_err(|held| held.holder))
    }

    /// Takes the lease for `holder` if it is free; else the record of the live job holding it.
    async fn take(lake: &Lake, ttl: Duration, holder: &str) -> Result<std::result::Result<Lease, Record>> {
        loop {
            let newest = newest(lake).await?;
            let seq = match &newest {
                None => 0,
                Some(r) if r.free(now_ms()) => r.seq + 1,
                Some(r) => return Ok(Err(r.clone())),
            };
            if let Some(lease) = Lease::create_at(lake, ttl, holder, seq, newest).await? {
                return Ok(Ok(lease));
            }
            // Another job created that number first: read who.
        }
    }

    /// Creates lease record `seq` for `holder` after `previous`; `None` when another job
    /// created that number first.
    async fn create_at(
        lake: &Lake,
        ttl: Duration,
        holder: &str,
        seq: u64,
        previous: Option<Record>,
    ) -> Result<Option<Lease>> {
        let record = Record {
            seq,
            holder: holder.to_owned(),
            host: hostname(),
            pid: std::process::id(),
            expires_at_ms: now_ms() + ttl.as_millis() as i64,
            released: false,
        };
        if !create(lake, &record).await? {
            return Ok(None);
        }
        live().lock().map_err(|_| Error::Lease("lease registry poisoned".into()))?.insert(holder.to_owned());
        if let Some(previous) = previous.filter(|r| !r.released) {
            info!(previous = previous.holder, "gold lease taken over from a job that stopped renewing it");
        }
        info!(holder, ttl_s = ttl.as_secs(), "gold lease taken; this job writes the gold tables");
        let lease = Lease { lake: lake.clone(), ttl, record, renewed: std::time::Instant::now() };
        lease.prune().await;
        Ok(Some(lease))
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

/// A held lease renewed in the background: a task of its own renews it every sixth of the
/// TTL, so work that takes longer than the TTL (restoring a large checkpoint, a publication of
/// a hundred files to a slow object store) does not lose it. Renewing only between steps of
/// the job's loop did: in the chaos test on S3 a cycle's publications outlasted the 5 s TTL,
/// the other job took over, and each successor lost the lease the same way, forever.
///
/// Pause detection is unchanged: a paused process pauses this task too, and after a pause
/// longer than the TTL the next renewal (the task's or the job's own before it writes) finds
/// its number taken.
#[derive(Debug)]
pub struct Kept {
    lease: Arc<tokio::sync::Mutex<Lease>>,
    heartbeat: tokio::task::JoinHandle<()>,
}

impl Kept {
    pub fn start(lease: Lease) -> Kept {
        let every = lease.ttl / 6;
        let lease = Arc::new(tokio::sync::Mutex::new(lease));
        let held = Arc::downgrade(&lease);
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(lease) = held.upgrade() else { return };
                match lease.lock().await.renew().await {
                    Ok(()) => {}
                    // Lost: the job finds out at its own renewal before it writes.
                    Err(Error::Lease(_)) => return,
                    // The store did not answer: try again, the TTL leaves time for it.
                    Err(e) => warn!(error = %e, "could not renew the gold lease; trying again"),
                }
            }
        });
        Kept { lease, heartbeat }
    }

    /// Renews now unless renewed within a third of the TTL. An error means another job took
    /// the lease (or the store failed): this one must stop writing.
    pub async fn renew(&self) -> Result<()> {
        self.lease.lock().await.renew().await
    }

    /// See [`Lease::seq`].
    pub async fn seq(&self) -> i64 {
        self.lease.lock().await.seq()
    }

    /// See [`Lease::taken_by`].
    pub async fn taken_by(&self) -> Option<String> {
        self.lease.lock().await.taken_by().await
    }

    /// Stops renewing and gives the lease up.
    pub async fn release(self) {
        self.heartbeat.abort();
        let _ = self.heartbeat.await;
        if let Ok(lease) = Arc::try_unwrap(self.lease) {
            lease.into_inner().release().await;
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

    /// Work longer than the TTL, with no renewal from the job in between: the background
    /// renewal keeps the lease from a waiting job, which takes it once it is released.
    #[tokio::test(flavor = "multi_thread")]
    async fn a_kept_lease_outlasts_work_longer_than_its_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::new(dir.path(), reco_lake::Format::Delta).unwrap();
        let ttl = Duration::from_secs(3);
        let never = CancellationToken::new();
        let kept = Kept::start(Lease::acquire(&lake, ttl, &never).await.unwrap().unwrap());
        let first = kept.seq().await;
        tokio::time::sleep(ttl * 2).await;
        assert!(kept.seq().await > first, "renewed in the background");

        let waited = CancellationToken::new();
        let give_up = waited.clone();
        tokio::spawn(async move {
            tokio::time::sleep(ttl).await;
            give_up.cancel();
        });
        assert!(Lease::acquire(&lake, ttl, &waited).await.unwrap().is_none(), "a waiter took a kept lease");
        kept.renew().await.expect("still held");

        kept.release().await;
        let next = Lease::acquire(&lake, ttl, &never).await.unwrap().expect("free once released");
        assert!(next.seq() > first);
    }
}
