//! A real headless browser for the status page's tests: Debian's `chromium`, driven through
//! `chromedriver` (WebDriver over HTTP, loopback only). Credentials are sent as an
//! `Authorization` header on every request the page makes (set through the DevTools
//! protocol), as a browser does once its user answered the Basic prompt.

use super::{basic, free_port};
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Longest the driver may take to start, and any WebDriver command to answer.
const DRIVER_DEADLINE: Duration = Duration::from_secs(30);

/// One browser session with its driver process; both end on drop.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
}

impl Browser {
    /// A headless chromium acting as `user` (the tests' `user:secret` credentials).
    pub async fn start(user: &str) -> Self {
        let port = free_port();
        let driver = Command::new(find(
            "chromedriver",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        ))
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts (the test command installs chromium-driver)");
        let http = reqwest::Client::builder()
            .timeout(DRIVER_DEADLINE)
            .build()
            .expect("client");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + DRIVER_DEADLINE;
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut browser = Self {
            driver,
            http,
            session: base,
        };
        let chromium = find("chromium", &["/usr/bin/chromium", "/usr/bin/chromium-browser"]);
        let created = browser
            .command(
                "POST",
                "session",
                json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
                    "binary": chromium,
                    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--no-first-run", "--disable-extensions", "--window-size=1280,900"]
                }}}}),
            )
            .await;
        let id = created["sessionId"].as_str().expect("a session id").to_string();
        browser.session = format!("{}/session/{id}", browser.session);
        browser.devtools("Network.enable", json!({})).await;
        browser
            .devtools(
                "Network.setExtraHTTPHeaders",
                json!({"headers": {"Authorization": basic(user)}}),
            )
            .await;
        browser
    }

    async fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}/{path}", self.session);
        let request = match method {
            "POST" => self
                .http
                .post(&url)
                .header("Content-Type", "application/json")
                .body(body.to_string()),
            "DELETE" => self.http.delete(&url),
            _ => self.http.get(&url),
        };
        let response = request.send().await.expect("the WebDriver command is answered");
        let status = response.status();
        let answer: Value =
            serde_json::from_slice(&response.bytes().await.expect("the answer")).expect("WebDriver answers JSON");
        assert!(status.is_success(), "WebDriver {method} {path}: {status} {answer}");
        answer["value"].clone()
    }

    async fn devtools(&self, cmd: &str, params: Value) -> Value {
        self.command("POST", "goog/cdp/execute", json!({"cmd": cmd, "params": params}))
            .await
    }

    /// Opens `url` and waits until it has loaded.
    pub async fn open(&self, url: &str) {
        self.command("POST", "url", json!({"url": url})).await;
    }

    /// The value of the JavaScript function body `script` run in the page.
    pub async fn eval(&self, script: &str) -> Value {
        self.command("POST", "execute/sync", json!({"script": script, "args": []}))
            .await
    }

    /// Waits until `script` returns `wanted`; panics with `what` and the last value after
    /// `timeout`.
    pub async fn wait_for(&self, what: &str, script: &str, wanted: Value, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(script).await;
            if value == wanted {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: the page says {value}, not {wanted}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Ending the session closes the browser and its helper processes; then the driver,
        // by the pid this test started. Plain blocking HTTP: drop cannot await.
        if let Some(rest) = self.session.strip_prefix("http://") {
            if let Some((address, path)) = rest.split_once('/') {
                end_session(address, path);
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Sends `DELETE /{path}` to the driver at `address`, waiting a bounded time for its answer.
fn end_session(address: &str, path: &str) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(address) else {
        return;
    };
    let _ = stream.set_read_timeout(Some(DRIVER_DEADLINE));
    let request =
        format!("DELETE /{path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    // The answer comes once the browser is closed; its first bytes are enough (the driver
    // may keep the connection open).
    if stream.write_all(request.as_bytes()).is_ok() {
        let _ = stream.read(&mut [0u8; 1024]);
    }
}

/// The first of `paths` that exists, else `name` for the PATH to resolve.
fn find(name: &str, paths: &[&str]) -> String {
    paths
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map_or_else(|| name.to_string(), |p| p.to_string())
}
