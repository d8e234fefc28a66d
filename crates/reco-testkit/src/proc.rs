//! Child processes of the `reco` binary for tests and benchmarks: restartable after SIGKILL,
//! with their resident memory read from `/proc`.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

/// One `reco <subcommand>` child process, restartable with the same arguments. Killed on drop.
#[derive(Debug)]
pub struct Service {
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    child: Option<Child>,
    pub restarts: usize,
}

impl Service {
    /// Starts `bin args` with `env` added (and `RUST_LOG=error` unless `env` sets it).
    pub fn start(bin: impl AsRef<Path>, args: &[&str], env: &[(&str, &str)]) -> Service {
        let mut service = Service {
            bin: bin.as_ref().to_owned(),
            args: args.iter().map(|s| s.to_string()).collect(),
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            child: None,
            restarts: 0,
        };
        service.spawn();
        service
    }

    fn spawn(&mut self) {
        let child = Command::new(&self.bin)
            .args(&self.args)
            .env("RUST_LOG", "error")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `(VmRSS, VmHWM)` in KiB: resident now, and the peak so far.
    pub fn rss_kib(&self) -> (u64, u64) {
        rss_of(self.pid())
    }

    /// SIGKILL (no chance to flush or commit), then start again.
    pub fn kill_and_restart(&mut self) {
        self.kill();
        self.restart();
    }

    /// SIGKILL and wait for the exit; [`Service::restart`] starts it again.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the killed process again with the same arguments.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running service; kill it first");
        self.restarts += 1;
        self.spawn();
    }

    /// Sends `signal` (`"STOP"`, `"CONT"`, …) to the running process.
    pub fn signal(&self, signal: &str) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
        }
    }

    /// If the process exited on its own, reaps it and starts it again (as an orchestrator
    /// restarts a container that exited); true if it did.
    pub fn restart_if_exited(&mut self) -> bool {
        let exited = self.exited();
        if exited {
            self.child = None;
            self.restart();
        }
        exited
    }

    /// True once the process has exited on its own (not after [`Service::kill`]).
    pub fn exited(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    /// True while the process has not exited on its own.
    pub fn alive(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| c.try_wait().ok().flatten().is_none())
    }

    /// SIGTERM and wait; true if it exited cleanly.
    pub fn stop(mut self) -> bool {
        let Some(mut child) = self.child.take() else { return false };
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        child.wait().is_ok_and(|s| s.success())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `(VmRSS, VmHWM)` of `pid` in KiB, from `/proc`.
pub fn rss_of(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Any child process, killed (and reaped) when the test ends, however it ends.
#[derive(Debug)]
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits up to `timeout` for `child` to exit by itself (killing it after that); its exit
/// status (`None`: it did not exit in time) and what it wrote to a piped stderr.
pub fn exit_within(mut child: Child, timeout: std::time::Duration) -> (Option<std::process::ExitStatus>, String) {
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("child status") {
            break Some(status);
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    (status, stderr)
}
