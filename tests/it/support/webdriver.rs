//! A small W3C WebDriver client over reqwest, enough to drive Debian's Chromium through
//! chromedriver in the console's browser tests: a session, navigation, elements by CSS, clicks,
//! typing, text, scripts, screenshots, and waits on a condition (never fixed sleeps).

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};

use super::docs_page::{free_port, kill};
use super::service::unique_dir;

/// The element reference key of the W3C protocol.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Where Debian installs the browser and its driver.
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver process with one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    http: reqwest::Client,
    session: String,
    base: String,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session at 1280×800, with a
    /// fresh profile and no background networking (the test machine has no network). Panics
    /// with what to install when Chromium or chromedriver is missing: the browser tests must
    /// never pass by skipping.
    pub async fn start() -> Browser {
        for tool in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(tool).exists(),
                "{tool} is missing: the console's browser tests need Debian's `chromium` and \
                 `chromium-driver` packages (test.sh installs them with apt-get when it can)"
            );
        }
        let port = free_port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let profile = unique_dir("chromium-profile");
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        }}});
        // chromedriver takes a moment to listen: retry the session until it answers.
        let deadline = Instant::now() + Duration::from_secs(60);
        let session = loop {
            match http.post(format!("{base}/session")).json(&capabilities).send().await {
                Ok(response) => {
                    let body: Value = response.json().await.unwrap();
                    let id = body["value"]["sessionId"].as_str();
                    break id.unwrap_or_else(|| panic!("no session: {body}")).to_owned();
                }
                Err(error) if Instant::now() < deadline => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(error) => panic!("chromedriver never answered: {error}"),
            }
        };
        Browser { driver, http, session, base, profile }
    }

    async fn command(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("chromedriver answers");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "WebDriver {path}: {status} {body}");
        body["value"].clone()
    }

    /// Opens `url`.
    pub async fn goto(&self, url: &str) {
        self.command(reqwest::Method::POST, "/url", Some(json!({ "url": url }))).await;
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub async fn script(&self, script: &str, args: Vec<Value>) -> Value {
        let body = json!({ "script": script, "args": args });
        self.command(reqwest::Method::POST, "/execute/sync", Some(body)).await
    }

    /// The first element matching `css`, if any.
    pub async fn find(&self, css: &str) -> Option<Element<'_>> {
        let body = json!({ "using": "css selector", "value": css });
        let found = self.command(reqwest::Method::POST, "/elements", Some(body)).await;
        let id = found.as_array()?.first()?[ELEMENT_KEY].as_str()?.to_owned();
        Some(Element { browser: self, id })
    }

    /// The first element matching `css` once there is one; panics after `limit`.
    pub async fn wait_for(&self, css: &str, limit: Duration) -> Element<'_> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(element) = self.find(css).await {
                return element;
            }
            assert!(Instant::now() < deadline, "no element {css:?} within {limit:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the first element matching `css` once `done` holds for it; panics after
    /// `limit` with the last text seen. `between` runs before each new look (e.g. to mine a
    /// block), so chain progress can be driven while the page is watched.
    pub async fn wait_text<F, Fut>(
        &self,
        css: &str,
        limit: Duration,
        done: impl Fn(&str) -> bool,
        between: F,
    ) -> String
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        let deadline = Instant::now() + limit;
        let mut last = String::new();
        loop {
            if let Some(element) = self.find(css).await {
                // The element may be replaced by a re-render between finding and reading it.
                if let Some(text) = element.try_text().await {
                    if done(&text) {
                        return text;
                    }
                    last = text;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{css:?} never matched within {limit:?}; last: {last:?}"
            );
            between().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Resizes the window (CSS pixels).
    pub async fn resize(&self, width: u32, height: u32) {
        let body = json!({ "width": width, "height": height });
        self.command(reqwest::Method::POST, "/window/rect", Some(body)).await;
    }

    /// Saves a PNG of the viewport at `path`.
    pub async fn screenshot(&self, path: &Path) {
        let png = self.command(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().expect("base64 PNG"))
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own process group, Chromium's processes included: end them all.
        kill("KILL", self.driver.id(), true);
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One element of the page.
pub struct Element<'a> {
    browser: &'a Browser,
    id: String,
}

impl Element<'_> {
    /// Clicks it.
    pub async fn click(&self) {
        let path = format!("/element/{}/click", self.id);
        self.browser.command(reqwest::Method::POST, &path, Some(json!({}))).await;
    }

    /// Types `text` into it.
    pub async fn send_keys(&self, text: &str) {
        let path = format!("/element/{}/value", self.id);
        self.browser.command(reqwest::Method::POST, &path, Some(json!({ "text": text }))).await;
    }

    /// Empties an input or text area.
    pub async fn clear(&self) {
        let path = format!("/element/{}/clear", self.id);
        self.browser.command(reqwest::Method::POST, &path, Some(json!({}))).await;
    }

    /// Its rendered text.
    pub async fn text(&self) -> String {
        self.try_text().await.expect("the element is still in the page")
    }

    /// Its rendered text; `None` when it left the page.
    async fn try_text(&self) -> Option<String> {
        let url = format!(
            "{}/session/{}/element/{}/text",
            self.browser.base, self.browser.session, self.id
        );
        let response = self.browser.http.get(url).send().await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body: Value = response.json().await.ok()?;
        body["value"].as_str().map(str::to_owned)
    }
}
