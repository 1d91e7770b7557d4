//! A small WebDriver (W3C) client over the tests' own HTTP client: starts `chromedriver` on a
//! free port with a headless Chromium and a fresh profile, and stops both when dropped.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::Method;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::helpers::*;

/// The key W3C WebDriver names an element reference with.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// `Some(path)` of chromedriver, or `None` when it is not installed.
pub fn chromedriver() -> Option<String> {
    ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .find(|p| std::path::Path::new(p).exists())
        .map(|p| p.to_string())
}

fn chromium() -> &'static str {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("/usr/bin/chromium")
}

pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: TempDir,
}

#[derive(Clone, Debug)]
pub struct Element(String);

/// Ends the browser session (chromedriver then closes Chromium, also when a test failed
/// half-way), then stops chromedriver. Blocking: `Drop` cannot wait for a future.
impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            use std::io::{Read, Write};
            if let Ok(mut c) =
                std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))
            {
                let _ = c.set_read_timeout(Some(Duration::from_secs(15)));
                let _ = write!(
                    c,
                    "DELETE /session/{} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    self.session, self.addr
                );
                let _ = c.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// chromedriver on a free port, and a headless Chromium session of `width`×`height`.
    pub async fn start(driver_path: &str, width: u32, height: u32) -> Browser {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let driver = Command::new(driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(r) = try_send(addr, Method::GET, "/status", &[], Vec::new().into()).await
                && r.status == 200
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let args = vec![
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            "--hide-scrollbars".into(),
            "--force-device-scale-factor=1".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", browser._profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium(), "args": args},
        }}});
        let v = browser.raw(Method::POST, "/session", Some(caps)).await;
        browser.session = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        browser
    }

    /// A WebDriver command; the `value` of its answer, or `Err` with the error's value.
    async fn command(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Value> {
        let bytes = match &body {
            Some(b) => serde_json::to_vec(b).unwrap(),
            None if method == Method::POST => b"{}".to_vec(),
            None => Vec::new(),
        };
        let r = send(
            self.addr,
            method,
            path,
            &[("content-type", "application/json")],
            bytes.into(),
        )
        .await;
        let mut v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
        let value = v["value"].take();
        if r.status == 200 {
            Ok(value)
        } else {
            Err(value)
        }
    }

    async fn raw(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.command(method, path, body)
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
            .await
    }

    pub async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    pub async fn set_size(&self, width: u32, height: u32) {
        self.cmd(
            Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        )
        .await;
    }

    /// The elements matching a CSS selector now.
    pub async fn all(&self, css: &str) -> Vec<Element> {
        let v = self
            .cmd(
                Method::POST,
                "/elements",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| Element(e[ELEMENT].as_str().unwrap().to_string()))
            .collect()
    }

    /// Runs a script (`return …`) in the page.
    pub async fn js(&self, script: &str, args: Value) -> Value {
        self.cmd(
            Method::POST,
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    /// Waits until `check` (a script returning true) holds, or fails saying `what`.
    pub async fn wait_for(&self, what: &str, script: &str, args: Value) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if self.js(script, args.clone()).await == Value::Bool(true) {
                return;
            }
            if Instant::now() > deadline {
                let alert = self.page_alert().await;
                panic!("timed out waiting for {what} (page alert: {alert})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The text of the page's `#alert` box, for failure messages.
    async fn page_alert(&self) -> Value {
        self.js(
            "const a = document.getElementById('alert'); return a ? a.textContent : ''",
            json!([]),
        )
        .await
    }

    /// `wait_for` a script that takes no arguments.
    pub async fn until(&self, what: &str, script: &str) {
        self.wait_for(what, script, json!([])).await
    }

    async fn displayed(&self, e: &Element) -> bool {
        self.cmd(Method::GET, &format!("/element/{}/displayed", e.0), None)
            .await
            == Value::Bool(true)
    }

    /// The first element matching `css` that is displayed, waiting for one.
    pub async fn visible(&self, css: &str) -> Element {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            for e in self.all(css).await {
                if self.displayed(&e).await {
                    return e;
                }
            }
            if Instant::now() > deadline {
                let alert = self.page_alert().await;
                panic!("{css} is not shown (page alert: {alert})");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn is_shown(&self, css: &str) -> bool {
        for e in self.all(css).await {
            if self.displayed(&e).await {
                return true;
            }
        }
        false
    }

    pub async fn click(&self, css: &str) {
        let e = self.visible(css).await;
        self.cmd(Method::POST, &format!("/element/{}/click", e.0), None)
            .await;
    }

    /// Clears a field and types `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        let e = self.visible(css).await;
        self.cmd(Method::POST, &format!("/element/{}/clear", e.0), None)
            .await;
        self.cmd(
            Method::POST,
            &format!("/element/{}/value", e.0),
            Some(json!({"text": text})),
        )
        .await;
    }

    /// Keys sent to the element that has the focus (WebDriver key codes: `\u{E004}` Tab,
    /// `\u{E006}` Enter, `\u{E00C}` Escape).
    pub async fn keys(&self, keys: &str) {
        let mut actions = Vec::new();
        for c in keys.chars() {
            actions.push(json!({"type": "keyDown", "value": c.to_string()}));
            actions.push(json!({"type": "keyUp", "value": c.to_string()}));
        }
        self.cmd(
            Method::POST,
            "/actions",
            Some(json!({"actions": [{"type": "key", "id": "keyboard", "actions": actions}]})),
        )
        .await;
    }

    pub async fn text(&self, css: &str) -> String {
        let e = self.visible(css).await;
        let v = self
            .cmd(Method::GET, &format!("/element/{}/text", e.0), None)
            .await;
        v.as_str().unwrap_or("").to_string()
    }

    pub async fn property(&self, css: &str, name: &str) -> Value {
        let e = self.visible(css).await;
        self.cmd(
            Method::GET,
            &format!("/element/{}/property/{name}", e.0),
            None,
        )
        .await
    }

    /// A PNG of one element as shown.
    pub async fn element_png(&self, css: &str) -> Vec<u8> {
        let e = self.visible(css).await;
        let v = self
            .cmd(Method::GET, &format!("/element/{}/screenshot", e.0), None)
            .await;
        STANDARD.decode(v.as_str().unwrap()).unwrap()
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        let v = self.cmd(Method::GET, "/screenshot", None).await;
        STANDARD.decode(v.as_str().unwrap()).unwrap()
    }

    /// The text of an open `alert()`, if one is open.
    pub async fn alert_text(&self) -> Option<String> {
        self.command(
            Method::GET,
            &format!("/session/{}/alert/text", self.session),
            None,
        )
        .await
        .ok()
        .map(|v| v.as_str().unwrap_or("").to_string())
    }

    /// Ends the session and stops chromedriver (what dropping does).
    pub async fn quit(self) {
        let _ = self
            .command(Method::DELETE, &format!("/session/{}", self.session), None)
            .await;
        let mut me = self;
        me.session.clear();
    }
}
