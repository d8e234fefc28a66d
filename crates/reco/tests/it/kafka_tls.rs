//! Kafka over TLS, end to end: the embedded broker behind a TLS-terminating proxy (stunnel,
//! installed by `make test`) with a CA made for the test; `reco topics init`, `reco serve` and
//! `reco silver` connect with `KAFKA_SECURITY_PROTOCOL=SSL` and the CA, and events flow into
//! silver. A service trusting another CA stops at start with librdkafka's verification error;
//! a CA file that does not exist is refused at start naming its variable. SASL: the embedded broker
//! cannot authenticate it, so the test checks the settings reach librdkafka (its config dump)
//! and the password does not.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::Duration,
};

use reco_lake::{Format, Lake, TopicTables, read};
use reco_testkit::{
    free_port, http,
    proc::{Killed, exit_within},
    wait_until,
};
use serde_json::json;

const BIN: &str = env!("CARGO_BIN_EXE_reco");

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl (run `make test`)");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA named `name` in `dir` (`<name>.pem`, `<name>.key`).
fn ca(dir: &Path, name: &str) -> PathBuf {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let subject = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &pem, "-days", "2", "-subj",
            &subject,
        ],
    );
    dir.join(pem)
}

/// A server certificate for 127.0.0.1 signed by CA `ca` (`server.pem`, `server.key`).
fn server_cert(dir: &Path, ca: &str) {
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
}

/// stunnel accepting TLS on `tls_port` for the plaintext broker on `broker_port`.
fn stunnel(dir: &Path, tls_port: u16, broker_port: u16) -> Killed {
    let config = format!(
        "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls_port}\nconnect = 127.0.0.1:{broker_port}\ncert = {}\nkey = {}\n",
        dir.join("server.pem").display(),
        dir.join("server.key").display()
    );
    std::fs::write(dir.join("stunnel.conf"), config).unwrap();
    let binary = if Command::new("stunnel4").arg("-version").output().is_ok() { "stunnel4" } else { "stunnel" };
    let child = Command::new(binary)
        .arg(dir.join("stunnel.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("stunnel (run `make test`, which installs it)");
    Killed(child)
}

fn tls_env(bootstrap: &str, ca: &Path) -> Vec<(String, String)> {
    vec![
        ("KAFKA_BOOTSTRAP_SERVERS".into(), bootstrap.into()),
        ("KAFKA_SECURITY_PROTOCOL".into(), "SSL".into()),
        ("KAFKA_SSL_CA_LOCATION".into(), ca.display().to_string()),
    ]
}

fn reco(args: &[&str], env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args).envs(env.iter().map(|(k, v)| (k, v))).env("RUST_LOG", "warn");
    cmd
}

fn output(mut cmd: Command) -> (Output, String) {
    let out = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out, text)
}

#[tokio::test(flavor = "multi_thread")]
async fn events_flow_over_tls_and_a_wrong_ca_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path();
    let good_ca = ca(certs, "reco-test-ca");
    let wrong_ca = ca(certs, "other-ca");
    server_cert(certs, "reco-test-ca");
    let (broker_port, tls_port) = (free_port(), free_port());
    let _proxy = stunnel(certs, tls_port, broker_port);
    let tls = format!("127.0.0.1:{tls_port}");
    let lake_dir = dir.path().join("lake");

    // The broker tells clients to come back through the proxy.
    let _broker = Killed(
        reco(&["broker"], &[])
            .env("RECO_BROKER_ADDR", format!("127.0.0.1:{broker_port}"))
            .env("RECO_BROKER_ADVERTISED_ADDR", &tls)
            .env("RECO_BROKER_STORAGE", "memory")
            .env("LAKEHOUSE_PATH", &lake_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let env = tls_env(&tls, &good_ca);
    let topics_ready = wait_until(Duration::from_secs(60), || async {
        let (out, _) = output(reco(&["topics", "init"], &env));
        out.status.success()
    })
    .await;
    assert!(topics_ready, "topics set up over TLS: {}", output(reco(&["topics", "init"], &env)).1);

    // A client trusting another CA: `reco status` reports the broker down, and a service stops
    // at start with librdkafka's reason and the settings to check (not retrying forever).
    let (out, text) = output(reco(&["status"], &tls_env(&tls, &wrong_ca)));
    assert_eq!(out.status.code(), Some(2), "status against a broker it cannot verify is down:\n{text}");
    let silver = reco(&["silver", "--metrics-addr", "127.0.0.1:0"], &tls_env(&tls, &wrong_ca))
        .env("LAKEHOUSE_PATH", &lake_dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (status, text) = exit_within(silver, Duration::from_secs(60));
    assert!(status.is_some_and(|s| !s.success()), "silver stops at start:\n{text}");
    assert!(
        text.contains("certificate verify failed") && text.contains("KAFKA_SSL_CA_LOCATION"),
        "the error says why and what to check:\n{text}"
    );
    // A CA file that does not exist: refused at start, naming the setting.
    let (out, text) =
        output(reco(&["silver", "--metrics-addr", "127.0.0.1:0"], &tls_env(&tls, &certs.join("nope.pem"))));
    assert!(!out.status.success() && text.contains("KAFKA_SSL_CA_LOCATION"), "refused at start:\n{text}");

    let http_addr = format!("127.0.0.1:{}", free_port());
    let _serve = Killed(
        reco(&["serve"], &env)
            .env("LAKEHOUSE_PATH", &lake_dir)
            .env("RECO_HTTP_ADDR", &http_addr)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let _silver = Killed(
        reco(&["silver", "--metrics-addr", "127.0.0.1:0", "--max-batch-age-ms", "300"], &env)
            .env("LAKEHOUSE_PATH", &lake_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let ready = wait_until(Duration::from_secs(60), || async {
        http::get(&http_addr, "/health/ready").await.is_ok_and(|r| r.status == 200)
    })
    .await;
    assert!(ready, "reco serve ready over TLS");
    let events: Vec<_> =
        (0..50).map(|i| json!({"type": "view", "user_id": format!("u{i}"), "item_id": "m1"})).collect();
    let response = http::post_json(&http_addr, "/events", &json!(events)).await.unwrap();
    assert_eq!(response.status, 202, "{}", response.text());
    let ids: Vec<String> =
        response.json()["event_ids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect();

    let lake = Lake::new(&lake_dir, Format::Delta).unwrap();
    let landed = wait_until(Duration::from_secs(60), || async {
        let Ok(mut tables) = TopicTables::open(&lake, "events_views", false).await else { return false };
        let rows = read::read_silver(&tables.silver_files().await.unwrap()).unwrap();
        let mut got: Vec<String> = rows.into_iter().map(|r| r.event_id).collect();
        got.sort();
        let mut want = ids.clone();
        want.sort();
        got == want
    })
    .await;
    assert!(landed, "every acknowledged event is in silver, once");
}

#[test]
fn sasl_settings_reach_librdkafka_and_the_password_does_not_show() {
    let password = "pw-that-must-not-show-7f3a";
    let lake = tempfile::tempdir().unwrap();
    let env: Vec<(String, String)> = vec![
        ("KAFKA_BOOTSTRAP_SERVERS".into(), format!("127.0.0.1:{}", free_port())),
        ("KAFKA_SECURITY_PROTOCOL".into(), "SASL_PLAINTEXT".into()),
        ("KAFKA_SASL_MECHANISM".into(), "SCRAM-SHA-256".into()),
        ("KAFKA_SASL_USERNAME".into(), "reco-user".into()),
        ("KAFKA_SASL_PASSWORD".into(), password.into()),
        ("RECO_KAFKA_DEBUG".into(), "conf".into()),
        ("LAKEHOUSE_PATH".into(), lake.path().display().to_string()),
    ];
    // librdkafka dumps its configuration (debug `conf`) when the client is created; a service
    // delivers its log lines as it polls.
    let mut silver = reco(&["silver", "--metrics-addr", "127.0.0.1:0"], &env)
        .env("RUST_LOG", "warn,librdkafka=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = silver.stderr.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    // librdkafka shows the credentials as set but redacted, username too.
    let expected = [
        "security.protocol = sasl_plaintext",
        "sasl.mechanisms = SCRAM-SHA-256",
        "sasl.username = [redacted]",
        "sasl.password = [redacted]",
    ];
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while !expected.iter().all(|e| seen.contains(e)) && std::time::Instant::now() < deadline {
        if let Ok(line) = received.recv_timeout(Duration::from_millis(500)) {
            seen.push_str(&line);
            seen.push('\n');
        }
    }
    let _ = silver.kill();
    let _ = silver.wait();
    while let Ok(line) = received.try_recv() {
        seen.push_str(&line);
    }
    for e in expected {
        assert!(seen.contains(e), "librdkafka's config dump shows {e:?}:\n{seen}");
    }
    assert!(!seen.contains(password), "the password appears nowhere in the log");
    let help = output(reco(&["silver", "--help"], &env)).1;
    assert!(!help.contains(password) && help.contains("KAFKA_SASL_PASSWORD"), "--help hides it too");
}
