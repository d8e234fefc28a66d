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

/// Arenas when the environment does not say.
const ARENAS: i32 = 2;

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

/// Other allocators size their own arenas.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn cap_malloc_arenas() {}
