//! glibc malloc arenas, capped for a long-running service.
//!
//! glibc gives threads that contend for the heap arenas of their own, up to eight per core, and
//! memory freed into one arena only serves later allocations from that arena. reco runs tokio
//! workers plus blocking pools (delta-rs commits, rdkafka callbacks) that allocate and free
//! short-lived Arrow and Parquet buffers from ever-changing threads, so free memory piles up in
//! arenas that other threads cannot use: resident memory doubled in a 30-minute soak while the
//! live state stayed bounded. With two arenas the same commit loop grew by a third as much
//! (`cargo run --release -p reco-lake --example table_memory`; numbers in docs/BENCHMARKS.md).
//! Two, not one, so the API and the jobs still allocate in parallel on two cores.
//!
//! `MALLOC_ARENA_MAX` in the environment wins: glibc reads it at start, and we then leave the
//! setting alone.
//!
//! Freed memory also stays resident when it sits below a live allocation: glibc only returns
//! the top of a heap on `free`. delta-rs allocates in bursts (a checkpoint replays up to 100
//! JSON commits at once, 50-200 MiB of Arrow decoders in `examples/table_memory`), and the
//! long-lived allocations made during a burst pin the pages it used, so resident memory stepped
//! up at every large burst and never came down. `malloc_trim(0)` gives every free page back,
//! wherever it sits: called once on the soak's `reco up` after 30 minutes it released 166 of
//! 579 MiB. So a background thread trims every [`TRIM_EVERY`]; a trim walks the free lists of
//! each arena (a few milliseconds for hundreds of MiB) and holds that arena's lock meanwhile.

/// Arenas when the environment does not say.
const ARENAS: i32 = 2;

/// How often free memory is given back to the OS (`RECO_MALLOC_TRIM_SECS`, 0: never).
const TRIM_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

/// Caps glibc's malloc arenas at [`ARENAS`] unless `MALLOC_ARENA_MAX` is set. Call first thing
/// in `main`, before any thread exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn cap_malloc_arenas() {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return;
    }
    // SAFETY: mallopt takes two integers and changes an allocator parameter; M_ARENA_MAX is a
    // valid parameter, and there is no other thread yet to race with the change.
    let applied = unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENAS) };
    if applied != 1 {
        eprintln!("warning: could not cap malloc arenas (mallopt M_ARENA_MAX failed)");
    }
}

/// Starts the thread that returns free heap pages to the OS every [`TRIM_EVERY`]
/// (`RECO_MALLOC_TRIM_SECS` overrides; 0 turns it off).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn start_trimming() {
    let every = match std::env::var("RECO_MALLOC_TRIM_SECS").ok().and_then(|s| s.parse::<u64>().ok()) {
        Some(0) => return,
        Some(secs) => std::time::Duration::from_secs(secs),
        None => TRIM_EVERY,
    };
    let spawned = std::thread::Builder::new().name("malloc-trim".into()).spawn(move || {
        loop {
            std::thread::sleep(every);
            // SAFETY: malloc_trim takes the padding to keep and only changes which free pages
            // stay mapped; glibc locks each arena while it trims it.
            unsafe { libc::malloc_trim(0) };
        }
    });
    if let Err(e) = spawned {
        eprintln!("warning: could not start the malloc trim thread: {e}");
    }
}

/// glibc's own account of the heap, for `reco_heap_*` (`reco_telemetry::set_heap_probe`).
/// `mallinfo2` walks the free lists of every arena under that arena's lock, once per scrape
/// (the same walk `malloc_trim` makes every 10 s).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn heap_stats() -> Option<reco_telemetry::HeapStats> {
    // SAFETY: mallinfo2 takes no arguments and returns a plain struct by value.
    let info = unsafe { libc::mallinfo2() };
    Some(reco_telemetry::HeapStats {
        allocated: info.uordblks as u64,
        mapped: info.hblkhd as u64,
        free: info.fordblks as u64,
    })
}

/// Other allocators: not reported.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn heap_stats() -> Option<reco_telemetry::HeapStats> {
    None
}

/// Other allocators size their own arenas.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn cap_malloc_arenas() {}

/// Other allocators return memory their own way.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn start_trimming() {}
