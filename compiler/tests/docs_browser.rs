//! The generated docs in a real browser: headless Chromium (Debian's `chromium`, which
//! `scripts/setup-test-deps.sh` installs) loads the index and an API page from `file://`, and the
//! test asserts on the DOM it rendered: every channel's gateway URL and every message name are
//! there, every sidebar link has its target, and nothing was fetched or scripted. It also takes a
//! phone-sized and a desktop-sized screenshot, to make sure both lay out without error.
//!
//! Without Chromium the test is skipped, except under CI (`CI` set), where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use portico_compiler::docs::{self, Options, Templates};
use portico_compiler::{compile, Options as CompileOptions};

fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("PORTICO_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Runs headless Chromium on `url` with `extra` flags and a fresh profile; returns its stdout.
fn run_chromium(binary: &Path, url: &str, extra: &[String]) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let mut command = Command::new(binary);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-quic",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("chromium starts");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        match child.try_wait().expect("wait for chromium") {
            Some(_) => break,
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chromium did not finish within 90 s on {url}");
            }
            None => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    reader.join().expect("reader thread")
}

/// The DOM's text with tags removed (URLs carry `<wbr>` line-break hints) and the entities the
/// serializer writes decoded.
fn text_of(dom: &str) -> String {
    let mut out = String::with_capacity(dom.len());
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

#[test]
fn chromium_renders_the_index_and_an_api_page_from_file_urls() {
    let Some(binary) = chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing: scripts/setup-test-deps.sh installs it"
        );
        eprintln!("skipped: chromium is not installed (scripts/setup-test-deps.sh installs it)");
        return;
    };
    let input = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/docs/input");
    let out = compile(&[input], &CompileOptions::default());
    let plan = out.plan.clone().expect("the golden inputs compile");
    // Published on both schemes, on different ports (the plain and the TLS listener).
    let options = Options {
        public_urls: docs::PublicUrls::parse(&["ws://localhost:9099", "wss://localhost:8099"])
            .unwrap(),
        ..Options::default()
    };
    let pages = docs::render_compilation(&out, &options, &Templates::builtin()).expect("renders");
    let site = tempfile::tempdir().expect("site dir");
    for page in &pages {
        std::fs::write(site.path().join(&page.path), &page.content).unwrap();
    }
    let url_of = |name: &str| format!("file://{}", site.path().join(name).display());

    // The index: every API, with a working link to its page.
    let dom = run_chromium(&binary, &url_of("index.html"), &["--dump-dom".into()]);
    assert!(
        dom.contains("</html>"),
        "no DOM dumped for the index:\n{dom}"
    );
    let text = text_of(&dom);
    for api in &plan.apis {
        let html = format!("{}-{}.html", api.name, api.version);
        assert!(
            dom.contains(&format!("href=\"{html}\"")),
            "index lacks a link to {html}"
        );
        assert!(text.contains(&api.title), "index lacks {}", api.title);
    }
    assert!(
        text.contains("Deprecated"),
        "the index must show the lifecycle"
    );

    // Each API page: every channel's gateway URL (ws and wss) and every message name.
    for api in &plan.apis {
        let name = format!("{}-{}.html", api.name, api.version);
        let dom = run_chromium(&binary, &url_of(&name), &["--dump-dom".into()]);
        assert!(dom.contains("</html>"), "no DOM dumped for {name}");
        let text = text_of(&dom);
        for route in &api.routes {
            for base in ["ws://localhost:9099", "wss://localhost:8099"] {
                let url = format!("{base}{}", route.pattern);
                assert!(text.contains(&url), "{name}: the DOM lacks {url}");
            }
            for message in route
                .messages
                .client_to_server
                .iter()
                .chain(&route.messages.server_to_client)
            {
                assert!(
                    text.contains(&message.name),
                    "{name}: the DOM lacks message {}",
                    message.name
                );
                let anchor = format!("id=\"message-{}\"", message.name.to_ascii_lowercase());
                assert!(dom.contains(&anchor), "{name}: no {anchor}");
            }
        }
        assert!(
            text.contains(&plan.hash),
            "{name}: the footer lacks the plan hash"
        );
        // Every sidebar link points at an element of the page.
        let sidebar = &dom[dom.find("class=\"sidebar\"").expect("a sidebar")..];
        let sidebar = &sidebar[..sidebar.find("</nav>").expect("the sidebar ends")];
        let mut links = 0;
        for part in sidebar.split("href=\"#").skip(1) {
            let target = &part[..part.find('"').unwrap()];
            if target != "top" {
                assert!(
                    dom.contains(&format!("id=\"{target}\"")),
                    "{name}: sidebar link #{target} has no target"
                );
            }
            links += 1;
        }
        assert!(
            links >= api.routes.len() + 3,
            "{name}: only {links} sidebar links"
        );
        assert!(!dom.contains("<script"), "{name}: the page has a script");
    }

    // Screenshots at phone and desktop sizes: both render (a human looked at them too).
    let api_page = url_of(&format!(
        "{}-{}.html",
        plan.apis[0].name, plan.apis[0].version
    ));
    for size in ["390,844", "1366,900"] {
        let png = site
            .path()
            .join(format!("shot-{}.png", size.replace(',', "x")));
        run_chromium(
            &binary,
            &api_page,
            &[
                format!("--screenshot={}", png.display()),
                format!("--window-size={size}"),
            ],
        );
        let bytes = std::fs::read(&png).unwrap_or_default();
        assert!(
            bytes.len() > 10_000 && bytes.starts_with(b"\x89PNG"),
            "no screenshot at {size} ({} bytes)",
            bytes.len()
        );
    }
}
