//! A WSO2 API Manager export (`apictl export api`: `api.yaml` + `Definitions/asyncapi.yaml`)
//! compiles into exactly the routes WSO2 serves for it, with the context, version, lifecycle and
//! endpoints taken from `api.yaml`; and `--context` serves a spec that names no context.

mod common;

use std::path::{Path, PathBuf};

use common::{pos, workspace, write};
use portico_compiler::plan::{Lifecycle, PlanApi, RouteAuth, RouteKind};
use portico_compiler::{compile, Options};

fn chat_export() -> PathBuf {
    workspace().join("tests/fixtures/wso2/ChatAPI-1.0.0")
}

fn spec_text() -> String {
    std::fs::read_to_string(chat_export().join("Definitions/asyncapi.yaml")).unwrap()
}

fn compiled_api(input: &Path, options: &Options) -> PlanApi {
    let out = compile(&[input.to_path_buf()], options);
    let errors: Vec<_> = out.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let mut plan = out.plan.expect("a plan");
    assert_eq!(plan.apis.len(), 1);
    plan.apis.remove(0)
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn chat_export_compiles_without_errors_or_warnings() {
    let out = compile(&[chat_export()], &Options::default());
    let codes: Vec<&str> = out.diagnostics.iter().map(|d| d.code).collect();
    // The export has no `info.description`, and its `/*` topic no `x-uri-mapping` (so it goes to
    // the bare endpoint, as in WSO2): infos, nothing more.
    assert_eq!(
        codes,
        ["info-description", "gateway-unmapped-topic"],
        "{:#?}",
        out.diagnostics
    );
    assert_eq!(out.documents.len(), 1, "api.yaml is not a document");
    assert!(out.plan.is_some());
}

#[test]
fn chat_export_takes_context_version_lifecycle_and_endpoints_from_api_yaml() {
    let api = compiled_api(&chat_export(), &Options::default());
    assert_eq!(api.name, "chatapi");
    assert_eq!(api.title, "ChatAPI");
    assert_eq!(api.version, "1.0.0");
    assert_eq!(api.context_template, "/chat/{version}");
    assert_eq!(api.context, "/chat/1.0.0");
    // isDefaultVersion: true — also served without the version, as WSO2 does.
    assert_eq!(api.default_context.as_deref(), Some("/chat"));
    assert_eq!(api.lifecycle, Lifecycle::Published);
    assert_eq!(api.endpoints.production, "ws://chat-backend.internal:8080");
    assert_eq!(
        api.endpoints.sandbox.as_deref(),
        Some("ws://chat-sandbox.internal:8080")
    );
    assert_eq!(api.source.file, "Definitions/asyncapi.yaml");
    assert!(api.source.sha256.starts_with("sha256:"));
    assert!(api.limits.is_empty());
}

#[test]
fn chat_export_has_exactly_the_routes_wso2_serves() {
    let api = compiled_api(&chat_export(), &Options::default());
    let summary: Vec<(&str, RouteKind, &str, RouteAuth)> = api
        .routes
        .iter()
        .map(|r| (r.pattern.as_str(), r.kind, r.backend_path.as_str(), r.auth))
        .collect();
    // Matched most specific first: literal, template, wildcard.
    assert_eq!(
        summary,
        [
            (
                "/chat/1.0.0/notifications",
                RouteKind::Literal,
                "/notifications",
                RouteAuth::None
            ),
            (
                "/chat/1.0.0/rooms/{roomID}",
                RouteKind::Template,
                "/rooms?room={roomID}",
                RouteAuth::Required
            ),
            // No `x-uri-mapping`: WSO2 sends it to the bare endpoint.
            (
                "/chat/1.0.0/*",
                RouteKind::Wildcard,
                "",
                RouteAuth::Required
            ),
        ]
    );

    let rooms = &api.routes[1];
    assert_eq!(rooms.topic, "/rooms/{roomID}");
    assert_eq!(rooms.channels, ["/rooms/{roomID}"]);
    assert_eq!(
        sorted(rooms.scopes.clone()),
        ["chat:read", "chat:write"],
        "the union of the subscribe and publish scopes"
    );
    assert_eq!(rooms.parameters.len(), 1);
    assert_eq!(rooms.parameters[0].name, "roomID");
    assert_eq!(
        rooms.parameters[0].schema,
        Some(serde_json::json!({"type": "string"}))
    );

    let notifications = &api.routes[0];
    assert!(notifications.scopes.is_empty());
    assert!(notifications.parameters.is_empty());

    let wildcard = &api.routes[2];
    assert_eq!(wildcard.topic, "/*");
    assert!(wildcard.scopes.is_empty());

    // Every topic has its publish message (client → server) and subscribe message (server → client).
    for route in &api.routes {
        let c2s: Vec<&str> = route
            .messages
            .client_to_server
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        let s2c: Vec<&str> = route
            .messages
            .server_to_client
            .iter()
            .map(|m| m.name.as_str())
            .collect();
        assert_eq!(
            (c2s.as_slice(), s2c.as_slice()),
            (&["publishMessage"][..], &["subscribeMessage"][..]),
            "{}",
            route.pattern
        );
        assert_eq!(
            route.messages.client_to_server[0].schema,
            Some(serde_json::json!({"type": "string"}))
        );
    }
}

#[test]
fn naming_the_spec_file_of_an_export_also_reads_its_api_yaml() {
    let from_folder = compiled_api(&chat_export(), &Options::default());
    let from_file = compiled_api(
        &chat_export().join("Definitions/asyncapi.yaml"),
        &Options::default(),
    );
    assert_eq!(from_file.source.file, "asyncapi.yaml");
    assert_eq!(from_file.routes, from_folder.routes);
    assert_eq!(from_file.context, from_folder.context);
    assert_eq!(from_file.default_context, from_folder.default_context);
    assert_eq!(from_file.endpoints, from_folder.endpoints);
}

#[test]
fn api_yml_spelling_is_read_too_and_x_gateway_in_the_spec_wins() {
    let dir = tempfile::tempdir().unwrap();
    let api_yaml = std::fs::read_to_string(chat_export().join("api.yaml")).unwrap();
    write(dir.path(), "Chat/api.yml", &api_yaml);
    let spec = write(dir.path(), "Chat/Definitions/asyncapi.yaml", spec_text());
    let api = compiled_api(&spec, &Options::default());
    assert_eq!(api.context, "/chat/1.0.0");
    assert_eq!(api.endpoints.production, "ws://chat-backend.internal:8080");

    let overridden = spec_text().replace(
        "servers:\n",
        "x-gateway:\n  context: /talk\n  lifecycle: DEPRECATED\n  endpoints:\n    production: 'echo:'\nservers:\n",
    );
    std::fs::write(&spec, overridden).unwrap();
    let api = compiled_api(&spec, &Options::default());
    assert_eq!(api.context, "/talk/1.0.0");
    assert_eq!(api.lifecycle, Lifecycle::Deprecated);
    assert_eq!(api.endpoints.production, "echo:");
    // Not overridden: the sandbox and the default version still come from api.yml.
    assert_eq!(
        api.endpoints.sandbox.as_deref(),
        Some("ws://chat-sandbox.internal:8080")
    );
    assert_eq!(api.default_context.as_deref(), Some("/talk"));
}

#[test]
fn spec_without_api_yaml_needs_a_context() {
    let dir = tempfile::tempdir().unwrap();
    let text = spec_text();
    let spec = write(dir.path(), "chat.yaml", &text);
    let out = compile(std::slice::from_ref(&spec), &Options::default());
    let errors: Vec<_> = out.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].code, "gateway-context-missing");
    let span = errors[0].span.unwrap();
    assert_eq!((span.line, span.col), pos(&text, "asyncapi: 2.0.0"));
    assert!(out.plan.is_none());
}

#[test]
fn context_option_serves_a_spec_without_x_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "chat.yaml", spec_text());
    let options = Options {
        context: Some("/chat".into()),
        ..Options::default()
    };
    let api = compiled_api(&spec, &options);
    assert_eq!(api.context_template, "/chat");
    assert_eq!(api.context, "/chat/1.0.0");
    // Without api.yaml nothing says this is the default version.
    assert_eq!(api.default_context, None);
    // The servers named production and sandbox are the backends.
    assert_eq!(api.endpoints.production, "ws://chat-backend.internal:8080");
    assert_eq!(
        api.endpoints.sandbox.as_deref(),
        Some("ws://chat-sandbox.internal:8080")
    );
    let patterns: Vec<&str> = api.routes.iter().map(|r| r.pattern.as_str()).collect();
    assert_eq!(
        patterns,
        [
            "/chat/1.0.0/notifications",
            "/chat/1.0.0/rooms/{roomID}",
            "/chat/1.0.0/*"
        ]
    );

    // `{version}` in the option is placed like WSO2 does.
    let options = Options {
        context: Some("/{version}/chat".into()),
        ..Options::default()
    };
    assert_eq!(compiled_api(&spec, &options).context, "/1.0.0/chat");
}

#[test]
fn context_option_does_not_override_a_context_the_api_names() {
    let options = Options {
        context: Some("/other".into()),
        ..Options::default()
    };
    let api = compiled_api(&chat_export(), &options);
    assert_eq!(
        api.context, "/chat/1.0.0",
        "api.yaml's context wins over --context"
    );
}

#[test]
fn x_scopes_written_as_an_object_count_like_a_list() {
    // Some WSO2 versions export `x-scopes` as `{"0": scope}`.
    let text = spec_text().replace(
        "      x-scopes:\n        - chat:write\n",
        "      x-scopes:\n        '0': chat:write\n",
    );
    assert_ne!(text, spec_text());
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "Chat/api.yaml",
        std::fs::read_to_string(chat_export().join("api.yaml")).unwrap(),
    );
    let spec = write(dir.path(), "Chat/Definitions/asyncapi.yaml", &text);
    let api = compiled_api(&spec, &Options::default());
    assert_eq!(
        sorted(api.routes[1].scopes.clone()),
        ["chat:read", "chat:write"]
    );

    // An undeclared scope in that form is reported at its value.
    let text = text.replace("'0': chat:write", "'0': chat:wrte");
    std::fs::write(&spec, &text).unwrap();
    let out = compile(&[spec], &Options::default());
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "gateway-scope-undeclared")
        .expect("gateway-scope-undeclared");
    let span = d.span.unwrap();
    assert_eq!((span.line, span.col), pos(&text, "chat:wrte"));
    assert_eq!(d.pointer, "/channels/~1rooms~1{roomID}/publish/x-scopes/0");
}

#[test]
fn a_wildcard_mapping_may_forward_the_remainder() {
    let dir = tempfile::tempdir().unwrap();
    let spec = "asyncapi: 3.0.0\ninfo: {title: Feed, version: '1', description: Feed.}\nx-gateway: {context: /feed, endpoints: {production: 'ws://feed:1'}}\nchannels:\n  all: {address: '/raw/*', x-auth-type: None, x-uri-mapping: '/upstream/{*}'}\n  one: {address: '/one/{id}', x-auth-type: None, x-uri-mapping: '/one/{*}'}\n";
    std::fs::write(dir.path().join("feed.yaml"), spec).unwrap();
    let out = portico_compiler::compile(&[dir.path().to_path_buf()], &Default::default());
    // `{*}` is refused on a channel that is not a wildcard...
    let refused: Vec<_> = out
        .diagnostics
        .iter()
        .filter(|d| d.code == "gateway-mapping-parameter")
        .collect();
    assert_eq!(refused.len(), 1, "{:?}", out.diagnostics);
    assert!(refused[0].message.contains("/one/{*}"));
    // ...and accepted on one.
    let fixed = spec.replace(
        "  one: {address: '/one/{id}', x-auth-type: None, x-uri-mapping: '/one/{*}'}\n",
        "",
    );
    std::fs::write(dir.path().join("feed.yaml"), fixed).unwrap();
    let out = portico_compiler::compile(&[dir.path().to_path_buf()], &Default::default());
    let plan = out.plan.expect("a plan");
    assert_eq!(plan.apis[0].routes[0].backend_path, "/upstream/{*}");
}

#[test]
fn the_build_facade_lists_api_yaml_among_the_files_it_read() {
    let built = portico_compiler::build(&[chat_export()], &Default::default()).expect("builds");
    let root = chat_export().canonicalize().unwrap();
    assert_eq!(
        built.files_read,
        [
            root.join("Definitions/asyncapi.yaml"),
            root.join("api.yaml")
        ]
    );
}

#[test]
fn a_context_without_the_leading_slash_as_wso2_writes_it_is_normalised() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write(dir.path(), "chat.yaml", spec_text());
    // As WSO2's publisher writes it.
    let options = Options {
        context: Some("{version}/websocket".into()),
        ..Options::default()
    };
    let api = compiled_api(&spec, &options);
    assert_eq!(api.context_template, "/{version}/websocket");
    assert_eq!(api.context, "/1.0.0/websocket");
    assert!(api.routes[0].pattern.starts_with("/1.0.0/websocket/"));

    // The same in api.yaml.
    let export = tempfile::tempdir().unwrap();
    let api_yaml = std::fs::read_to_string(chat_export().join("api.yaml")).unwrap();
    assert!(api_yaml.contains("context: /chat"), "{api_yaml}");
    write(
        export.path(),
        "api.yaml",
        api_yaml.replacen("context: /chat", "context: chat", 1),
    );
    write(export.path(), "Definitions/asyncapi.yaml", spec_text());
    let api = compiled_api(export.path(), &Options::default());
    assert_eq!(api.context, "/chat/1.0.0");
}

#[test]
fn an_endpoint_without_a_scheme_gets_a_suggestion() {
    let export = tempfile::tempdir().unwrap();
    let api_yaml = std::fs::read_to_string(chat_export().join("api.yaml")).unwrap();
    let from = "ws://chat-backend.internal:8080";
    assert_eq!(api_yaml.matches(from).count(), 1, "{api_yaml}");
    let text = api_yaml.replacen(from, "chat-backend.internal:8080", 1);
    write(export.path(), "api.yaml", &text);
    write(export.path(), "Definitions/asyncapi.yaml", spec_text());
    let out = compile(&[export.path().to_path_buf()], &Options::default());
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "gateway-endpoint-scheme")
        .unwrap_or_else(|| panic!("{:#?}", out.diagnostics));
    assert!(d.is_error());
    assert!(d.message.contains("has no scheme"), "{}", d.message);
    assert_eq!(
        d.help.as_deref(),
        Some("did you mean `ws://chat-backend.internal:8080`? (`wss://` for TLS)")
    );
    // Pointed at api.yaml's line, where the value is written.
    let span = d.span.expect("a span");
    assert!(out.files.path(span.file).ends_with("api.yaml"));
    assert_eq!(
        (span.line, span.col),
        pos(&text, "chat-backend.internal:8080")
    );
}

#[test]
fn x_auth_type_on_asyncapi_3_operations_is_read() {
    let spec = |auth: &str| {
        format!(
            r#"asyncapi: 3.0.0
info:
  title: Chat
  version: 1.0.0
x-gateway:
  context: /chat
  endpoints:
    production: 'echo:'
channels:
  rooms:
    address: /rooms
    messages:
      chat:
        payload:
          type: string
  open:
    address: /open
    messages:
      chat:
        payload:
          type: string
operations:
  sendChat:
    action: receive
    channel:
      $ref: '#/channels/rooms'
{auth}  browse:
    action: receive
    channel:
      $ref: '#/channels/open'
    x-auth-type: None
"#
        )
    };
    let auth_of = |text: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "api.yaml", text);
        let api = compiled_api(&path, &Options::default());
        api.routes
            .iter()
            .map(|r| (r.pattern.clone(), r.auth))
            .collect::<Vec<_>>()
    };
    let routes = auth_of(&spec(""));
    assert!(
        routes.contains(&("/chat/1.0.0/open".to_string(), RouteAuth::None)),
        "{routes:?}"
    );
    assert!(
        routes.contains(&("/chat/1.0.0/rooms".to_string(), RouteAuth::Required)),
        "{routes:?}"
    );
    // An operation's invalid value is reported where it is written.
    let text = spec("    x-auth-type: Sometimes\n");
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "api.yaml", &text);
    let out = compile(&[path], &Options::default());
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "gateway-auth-type-invalid")
        .unwrap_or_else(|| panic!("{:#?}", out.diagnostics));
    assert_eq!(d.pointer, "/operations/sendChat/x-auth-type");
    assert_eq!(
        (d.span.unwrap().line, d.span.unwrap().col),
        pos(&text, "Sometimes")
    );
}

#[test]
fn compiling_api_yaml_itself_says_to_compile_the_project_folder() {
    let out = compile(&[chat_export().join("api.yaml")], &Options::default());
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "asyncapi-missing")
        .unwrap_or_else(|| panic!("{:#?}", out.diagnostics));
    assert!(
        d.message.contains("WSO2 apictl project file"),
        "{}",
        d.message
    );
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains(&format!("compile {}", chat_export().display()))),
        "{d:?}"
    );

    // Another file without `asyncapi` keeps the general message.
    let dir = tempfile::tempdir().unwrap();
    let other = write(dir.path(), "notes.yaml", "type: api\n");
    let out = compile(&[other], &Options::default());
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "asyncapi-missing")
        .unwrap();
    assert!(!d.message.contains("WSO2"), "{}", d.message);
}

#[test]
fn every_api_yaml_setting_portico_does_not_use_is_a_warning_at_its_line() {
    let api_yaml = r#"type: api
version: v4.2.0
data:
  id: 6f1c2a
  name: ChatAPI
  description: Chat rooms over WebSocket.
  context: /chat/{version}
  version: 1.0.0
  provider: admin
  lifeCycleStatus: PUBLISHED
  isDefaultVersion: true
  type: WS
  transport: [http, https]
  visibility: RESTRICTED
  visibleRoles: []
  policies: [Gold]
  businessInformation:
    businessOwner: Jane
  additionalProperties:
    - name: team
      value: chat
  corsConfiguration:
    corsConfigurationEnabled: true
  accessControl: NONE
  endpointConfig:
    endpoint_type: load_balance
    production_endpoints:
      - url: ws://chat-backend-1:8080
      - url: ws://chat-backend-2:8080
    sandbox_endpoints:
      url: ws://chat-sandbox.internal:8080
    endpoint_security:
      production:
        enabled: true
        type: BASIC
  createdTime: '2024-01-01'
"#;
    let export = tempfile::tempdir().unwrap();
    let project = write(export.path(), "api.yaml", api_yaml);
    write(export.path(), "Definitions/asyncapi.yaml", spec_text());
    let out = compile(&[export.path().to_path_buf()], &Options::default());
    let mut warned: Vec<(u32, String)> = out
        .diagnostics
        .iter()
        .filter(|d| d.code == "gateway-import-ignored")
        .map(|d| {
            let span = d.span.unwrap();
            assert_eq!(out.files.path(span.file), project.as_path(), "{d:?}");
            assert!(!d.is_error());
            (span.line, d.pointer.clone())
        })
        .collect();
    warned.sort();
    let line = |needle: &str| pos(api_yaml, needle).0;
    let expected: Vec<(u32, String)> = [
        ("visibility:", "/data/visibility"),
        ("policies:", "/data/policies"),
        ("businessInformation:", "/data/businessInformation"),
        ("additionalProperties:", "/data/additionalProperties"),
        ("corsConfiguration:", "/data/corsConfiguration"),
        ("endpoint_type:", "/data/endpointConfig/endpoint_type"),
        (
            "production_endpoints:",
            "/data/endpointConfig/production_endpoints",
        ),
        (
            "endpoint_security:",
            "/data/endpointConfig/endpoint_security",
        ),
    ]
    .into_iter()
    .map(|(n, p)| (line(n), p.to_string()))
    .collect();
    assert_eq!(warned, expected, "{:#?}", out.diagnostics);

    // A load-balanced list serves its first URL, as its warning says.
    let plan = out.plan.as_ref().expect("a plan");
    assert_eq!(
        plan.apis[0].endpoints.production,
        "ws://chat-backend-1:8080"
    );
    assert_eq!(
        plan.apis[0].endpoints.sandbox.as_deref(),
        Some("ws://chat-sandbox.internal:8080")
    );

    // What it does use is read, including the description (into the docs).
    let api = &out.apis[0];
    assert_eq!(
        api.description.as_deref(),
        Some("Chat rooms over WebSocket.")
    );

    // The chat export (with only defaults and bookkeeping besides) reports nothing.
    let out = compile(&[chat_export()], &Options::default());
    assert!(
        !out.diagnostics
            .iter()
            .any(|d| d.code == "gateway-import-ignored"),
        "{:#?}",
        out.diagnostics
    );
}

#[test]
fn a_duplicate_context_from_api_yaml_is_reported_in_api_yaml() {
    let exports = tempfile::tempdir().unwrap();
    let api_yaml = std::fs::read_to_string(chat_export().join("api.yaml")).unwrap();
    for project in ["ChatAPI-1.0.0", "ChatCopy-1.0.0"] {
        write(exports.path(), &format!("{project}/api.yaml"), &api_yaml);
        write(
            exports.path(),
            &format!("{project}/Definitions/asyncapi.yaml"),
            spec_text(),
        );
    }
    let out = compile(&[exports.path().to_path_buf()], &Options::default());
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "gateway-context-duplicate")
        .unwrap_or_else(|| panic!("{:#?}", out.diagnostics));
    let span = d.span.unwrap();
    assert!(
        out.files.path(span.file).ends_with("api.yaml"),
        "{}",
        out.files.path(span.file).display()
    );
    assert_eq!((span.line, span.col), pos(&api_yaml, "/chat/{version}"));
    assert_eq!(d.pointer, "/data/context");
}

/// The realistic export of `docs/wso2-migration.md`: every field apictl writes, most at defaults.
fn realistic_export() -> PathBuf {
    workspace().join("compiler/tests/fixtures/wso2-export/ChatAPI-1.0.0")
}

/// An export in a temporary folder: `api.yaml` as given beside the small chat export's spec.
fn export_with(api_yaml: &str) -> (tempfile::TempDir, PathBuf) {
    let export = tempfile::tempdir().unwrap();
    let project = write(export.path(), "api.yaml", api_yaml);
    write(export.path(), "Definitions/asyncapi.yaml", spec_text());
    (export, project)
}

fn small_api_yaml() -> String {
    std::fs::read_to_string(chat_export().join("api.yaml")).unwrap()
}

#[test]
fn a_description_from_api_yaml_silences_the_missing_description_note() {
    let with = small_api_yaml().replace(
        "  name: ChatAPI\n",
        "  name: ChatAPI\n  description: Chat rooms over WebSocket.\n",
    );
    let (export, _) = export_with(&with);
    let out = compile(&[export.path().to_path_buf()], &Options::default());
    assert!(
        !out.diagnostics.iter().any(|d| d.code == "info-description"),
        "{:#?}",
        out.diagnostics
    );
    assert_eq!(
        out.apis[0].description.as_deref(),
        Some("Chat rooms over WebSocket.")
    );
    // A blank description describes nothing: the note stays.
    let blank =
        small_api_yaml().replace("  name: ChatAPI\n", "  name: ChatAPI\n  description: ' '\n");
    let (export, _) = export_with(&blank);
    let out = compile(&[export.path().to_path_buf()], &Options::default());
    assert!(out.diagnostics.iter().any(|d| d.code == "info-description"));
}

#[test]
fn tags_and_a_name_other_than_the_title_are_noted_at_their_line_in_api_yaml() {
    let api_yaml = small_api_yaml()
        .replace("  name: ChatAPI\n", "  name: Chat Rooms\n")
        .replace("  type: WS\n", "  type: WS\n  tags:\n    - chat\n");
    let (export, project) = export_with(&api_yaml);
    let out = compile(&[export.path().to_path_buf()], &Options::default());
    let mut noted: Vec<(u32, String, String)> = out
        .diagnostics
        .iter()
        .filter(|d| d.code == "gateway-import-unused")
        .map(|d| {
            assert_eq!(d.severity, portico_compiler::Severity::Info);
            let span = d.span.unwrap();
            assert_eq!(out.files.path(span.file), project.as_path());
            (span.line, d.pointer.clone(), d.message.clone())
        })
        .collect();
    noted.sort();
    assert_eq!(noted.len(), 2, "{:#?}", out.diagnostics);
    assert_eq!(noted[0].0, pos(&api_yaml, "name:").0);
    assert_eq!(noted[0].1, "/data/name");
    assert!(noted[0].2.contains("`Chat Rooms`"), "{}", noted[0].2);
    assert_eq!(noted[1].0, pos(&api_yaml, "tags:").0);
    assert_eq!(noted[1].1, "/data/tags");
    // The document's title names the API.
    assert_eq!(out.plan.as_ref().unwrap().apis[0].title, "ChatAPI");

    // The same name, and no tags: nothing to note.
    let (export, _) = export_with(&small_api_yaml());
    let out = compile(&[export.path().to_path_buf()], &Options::default());
    assert!(!out
        .diagnostics
        .iter()
        .any(|d| d.code == "gateway-import-unused"));

    // A document with a blank title is named after api.yaml's `name`.
    let export = tempfile::tempdir().unwrap();
    write(
        export.path(),
        "api.yaml",
        small_api_yaml().replace("  name: ChatAPI\n", "  name: Chat Rooms\n"),
    );
    write(
        export.path(),
        "Definitions/asyncapi.yaml",
        spec_text().replace("  title: ChatAPI\n", "  title: ''\n"),
    );
    let api = compiled_api(export.path(), &Options::default());
    assert_eq!(api.title, "Chat Rooms");
    assert_eq!(api.name, "chat-rooms");
}

/// Backend credentials as apictl writes them when none are set: switched off per environment.
const ENDPOINT_SECURITY_OFF: &str = "    endpoint_security:
      production:
        enabled: false
        type: basic
        username: \"\"
      sandbox:
        enabled: false
        type: basic
";

#[test]
fn settings_at_their_wso2_defaults_or_switched_off_are_not_reported() {
    let defaults = "  responseCachingEnabled: false
  cacheTimeout: 300
  subscriptionAvailability: CURRENT_TENANT
  subscriptionAvailableTenants: []
  keyManagers:
    - all
  monetization:
    enabled: false
    properties: {}
  websubSubscriptionConfiguration:
    enable: false
    secret: \"\"
    signingAlgorithm: SHA1
    signatureHeader: x-hub-signature
  advertiseInfo:
    advertised: false
    apiOwner: admin
    vendor: WSO2
  corsConfiguration:
    corsConfigurationEnabled: false
    accessControlAllowOrigins:
      - \"*\"
  businessInformation:
    businessOwner: null
    businessOwnerEmail: \"\"
  apiThrottlingPolicy: Unlimited
  enableSchemaValidation: false
  isRevision: false
  subtypeConfiguration:
    subtype: DEFAULT
";
    let api_yaml = small_api_yaml()
        .replace("  type: WS\n", &format!("  type: WS\n{defaults}"))
        .replace(
            "  endpointConfig:\n",
            &format!("  endpointConfig:\n{ENDPOINT_SECURITY_OFF}"),
        );
    let (export, _) = export_with(&api_yaml);
    let out = compile(&[export.path().to_path_buf()], &Options::default());
    let reported: Vec<&str> = out
        .diagnostics
        .iter()
        .filter(|d| d.code == "gateway-import-ignored")
        .map(|d| d.pointer.as_str())
        .collect();
    assert!(reported.is_empty(), "{reported:?}");

    // Switched on, or set to something Portico ignores, each is reported at its line.
    let set = defaults
        .replace(
            "responseCachingEnabled: false",
            "responseCachingEnabled: true",
        )
        .replace("CURRENT_TENANT", "SPECIFIC_TENANTS")
        .replace("    - all\n", "    - Resident Key Manager\n")
        .replace("    enabled: false\n", "    enabled: true\n")
        .replace("    enable: false\n", "    enable: true\n")
        .replace("    advertised: false\n", "    advertised: true\n")
        .replace(
            "corsConfigurationEnabled: false",
            "corsConfigurationEnabled: true",
        )
        .replace("businessOwner: null", "businessOwner: Jane")
        .replace(
            "apiThrottlingPolicy: Unlimited",
            "apiThrottlingPolicy: Gold",
        );
    let api_yaml = small_api_yaml()
        .replace("  type: WS\n", &format!("  type: WS\n{set}"))
        .replace(
            "  endpointConfig:\n",
            &format!(
                "  endpointConfig:\n{}",
                ENDPOINT_SECURITY_OFF.replacen("enabled: false", "enabled: true", 1)
            ),
        );
    let (export, _) = export_with(&api_yaml);
    let out = compile(&[export.path().to_path_buf()], &Options::default());
    let mut reported: Vec<&str> = out
        .diagnostics
        .iter()
        .filter(|d| d.code == "gateway-import-ignored")
        .map(|d| d.pointer.as_str())
        .collect();
    reported.sort();
    assert_eq!(
        reported,
        [
            "/data/advertiseInfo",
            "/data/apiThrottlingPolicy",
            "/data/businessInformation",
            "/data/cacheTimeout",
            "/data/corsConfiguration",
            "/data/endpointConfig/endpoint_security",
            "/data/keyManagers",
            "/data/monetization",
            "/data/responseCachingEnabled",
            "/data/subscriptionAvailability",
            "/data/websubSubscriptionConfiguration",
        ]
    );
}

#[test]
fn scopes_and_operations_are_reported_only_where_they_say_more_than_the_document() {
    let agreeing = std::fs::read_to_string(realistic_export().join("api.yaml")).unwrap();
    let spec =
        std::fs::read_to_string(realistic_export().join("Definitions/asyncapi.yaml")).unwrap();
    let report = |api_yaml: &str| {
        let export = tempfile::tempdir().unwrap();
        write(export.path(), "api.yaml", api_yaml);
        write(export.path(), "Definitions/asyncapi.yaml", &spec);
        let out = compile(&[export.path().to_path_buf()], &Options::default());
        let mut found: Vec<(u32, String, String)> = out
            .diagnostics
            .iter()
            .filter(|d| d.code == "gateway-import-ignored")
            .filter(|d| {
                d.pointer.starts_with("/data/scopes") || d.pointer.starts_with("/data/operations")
            })
            .map(|d| (d.span.unwrap().line, d.pointer.clone(), d.message.clone()))
            .collect();
        found.sort();
        found
    };
    assert_eq!(report(&agreeing), []);

    let differing = agreeing
        // A role the document's x-scopes-bindings does not give.
        .replacen(
            "          - admin\n          - subscriber\n",
            "          - admin\n          - auditor\n",
            1,
        )
        // A tier on one operation, other scopes on another, a topic the document lacks.
        .replacen(
            "      throttlingPolicy: Unlimited\n",
            "      throttlingPolicy: Gold\n",
            1,
        )
        .replace(
            "      scopes:\n        - chat:write\n",
            "      scopes:\n        - chat:admin\n",
        )
        .replace("      target: /notifications\n", "      target: /alerts\n");
    let found = report(&differing);
    let pointers: Vec<&str> = found.iter().map(|f| f.1.as_str()).collect();
    assert_eq!(
        pointers,
        [
            "/data/scopes/0",
            "/data/operations/0",
            "/data/operations/1",
            "/data/operations/2"
        ],
        "{found:#?}"
    );
    assert!(found[0].2.contains("auditor"), "{}", found[0].2);
    assert!(found[1].2.contains("`Gold`"), "{}", found[1].2);
    assert!(found[2].2.contains("chat:admin"), "{}", found[2].2);
    assert!(found[3].2.contains("`/alerts`"), "{}", found[3].2);
    // Entries that name nothing, or a verb WebSocket topics do not have, are reported too.
    let odd = agreeing
        .replacen("      target: /rooms/{roomID}\n", "", 1)
        .replacen("      verb: PUBLISH\n", "      verb: GET\n", 1)
        .replacen("        name: chat:read\n", "", 1);
    let pointers: Vec<String> = report(&odd).into_iter().map(|f| f.1).collect();
    assert_eq!(
        pointers,
        ["/data/scopes/0", "/data/operations/0", "/data/operations/1"]
    );
    // Each at its entry, which starts on the `- id:` line above its target.
    assert_eq!(found[3].0 + 1, pos(&differing, "target: /alerts").0);
}

/// The realistic export's import report, item by item: each warning is something the export sets
/// that Portico does not serve.
#[test]
fn the_realistic_export_reports_only_what_portico_drops() {
    let out = compile(&[realistic_export()], &Options::default());
    let mut codes: Vec<(&str, &str)> = out
        .diagnostics
        .iter()
        .map(|d| (d.code, d.pointer.as_str()))
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        [
            // AsyncGold is a tier Portico does not enforce.
            ("gateway-import-ignored", "/data/additionalProperties"),
            ("gateway-import-ignored", "/data/businessInformation"),
            // Enabled, with an origin list.
            ("gateway-import-ignored", "/data/corsConfiguration"),
            ("gateway-import-ignored", "/data/policies"),
            // OAuth2 tokens: which credentials are accepted is the runtime's configuration.
            ("gateway-import-ignored", "/data/securityScheme"),
            ("gateway-import-ignored", "/data/visibility"),
            ("gateway-import-ignored", "/data/visibleRoles"),
            ("gateway-import-unused", "/data/tags"),
        ],
        "{:#?}",
        out.diagnostics
    );
}
