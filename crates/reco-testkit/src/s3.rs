//! A real S3-compatible server on loopback for the object-storage tests: moto's server
//! (`moto[server]` from PyPI, installed into the test venv by `make test`), a separate process
//! speaking the S3 REST protocol, including conditional writes (`If-None-Match: *` answered
//! 412 when the key exists; checked by [`S3Server::start`] before any test relies on it).

use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::free_port;

/// A running moto server with one bucket. Killed on drop.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
}

/// A program of the test venv that `make test` installs (`$RECO_VENV`, default
/// `~/.cache/reco-venv`): `python`, `moto_server`.
pub fn venv_bin(name: &str) -> String {
    let venv = std::env::var("RECO_VENV")
        .unwrap_or_else(|_| format!("{}/.cache/reco-venv", std::env::var("HOME").unwrap_or_default()));
    format!("{venv}/bin/{name}")
}

impl S3Server {
    /// Starts the server on a free port and creates the bucket `reco`.
    pub async fn start() -> S3Server {
        let port = free_port();
        let bin = venv_bin("moto_server");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin} (run `make test`, which installs moto[server]): {e}"));
        let server = S3Server { child, endpoint: format!("http://127.0.0.1:{port}"), bucket: "reco".into() };
        let addr = format!("127.0.0.1:{port}");
        let started = Instant::now();
        while crate::http::request(&addr, "PUT", "/reco", None).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(30), "moto server did not start on {addr}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server.check_conditional_put().await;
        server
    }

    /// The lake URL of `prefix` in the bucket.
    pub fn lake_url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// The environment a `reco` child process needs for this server: the standard AWS
    /// variables, as users set them.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ENDPOINT_URL".into(), self.endpoint.clone()),
            ("AWS_ALLOW_HTTP".into(), "true".into()),
        ]
    }

    /// The same settings as storage options, for a [`reco_lake::Lake`] opened in a test.
    pub fn options(&self) -> HashMap<String, String> {
        self.env().into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect()
    }

    /// Opens the lake at `prefix` in the bucket.
    pub fn lake(&self, prefix: &str) -> reco_lake::Lake {
        reco_lake::Lake::open_with(&self.lake_url(prefix), reco_lake::Format::Delta, self.options())
            .expect("open the S3 lake")
    }

    /// Delta commits on S3 are only safe if the store refuses a second create of one key.
    async fn check_conditional_put(&self) {
        let lake = self.lake("_conditional_put_check");
        let key = "probe";
        assert!(lake.put_object(key, "a".into(), true).await.expect("first create"), "first create-only put");
        let second = lake.put_object(key, "b".into(), true).await.expect("second create");
        assert!(!second, "the S3 server must refuse a second create-only put (412); Delta commits rely on it");
        let kept = lake.get_object(key).await.expect("read back").expect("object exists");
        assert_eq!(&kept[..], b"a", "the refused put must not overwrite");
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
