//! Hostile specs and a hostile file system: what the compiler refuses, and what a refusal costs.
//!
//! * reads stay inside the folders given (`$ref` to host files in every spelling);
//! * a folder with symlink loops is walked once, quickly;
//! * URL user-info never reaches any rendered output;
//! * `$ref` pointers that cross other `$ref`s resolve as the AsyncAPI tooling resolves them;
//! * an alias bomb is refused before it is built (peak memory measured in a child process).

mod common;

use std::path::PathBuf;

use common::{doc, write};
use portico_compiler::source::Limits;
use portico_compiler::{compile, render, Compilation, Options};
use serde_json::Value;

fn codes(out: &Compilation) -> Vec<&'static str> {
    out.diagnostics.iter().map(|d| d.code).collect()
}

/// Every text the compiler would print for `out`, in every format.
fn everything_printed(out: &Compilation) -> String {
    let s = &out.files.sources;
    let d = &out.diagnostics;
    [
        render::human(s, d, false),
        render::json(s, d),
        render::sarif(s, d),
        render::github(s, d),
    ]
    .concat()
}

/// An AsyncAPI 3 document whose message example is `$ref: <target>`.
fn with_example_ref(target: &str) -> String {
    doc(&format!(
        r#"
        asyncapi: 3.0.0
        info:
          title: Leak
          version: 1.0.0
          description: Tries to read a host file.
        x-gateway:
          context: /leak
          endpoints:
            production: 'mock:'
        channels:
          feed:
            address: /feed
            messages:
              item:
                payload:
                  type: string
                examples:
                  - payload:
                      $ref: '{target}'
        operations:
          onItem:
            action: send
            channel:
              $ref: '#/channels/feed'
        "#
    ))
}

// ---------------------------------------------------------------------------------------------
// Issue 7 §1: reads are confined to the roots.

#[cfg(unix)]
#[test]
fn host_files_are_never_read_through_a_ref_in_any_spelling() {
    let dir = tempfile::tempdir().unwrap();
    let specs = dir.path().join("specs");
    std::fs::create_dir_all(&specs).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", specs.join("inner.yaml")).unwrap();
    let spellings = [
        ("/etc/passwd", "ref-outside-root"),
        ("../../../../../../../../etc/passwd", "ref-outside-root"),
        ("./inner.yaml", "ref-outside-root"),
        ("inner.yaml#/root", "ref-outside-root"),
        ("file:///etc/passwd", "ref-unsupported"),
    ];
    for (target, code) in spellings {
        write(&specs, "api.yaml", with_example_ref(target));
        let out = compile(std::slice::from_ref(&specs), &Options::default());
        assert!(
            codes(&out).contains(&code),
            "{target}: {:?}",
            out.diagnostics
        );
        assert!(out.plan.is_none(), "{target}");
        for (_, file) in out.files.sources.files() {
            assert!(
                !file.text.contains("root:"),
                "{target} read {:?}",
                file.path
            );
        }
        let printed = everything_printed(&out);
        assert!(!printed.contains("root:x"), "{target}: {printed}");
        if code == "ref-outside-root" {
            assert!(
                printed.contains(&format!("`{}`", specs.display())),
                "the root is named: {printed}"
            );
        }
    }
}

#[test]
fn a_spec_file_given_alone_may_read_its_own_folder_and_allowed_roots_only() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "shared/item.yaml", "type: string\n");
    write(dir.path(), "specs/local.yaml", "type: string\n");
    let text = common::edit(
        &with_example_ref("./local.yaml"),
        "payload:\n          type: string",
        "payload:\n          $ref: '../shared/item.yaml'",
    );
    let main = write(dir.path(), "specs/api.yaml", &text);
    let out = compile(std::slice::from_ref(&main), &Options::default());
    assert_eq!(
        codes(&out)
            .iter()
            .filter(|c| **c == "ref-outside-root")
            .count(),
        1,
        "{:?}",
        out.diagnostics
    );
    let options = Options {
        allow_roots: vec![dir.path().join("shared")],
        ..Options::default()
    };
    let out = compile(std::slice::from_ref(&main), &options);
    assert!(
        !codes(&out).contains(&"ref-outside-root"),
        "{:?}",
        out.diagnostics
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 7 §2: symlink loops and budgets.

#[cfg(unix)]
#[test]
fn two_symlink_loops_are_walked_once_with_a_warning_each() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "api.yaml", with_example_ref("#/info/title"));
    write(dir.path(), "sub/other.yaml", "fragment: true\n");
    std::os::unix::fs::symlink(".", dir.path().join("loop")).unwrap();
    std::os::unix::fs::symlink(".", dir.path().join("loop2")).unwrap();
    std::os::unix::fs::symlink("..", dir.path().join("sub/up")).unwrap();
    let out = compile(&[dir.path().to_path_buf()], &Options::default());
    assert_eq!(out.documents.len(), 1);
    let loops: Vec<_> = out
        .diagnostics
        .iter()
        .filter(|d| d.code == "input-folder-loop")
        .collect();
    assert_eq!(loops.len(), 3, "{:?}", out.diagnostics);
    // api.yaml, sub/other.yaml and one placeholder per skipped link: nothing read twice.
    assert_eq!(out.files.sources.files().count(), 5);
}

#[test]
fn the_file_budget_also_counts_ref_targets() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", "type: string\n");
    let text = with_example_ref("./a.yaml");
    let main = write(dir.path(), "api.yaml", &text);
    let mut options = Options::default();
    options.limits.max_files = 1;
    let out = compile(std::slice::from_ref(&main), &options);
    assert!(
        codes(&out).contains(&"input-too-many-files"),
        "{:?}",
        out.diagnostics
    );
    // The refused read is reported once, with no follow-on `ref-unresolved`.
    assert!(
        !codes(&out).contains(&"ref-unresolved"),
        "{:?}",
        out.diagnostics
    );
    options.limits.max_files = 2;
    let out = compile(std::slice::from_ref(&main), &options);
    assert!(!codes(&out).contains(&"input-too-many-files"));
}

// ---------------------------------------------------------------------------------------------
// Issue 7 §11: URL user-info is never printed.

#[test]
fn url_user_info_is_redacted_in_every_format_and_blocks_the_plan() {
    let text = doc(r#"
        asyncapi: 2.6.0
        info:
          title: Creds
          version: 1.0.0
          description: Credentials where they do not belong.
        servers:
          prod:
            url: ws://alice:s3cret@backend:8080
            protocol: ws
        x-gateway:
          context: /creds
          endpoints:
            production: 'ws://bob:hunter2@backend:8080/x?token=1'
        channels:
          /c:
            publish:
              message:
                payload:
                  type: string
        "#);
    let dir = tempfile::tempdir().unwrap();
    let main = write(dir.path(), "api.yaml", &text);
    let out = compile(std::slice::from_ref(&main), &Options::default());
    assert!(out.plan.is_none());
    assert!(codes(&out).contains(&"asyncapi-server-credentials"));
    assert!(codes(&out).contains(&"gateway-endpoint-invalid"));
    let printed = everything_printed(&out);
    for secret in ["s3cret", "hunter2", "alice", "bob:"] {
        assert!(!printed.contains(secret), "`{secret}` printed:\n{printed}");
    }
    // The snippet still shows the line, masked in place.
    assert!(
        printed.contains("ws://************@backend:8080"),
        "{printed}"
    );
    for d in &out.diagnostics {
        assert!(!d.message.contains("hunter2") && !d.message.contains("s3cret"));
    }
}

// ---------------------------------------------------------------------------------------------
// Issue 9 §1: pointers that cross a `$ref`.

fn echo_doc(channels: &str, components: &str, message_ref: &str) -> String {
    let channels: String = channels.lines().map(|l| format!("        {l}\n")).collect();
    let mut text = doc(&format!(
        r#"
        asyncapi: 3.0.0
        info:
          title: Echo
          version: 1.0.0
          description: Echo.
        x-gateway:
          context: /echo
          endpoints:
            production: 'echo:'
        channels:
{channels}        operations:
          sendEcho:
            action: receive
            channel:
              $ref: '#/channels/echo'
            messages:
              - $ref: '{message_ref}'
        components:
        "#
    ));
    text.push_str(components);
    text
}

const ECHO_COMPONENTS: &str = "  channels:
    echo:
      address: /echo
      messages:
        echo:
          $ref: '#/components/messages/echo'
    other:
      address: /other
      messages:
        other:
          payload:
            type: integer
  messages:
    echo:
      payload:
        type: string
";

fn compile_folder(files: &[(&str, &str)]) -> (tempfile::TempDir, Compilation) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        write(dir.path(), name, text);
    }
    let out = compile(&[dir.path().join("api.yaml")], &Options::default());
    (dir, out)
}

/// The plan's client-to-server messages of the only route.
fn route_messages(out: &Compilation) -> Vec<Value> {
    let plan = out.plan.as_ref().expect("a plan");
    let json: Value = serde_json::from_str(&plan.to_json()).unwrap();
    json["apis"][0]["routes"][0]["messages"]["clientToServer"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn a_pointer_through_a_channel_ref_in_the_same_file_resolves() {
    let text = echo_doc(
        "  echo:\n    $ref: '#/components/channels/echo'",
        ECHO_COMPONENTS,
        "#/channels/echo/messages/echo",
    );
    let (_dir, out) = compile_folder(&[("api.yaml", &text)]);
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    let messages = route_messages(&out);
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0]["schema"]["type"], "string");
}

#[test]
fn a_pointer_through_a_ref_into_another_file_resolves() {
    let text = echo_doc(
        "  echo:\n    $ref: './channels.yaml#/echo'",
        "  schemas: {}\n",
        "#/channels/echo/messages/echo",
    );
    let channels =
        "echo:\n  address: /echo\n  messages:\n    echo:\n      $ref: './messages.yaml#/echo'\n";
    let messages = "echo:\n  payload:\n    type: boolean\n";
    let (_dir, out) = compile_folder(&[
        ("api.yaml", &text),
        ("channels.yaml", channels),
        ("messages.yaml", messages),
    ]);
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    assert_eq!(route_messages(&out)[0]["schema"]["type"], "boolean");
}

#[test]
fn a_pointer_through_a_chain_of_refs_resolves() {
    let components = ECHO_COMPONENTS.replace(
        "  channels:\n",
        "  channels:\n    hop:\n      $ref: '#/components/channels/echo'\n",
    );
    let text = echo_doc(
        "  echo:\n    $ref: '#/channels/alias'\n  alias:\n    $ref: '#/components/channels/hop'",
        &components,
        "#/channels/echo/messages/echo",
    );
    let (_dir, out) = compile_folder(&[("api.yaml", &text)]);
    assert!(
        !codes(&out)
            .iter()
            .any(|c| c.starts_with("ref-")
                || *c == "asyncapi3-operation-messages-from-referred-channel"),
        "{:?}",
        out.diagnostics
    );
}

#[test]
fn a_cycle_through_a_crossed_ref_is_reported_and_ends() {
    let components = ECHO_COMPONENTS.replace(
        "  channels:\n",
        "  channels:\n    loop:\n      $ref: '#/channels/echo'\n",
    );
    let text = echo_doc(
        "  echo:\n    $ref: '#/components/channels/loop'",
        &components,
        "#/channels/echo/messages/echo",
    );
    let (_dir, out) = compile_folder(&[("api.yaml", &text)]);
    let cycles: Vec<_> = out
        .diagnostics
        .iter()
        .filter(|d| d.code == "ref-cycle")
        .collect();
    assert!(!cycles.is_empty(), "{:?}", out.diagnostics);
    assert!(
        cycles.iter().any(|d| d.message.contains("lead back")),
        "the crossing cycle is named as such: {cycles:?}"
    );
    assert!(out.plan.is_none());

    // A pointer that grows each time it crosses (`echo` → `#/channels/echo/x`) ends too.
    let text = echo_doc(
        "  echo:\n    $ref: '#/channels/echo/x'",
        ECHO_COMPONENTS,
        "#/channels/echo/messages/echo",
    );
    let (_dir, out) = compile_folder(&[("api.yaml", &text)]);
    assert!(codes(&out).contains(&"ref-cycle"), "{:?}", out.diagnostics);
}

#[test]
fn an_operation_message_is_its_channels_when_both_land_on_one_definition() {
    // The operation's channel is `#/channels/echo` → `#/components/channels/echo`; its message
    // `#/channels/echo/messages/echo` crosses that `$ref` and then follows the channel's own
    // `$ref` to `#/components/messages/echo`: both land on one definition, as the official parser
    // also says.
    let text = echo_doc(
        "  echo:\n    $ref: '#/components/channels/echo'",
        ECHO_COMPONENTS,
        "#/channels/echo/messages/echo",
    );
    let (_dir, out) = compile_folder(&[("api.yaml", &text)]);
    assert!(
        !codes(&out).contains(&"asyncapi3-operation-messages-from-referred-channel"),
        "{:?}",
        out.diagnostics
    );
    // Another channel's message, reached through a crossed `$ref`, is still refused.
    let text = echo_doc(
        "  echo:\n    $ref: '#/components/channels/echo'\n  other:\n    $ref: '#/components/channels/other'",
        ECHO_COMPONENTS,
        "#/channels/other/messages/other",
    );
    let (_dir, out) = compile_folder(&[("api.yaml", &text)]);
    assert!(
        codes(&out).contains(&"asyncapi3-operation-messages-from-referred-channel"),
        "{:?}",
        out.diagnostics
    );
    assert!(
        !codes(&out).contains(&"ref-unresolved"),
        "{:?}",
        out.diagnostics
    );
}

#[test]
fn a_missing_target_behind_a_crossed_ref_names_where_it_looked() {
    let text = echo_doc(
        "  echo:\n    $ref: '#/components/channels/echo'",
        ECHO_COMPONENTS,
        "#/channels/echo/messages/ecko",
    );
    let (_dir, out) = compile_folder(&[("api.yaml", &text)]);
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "ref-unresolved")
        .expect("ref-unresolved");
    assert!(
        d.message
            .contains("/components/channels/echo/messages/ecko"),
        "{}",
        d.message
    );
    assert_eq!(
        d.help.as_deref(),
        Some("did you mean `echo`? (defined under `/components/channels/echo/messages`)")
    );
}

// ---------------------------------------------------------------------------------------------
// Issue 7 §13: expansion is priced in bytes before it is built.

/// Classic billion laughs: nine levels of ten aliases each.
fn billion_laughs() -> String {
    let mut text = String::from("asyncapi: 3.0.0\nl0: &l0 'lol lol lol lol lol lol lol lol'\n");
    for i in 1..10 {
        let prev = format!("*l{}", i - 1);
        let items = [prev.as_str(); 10].join(", ");
        text.push_str(&format!("l{i}: &l{i} [{items}]\n"));
    }
    text
}

#[test]
fn alias_expansion_is_bounded_by_bytes_as_well_as_nodes() {
    // Few nodes, many bytes: one long string aliased many times.
    let long = "x".repeat(64 * 1024);
    let mut text = format!("asyncapi: 3.0.0\nbig: &big '{long}'\nmany:\n");
    for _ in 0..100 {
        text.push_str("  - *big\n");
    }
    let mut options = Options::default();
    options.limits.max_alias_bytes = 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let main = write(dir.path(), "api.yaml", &text);
    let out = compile(std::slice::from_ref(&main), &options);
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "yaml-too-large")
        .expect("refused");
    assert!(d.message.contains("by more than 1 MiB"), "{}", d.message);
    options.limits.max_alias_bytes = 16 * 1024 * 1024;
    let out = compile(std::slice::from_ref(&main), &options);
    assert!(!codes(&out).contains(&"yaml-too-large"));
}

#[test]
fn ref_expansion_is_bounded_by_bytes_as_well_as_nodes() {
    let long = "y".repeat(64 * 1024);
    let mut refs = String::new();
    for i in 0..100 {
        refs.push_str(&format!(
            "    p{i}:\n      $ref: '#/components/schemas/big'\n"
        ));
    }
    let text = format!(
        "asyncapi: 2.6.0\ninfo:\n  title: T\n  version: 1.0.0\n  description: D.\nchannels:\n  /c:\n    publish:\n      message:\n        payload:\n          $ref: '#/components/schemas/many'\ncomponents:\n  schemas:\n    big:\n      type: string\n      description: '{long}'\n    many:\n      type: object\n      properties:\n{refs}"
    );
    let mut options = common::lint();
    options.limits.max_resolved_bytes = 2 * 1024 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let main = write(dir.path(), "api.yaml", &text);
    let out = compile(std::slice::from_ref(&main), &options);
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "ref-expansion-too-large")
        .expect("refused");
    assert!(d.message.contains("2 MiB in memory"), "{}", d.message);
    options.limits = Limits::default();
    let out = compile(std::slice::from_ref(&main), &options);
    assert!(!codes(&out).contains(&"ref-expansion-too-large"));
}

/// `VmHWM` (peak resident set) and `VmRSS` of this process, in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

/// Run in a child process by the test below, alone, so that its peak memory is its own.
#[test]
#[ignore = "run by refused_alias_bomb_costs_little_memory in a child process"]
fn alias_bomb_child() {
    let Some(dir) = std::env::var_os("ALIAS_BOMB_DIR") else {
        return;
    };
    let path = PathBuf::from(dir).join("bomb.yaml");
    let (hwm_before, rss_before) = memory_kib();
    let out = compile(std::slice::from_ref(&path), &Options::default());
    assert!(
        codes(&out).contains(&"yaml-too-large"),
        "{:?}",
        out.diagnostics
    );
    let (hwm_during, _) = memory_kib();
    drop(out);
    let (_, rss_after) = memory_kib();
    println!("MEMORY before_rss={rss_before} before_hwm={hwm_before} peak_hwm={hwm_during} after_rss={rss_after}");
}

#[cfg(target_os = "linux")]
#[test]
fn refused_alias_bomb_costs_little_memory() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "bomb.yaml", billion_laughs());
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "alias_bomb_child", "--ignored", "--nocapture"])
        .env("ALIAS_BOMB_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.starts_with("MEMORY"))
        .unwrap_or_else(|| panic!("no measurement in: {stdout}"));
    println!("{line}");
    let value = |key: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    let growth_mib = value("peak_hwm").saturating_sub(value("before_hwm")) / 1024;
    let kept_mib = value("after_rss").saturating_sub(value("before_rss")) / 1024;
    // The alias budget is 8 MiB; the estimate is close, so well under 32 MiB of growth.
    assert!(growth_mib < 32, "peak grew by {growth_mib} MiB: {line}");
    assert!(
        kept_mib < 32,
        "{kept_mib} MiB kept after the compile: {line}"
    );
}
