//! Headless Chromium, driven over WebDriver (chromedriver + fantoccini), for the tests
//! that must see the pages as a person's browser does.
//!
//! The browser comes from Debian's `chromium` and `chromium-driver` packages, which
//! `.ci/run` installs; `RESETDESK_TEST_CHROMEDRIVER` names the driver (default
//! `/usr/bin/chromedriver`). Where the driver is missing the browser tests say so and
//! pass, unless `RESETDESK_TEST_BROWSER_REQUIRED` is set, as `.ci/run` sets it: there a
//! missing browser fails the run instead of hiding it.
//!
//! Every page a test visits is screenshotted under
//! `target/tmp/browser/<test>/<nn>-<name>.png`, and [`Page::check`] fails the test on any
//! error in the page's console and on any accessibility violation axe-core finds
//! (`RESETDESK_TEST_AXE`: the path of `axe.min.js`, which `.ci/run` installs from npm).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, KeyAction, KeyActions};
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// A viewport the pages are checked in.
#[derive(Debug, Clone, Copy)]
pub enum Viewport {
    /// A laptop's window.
    Desktop,
    /// A phone in a plant room: 390 × 844 CSS pixels, touch, a phone's user agent.
    Phone,
    /// An agent's laptop, exactly: a 1280 × 800 CSS pixel viewport, as issue 19 measures
    /// the console's first screen (a window's size leaves the viewport to the browser).
    Console,
    /// The narrowest phone a page must fit: 320 × 568 CSS pixels.
    SmallPhone,
}

impl Viewport {
    pub fn name(self) -> &'static str {
        match self {
            Self::Desktop => "desktop",
            Self::Phone => "phone",
            Self::Console => "console",
            Self::SmallPhone => "small-phone",
        }
    }
}

/// A running chromedriver; killed when dropped.
pub struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    /// Starts chromedriver on a free loopback port, or `None` (with a note) where this
    /// machine has no browser and none is required.
    pub fn start() -> Option<Self> {
        let path = std::env::var("RESETDESK_TEST_CHROMEDRIVER")
            .unwrap_or_else(|_| "/usr/bin/chromedriver".to_owned());
        if !std::path::Path::new(&path).exists() {
            assert!(
                std::env::var_os("RESETDESK_TEST_BROWSER_REQUIRED").is_none(),
                "no chromedriver at {path}: install Debian's chromium and chromium-driver"
            );
            eprintln!("skipped: no chromedriver at {path} (see tests/it/browser.rs)");
            return None;
        }
        let port = crate::support::free_port();
        let child = Command::new(&path)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {path}: {e}"));
        let driver = Self { child, port };
        crate::support::wait_for_listener(port, "chromedriver");
        Some(driver)
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A fresh browser (its own profile, no cookies) in `viewport`, whose screenshots go
    /// to a folder named after `test`.
    pub async fn open(&self, test: &str, viewport: Viewport) -> Page {
        let profile = tempfile::tempdir().unwrap();
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            // This machine reaches no network: keep Chromium from trying.
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--lang=en-US".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        // Files the page saves land here, without a dialog.
        let downloads = profile.path().join("downloads");
        let mut chrome = json!({
            "binary": chromium_binary(),
            "prefs": {
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
            },
        });
        match viewport {
            Viewport::Desktop => args.push("--window-size=1280,900".to_owned()),
            Viewport::Phone => {
                chrome["mobileEmulation"] = json!({
                    "deviceMetrics": { "width": 390, "height": 844, "pixelRatio": 2.0, "touch": true, "mobile": true },
                    "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36",
                });
            }
            Viewport::Console => {
                chrome["mobileEmulation"] = json!({
                    "deviceMetrics": { "width": 1280, "height": 800, "pixelRatio": 1.0, "touch": false, "mobile": false },
                });
            }
            Viewport::SmallPhone => {
                chrome["mobileEmulation"] = json!({
                    "deviceMetrics": { "width": 320, "height": 568, "pixelRatio": 2.0, "touch": true, "mobile": true },
                    "userAgent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0 Mobile Safari/537.36",
                });
            }
        }
        chrome["args"] = json!(args);
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": chrome,
            // The page's console, read back by `Page::check`.
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let client = ClientBuilder::rustls()
            .unwrap()
            .capabilities(capabilities)
            .connect(&self.url())
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session: {e}"));
        let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("browser")
            .join(format!("{test}-{}", viewport.name()));
        let _ = std::fs::remove_dir_all(&shots);
        std::fs::create_dir_all(&shots).unwrap();
        Page {
            client,
            downloads,
            driver_url: self.url(),
            shots,
            shot: AtomicUsize::new(0),
            _profile: profile,
        }
    }
}

fn chromium_binary() -> String {
    std::env::var("RESETDESK_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned())
}

/// One browser window.
pub struct Page {
    pub client: Client,
    /// Where the files the page saves (downloads) land.
    pub downloads: PathBuf,
    driver_url: String,
    shots: PathBuf,
    shot: AtomicUsize,
    _profile: tempfile::TempDir,
}

impl Page {
    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap();
    }

    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!("no {css} on {}: {e}", self.url().await),
        }
    }

    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        self.find(css).await.send_keys(text).await.unwrap();
    }

    pub async fn choose(&self, css: &str, value: &str) {
        self.find(css).await.select_by_value(value).await.unwrap();
    }

    /// Gives a file input a file, as choosing it in the file dialog does.
    pub async fn attach(&self, css: &str, path: &std::path::Path) {
        self.find(css)
            .await
            .send_keys(&path.display().to_string())
            .await
            .unwrap();
    }

    /// Clicks and waits for the page the click leads to. The element is first scrolled
    /// to the middle of the window, as a person scrolls to what they tap: at the window's
    /// very edge, where WebDriver's own scrolling leaves it, a phone's emulated tap can
    /// miss it.
    pub async fn click_and_wait(&self, css: &str) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        let target = self.find(css).await;
        self.client
            .execute(
                "arguments[0].scrollIntoView({block: 'center', inline: 'nearest'});",
                vec![serde_json::to_value(&target).unwrap()],
            )
            .await
            .unwrap();
        target.click().await.unwrap();
        self.wait_for_new_page(old, &format!("clicking {css}"))
            .await;
    }

    /// Presses `key` (a character, or `char::from(Key::Enter)`) and waits for the page
    /// it leads to.
    pub async fn press_and_wait(&self, key: char) {
        let old = self.client.find(Locator::Css("html")).await.unwrap();
        self.press_char(key).await;
        self.wait_for_new_page(old, &format!("pressing {key:?}"))
            .await;
    }

    async fn wait_for_new_page(&self, old: fantoccini::elements::Element, what: &str) {
        let before = self.url().await;
        let deadline = Instant::now() + Duration::from_secs(30);
        // The old document's root goes stale once the new page has replaced it.
        while old.tag_name().await.is_ok() {
            assert!(Instant::now() < deadline, "{what} on {before} led nowhere");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.find("body").await;
    }

    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_default()
    }

    pub async fn title(&self) -> String {
        self.client.title().await.unwrap()
    }

    /// Saves a screenshot of the window as `<nn>-<name>.png`; returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let n = self.shot.fetch_add(1, Ordering::Relaxed);
        let path = self.shots.join(format!("{n:02}-{name}.png"));
        let png = self.client.screenshot().await.unwrap();
        std::fs::write(&path, png).unwrap();
        path
    }

    /// What the page wrote to its console since the last call (chromedriver's log).
    pub async fn console(&self) -> Vec<(String, String)> {
        let session = self.client.session_id().await.unwrap().unwrap();
        let entries: Value = reqwest::Client::new()
            .post(format!("{}/session/{session}/se/log", self.driver_url))
            .json(&json!({ "type": "browser" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        entries["value"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|entry| {
                (
                    entry["level"].as_str().unwrap_or_default().to_owned(),
                    entry["message"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The checks every page passes: a screenshot named `name`, no error in the
    /// console (a blocked script or style, a failed image, a script error all show
    /// there), and no accessibility violation that axe-core can find.
    pub async fn check(&self, name: &str) {
        self.check_answered(name, 200).await;
    }

    /// [`Page::check`] for a page the desk answers with `status` on purpose (a form
    /// with mistakes comes back as 422): Chromium logs that status as an error.
    pub async fn check_answered(&self, name: &str, status: u16) {
        self.screenshot(name).await;
        let expected = format!(
            "{} - Failed to load resource: the server responded with a status of {status} ",
            self.url().await
        );
        let errors: Vec<_> = self
            .console()
            .await
            .into_iter()
            .filter(|(level, _)| level == "SEVERE" || level == "WARNING")
            .filter(|(_, message)| status == 200 || !message.starts_with(&expected))
            .collect();
        assert!(
            errors.is_empty(),
            "{name} ({}): the console shows {errors:#?}",
            self.url().await
        );
        self.accessibility(name).await;
    }

    /// Fails unless the page is no wider than its viewport: anything wider scrolls inside
    /// its own box, not the whole page sideways. Measured against the root's client width,
    /// the device's on a phone: a page too wide there widens the window's own (layout)
    /// viewport with it, so `innerWidth` would grow to match.
    pub async fn no_sideways_scroll(&self, name: &str) {
        let widths = self
            .client
            .execute(
                "const width = document.documentElement.clientWidth;
                 const wide = [...document.querySelectorAll('body *')]
                   .filter(e => e.getBoundingClientRect().right > width + 1 && !e.parentElement.closest('.scroll'))
                   .slice(0, 6)
                   .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '')
                             + ' to ' + Math.round(e.getBoundingClientRect().right));
                 return [document.documentElement.scrollWidth, width, wide];",
                Vec::new(),
            )
            .await
            .unwrap();
        assert!(
            widths[0].as_f64().unwrap() <= widths[1].as_f64().unwrap(),
            "{name}: the page is {} px wide in a {} px window; too wide: {}",
            widths[0],
            widths[1],
            widths[2]
        );
    }

    /// Runs axe-core in the page (WCAG 2 A and AA rules); fails on any violation.
    pub async fn accessibility(&self, name: &str) {
        let Some(axe) = axe_script() else {
            return;
        };
        self.client.execute(&axe, Vec::new()).await.unwrap();
        let result = self
            .client
            .execute_async(
                r#"const done = arguments[arguments.length - 1];
                   axe.run(document, { runOnly: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] })
                      .then(r => done(r.violations.map(v => ({
                          id: v.id, impact: v.impact, help: v.help,
                          nodes: v.nodes.map(n => n.html.slice(0, 160)) }))))
                      .catch(e => done([{ id: "axe-error", help: String(e) }]));"#,
                Vec::new(),
            )
            .await
            .unwrap();
        let violations = result.as_array().cloned().unwrap_or_default();
        assert!(
            violations.is_empty(),
            "{name} ({}): axe-core finds {}",
            self.url().await,
            serde_json::to_string_pretty(&violations).unwrap()
        );
    }

    /// Presses Tab until the element matching `css` has focus; fails if it never does
    /// within `max` presses. Proves the element is reachable with the keyboard alone.
    pub async fn tab_to(&self, css: &str, max: usize) {
        let target = self.find(css).await;
        for _ in 0..max {
            self.press(Key::Tab).await;
            let active = self.client.active_element().await.unwrap();
            if active.element_id() == target.element_id() {
                return;
            }
        }
        panic!("{css} is not reached with {max} presses of Tab");
    }

    /// Presses Enter on whatever has focus.
    pub async fn press_enter(&self) {
        self.press(Key::Enter).await;
    }

    async fn press(&self, key: Key) {
        self.press_char(char::from(key)).await;
    }

    /// Presses one key on whatever has focus, as a person does: down, then up.
    pub async fn press_char(&self, key: char) {
        let actions = KeyActions::new("keyboard".to_owned())
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        self.client.perform_actions(actions).await.unwrap();
    }

    /// Grants the page's origin a permission a person would grant at a prompt
    /// (`clipboard-read`, `clipboard-write`), over WebDriver's permissions extension.
    pub async fn grant(&self, permission: &str) {
        let session = self.client.session_id().await.unwrap().unwrap();
        let answer = reqwest::Client::new()
            .post(format!("{}/session/{session}/permissions", self.driver_url))
            .json(&json!({ "descriptor": { "name": permission }, "state": "granted" }))
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_success(),
            "{permission}: {:?}",
            answer.text().await
        );
    }

    pub async fn close(self) {
        let _ = self.client.close().await;
    }
}

/// axe-core's script, if installed; required where the browser is.
fn axe_script() -> Option<String> {
    let path = std::env::var("RESETDESK_TEST_AXE").ok().or_else(|| {
        let home = std::env::var("HOME").ok()?;
        let default = format!("{home}/.cache/resetdesk/axe/node_modules/axe-core/axe.min.js");
        std::path::Path::new(&default).exists().then_some(default)
    });
    match path {
        Some(path) => Some(
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {path}: {e}")),
        ),
        None => {
            assert!(
                std::env::var_os("RESETDESK_TEST_BROWSER_REQUIRED").is_none(),
                "axe-core is not installed: set RESETDESK_TEST_AXE to axe.min.js"
            );
            eprintln!("accessibility not checked: no axe-core (RESETDESK_TEST_AXE)");
            None
        }
    }
}
