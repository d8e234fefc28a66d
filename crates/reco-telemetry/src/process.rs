//! The standard `process_*` metrics, read from `/proc/self` at scrape time (Linux only;
//! elsewhere they are simply absent). Cheap: three small file reads per scrape.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

/// Linux reports CPU time in clock ticks; USER_HZ is 100 on every mainstream architecture,
/// and reading it properly needs `sysconf`, i.e. unsafe FFI, which this workspace forbids.
const TICKS_PER_SECOND: f64 = 100.0;
const PAGE_SIZE: u64 = 4096;

#[derive(Debug)]
struct ProcessCollector;

/// What the allocator holds, as the binary's allocator reports it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes in live allocations.
    pub allocated: u64,
    /// Bytes in the pages and slabs the allocator has in use: live allocations plus the unused
    /// space around them.
    pub mapped: u64,
    /// Resident heap memory that holds no live allocation (fragmentation, metadata, freed
    /// pages not yet returned to the OS).
    pub free: u64,
}

static HEAP_PROBE: std::sync::OnceLock<fn() -> Option<HeapStats>> = std::sync::OnceLock::new();

/// Sets where `reco_heap_*` come from. The allocator is the binary's choice (and asking it
/// needs FFI, which this crate forbids), so the binary registers the probe at start; without
/// one the metrics are absent. Later calls are ignored.
pub fn set_heap_probe(probe: fn() -> Option<HeapStats>) {
    let _ = HEAP_PROBE.set(probe);
}

pub(crate) fn register(registry: &mut Registry) {
    registry.register_collector(Box::new(ProcessCollector));
}

struct Sample {
    cpu_seconds: f64,
    threads: i64,
    start_time_seconds: f64,
    virtual_bytes: i64,
    resident_bytes: i64,
    open_fds: i64,
}

fn read_sample() -> Option<Sample> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may contain spaces; fields after it are space-separated.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let boot_time = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime ").and_then(|v| v.trim().parse::<u64>().ok()))?;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let resident_pages = statm.split(' ').nth(1)?.parse::<u64>().ok()?;
    let open_fds = std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0);
    Some(Sample {
        cpu_seconds: (field(14)? + field(15)?) as f64 / TICKS_PER_SECOND,
        threads: field(20)? as i64,
        start_time_seconds: boot_time as f64 + field(22)? as f64 / TICKS_PER_SECOND,
        virtual_bytes: field(23)? as i64,
        resident_bytes: (resident_pages * PAGE_SIZE) as i64,
        open_fds: open_fds as i64,
    })
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(s) = read_sample() else { return Ok(()) };
        let cpu = ConstCounter::new(s.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges: [(&str, &str, ConstGauge<f64>); 5] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                ConstGauge::new(s.resident_bytes as f64),
            ),
            ("process_virtual_memory_bytes", "Virtual memory size in bytes", ConstGauge::new(s.virtual_bytes as f64)),
            ("process_open_fds", "Number of open file descriptors", ConstGauge::new(s.open_fds as f64)),
            ("process_threads", "Number of OS threads", ConstGauge::new(s.threads as f64)),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                ConstGauge::new(s.start_time_seconds),
            ),
        ];
        for (name, help, gauge) in gauges {
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        if let Some(heap) = HEAP_PROBE.get().and_then(|probe| probe()) {
            // Resident memory that grows while `allocated` stays flat is fragmentation, not a leak.
            let gauges = [
                ("reco_heap_allocated_bytes", "Bytes in live heap allocations", heap.allocated),
                (
                    "reco_heap_mapped_bytes",
                    "Bytes in the pages and slabs the allocator has in use (live allocations and the space around them)",
                    heap.mapped,
                ),
                ("reco_heap_free_bytes", "Resident heap bytes holding no live allocation", heap.free),
            ];
            for (name, help, bytes) in gauges {
                let gauge = ConstGauge::new(bytes as f64);
                gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
            }
        }
        Ok(())
    }
}
