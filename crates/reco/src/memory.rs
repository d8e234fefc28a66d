//! The process allocator: jemalloc, for Rust and C code alike.
//!
//! A service that runs for weeks must give memory back after bursts. reco's bursts are delta-rs
//! commits and checkpoints (a checkpoint replays up to 100 JSON commits at once, 50-200 MiB of
//! Arrow decoders) and Parquet writes, on whichever tokio worker or blocking-pool thread runs
//! them. glibc's malloc keeps freed memory in per-thread arenas and returns only whole free pages
//! at the top of a heap; capping it at two arenas and calling `malloc_trim(0)` every 10 s
//! left resident memory growing with a flat live heap: +22 % in the 30-minute
//! soak, free pages pinned by a few live allocations each. jemalloc packs small allocations of
//! one size class into their own slabs, so short-lived buffers do not pin pages of long-lived
//! state, and its background threads return pages that stayed unused for 10 s
//! (`dirty_decay_ms`) without any trim call. Measurements: docs/RELIABILITY.md (the soak) and
//! CHANGELOG.md (2026-11-27, how each allocator setting did).
//!
//! The allocator overrides `malloc` for the whole binary (`override_allocator_on_supported_platforms`),
//! so librdkafka's and SQLite's allocations share it; `MALLOC_CONF` in the environment tunes it
//! (e.g. `MALLOC_CONF=dirty_decay_ms:1000`), as documented for jemalloc.

/// jemalloc's own account of the heap, for `reco_heap_*` (`reco_telemetry::set_heap_probe`).
/// Advancing the `epoch` refreshes jemalloc's cached totals: a few microseconds per scrape.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub fn heap_stats() -> Option<reco_telemetry::HeapStats> {
    use tikv_jemalloc_sys::mallctl;

    fn read(name: &std::ffi::CStr) -> Option<u64> {
        let mut value: usize = 0;
        let mut len = std::mem::size_of::<usize>();
        // SAFETY: each name read here is a `size_t` statistic of jemalloc (its manual, "MALLCTL
        // NAMESPACE"); `value` and `len` describe a buffer of exactly that size, and no new value
        // is written.
        let rc = unsafe { mallctl(name.as_ptr(), (&raw mut value).cast(), &raw mut len, std::ptr::null_mut(), 0) };
        (rc == 0).then_some(value as u64)
    }
    let mut epoch: u64 = 1;
    let mut len = std::mem::size_of::<u64>();
    // SAFETY: `epoch` is a `uint64_t` that jemalloc reads and writes back; the buffers are that
    // size. Writing it makes the statistics read below current.
    let rc = unsafe { mallctl(c"epoch".as_ptr(), (&raw mut epoch).cast(), &raw mut len, (&raw mut epoch).cast(), len) };
    if rc != 0 {
        return None;
    }
    let allocated = read(c"stats.allocated")?;
    let resident = read(c"stats.resident")?;
    Some(reco_telemetry::HeapStats {
        allocated,
        mapped: read(c"stats.mapped")?,
        free: resident.saturating_sub(allocated),
    })
}

/// Other platforms use the system allocator, which reports nothing.
#[cfg(not(target_os = "linux"))]
pub fn heap_stats() -> Option<reco_telemetry::HeapStats> {
    None
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::heap_stats;

    /// The probe reads jemalloc's live count, and this binary's allocations go to jemalloc:
    /// a 64 MiB buffer shows up in `allocated` while it lives and leaves it when dropped.
    #[test]
    fn heap_stats_follow_live_allocations() {
        const SIZE: usize = 64 << 20;
        let before = heap_stats().expect("jemalloc statistics");
        let buffer = std::hint::black_box(vec![1u8; SIZE]);
        let during = heap_stats().expect("jemalloc statistics");
        assert!(
            during.allocated >= before.allocated + SIZE as u64,
            "allocated {} → {} for a {SIZE}-byte buffer",
            before.allocated,
            during.allocated
        );
        assert!(during.mapped >= during.allocated, "mapped {} < allocated {}", during.mapped, during.allocated);
        drop(buffer);
        let after = heap_stats().expect("jemalloc statistics");
        assert!(after.allocated + (SIZE as u64) / 2 < during.allocated, "{} → {}", during.allocated, after.allocated);
    }
}
