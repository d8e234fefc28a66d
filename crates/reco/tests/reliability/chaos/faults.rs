//! The nemesis: one fault at a time, chosen at random from a seeded generator (so a failing run
//! replays with `RECO_CHAOS_SEED`), across every process and the network, while it plays the
//! orchestrator too (a process that exits on its own, e.g. a gold job that lost its lease or
//! a job that hit a full disk, is started again, as Kubernetes would).

use std::{collections::BTreeMap, path::PathBuf, process::Command, time::Duration};

use reco_testkit::proxy::{Link, Proxy};
use tokio::time::Instant;

use crate::common::Service;

/// The processes of the scenario, by name (`broker`, `serve-1`, `silver-2`, `gold-1`, …).
pub struct Cluster {
    pub services: BTreeMap<String, Service>,
    pub proxy: Proxy,
    pub disk: Option<Tmpfs>,
    /// Exits the orchestrator restarted, per service.
    pub exits: BTreeMap<String, usize>,
    /// When the orchestrator saw each exited service down (it restarts after a second, as
    /// a restart policy with back-off would, not in a tight loop).
    pub down_since: BTreeMap<String, Instant>,
}

/// A small tmpfs holding the lake, so the disk can be filled (needs root; the scenario says
/// when it cannot mount one).
pub struct Tmpfs {
    pub path: PathBuf,
}

impl Tmpfs {
    pub fn mount(path: PathBuf, size_mb: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(&path).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mb}m"), "tmpfs"])
            .arg(&path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!("mount -t tmpfs: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Tmpfs { path })
    }

    fn filler(&self) -> PathBuf {
        self.path.join(".chaos-filler")
    }

    /// Takes every free byte.
    fn fill(&self) {
        let avail = Command::new("stat").args(["-f", "-c", "%a %S"]).arg(&self.path).output().expect("stat -f");
        let text = String::from_utf8_lossy(&avail.stdout);
        let mut parts = text.split_whitespace().map(|v| v.parse::<u64>().unwrap_or(0));
        let bytes = parts.next().unwrap_or(0) * parts.next().unwrap_or(0);
        let _ = Command::new("fallocate").args(["-l", &bytes.to_string()]).arg(self.filler()).status();
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A fault, applied and healed by [`Cluster::inject`].
#[derive(Clone, Debug)]
pub enum Fault {
    /// SIGKILL, then a restart after the delay.
    Kill(String, Duration),
    /// SIGSTOP for this long, then SIGCONT.
    Pause(String, Duration),
    /// Every broker connection closed at once.
    Cut,
    /// No byte crosses the proxy for this long.
    Stall(Duration),
    /// Every chunk delayed by the first duration, for the second.
    Slow(Duration, Duration),
    /// The lake's disk full for this long.
    DiskFull(Duration),
}

impl Fault {
    /// The row of the summary table it counts in.
    pub fn kind(&self) -> String {
        // `silver-2` counts as `silver`.
        let role = |name: &str| name.trim_end_matches(char::is_numeric).trim_end_matches('-').to_owned();
        match self {
            Fault::Kill(name, _) => format!("SIGKILL {}", role(name)),
            Fault::Pause(name, _) => format!("SIGSTOP {}", role(name)),
            Fault::Cut => "network: connections cut".into(),
            Fault::Stall(_) => "network: stalled".into(),
            Fault::Slow(..) => "network: slowed".into(),
            Fault::DiskFull(_) => "disk full (lake)".into(),
        }
    }
}

/// Seeded choices.
pub struct Dice(Box<dyn FnMut() -> u64 + Send>);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(Box::new(reco_testkit::xorshift(seed | 1)))
    }

    fn below(&mut self, n: u64) -> u64 {
        (self.0)() % n.max(1)
    }

    /// A duration between `lo` and `hi` milliseconds.
    fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.below(hi - lo + 1))
    }

    /// The next fault. Pauses outlast the gold lease TTL (5 s) and the silver session timeout
    /// (6 s) of the scenario; kills restart within 0–5 s.
    /// `RECO_CHAOS_FAULTS` (e.g. `kill,disk`) narrows the kinds, to chase one finding.
    pub fn fault(&mut self, cluster: &Cluster) -> Fault {
        let names: Vec<&String> = cluster.services.keys().collect();
        let jobs: Vec<&&String> = names.iter().filter(|n| n.starts_with("silver") || n.starts_with("gold")).collect();
        let only = std::env::var("RECO_CHAOS_FAULTS").unwrap_or_default();
        let allowed = |kind: &str| only.is_empty() || only.split(',').any(|k| k.trim() == kind);
        loop {
            let roll = self.below(100);
            let kind = match roll {
                0..35 => "kill",
                35..55 => "pause",
                55..67 => "cut",
                67..79 => "stall",
                79..90 => "slow",
                _ => "disk",
            };
            if !allowed(kind) {
                continue;
            }
            return match roll {
                0..35 => Fault::Kill(names[self.below(names.len() as u64) as usize].clone(), self.ms(0, 5000)),
                35..55 => {
                    let name = (*jobs[self.below(jobs.len() as u64) as usize]).clone();
                    let length = if name.starts_with("gold") { self.ms(6000, 9000) } else { self.ms(7000, 10_000) };
                    Fault::Pause(name, length)
                }
                55..67 => Fault::Cut,
                67..79 => Fault::Stall(self.ms(2000, 6000)),
                79..90 => Fault::Slow(self.ms(50, 300), self.ms(3000, 6000)),
                _ if cluster.disk.is_some() => Fault::DiskFull(self.ms(2000, 5000)),
                _ => continue,
            };
        }
    }

    /// The pause between faults.
    pub fn gap(&mut self) -> Duration {
        self.ms(300, 1500)
    }
}

impl Cluster {
    /// Restarts every process that exited on its own; waits `span` doing so.
    pub async fn supervise(&mut self, span: Duration) {
        let until = Instant::now() + span;
        loop {
            for (name, service) in self.services.iter_mut() {
                if !service.exited() {
                    continue;
                }
                let since = *self.down_since.entry(name.clone()).or_insert_with(Instant::now);
                if since.elapsed() >= Duration::from_secs(1) && service.restart_if_exited() {
                    self.down_since.remove(name);
                    *self.exits.entry(name.clone()).or_default() += 1;
                }
            }
            let now = Instant::now();
            if now >= until {
                return;
            }
            tokio::time::sleep((until - now).min(Duration::from_millis(250))).await;
        }
    }

    /// Applies `fault`, waits it out (supervising the rest) and heals it.
    pub async fn inject(&mut self, fault: &Fault) {
        match fault {
            Fault::Kill(name, delay) => {
                self.services.get_mut(name).expect("service").kill();
                self.supervise(*delay).await;
                self.services.get_mut(name).expect("service").restart();
            }
            Fault::Pause(name, length) => {
                self.services[name].signal("STOP");
                self.supervise(*length).await;
                self.services[name].signal("CONT");
            }
            Fault::Cut => self.proxy.cut(),
            Fault::Stall(length) => {
                self.proxy.set(Link::Stalled);
                self.supervise(*length).await;
                self.proxy.set(Link::Healthy);
            }
            Fault::Slow(delay, length) => {
                self.proxy.set(Link::Slow(*delay));
                self.supervise(*length).await;
                self.proxy.set(Link::Healthy);
            }
            Fault::DiskFull(length) => {
                let disk = self.disk.as_ref().expect("a tmpfs lake");
                disk.fill();
                self.supervise(*length).await;
                self.disk.as_ref().expect("a tmpfs lake").free();
            }
        }
    }

    /// Heals everything a fault could have left behind (a run that ended mid-fault).
    pub fn heal(&mut self) {
        self.proxy.set(Link::Healthy);
        if let Some(disk) = &self.disk {
            disk.free();
        }
        for service in self.services.values() {
            service.signal("CONT");
        }
    }

    /// The faults, until `until`: injected one at a time; a line per fault on stdout.
    pub async fn rampage(&mut self, dice: &mut Dice, until: Instant, started: Instant) -> BTreeMap<String, usize> {
        let mut injected = BTreeMap::new();
        while Instant::now() < until {
            self.supervise(dice.gap()).await;
            let fault = dice.fault(self);
            println!("chaos {:>6.1} s: {fault:?}", started.elapsed().as_secs_f64());
            self.inject(&fault).await;
            *injected.entry(fault.kind()).or_default() += 1;
        }
        injected
    }
}
