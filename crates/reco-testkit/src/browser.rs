//! A real browser for tests: headless Chromium driven through chromedriver's W3C WebDriver
//! protocol (JSON over HTTP), both from the Debian packages `scripts/test-deps.sh` installs.
//!
//! The handful of WebDriver commands the console test needs, over the testkit's HTTP client:
//! a client crate (fantoccini, thirtyfour) would add a TLS stack and a second HTTP client to
//! every test build for the same dozen calls.

use std::{
    process::{Child, Command, Stdio},
    time::Duration,
};

use base64::Engine;
use serde_json::{Value, json};

use crate::{free_port, http};

/// One entry of the browser's console log.
#[derive(Clone, Debug)]
pub struct LogEntry {
    pub level: String,
    pub source: String,
    pub message: String,
}

/// A chromedriver process with one headless Chromium session. Both end on drop.
#[derive(Debug)]
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a headless session `width`×`height`.
    pub async fn start(width: u32, height: u32) -> Browser {
        let port = free_port();
        let driver = Command::new(std::env::var("RECO_CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into()))
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; scripts/test-deps.sh installs it)");
        let addr = format!("127.0.0.1:{port}");
        let ready = crate::wait_until(Duration::from_secs(20), || async {
            http::get(&addr, "/status").await.is_ok_and(|r| r.json()["value"]["ready"] == true)
        });
        assert!(ready.await, "chromedriver did not become ready on {addr}");
        let mut browser = Browser { driver, addr, session: String::new() };
        let args = [
            "--headless=new".to_owned(),
            // Tests run as root in CI containers, where Chromium's sandbox cannot start.
            "--no-sandbox".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-gpu".to_owned(),
            format!("--window-size={width},{height}"),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let answer = browser.call("POST", "/session", Some(capabilities)).await;
        browser.session = answer["sessionId"].as_str().expect("a session id").to_owned();
        browser
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let body = body.map(|b| b.to_string()).or_else(|| (method == "POST").then(|| "{}".to_owned()));
        let response = http::request(&self.addr, method, path, body).await.expect("chromedriver answers");
        let value = response.json()["value"].clone();
        assert!(response.status < 300, "WebDriver {method} {path}: {} {value}", response.status);
        value
    }

    async fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body).await
    }

    /// Navigates and waits for the page's load event.
    pub async fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({"url": url}))).await;
    }

    /// Runs `script` (a function body; `arguments[i]` are `args`) in the page, returns its value.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        self.session_call("POST", "/execute/sync", Some(json!({"script": script, "args": args}))).await
    }

    /// The text of the first element matching `css`, or `None`.
    pub async fn text(&self, css: &str) -> Option<String> {
        let v = self
            .run("const e = document.querySelector(arguments[0]); return e ? e.textContent : null;", json!([css]))
            .await;
        v.as_str().map(str::to_owned)
    }

    /// The WebDriver element id of the first match of `css`.
    pub async fn find(&self, css: &str) -> String {
        let v = self.session_call("POST", "/element", Some(json!({"using": "css selector", "value": css}))).await;
        // A W3C element reference: an object whose one value is the id (its key is a constant
        // of the spec).
        let id = v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str);
        id.unwrap_or_else(|| panic!("no element matches {css}: {v}")).to_owned()
    }

    /// Clicks an element as a user would (scrolled into view, at its centre).
    pub async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.session_call("POST", &format!("/element/{id}/click"), None).await;
    }

    /// Types `text` into an element as key presses.
    pub async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.session_call("POST", &format!("/element/{id}/value"), Some(json!({"text": text}))).await;
    }

    /// The page's current URL.
    pub async fn url(&self) -> String {
        self.session_call("GET", "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    /// Console entries since the last call (chromedriver's log endpoint empties as it reads).
    pub async fn console_log(&self) -> Vec<LogEntry> {
        let v = self.session_call("POST", "/se/log", Some(json!({"type": "browser"}))).await;
        v.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| LogEntry {
                        level: e["level"].as_str().unwrap_or_default().to_owned(),
                        source: e["source"].as_str().unwrap_or_default().to_owned(),
                        message: e["message"].as_str().unwrap_or_default().to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Resizes the window (CSS pixels of the outer window).
    pub async fn resize(&self, width: u32, height: u32) {
        self.session_call("POST", "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// A PNG of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.session_call("GET", "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD.decode(v.as_str().unwrap_or_default()).expect("base64 PNG")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ends the session's Chromium with the driver: a killed driver leaves its browser behind.
        if !self.session.is_empty() {
            let (addr, session) = (self.addr.clone(), self.session.clone());
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
                if let Ok(rt) = rt {
                    let _ = rt.block_on(http::request(&addr, "DELETE", &format!("/session/{session}"), None));
                }
            })
            .join();
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
