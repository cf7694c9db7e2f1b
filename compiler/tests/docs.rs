//! The generated API docs: golden pages for an AsyncAPI 2.6 and a 3.1 document compiled together
//! (a deprecated version and its successor), escaping of everything that comes from a spec,
//! template overrides, and docs from the specs alone or from the plan alone.
//!
//! The inputs are in `tests/golden/docs/input/`, the expected pages in
//! `tests/golden/docs/expected/`. After an intended change of a template or of the docs module,
//! regenerate them with `UPDATE_GOLDEN=1 cargo test -p portico-compiler --test docs` and review the
//! diff (open the HTML in a browser too).

mod common;

use std::path::{Path, PathBuf};

use portico_compiler::docs::{self, Options, Page, Templates};
use portico_compiler::{compile, Compilation, Options as CompileOptions};

const INPUT: &str = "tests/golden/docs/input";
const EXPECTED: &str = "tests/golden/docs/expected";

/// `Portico <version>` in the footers becomes `Portico VERSION`, so a version bump does not
/// invalidate the goldens.
fn normalize(text: &str) -> String {
    text.replace(
        &format!("Portico {}", env!("CARGO_PKG_VERSION")),
        "Portico VERSION",
    )
}

fn compile_input() -> Compilation {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(
        std::env::current_dir().unwrap().canonicalize().unwrap(),
        manifest.canonicalize().unwrap(),
        "golden tests must run from the crate folder (as `cargo test` does) so paths are relative"
    );
    let out = compile(&[PathBuf::from(INPUT)], &CompileOptions::default());
    let errors: Vec<_> = out.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(
        errors.is_empty(),
        "the golden inputs must compile: {errors:?}"
    );
    assert!(out.plan.is_some());
    out
}

fn page<'a>(pages: &'a [Page], path: &str) -> &'a Page {
    pages
        .iter()
        .find(|p| p.path == path)
        .unwrap_or_else(|| panic!("no page {path}; got {:?}", paths(pages)))
}

fn paths(pages: &[Page]) -> Vec<&str> {
    pages.iter().map(|p| p.path.as_str()).collect()
}

#[test]
fn golden_pages_for_an_asyncapi_2_and_an_asyncapi_3_document() {
    let out = compile_input();
    let pages = docs::render_compilation(&out, &Options::default(), &Templates::builtin())
        .expect("the built-in templates render");
    assert_eq!(
        paths(&pages),
        [
            "index.html",
            "market-api-1.0.0.html",
            "market-api-1.0.0.md",
            "market-api-2.0.0.html",
            "market-api-2.0.0.md"
        ]
    );
    let update = std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1");
    if update {
        let _ = std::fs::remove_dir_all(EXPECTED);
        std::fs::create_dir_all(EXPECTED).unwrap();
    }
    let mut failures = Vec::new();
    for page in &pages {
        let path = Path::new(EXPECTED).join(&page.path);
        let actual = normalize(&page.content);
        if update {
            std::fs::write(&path, &actual).unwrap();
            continue;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read {} ({e}); create it with UPDATE_GOLDEN=1",
                path.display()
            )
        });
        if expected != actual {
            let first = expected
                .lines()
                .zip(actual.lines())
                .position(|(e, a)| e != a)
                .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
            failures.push(format!(
                "{} differs, first at line {}:\n  expected: {:?}\n  actual:   {:?}",
                path.display(),
                first + 1,
                expected.lines().nth(first).unwrap_or("<end>"),
                actual.lines().nth(first).unwrap_or("<end>"),
            ));
        }
    }
    // No stale expected files.
    if !update {
        for entry in std::fs::read_dir(EXPECTED).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !pages.iter().any(|p| p.path == name) {
                failures.push(format!("{EXPECTED}/{name} is not generated any more"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}\n(rerun with UPDATE_GOLDEN=1 if the change is intended)",
        failures.join("\n")
    );
}

#[test]
fn pages_say_what_the_issue_asks_for() {
    let out = compile_input();
    let plan = out.plan.as_ref().unwrap();
    let pages = docs::render_compilation(&out, &Options::default(), &Templates::builtin()).unwrap();
    let v1 = &page(&pages, "market-api-1.0.0.html").content;
    let v1_md = &page(&pages, "market-api-1.0.0.md").content;
    let v2 = &page(&pages, "market-api-2.0.0.html").content;
    let v2_md = &page(&pages, "market-api-2.0.0.md").content;
    let index = &page(&pages, "index.html").content;

    // Every page names the plan it documents.
    for p in &pages {
        assert!(
            p.content.contains(&plan.hash),
            "{} lacks the plan hash",
            p.path
        );
    }
    // Every channel's gateway URL in HTML (with line-break hints) and Markdown.
    for api in &plan.apis {
        let html = &page(&pages, &format!("{}-{}.html", api.name, api.version)).content;
        let md = &page(&pages, &format!("{}-{}.md", api.name, api.version)).content;
        for route in &api.routes {
            // The default publishes ws:// only (`the_pages_show_only_the_public_urls_given`).
            let url = format!("ws://localhost:9099{}", route.pattern);
            assert!(md.contains(&url), "{} lacks {url}", api.name);
            assert!(
                html.replace("<wbr>", "").contains(&url),
                "{} lacks {url}",
                api.name
            );
        }
    }
    // Backend endpoints are internal.
    for p in &pages {
        assert!(
            !p.content.contains("market-backend.internal"),
            "{} leaks the backend URL",
            p.path
        );
    }
    // Deprecated says so loudly, and points at the successor.
    assert!(v1.contains("class=\"banner lc-warn\""));
    assert!(v1.contains("href=\"market-api-2.0.0.html\""));
    assert!(v1_md.contains("> [!WARNING]"));
    assert!(index.contains("Deprecated"));
    // Directions in plain words; reply after its request.
    assert!(v1.contains("client sends") && v1.contains("client receives"));
    let request = v2_md.find("#### Client sends: `placeOrder`").unwrap();
    let reply = v2_md
        .find("#### Client receives: `placeOrderReply`")
        .unwrap();
    assert!(request < reply);
    // Nested payload paths, alternatives, generated examples, unused messages in the sidebar.
    assert!(v1_md.contains("`book.bids[].price`"));
    assert!(v1_md.contains("**Option 2: Market order**"));
    assert!(v1_md.contains("Example generated from the schema"));
    assert!(
        v1.contains("<li class=\"unused\"><a href=\"#message-legacyquote\">legacyQuote</a></li>")
    );
    // Security: how to pass the credential, scopes per operation.
    assert!(v1_md.contains("| header | `Authorization` | `Bearer YOUR_TOKEN` |"));
    assert!(v1_md.contains("?access_token=YOUR_TOKEN"));
    assert!(v2_md.contains("orders?apikey=YOUR_KEY"));
    // Each topic's real requirement, from the plan's route security.
    // (These specs name no `security` requirement: any configured verifier, as WSO2 exports.)
    assert!(
        v1_md.contains("**Credential required:** a JWT, as the gateway is configured (API keys carry no scopes)"),
        "{v1_md}"
    );
    assert!(v1_md.contains("* To connect: `market:trade`\n* To send: `market:trade`"));
    assert!(v1_md.contains("* To send: no scope\n* To receive: `market:read`"));
    assert!(
        v1_md.contains("**Open:** no credential needed (the topic is marked x-auth-type: None).")
    );
    assert!(v2_md.contains("**Credential required:** a JWT or an API key, as the gateway is configured (see [Authentication](#authentication)).\n\nNo scope is needed."));
    assert!(v1.contains("<strong>Credential required:</strong>"));
    assert!(v1.contains("<li>To receive: <code>market:trade</code></li>"));
    // Parameters with enums, ws binding query and headers, limits, validation.
    assert!(v1_md.contains("one of `BTC-USD`, `ETH-USD`"));
    assert!(v1_md.contains("#### Query parameters") && v1_md.contains("`X-Client-Id`"));
    assert!(v1_md.contains("| `maxConnections` | 5,000 |"));
    assert!(v1_md.contains("does not validate payloads"));
    // Snippets.
    assert!(v2_md.contains("websocat 'ws://localhost:9099/market/2.0.0/prices/BTC-USD'"));
    assert!(v2.contains("new WebSocket("));
    // Markdown follows the AsyncAPI markdown template's order.
    let order: Vec<usize> = [
        "## Table of Contents",
        "## Servers",
        "## Operations",
        "## Messages",
    ]
    .iter()
    .map(|h| v1_md.find(h).unwrap_or_else(|| panic!("no {h}")))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    // Self-contained HTML: no scripts, no external fetches.
    for p in pages.iter().filter(|p| p.path.ends_with(".html")) {
        for needle in ["<script", "<link", "<img", "src=", "@import", "url("] {
            assert!(!p.content.contains(needle), "{} contains {needle}", p.path);
        }
    }
}

/// The pages show the public URLs they are given and no other scheme: a `wss://` URL no listener
/// serves is a URL that does not work.
#[test]
fn the_pages_show_only_the_public_urls_given() {
    let out = compile_input();
    let render = |urls: &[&str]| {
        let options = Options {
            public_urls: docs::PublicUrls::parse(urls).unwrap(),
            spec_links: true,
        };
        let pages = docs::render_compilation(&out, &options, &Templates::builtin()).unwrap();
        // HTML escapes `/` and hints line breaks inside URLs.
        let plain = |text: &str| text.replace("&#x2f;", "/").replace("<wbr>", "");
        let md = page(&pages, "market-api-2.0.0.md").content.clone();
        let html = plain(&page(&pages, "market-api-2.0.0.html").content);
        let index = plain(&page(&pages, "index.html").content);
        (md, html, index)
    };
    let (md, html, index) = render(&["https://api.example.com/"]);
    for text in [&md, &html, &index] {
        assert!(text.contains("wss://api.example.com"));
        assert!(
            !text.contains("ws://api.example.com"),
            "a ws:// URL was not given"
        );
        assert!(!text.contains("localhost"));
    }
    assert!(md.contains("`wss://api.example.com/market/2.0.0/orders`"));
    assert!(md.contains("(../specs/market-api/2.0.0.yaml)"));
    let (md, html, _) = render(&["ws://gw:9099", "wss://gw:8099"]);
    for text in [&md, &html] {
        assert!(text.contains("ws://gw:9099/market/2.0.0/orders"));
        assert!(text.contains("wss://gw:8099/market/2.0.0/orders"));
    }
    let (md, html, index) = render(&["ws://gw:9099"]);
    for text in [&md, &html, &index] {
        assert!(!text.contains("wss://"), "no wss:// URL was given");
    }
}

/// A spec whose every text tries to inject markup.
const HOSTILE: &str = r#"
asyncapi: 3.1.0
info:
  title: Evil <b>API</b>
  version: 1.0.0
  description: |
    Hello <script>alert("description")</script> and <img src=x onerror=alert(1)>.
    [click](javascript:alert(2)) ![pixel](https://tracker.example.com/p.png)

    <div onclick="alert(3)">block</div>
  contact:
    name: <i>someone</i>
    url: javascript:alert(4)
x-gateway:
  context: /evil
  endpoints:
    production: 'echo:'
channels:
  room:
    address: /rooms/{id}
    description: Channel <script>alert("channel")</script>
    x-auth-type: None
    parameters:
      id:
        description: Param <script>alert("param")</script>
        enum: ['<script>alert("enum")</script>']
    messages:
      m:
        $ref: '#/components/messages/m'
operations:
  send:
    action: receive
    summary: Summary <script>alert("summary")</script>
    channel:
      $ref: '#/channels/room'
components:
  messages:
    m:
      name: m
      title: Title <script>alert("title")</script>
      payload:
        type: object
        properties:
          text:
            type: string
            description: Field <script>alert("field")</script> | pipe
            pattern: '</code><script>alert("pattern")</script>'
      examples:
        - payload:
            text: </code></pre><script>alert("example")</script>
"#;

#[test]
fn everything_from_the_spec_is_escaped() {
    let checked = common::check_named("evil.yaml", &common::doc(HOSTILE), &common::gateway());
    assert!(
        checked.out.plan.is_some(),
        "the hostile spec must compile:\n{}",
        checked.dump()
    );
    let pages =
        docs::render_compilation(&checked.out, &Options::default(), &Templates::builtin()).unwrap();
    for p in &pages {
        let text = &p.content;
        if p.path.ends_with(".html") {
            assert!(
                !text.contains("<script"),
                "{}: a script got through",
                p.path
            );
            assert!(!text.contains("<img"), "{}: an image got through", p.path);
            assert!(
                !text.contains("<div onclick"),
                "{}: raw HTML got through",
                p.path
            );
            assert!(
                !text.contains("<b>API"),
                "{}: the title is not escaped",
                p.path
            );
            assert!(
                !text.contains("javascript:"),
                "{}: a javascript: link",
                p.path
            );
        } else {
            // Markdown keeps Markdown but shows raw HTML as text: the only HTML a Markdown
            // renderer sees is our own anchors (`<script>` inside code spans is code, not HTML).
            for event in pulldown_cmark::Parser::new(text) {
                if let pulldown_cmark::Event::Html(h) | pulldown_cmark::Event::InlineHtml(h) = event
                {
                    assert!(
                        (h.trim().starts_with("<a id=\"") || h.trim() == "</a>")
                            && !h.contains("script"),
                        "{}: raw HTML got through: {h}",
                        p.path
                    );
                }
            }
        }
    }
    let html = &page(&pages, "evil-b-api-b-1.0.0.html").content;
    assert!(html.contains("Hello &lt;script&gt;alert("));
    assert!(
        html.contains("<title>Evil &lt;b&gt;API&lt;&#x2f;b&gt; 1.0.0</title>"),
        "{html}"
    );
    for place in [
        "description",
        "channel",
        "param",
        "enum",
        "summary",
        "title",
        "field",
        "pattern",
        "example",
    ] {
        // Shown as text: as an attribute-safe `&quot;`, as a plain `"` in Markdown-rendered text,
        // or JSON-escaped in an example.
        assert!(
            ["alert(&quot;", "alert(\"", "alert(\\&quot;"]
                .iter()
                .any(|open| html.contains(&format!("{open}{place}"))),
            "the {place} text is not shown (escaped) in the HTML"
        );
    }
    let md = &page(&pages, "evil-b-api-b-1.0.0.md").content;
    assert!(
        md.contains("Hello &lt;script&gt;alert(\"description\")&lt;/script&gt;"),
        "{md}"
    );
    assert!(
        md.contains("Field &lt;script&gt;alert(\"field\")&lt;/script&gt; \\| pipe"),
        "{md}"
    );
}

#[test]
fn user_templates_replace_built_ins_file_by_file() {
    let out = compile_input();
    let mut templates = Templates::builtin();
    templates.set(
        "api.md.j2",
        "{% include \"banner.j2\" %}{{ api.title }} {{ api.version }}: {% for c in api.channels %}{{ c.urls[0].ws }} {% endfor %}",
    );
    templates.set("banner.j2", "ACME DOCS — ");
    let pages = docs::render_compilation(&out, &Options::default(), &Templates::builtin()).unwrap();
    let custom = docs::render_compilation(&out, &Options::default(), &templates).unwrap();
    assert_eq!(
        page(&custom, "market-api-2.0.0.md").content,
        "ACME DOCS — Market API 2.0.0: ws://localhost:9099/market/2.0.0/prices/{symbol} ws://localhost:9099/market/2.0.0/orders\n"
    );
    // The others still come from the built-ins.
    assert_eq!(
        page(&custom, "market-api-2.0.0.html"),
        page(&pages, "market-api-2.0.0.html")
    );
    // A broken template is an error naming it, not a panic or a half-rendered site.
    let mut broken = Templates::builtin();
    broken.set("index.html.j2", "{% for x in %}");
    let err = docs::render_compilation(&out, &Options::default(), &broken).unwrap_err();
    assert!(err.contains("index.html.j2"), "{err}");
    // An unknown variable is an error too (strict undefined), so typos do not go unnoticed.
    let mut typo = Templates::builtin();
    typo.set("api.md.j2", "{{ api.titel }}");
    let err = docs::render_compilation(&out, &Options::default(), &typo).unwrap_err();
    assert!(err.contains("undefined"), "{err}");
}

#[test]
fn docs_from_the_plan_alone_and_from_the_specs_alone() {
    let out = compile_input();
    let plan = out.plan.clone().unwrap();
    // The runtime serving a plan file has no specs: pages still list every route and message.
    let pages = docs::render(
        &docs::Collected::default(),
        Some(&plan),
        &Options::default(),
        &Templates::builtin(),
    )
    .unwrap();
    let v2 = &page(&pages, "market-api-2.0.0.md").content;
    assert!(v2.contains("`ws://localhost:9099/market/2.0.0/orders`"));
    assert!(v2.contains("### Message `ack`"));
    assert!(!v2.contains("trading desk"), "no prose without the specs");
    // Without a plan (documents that are not gateway APIs): AsyncAPI docs, no gateway URLs.
    let lint = compile(
        &[PathBuf::from(INPUT)],
        &CompileOptions {
            lint: true,
            ..CompileOptions::default()
        },
    );
    assert!(lint.plan.is_none());
    let pages =
        docs::render_compilation(&lint, &Options::default(), &Templates::builtin()).unwrap();
    assert_eq!(pages.len(), 5);
    let v1 = &page(&pages, "market-api-1.0.0.md").content;
    assert!(!v1.contains("ws://localhost"));
    assert!(v1.contains("### Channel `/prices/{symbol}`"));
    assert!(v1.contains("Rendered from the spec alone"));
}

#[test]
fn spec_files_are_matched_to_plan_apis() {
    let out = compile_input();
    let plan = out.plan.as_ref().unwrap();
    let collected = docs::collect(&out);
    let specs = docs::spec_files(&collected, plan);
    let names: Vec<(&str, &str)> = specs.iter().map(|(a, v, _)| (*a, *v)).collect();
    assert_eq!(names, [("market-api", "1.0.0"), ("market-api", "2.0.0")]);
    assert!(specs[0].2.starts_with("asyncapi: 2.6.0"));
    assert!(specs[1].2.starts_with("asyncapi: 3.1.0"));
}

#[test]
fn each_route_states_the_requirement_its_plan_security_sets() {
    use portico_compiler::plan::{
        MessageDirection, OperationScopes, RouteSecurity, SchemeKind, SecurityRequirement,
    };
    let out = compile_input();
    let mut plan = out.plan.clone().unwrap();
    let v2 = plan.apis.iter_mut().find(|a| a.version == "2.0.0").unwrap();
    let orders = v2.routes.iter_mut().find(|r| r.topic == "/orders").unwrap();
    orders.security = RouteSecurity {
        schemes: vec![SecurityRequirement {
            name: "oauth".into(),
            kind: SchemeKind::Oauth2,
        }],
        operations: vec![
            OperationScopes {
                direction: MessageDirection::ClientToServer,
                scopes: vec!["orders:write".into()],
            },
            OperationScopes {
                direction: MessageDirection::ServerToClient,
                scopes: vec!["orders:read".into()],
            },
        ],
    };
    let pages = docs::render(
        &docs::Collected::default(),
        Some(&plan),
        &Options::default(),
        &Templates::builtin(),
    )
    .unwrap();
    let md = &page(&pages, "market-api-2.0.0.md").content;
    let html = &page(&pages, "market-api-2.0.0.html").content;
    assert!(
        md.contains("**Credential required:** an OAuth 2 access token (JWT) (`oauth`)"),
        "{md}"
    );
    assert!(md.contains(
        "* To connect: `orders:write`; or `orders:read`\n* To send: `orders:write`\n* To receive: `orders:read`"
    ));
    assert!(html.contains("an OAuth 2 access token (JWT) (<code>oauth</code>)"));
    assert!(html.contains("<li>To send: <code>orders:write</code></li>"));

    // Only a scheme the gateway cannot check: the docs say the topic is not served.
    let v2 = plan.apis.iter_mut().find(|a| a.version == "2.0.0").unwrap();
    let orders = v2.routes.iter_mut().find(|r| r.topic == "/orders").unwrap();
    orders.security.schemes = vec![SecurityRequirement {
        name: "cert".into(),
        kind: SchemeKind::Unsupported {
            declared: "X509".into(),
        },
    }];
    let pages = docs::render(
        &docs::Collected::default(),
        Some(&plan),
        &Options::default(),
        &Templates::builtin(),
    )
    .unwrap();
    let md = &page(&pages, "market-api-2.0.0.md").content;
    assert!(
        md.contains("**Not served:**") && md.contains("X509"),
        "{md}"
    );
}
