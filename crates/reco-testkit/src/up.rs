//! `reco up` as a child process on free ports, for tests that drive the whole platform.

use std::{
    io::{BufRead, BufReader},
    path::Path,
    process::{Child, Command, ExitStatus, Stdio},
};

use crate::free_port;

/// A running `reco up` (embedded broker in memory). Killed on drop if not stopped.
#[derive(Debug)]
pub struct RecoUp {
    child: Option<Child>,
    pub http_port: u16,
    pub broker_port: u16,
}

impl RecoUp {
    /// Starts `bin up` with its lake in `lake`, extra environment `env`, and waits for its
    /// ready line.
    pub fn start(bin: &str, lake: &Path, env: &[(&str, &str)]) -> RecoUp {
        let (http_port, broker_port) = (free_port(), free_port());
        let mut child = Command::new(bin)
            .arg("up")
            .env("RECO_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
            .env("RECO_BROKER_ADDR", format!("127.0.0.1:{broker_port}"))
            .env("RECO_BROKER_STORAGE", "memory")
            .env("LAKEHOUSE_PATH", lake)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn reco up");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        lines.by_ref().map_while(Result::ok).find(|l| l.starts_with("reco up: ready")).expect("reco up's ready line");
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        RecoUp { child: Some(child), http_port, broker_port }
    }

    /// Process id of the running `reco up`.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `host:port` of the API.
    pub fn api(&self) -> String {
        format!("127.0.0.1:{}", self.http_port)
    }

    /// `host:port` of the embedded broker.
    pub fn broker(&self) -> String {
        format!("127.0.0.1:{}", self.broker_port)
    }

    /// SIGKILL (no shutdown of any kind), then waits for the exit.
    pub fn kill(mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM, then waits for the exit.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
        child.wait().expect("wait")
    }
}

impl Drop for RecoUp {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
