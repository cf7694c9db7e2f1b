//! One failing and one passing document for every diagnostic code the compiler emits.
//!
//! Each failing test asserts the code, the severity, the 1-based line and column of the exact
//! offending node (found with `pos` in the document text) and the JSON pointer. Each passing variant
//! is the smallest change that fixes the problem, and must not produce the code (usually: no error
//! at all). `every_emitted_code_has_a_test_here` keeps this file complete when codes are added.

mod common;

use common::{
    check, check_named, check_paths, doc, edit, gateway, lint, pos, pos_after, pos_nth, write,
};
use portico_compiler::source::Limits;
use portico_compiler::{compile, Options, Severity};
use Severity::{Error, Info, Warning};

/// A clean AsyncAPI 2.6 document that the gateway can serve.
fn chat2() -> String {
    doc(r#"
        asyncapi: 2.6.0
        info:
          title: Chat
          version: 1.0.0
          description: A chat.
        x-gateway:
          context: /chat
          endpoints:
            production: 'echo:'
        channels:
          /rooms/{roomId}:
            parameters:
              roomId:
                schema:
                  type: string
            publish:
              message:
                payload:
                  type: string
    "#)
}

/// A clean AsyncAPI 3.1 document that the gateway can serve.
fn chat3() -> String {
    doc(r#"
        asyncapi: 3.1.0
        info:
          title: Chat
          version: 1.0.0
          description: A chat.
        x-gateway:
          context: /chat
          endpoints:
            production: 'echo:'
        channels:
          room:
            address: /rooms/{roomId}
            parameters:
              roomId: {}
            messages:
              chat:
                payload:
                  type: string
        operations:
          sendChat:
            action: receive
            channel:
              $ref: '#/channels/room'
            messages:
              - $ref: '#/channels/room/messages/chat'
    "#)
}

fn limits(f: impl FnOnce(&mut Limits)) -> Options {
    let mut options = Options::default();
    f(&mut options.limits);
    options
}

// ---------------------------------------------------------------------------------------------
// The base documents: everything below starts from them, so they must be spotless.

#[test]
fn base_documents_have_no_diagnostics_and_build_a_plan() {
    for text in [chat2(), chat3()] {
        let c = check(&text, &gateway());
        assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
        let plan = c.out.plan.as_ref().expect("a plan");
        assert_eq!(plan.apis.len(), 1);
        assert_eq!(plan.apis[0].context, "/chat/1.0.0");
        assert_eq!(plan.apis[0].routes[0].pattern, "/chat/1.0.0/rooms/{roomId}");
    }
}

// ---------------------------------------------------------------------------------------------
// Reading and parsing (files.rs, source.rs)

#[test]
fn yaml_syntax_error_is_reported_at_the_offending_token() {
    let text = doc(r#"
        asyncapi: 2.6.0
        info: [1, 2
        channels: {}
    "#);
    let c = check(&text, &lint());
    let d = c.expect("syntax", Error, pos(&text, ": {}"), "");
    assert!(
        d.message.starts_with("this is not valid YAML or JSON"),
        "{}",
        d.message
    );
    assert!(c.out.plan.is_none());

    let c = check(&chat2(), &lint());
    c.lacks("syntax");
}

#[test]
fn json_syntax_error_is_reported_at_the_offending_token() {
    let text = doc(r#"
        {
          "asyncapi": "2.6.0",
          "info": {"title": "Chat" "version": "1.0.0"},
          "channels": {}
        }
    "#);
    let c = check_named("api.json", &text, &lint());
    c.expect("syntax", Error, pos(&text, "\"version\""), "");

    let fixed = edit(&text, "\"Chat\" \"version\"", "\"Chat\", \"version\"");
    let c = check_named("api.json", &fixed, &lint());
    c.lacks("syntax");
    c.no_errors();
}

#[test]
fn duplicate_key_is_reported_at_the_second_key() {
    let text = edit(
        &chat2(),
        "  version: 1.0.0\n",
        "  version: 1.0.0\n  title: Again\n",
    );
    let c = check(&text, &gateway());
    let d = c.expect("yaml-duplicate-key", Error, pos(&text, "title: Again"), "");
    assert!(
        d.message.contains("`title`") && d.message.contains("first on line 3"),
        "{}",
        d.message
    );

    check(&chat2(), &gateway()).lacks("yaml-duplicate-key");
}

#[test]
fn unknown_yaml_tag_is_reported_at_the_tag_and_core_tags_are_accepted() {
    let text = edit(&chat2(), "title: Chat", "title: !custom Chat");
    let c = check(&text, &gateway());
    let d = c.expect("yaml-unknown-tag", Error, pos(&text, "!custom"), "");
    assert!(d.message.contains("`!custom`"), "{}", d.message);

    let text = edit(&chat2(), "title: Chat", "title: !!str Chat");
    let c = check(&text, &gateway());
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
}

#[test]
fn nesting_deeper_than_the_limit_is_reported_at_the_first_container_too_deep() {
    // The root mapping is level 1, so the 256th `[` is the 257th level (the default limit is 256;
    // the YAML scanner itself stops at 255 flow levels, at the same bracket).
    let deep = format!(
        "{}\nx-deep: {}{}\n",
        chat2().trim_end(),
        "[".repeat(300),
        "]".repeat(300)
    );
    let c = check(&deep, &gateway());
    let (line, _) = pos(&deep, "x-deep:");
    let d = c.expect("yaml-too-deep", Error, (line, 9 + 255), "");
    assert!(d.message.contains("nests"), "{}", d.message);
    assert!(c.out.plan.is_none());

    // A lower limit is enforced by the compiler's own check, at the first container beyond it.
    let deep20 = format!(
        "{}\nx-deep: {}{}\n",
        chat2().trim_end(),
        "[".repeat(20),
        "]".repeat(20)
    );
    let c = check(&deep20, &limits(|l| l.max_depth = 10));
    let d = c.expect("yaml-too-deep", Error, (line, 9 + 9), "");
    assert_eq!(d.message, "the document nests deeper than 10 levels");

    // Block nesting is bounded the same way.
    let block = format!("{}\nx-deep:\n{}a\n", chat2().trim_end(), "- ".repeat(20));
    let c = check(&block, &limits(|l| l.max_depth = 10));
    let d = c.expect("yaml-too-deep", Error, (line + 1, 1 + 2 * 9), "");
    assert_eq!(d.message, "the document nests deeper than 10 levels");
    check(&block, &gateway()).no_errors();

    let at_limit = format!(
        "{}\nx-deep: {}{}\n",
        chat2().trim_end(),
        "[".repeat(255),
        "]".repeat(255)
    );
    let c = check(&at_limit, &gateway());
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
}

#[test]
fn too_many_nodes_is_reported_at_the_first_node_over_the_limit() {
    // root map, key `x`, the list, then items 1.. : item 8 is node 11.
    let text = "x: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n";
    let c = check(text, &limits(|l| l.max_nodes = 10));
    let d = c.expect("yaml-too-large", Error, pos(text, "8"), "");
    assert!(d.message.contains("more than 10 nodes"), "{}", d.message);

    let c = check(text, &limits(|l| l.max_nodes = 12));
    c.lacks("yaml-too-large");
}

#[test]
fn alias_expansion_over_the_node_limit_is_reported_at_the_alias() {
    // 1 root + key + list + 3 items + key + list = 8 nodes; each `*a` adds 4.
    let text = "a: &a [1, 2, 3]\nb: [*a, *a, *a]\n";
    let c = check(text, &limits(|l| l.max_nodes = 14));
    let d = c.expect("yaml-too-large", Error, pos_nth(text, "*a", 1), "");
    assert!(d.message.contains("aliases expand"), "{}", d.message);

    let c = check(text, &limits(|l| l.max_nodes = 20));
    c.lacks("yaml-too-large");
}

#[test]
fn second_yaml_document_is_reported_at_its_marker() {
    let text = format!("{}---\nasyncapi: 2.6.0\n", chat2());
    let c = check(&text, &gateway());
    c.expect("yaml-multiple-documents", Error, pos(&text, "---"), "");

    // One document with explicit start and end markers is fine.
    let text = format!("---\n{}...\n", chat2());
    let c = check(&text, &gateway());
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
}

#[test]
fn complex_mapping_key_is_reported_at_the_key() {
    let text = format!("{}? [a, b]\n: 1\n", chat2());
    let c = check(&text, &gateway());
    c.expect("yaml-complex-key", Error, pos(&text, "[a, b]"), "");

    let text = format!("{}x-ab: 1\n", chat2());
    check(&text, &gateway()).no_errors();
}

#[test]
fn empty_and_whitespace_only_files_are_reported_at_the_start() {
    for text in ["", "  \n\n\t\n"] {
        let c = check(text, &gateway());
        let d = c.expect("input-empty", Error, (1, 1), "");
        assert_eq!(d.message, "the file is empty");
        assert!(c.out.documents.is_empty());
    }
}

#[test]
fn binary_and_non_utf8_files_are_refused_as_not_text() {
    let dir = tempfile::tempdir().unwrap();
    let nul = write(dir.path(), "nul.yaml", b"asyncapi: 2.6.0\x00\x01\n");
    let latin1 = write(
        dir.path(),
        "latin1.yaml",
        b"asyncapi: 2.6.0\ninfo: {title: \"caf\xe9\"}\n",
    );
    for (path, says) in [(&nul, "NUL bytes"), (&latin1, "offset 34")] {
        let c = check_paths(
            tempfile::tempdir().unwrap(),
            path.clone(),
            std::slice::from_ref(path),
            &lint(),
        );
        let d = c.expect("input-not-text", Error, (1, 1), "");
        assert!(d.message.contains(says), "{}", d.message);
    }

    // A UTF-8 byte order mark is not a problem.
    let text = format!("\u{feff}{}", chat2());
    let c = check(&text, &gateway());
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
}

#[test]
fn file_over_the_size_limit_is_refused_and_one_at_the_limit_is_read() {
    const MIB: usize = 1024 * 1024;
    let options = limits(|l| l.max_file_bytes = MIB as u64);
    let mut text = chat2();
    text.push('#');
    text.push_str(&"x".repeat(MIB - text.len() - 1));
    text.push('\n');
    assert_eq!(text.len(), MIB);
    let c = check(&text, &options);
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());

    text.push('\n');
    let c = check(&text, &options);
    let d = c.expect("input-too-large", Error, (1, 1), "");
    assert!(d.message.contains("1 MiB"), "{}", d.message);
}

#[test]
fn missing_input_path_is_reported_as_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let out = compile(std::slice::from_ref(&missing), &gateway());
    assert_eq!(out.diagnostics.len(), 1);
    let d = &out.diagnostics[0];
    assert_eq!((d.code, d.severity), ("input-unreadable", Error));
    let span = d.span.expect("span");
    assert_eq!((span.line, span.col), (1, 1));
    assert!(
        d.message.contains("nope.yaml") && d.message.contains("does not exist"),
        "{}",
        d.message
    );

    let present = write(dir.path(), "nope.yaml", chat2());
    let out = compile(&[present], &gateway());
    assert!(out.diagnostics.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Documents (compile.rs)

#[test]
fn file_without_asyncapi_key_is_an_error_only_when_named_explicitly() {
    let fragment = doc(r#"
        chatMessage:
          payload:
            type: string
    "#);
    let c = check_named("fragment.yaml", &fragment, &gateway());
    let d = c.expect("asyncapi-missing", Error, (1, 1), "");
    assert!(d
        .help
        .as_deref()
        .unwrap_or_default()
        .contains("asyncapi: 3.1.0"));

    // In a folder it is a `$ref` target, not a document.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "fragment.yaml", &fragment);
    write(dir.path(), "api.yaml", chat2());
    let out = compile(&[dir.path().to_path_buf()], &gateway());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    assert_eq!(out.documents.len(), 1);
}

#[test]
fn asyncapi_version_must_be_a_supported_string() {
    let cases = [
        ("asyncapi: 2.6\n", "is a number"),
        ("asyncapi: 1.2.0\n", "`1.2.0` is not supported"),
        ("asyncapi: 4.0.0\n", "`4.0.0` is not supported"),
        ("asyncapi: [2]\n", "must be a version string"),
    ];
    for (line, says) in cases {
        let text = edit(&chat2(), "asyncapi: 2.6.0\n", line);
        let c = check(&text, &gateway());
        let d = c.expect("asyncapi-version", Error, (1, 11), "/asyncapi");
        assert!(d.message.contains(says), "{line}: {}", d.message);
        assert!(c.out.plan.is_none());
    }
    for ok in [
        "asyncapi: '2.6.0'\n",
        "asyncapi: 2.0.0-rc2\n",
        "asyncapi: \"2.6.0\"\n",
    ] {
        let text = edit(&chat2(), "asyncapi: 2.6.0\n", ok);
        let c = check(&text, &gateway());
        assert!(c.out.diagnostics.is_empty(), "{ok}: {}", c.dump());
    }
}

// ---------------------------------------------------------------------------------------------
// References (refs.rs)

/// chat2 with its message behind `$ref: <target>` and a `chatMessage` component.
fn with_message_ref(target: &str) -> String {
    let text = edit(
        &chat2(),
        "      message:\n        payload:\n          type: string\n",
        &format!("      message:\n        $ref: '{target}'\n"),
    );
    format!(
        "{text}components:\n  messages:\n    chatMessage:\n      payload:\n        type: string\n"
    )
}

const MESSAGE_REF: &str = "/channels/~1rooms~1{roomId}/publish/message/$ref";

#[test]
fn unresolved_ref_is_reported_at_the_ref_with_a_suggestion() {
    let text = with_message_ref("#/components/messages/chatMesage");
    let c = check(&text, &gateway());
    let d = c.expect(
        "ref-unresolved",
        Error,
        pos(&text, "'#/components/messages/chatMesage'"),
        MESSAGE_REF,
    );
    assert!(
        d.message.contains("#/components/messages/chatMesage"),
        "{}",
        d.message
    );
    assert_eq!(
        d.help.as_deref(),
        Some("did you mean `chatMessage`? (defined under `/components/messages`)")
    );

    let c = check(
        &with_message_ref("#/components/messages/chatMessage"),
        &gateway(),
    );
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
}

#[test]
fn ref_to_a_missing_file_is_reported_at_the_ref() {
    let text = with_message_ref("./missing.yaml#/chat");
    let c = check(&text, &gateway());
    let d = c.expect(
        "ref-unresolved",
        Error,
        pos(&text, "'./missing.yaml#/chat'"),
        MESSAGE_REF,
    );
    assert!(
        d.message.contains("missing.yaml") && d.message.contains("cannot be read"),
        "{}",
        d.message
    );
    c.lacks("input-unreadable");
}

#[test]
fn references_nested_past_the_depth_limit_are_reported() {
    // s0 → s1 → … each one level inside the previous: 600 nested references.
    let mut schemas = String::from("  schemas:\n");
    for i in 0..600 {
        schemas.push_str(&format!(
            "    s{i}:\n      type: object\n      properties:\n        next:\n          $ref: '#/components/schemas/s{}'\n",
            i + 1
        ));
    }
    schemas.push_str("    s600:\n      type: string\n");
    let text = format!(
        "asyncapi: 2.6.0\ninfo:\n  title: Deep\n  version: 1.0.0\n  description: Deep.\nchannels:\n  /c:\n    publish:\n      message:\n        payload:\n          $ref: '#/components/schemas/s0'\ncomponents:\n{schemas}"
    );
    let c = check(&text, &lint());
    let d = c.one("ref-too-deep");
    assert_eq!(d.severity, Error);
    assert!(d.message.contains("deeper than"), "{}", d.message);
    // Shallow nesting resolves without it.
    let text = String::from(
        "asyncapi: 2.6.0\ninfo:\n  title: Deep\n  version: 1.0.0\n  description: Deep.\nchannels:\n  /c:\n    publish:\n      message:\n        payload:\n          $ref: '#/components/schemas/s0'\ncomponents:\n  schemas:\n    s0:\n      type: object\n      properties:\n        next:\n          $ref: '#/components/schemas/s1'\n    s1:\n      type: string\n"
    );
    check(&text, &lint()).lacks("ref-too-deep");
}

#[test]
fn ref_cycle_is_reported_with_the_whole_chain() {
    let text = format!(
        "{}    a:\n      $ref: '#/components/messages/b'\n    b:\n      $ref: '#/components/messages/c'\n    c:\n      $ref: '#/components/messages/a'\n",
        with_message_ref("#/components/messages/a")
    );
    let c = check(&text, &gateway());
    let d = c.at("ref-cycle", pos_nth(&text, "'#/components/messages/a'", 0));
    c.assert_diag(
        d,
        Error,
        d.span.map(|s| (s.line, s.col)).unwrap(),
        MESSAGE_REF,
    );
    let file = c.path.display().to_string();
    let chain = ["a", "b", "c", "a"]
        .map(|m| format!("{file}#/components/messages/{m}"))
        .join(" → ");
    assert!(
        d.message.ends_with(&chain),
        "message: {}\nchain: {chain}",
        d.message
    );
    assert!(c.out.plan.is_none());

    // Every entry into the cycle is reported where it is written.
    c.at("ref-cycle", pos(&text, "'#/components/messages/b'"));
    c.at("ref-cycle", pos(&text, "'#/components/messages/c'"));

    // Breaking the chain anywhere makes it resolve.
    let fixed = edit(
        &text,
        "    c:\n      $ref: '#/components/messages/a'\n",
        "    c:\n      $ref: '#/components/messages/chatMessage'\n",
    );
    check(&fixed, &gateway()).no_errors();
}

#[test]
fn recursive_schema_through_an_ancestor_is_not_a_cycle() {
    let text = format!(
        "{}  schemas:\n    tree:\n      type: object\n      properties:\n        children:\n          type: array\n          items:\n            $ref: '#/components/schemas/tree'\n",
        with_message_ref("#/components/messages/chatMessage")
    );
    let text = edit(
        &text,
        "      payload:\n        type: string\n",
        "      payload:\n        $ref: '#/components/schemas/tree'\n",
    );
    let c = check(&text, &gateway());
    c.lacks("ref-cycle");
    c.no_errors();
}

#[test]
fn remote_ref_is_refused_at_the_ref() {
    let text = with_message_ref("https://example.com/messages.yaml#/chat");
    let c = check(&text, &gateway());
    let d = c.expect("ref-remote", Error, pos(&text, "'https://"), MESSAGE_REF);
    assert!(d.message.contains("offline"), "{}", d.message);
}

#[test]
fn ref_with_an_unsupported_url_scheme_is_refused_at_the_ref() {
    let text = with_message_ref("ftp://example.com/messages.yaml#/chat");
    let c = check(&text, &gateway());
    c.expect("ref-unsupported", Error, pos(&text, "'ftp://"), MESSAGE_REF);
    c.lacks("ref-remote");
}

#[test]
fn ref_whose_fragment_is_not_a_json_pointer_is_invalid() {
    let text = with_message_ref("#components/messages/chatMessage");
    let c = check(&text, &gateway());
    c.expect(
        "ref-invalid",
        Error,
        pos(&text, "'#components"),
        MESSAGE_REF,
    );
}

#[test]
fn ref_expansion_over_the_node_limit_is_reported_once() {
    // Sixteen references to a 20-node schema: small as written, large once resolved.
    let mut text = with_message_ref("#/components/messages/chatMessage");
    text.push_str("  schemas:\n    big:\n      type: object\n      properties:\n");
    for i in 0..9 {
        text.push_str(&format!("        p{i}:\n          type: string\n"));
    }
    text.push_str("    many:\n      type: object\n      properties:\n");
    for i in 0..16 {
        text.push_str(&format!(
            "        r{i}:\n          $ref: '#/components/schemas/big'\n"
        ));
    }
    // The smallest node limit that still lets the file be parsed.
    let parses = |max_nodes: usize| {
        let limits = Limits {
            max_nodes,
            ..Limits::default()
        };
        portico_compiler::source::parse_text(portico_compiler::source::FileId(0), &text, &limits)
            .1
            .is_empty()
    };
    let min = (1..10_000).find(|&n| parses(n)).unwrap();
    let c = check(&text, &limits(|l| l.max_nodes = min));
    c.lacks("yaml-too-large");
    let d = c.one("ref-expansion-too-large");
    assert_eq!(d.severity, Error);
    assert!(c.in_main(d));
    assert!(
        d.message.contains(&format!("larger than {min} nodes")),
        "{}",
        d.message
    );
    assert!(
        d.pointer
            .starts_with("/components/schemas/many/properties/r"),
        "{}",
        d.pointer
    );

    let c = check(&text, &limits(|l| l.max_nodes = min * 4));
    c.lacks("ref-expansion-too-large");
    c.no_errors();
}

#[test]
fn empty_ref_is_an_error_at_the_ref() {
    let text = with_message_ref("");
    let c = check(&text, &gateway());
    let d = c.expect("ref-empty", Error, pos(&text, "''"), MESSAGE_REF);
    assert!(d.message.contains("empty"), "{}", d.message);
    c.lacks("ref-unresolved");
    check(
        &with_message_ref("#/components/messages/chatMessage"),
        &gateway(),
    )
    .lacks("ref-empty");
}

#[test]
fn ref_outside_the_spec_folder_is_refused_at_the_ref_naming_the_root() {
    let outer = tempfile::tempdir().unwrap();
    write(outer.path(), "secret.yaml", "payload:\n  type: string\n");
    let specs = outer.path().join("specs");
    let text = with_message_ref("../secret.yaml");
    let main = write(&specs, "api.yaml", &text);
    let c = check_paths(
        outer,
        main.clone(),
        std::slice::from_ref(&specs),
        &gateway(),
    );
    let d = c.expect(
        "ref-outside-root",
        Error,
        pos(&text, "'../secret.yaml'"),
        MESSAGE_REF,
    );
    assert!(
        d.message.contains(&format!("`{}`", specs.display())),
        "names the root: {}",
        d.message
    );
    assert!(d.help.as_deref().unwrap().contains("--allow-root"));
    assert!(c.out.plan.is_none());

    // Allowing the parent folder lets it resolve.
    let options = Options {
        allow_roots: vec![c.dir.path().to_path_buf()],
        ..gateway()
    };
    let out = compile(std::slice::from_ref(&specs), &options);
    assert!(
        !out.diagnostics.iter().any(|d| d.code == "ref-outside-root"),
        "{:?}",
        out.diagnostics
    );
    assert!(out.plan.is_some(), "{:?}", out.diagnostics);
}

#[cfg(unix)]
#[test]
fn spec_file_linked_from_outside_the_folder_is_refused() {
    let outer = tempfile::tempdir().unwrap();
    let real = write(outer.path(), "elsewhere/real.yaml", chat2());
    let specs = outer.path().join("specs");
    let main = write(&specs, "api.yaml", chat3());
    std::os::unix::fs::symlink(&real, specs.join("linked.yaml")).unwrap();
    let c = check_paths(outer, main, std::slice::from_ref(&specs), &gateway());
    let d = c.one("input-outside-root");
    assert_eq!(d.severity, Error);
    assert!(c.file_of(d).ends_with("linked.yaml"), "{}", c.dump());
    assert!(d.message.contains("resolves to"), "{}", d.message);
    assert_eq!(c.out.documents.len(), 1, "only api.yaml is read");

    // The same folder without the link has nothing outside.
    std::fs::remove_file(specs.join("linked.yaml")).unwrap();
    let out = compile(std::slice::from_ref(&specs), &gateway());
    assert!(!out
        .diagnostics
        .iter()
        .any(|d| d.code == "input-outside-root"));
}

#[cfg(unix)]
#[test]
fn folder_link_back_to_an_ancestor_is_skipped_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(dir.path(), "api.yaml", chat3());
    std::os::unix::fs::symlink(".", dir.path().join("loop")).unwrap();
    let folder = dir.path().to_path_buf();
    let c = check_paths(dir, main, std::slice::from_ref(&folder), &gateway());
    let d = c.one("input-folder-loop");
    assert_eq!(d.severity, Warning);
    assert!(c.file_of(d).ends_with("loop"), "{}", c.dump());
    assert_eq!(c.out.documents.len(), 1);
    assert!(c.out.plan.is_some(), "a warning only: {}", c.dump());

    std::fs::remove_file(folder.join("loop")).unwrap();
    let out = compile(std::slice::from_ref(&folder), &gateway());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
}

#[test]
fn more_files_than_the_limit_is_an_error_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let main = write(dir.path(), "a.yaml", chat3());
    write(dir.path(), "b.yaml", "fragment: true\n");
    write(dir.path(), "c.yaml", "fragment: true\n");
    let folder = dir.path().to_path_buf();
    let c = check_paths(
        dir,
        main,
        std::slice::from_ref(&folder),
        &limits(|l| l.max_files = 2),
    );
    let d = c.one("input-too-many-files");
    assert_eq!(d.severity, Error);
    assert!(d.message.contains("more than 2"), "{}", d.message);
    assert!(d.help.as_deref().unwrap().contains("--max-files"));

    let out = compile(std::slice::from_ref(&folder), &limits(|l| l.max_files = 3));
    assert!(!out
        .diagnostics
        .iter()
        .any(|d| d.code == "input-too-many-files"));
    assert!(out.plan.is_some(), "{:?}", out.diagnostics);
}

#[test]
fn more_bytes_than_the_total_limit_is_an_error_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let text = chat3();
    let main = write(dir.path(), "a.yaml", &text);
    write(dir.path(), "b.yaml", "fragment: true\n");
    let folder = dir.path().to_path_buf();
    let total = (text.len() + "fragment: true\n".len()) as u64;
    let c = check_paths(
        dir,
        main,
        std::slice::from_ref(&folder),
        &limits(|l| l.max_total_bytes = total - 1),
    );
    let d = c.one("input-total-too-large");
    assert_eq!(d.severity, Error);
    assert!(d.message.contains("the limit"), "{}", d.message);
    assert!(d.help.as_deref().unwrap().contains("--max-total-mib"));
    assert!(c.file_of(d).ends_with("b.yaml"), "{}", c.dump());

    let out = compile(
        std::slice::from_ref(&folder),
        &limits(|l| l.max_total_bytes = total),
    );
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
}

// ---------------------------------------------------------------------------------------------
// The official JSON Schema (schema.rs)

#[test]
fn schema_errors_point_at_the_key_with_a_suggestion() {
    let text = edit(&chat2(), "  title: Chat\n", "  titl: Chat\n");
    let c = check(&text, &gateway());
    let unknown = c.at("schema", pos(&text, "titl"));
    c.assert_diag(unknown, Error, pos(&text, "titl"), "/info/titl");
    assert_eq!(
        unknown.message,
        "`info` has a property AsyncAPI does not define: `titl`"
    );
    assert_eq!(unknown.help.as_deref(), Some("did you mean `title`?"));
    let required = c.at("schema", pos(&text, "info:"));
    c.assert_diag(required, Error, pos(&text, "info:"), "/info");
    assert_eq!(
        required.message,
        "`info` is missing the required property `title`"
    );
    assert_eq!(c.all("schema").len(), 2, "{}", c.dump());

    check(&chat2(), &gateway()).lacks("schema");
}

#[test]
fn schema_type_error_points_at_the_value() {
    let text = edit(
        &chat2(),
        "        payload:\n          type: string\n",
        "        payload:\n          type: string\n        contentType: 42\n",
    );
    let c = check(&text, &lint());
    let d = c.expect(
        "schema",
        Error,
        pos(&text, "42"),
        "/channels/~1rooms~1{roomId}/publish/message/contentType",
    );
    assert_eq!(
        d.message,
        "`contentType` must be of type string, not number"
    );
}

// ---------------------------------------------------------------------------------------------
// AsyncAPI rules (rules/asyncapi.rs)

/// Indents every line of `text` (after `doc`) by `n` spaces.
fn indent(text: &str, n: usize) -> String {
    doc(text)
        .lines()
        .map(|l| format!("{}{l}\n", " ".repeat(n)))
        .collect()
}

fn servers2(servers: &str) -> String {
    edit(
        &chat2(),
        "channels:\n",
        &format!("servers:\n{}channels:\n", indent(servers, 2)),
    )
}

#[test]
fn server_name_with_a_space_is_invalid() {
    let text = servers2(
        r#"
          my server:
            url: ws://localhost
            protocol: ws
        "#,
    );
    let c = check(&text, &lint());
    c.expect(
        "asyncapi-server-key",
        Error,
        pos(&text, "my server"),
        "/servers/my server",
    );

    check(&edit(&text, "my server", "my-server_2"), &lint()).lacks("asyncapi-server-key");
}

#[test]
fn server_url_with_user_info_is_an_error_shown_redacted() {
    let text = servers2(
        r#"
          prod:
            url: ws://alice:s3cret@backend:8080
            protocol: ws
        "#,
    );
    let c = check(&text, &lint());
    let d = c.expect(
        "asyncapi-server-credentials",
        Error,
        pos(&text, "ws://alice"),
        "/servers/prod/url",
    );
    let shown = portico_compiler::render::human(&c.out.files.sources, &c.out.diagnostics, false);
    assert!(
        !shown.contains("s3cret") && !shown.contains("alice"),
        "{shown}"
    );
    assert!(!d.message.contains("s3cret"), "{}", d.message);
    check(&edit(&text, "alice:s3cret@", ""), &lint()).lacks("asyncapi-server-credentials");

    // AsyncAPI 3 writes the host without a scheme.
    let text3 = edit(
        &chat3(),
        "channels:\n",
        "servers:\n  prod:\n    host: 'bob:pw@backend:8080'\n    protocol: ws\nchannels:\n",
    );
    let c = check(&text3, &lint());
    c.expect(
        "asyncapi-server-credentials",
        Error,
        pos(&text3, "'bob:pw@"),
        "/servers/prod/host",
    );
    check(&edit(&text3, "bob:pw@", ""), &lint()).lacks("asyncapi-server-credentials");
}

#[test]
fn v2_server_url_variables_must_be_declared_used_and_allowed() {
    let text = servers2(
        r#"
          production:
            url: ws://{host}:{port}
            protocol: ws
            variables:
              port:
                enum: ['80', '443']
                default: '8080'
              unused:
                default: x
        "#,
    );
    let c = check(&text, &lint());
    let code = "asyncapi2-server-variables";
    assert_eq!(c.all(code).len(), 2, "{}", c.dump());
    let undeclared = c.at(code, pos(&text, "ws://{host}"));
    c.assert_diag(
        undeclared,
        Error,
        pos(&text, "ws://{host}"),
        "/servers/production/url",
    );
    assert!(
        undeclared.message.contains("`{host}`"),
        "{}",
        undeclared.message
    );
    // Not in the enum: an error under --lint (the TCK calls it invalid), a warning for the gateway
    // (the official parser accepts it; the gateway uses the default as written).
    let default = c.at("asyncapi-server-variable-enum", pos(&text, "'8080'"));
    c.assert_diag(
        default,
        Error,
        pos(&text, "'8080'"),
        "/servers/production/variables/port/default",
    );
    let unused = c.at(code, pos(&text, "unused:"));
    c.assert_diag(
        unused,
        Warning,
        pos(&text, "unused:"),
        "/servers/production/variables/unused",
    );

    let fixed = doc(r#"
          production:
            url: ws://{host}:{port}
            protocol: ws
            variables:
              host:
                default: localhost
              port:
                enum: ['80', '443']
                default: '443'
    "#);
    let c = check(&servers2(&fixed), &lint());
    c.lacks(code);
    c.no_errors();

    let gateway_run = check(&text, &gateway());
    assert_eq!(
        gateway_run.one("asyncapi-server-variable-enum").severity,
        Warning,
        "{}",
        gateway_run.dump()
    );
}

#[test]
fn v2_server_variable_with_an_empty_enum_is_an_error() {
    let text = servers2(
        r#"
          production:
            url: ws://{host}
            protocol: ws
            variables:
              host:
                enum: []
        "#,
    );
    let c = check(&text, &lint());
    let d = c.at("asyncapi2-server-variables", pos(&text, "host:\n"));
    c.assert_diag(
        d,
        Error,
        pos(&text, "host:\n"),
        "/servers/production/variables/host",
    );
    assert!(d.message.contains("empty `enum`"), "{}", d.message);
}

#[test]
fn v3_server_host_variables_must_be_declared() {
    let text = edit(
        &chat3(),
        "channels:\n",
        "servers:\n  production:\n    host: '{host}:8080'\n    protocol: ws\nchannels:\n",
    );
    let c = check(&text, &lint());
    c.expect(
        "asyncapi3-server-variables",
        Error,
        pos(&text, "'{host}:8080'"),
        "/servers/production/host",
    );

    let fixed = edit(
        &text,
        "    protocol: ws\n",
        "    protocol: ws\n    variables:\n      host:\n        default: localhost\n",
    );
    let c = check(&fixed, &lint());
    c.lacks("asyncapi3-server-variables");
    c.no_errors();
}

#[test]
fn v2_channel_with_query_is_reported_at_the_channel_key() {
    let text = edit(&chat2(), "  /rooms/{roomId}:\n", "  /rooms/{roomId}?x=1:\n");
    let c = check(&text, &lint());
    c.expect(
        "asyncapi2-channel-no-query-nor-hash",
        Error,
        pos(&text, "/rooms/{roomId}?x=1"),
        "/channels/~1rooms~1{roomId}?x=1",
    );

    check(&chat2(), &lint()).lacks("asyncapi2-channel-no-query-nor-hash");
}

#[test]
fn v3_channel_address_with_fragment_is_reported_at_the_address() {
    let text = edit(
        &chat3(),
        "address: /rooms/{roomId}\n",
        "address: /rooms/{roomId}#top\n",
    );
    let c = check(&text, &lint());
    let d = c.one("asyncapi3-channel-no-query-nor-hash");
    c.assert_diag(
        d,
        Error,
        pos(&text, "/rooms/{roomId}#top"),
        "/channels/room/address",
    );
}

#[test]
fn v3_channel_address_diagnostics_point_at_the_address_field() {
    let text = edit(
        &chat3(),
        "address: /rooms/{roomId}\n",
        "address: /rooms/{roomId}#top\n",
    );
    let c = check(&text, &lint());
    c.expect(
        "asyncapi3-channel-no-query-nor-hash",
        Error,
        pos(&text, "/rooms/{roomId}#top"),
        "/channels/room/address",
    );
}

#[test]
fn v2_channel_parameters_must_match_the_address() {
    let text = doc(r#"
        asyncapi: 2.6.0
        info:
          title: Chat
          version: 1.0.0
          description: A chat.
        channels:
          /rooms/{roomId}:
            subscribe:
              message:
                payload:
                  type: string
          /users/{userId}:
            parameters:
              userId:
                schema:
                  type: string
              extra:
                schema:
                  type: string
            subscribe:
              message:
                payload:
                  type: string
    "#);
    let code = "asyncapi2-channel-parameters";
    let c = check(&text, &lint());
    assert_eq!(c.all(code).len(), 2, "{}", c.dump());
    let undeclared = c.at(code, pos(&text, "/rooms/{roomId}:"));
    c.assert_diag(
        undeclared,
        Error,
        pos(&text, "/rooms/{roomId}:"),
        "/channels/~1rooms~1{roomId}",
    );
    // Declared but unused is only a warning in 2.x (the TCK accepts it).
    let unused = c.at(code, pos(&text, "extra:"));
    c.assert_diag(
        unused,
        Warning,
        pos(&text, "extra:"),
        "/channels/~1users~1{userId}/parameters/extra",
    );

    check(&chat2(), &lint()).lacks(code);
}

#[test]
fn v3_channel_parameters_must_match_the_address_both_ways() {
    let text = edit(&chat3(), "      roomId: {}\n", "      extra: {}\n");
    let code = "asyncapi3-channel-parameters";
    let c = check(&text, &lint());
    assert_eq!(c.all(code).len(), 2, "{}", c.dump());
    let undeclared = c.at(code, pos(&text, "/rooms/{roomId}"));
    c.assert_diag(
        undeclared,
        Error,
        pos(&text, "/rooms/{roomId}"),
        "/channels/room/address",
    );
    assert!(undeclared.message.contains("`{roomId}`"));
    let unused = c.at(code, pos(&text, "extra:"));
    c.assert_diag(
        unused,
        Error,
        pos(&text, "extra:"),
        "/channels/room/parameters/extra",
    );

    check(&chat3(), &lint()).lacks(code);
}

#[test]
fn parameter_name_with_a_space_is_invalid() {
    let text = edit(
        &chat2(),
        "      roomId:\n",
        "      roomId:\n        schema:\n          type: string\n      room id:\n",
    );
    let c = check(&text, &lint());
    c.expect(
        "asyncapi-parameter-key",
        Error,
        pos(&text, "room id:"),
        "/channels/~1rooms~1{roomId}/parameters/room id",
    );

    check(&chat2(), &lint()).lacks("asyncapi-parameter-key");
}

#[test]
fn components_key_with_a_space_is_invalid() {
    let text = format!(
        "{}components:\n  messages:\n    chat message:\n      payload:\n        type: string\n",
        chat2()
    );
    let c = check(&text, &lint());
    c.expect(
        "asyncapi-components-key",
        Error,
        pos(&text, "chat message"),
        "/components/messages/chat message",
    );

    let fixed = edit(&text, "chat message", "chat.message-v1_2");
    let c = check(&fixed, &lint());
    c.lacks("asyncapi-components-key");
    c.no_errors();
}

/// A 2.6 document with security schemes, for the security requirement rules.
fn secured2(server_security: &str, operation_security: &str) -> String {
    doc(&format!(
        r#"
        asyncapi: 2.6.0
        info:
          title: Chat
          version: 1.0.0
          description: A chat.
        servers:
          production:
            url: ws://localhost
            protocol: ws
            security:
              - {server_security}
        channels:
          /rooms:
            publish:
              security:
                - {operation_security}
              message:
                payload:
                  type: string
        components:
          securitySchemes:
            apiKey:
              type: httpApiKey
              name: token
              in: query
            oauth:
              type: oauth2
              flows:
                implicit:
                  authorizationUrl: https://example.com/auth
                  scopes:
                    chat:write: Write messages.
        "#
    ))
}

#[test]
fn server_security_must_name_a_declared_scheme() {
    let text = secured2("apiKy: []", "apiKey: []");
    let c = check(&text, &lint());
    let d = c.expect(
        "asyncapi2-server-security",
        Error,
        pos(&text, "apiKy"),
        "/servers/production/security/0/apiKy",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `apiKey`?"));

    let c = check(&secured2("apiKey: []", "apiKey: []"), &lint());
    c.lacks("asyncapi2-server-security");
    c.no_errors();
}

#[test]
fn operation_security_scopes_only_for_oauth_and_declared() {
    let text = secured2("apiKey: []", "apiKey: [admin]");
    let c = check(&text, &lint());
    c.expect(
        "asyncapi2-operation-security",
        Error,
        pos(&text, "[admin]"),
        "/channels/~1rooms/publish/security/0/apiKey",
    );

    let text = secured2("apiKey: []", "oauth: [chat:write, chat:delete]");
    let c = check(&text, &lint());
    let d = c.expect(
        "asyncapi2-operation-security",
        Warning,
        pos(&text, "chat:delete"),
        "/channels/~1rooms/publish/security/0/oauth/1",
    );
    assert!(d.message.contains("`chat:delete`"), "{}", d.message);

    let c = check(&secured2("apiKey: []", "oauth: [chat:write]"), &lint());
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
}

#[test]
fn duplicate_tags_are_reported_at_the_second_tag() {
    let text = edit(
        &chat2(),
        "  description: A chat.\n",
        "  description: A chat.\ntags:\n  - name: chat\n  - name: rooms\n  - name: chat\n",
    );
    let c = check(&text, &lint());
    let d = c.expect(
        "asyncapi-tags-uniqueness",
        Error,
        pos(&text, "name: chat\nx-gateway"),
        "/tags/2",
    );
    assert!(d.message.contains("first on line 7"), "{}", d.message);

    let fixed = edit(
        &text,
        "  - name: chat\nx-gateway",
        "  - name: lobby\nx-gateway",
    );
    let c = check(&fixed, &lint());
    c.lacks("asyncapi-tags-uniqueness");
    c.no_errors();
}

#[test]
fn tags_property_inside_a_payload_schema_is_not_a_tag_list() {
    let text = edit(
        &chat2(),
        "        payload:\n          type: string\n",
        "        payload:\n          type: object\n          properties:\n            tags:\n              type: array\n          examples:\n            - tags: [{name: a}, {name: a}]\n",
    );
    check(&text, &lint()).lacks("asyncapi-tags-uniqueness");
}

fn schema_component(schema: &str) -> String {
    format!("{}components:\n  schemas:\n{}", chat2(), indent(schema, 4))
}

#[test]
fn discriminator_must_be_a_required_property() {
    let text = schema_component(
        r#"
        pet:
          type: object
          discriminator: kind
          properties:
            kind:
              type: string
        "#,
    );
    let c = check(&text, &lint());
    c.expect(
        "asyncapi-schema-discriminator",
        Error,
        pos(&text, "kind\n"),
        "/components/schemas/pet/discriminator",
    );

    // Compiling for the gateway it is a warning: the official parser and generator accept it, and
    // the gateway serves the document correctly.
    let c = check(&text, &gateway());
    c.expect(
        "asyncapi-schema-discriminator",
        Warning,
        pos(&text, "kind\n"),
        "/components/schemas/pet/discriminator",
    );
    c.no_errors();
    assert!(c.out.plan.is_some());

    let fixed = edit(
        &text,
        "      discriminator: kind\n",
        "      discriminator: kind\n      required: [kind]\n",
    );
    let c = check(&fixed, &lint());
    c.lacks("asyncapi-schema-discriminator");
    c.no_errors();
}

#[test]
fn spec_only_errors_are_warnings_when_compiling_for_the_gateway() {
    // Server and component names the specification's patterns refuse (the AsyncAPI TCK calls such
    // documents invalid; the official parser accepts them): errors under `--lint` only.
    let text = format!(
        "{}components:\n  messages:\n    chat message:\n      payload:\n        type: string\n",
        servers2(
            r#"
              my server:
                url: ws://localhost
                protocol: ws
            "#
        )
    );
    let lint_run = check(&text, &lint());
    let gateway_run = check(&text, &gateway());
    for code in ["asyncapi-server-key", "asyncapi-components-key"] {
        assert_eq!(lint_run.one(code).severity, Error, "{}", lint_run.dump());
        assert_eq!(
            gateway_run.one(code).severity,
            Warning,
            "{}",
            gateway_run.dump()
        );
    }
    gateway_run.no_errors();
}

#[test]
fn schema_default_and_examples_must_match_the_schema() {
    let text = schema_component(
        r#"
        age:
          type: integer
          default: old
          examples: [1, two]
        "#,
    );
    let c = check(&text, &lint());
    let d = c.expect(
        "asyncapi-schema-default",
        Warning,
        pos(&text, "old"),
        "/components/schemas/age/default",
    );
    assert!(
        d.message.contains("not valid against its schema"),
        "{}",
        d.message
    );
    c.expect(
        "asyncapi-schema-examples",
        Warning,
        pos(&text, "two"),
        "/components/schemas/age/examples/1",
    );
    c.no_errors();

    let fixed = edit(
        &edit(&text, "default: old", "default: 3"),
        "[1, two]",
        "[1, 2]",
    );
    let c = check(&fixed, &lint());
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
}

#[test]
fn message_examples_only_take_known_keys_and_valid_payloads() {
    let text = edit(
        &chat2(),
        "        payload:\n          type: string\n",
        "        payload:\n          type: string\n        examples:\n          - payload: 5\n            value: 3\n",
    );
    let c = check(&text, &lint());
    let code = "asyncapi-message-examples";
    assert_eq!(c.all(code).len(), 2, "{}", c.dump());
    let base = "/channels/~1rooms~1{roomId}/publish/message/examples/0";
    let payload = c.at(code, pos(&text, "5\n"));
    // 2.x: an error, as in the official parser.
    c.assert_diag(
        payload,
        Error,
        pos(&text, "5\n"),
        &format!("{base}/payload"),
    );
    let key = c.at(code, pos(&text, "value: 3"));
    c.assert_diag(key, Error, pos(&text, "value: 3"), &format!("{base}/value"));
    assert!(key.message.contains("`value`"), "{}", key.message);

    let fixed = edit(
        &text,
        "          - payload: 5\n            value: 3\n",
        "          - payload: hello\n            name: greeting\n",
    );
    let c = check(&fixed, &lint());
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
}

#[test]
fn v3_message_example_not_matching_its_schema_stays_a_warning() {
    let text = edit(
        &chat3(),
        "        payload:\n          type: string\n",
        "        payload:\n          type: string\n        examples:\n          - payload: 5\n",
    );
    let c = check(&text, &lint());
    c.expect(
        "asyncapi-message-examples",
        Warning,
        pos(&text, "5\n"),
        "/channels/room/messages/chat/examples/0/payload",
    );
    c.no_errors();
}

#[test]
fn v2_message_example_headers_not_matching_their_schema_are_an_error() {
    let text = edit(
        &chat2(),
        "        payload:\n          type: string\n",
        "        headers:\n          type: object\n          properties:\n            id: {type: integer}\n        payload:\n          type: string\n        examples:\n          - headers: {id: seven}\n",
    );
    let c = check(&text, &lint());
    c.expect(
        "asyncapi-message-examples",
        Error,
        pos(&text, "{id: seven}"),
        "/channels/~1rooms~1{roomId}/publish/message/examples/0/headers",
    );
    let c = check(&edit(&text, "{id: seven}", "{id: 7}"), &lint());
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
}

#[test]
fn v2_operation_ids_and_message_ids_are_unique() {
    let text = doc(r#"
        asyncapi: 2.6.0
        info:
          title: Chat
          version: 1.0.0
          description: A chat.
        channels:
          /rooms:
            publish:
              operationId: send
              message:
                messageId: chat
                payload:
                  type: string
            subscribe:
              operationId: send
              message:
                messageId: chat
                payload:
                  type: integer
    "#);
    let c = check(&text, &lint());
    let d = c.expect(
        "asyncapi2-operation-operationId-uniqueness",
        Error,
        pos_nth(&text, "send", 1),
        "/channels/~1rooms/subscribe/operationId",
    );
    assert!(d.message.contains("first on line 9"), "{}", d.message);
    c.expect(
        "asyncapi2-message-messageId-uniqueness",
        Error,
        pos_nth(&text, "chat\n", 1),
        "/channels/~1rooms/subscribe/message/messageId",
    );

    let fixed = edit(
        &text,
        "operationId: send\n      message:\n        messageId: chat\n        payload:\n          type: integer",
        "operationId: receive\n      message:\n        messageId: notice\n        payload:\n          type: integer",
    );
    let c = check(&fixed, &lint());
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
}

#[test]
fn v2_operation_traits_merge_as_json_merge_patch_so_the_traits_id_wins() {
    // `publish` says `send`, but its trait replaces that with `notify` (2.x: the trait wins), so
    // the `send` of `subscribe` is no duplicate, while a third operation's `notify` is.
    let text = doc(r#"
        asyncapi: 2.6.0
        info:
          title: Chat
          version: 1.0.0
          description: A chat.
        channels:
          /rooms:
            publish:
              operationId: send
              traits:
                - $ref: '#/components/operationTraits/first'
                - $ref: '#/components/operationTraits/renamed'
              message:
                payload:
                  type: string
            subscribe:
              operationId: send
              message:
                payload:
                  type: string
          /lobby:
            publish:
              operationId: notify
              message:
                payload:
                  type: string
        components:
          operationTraits:
            first:
              operationId: first
            renamed:
              operationId: notify
    "#);
    let c = check(&text, &lint());
    // Found at `/lobby`'s own id; the first use is the trait's (its copy keeps the definition's
    // position, in `components`).
    let d = c.expect(
        "asyncapi2-operation-operationId-uniqueness",
        Error,
        pos(&text, "notify\n      message"),
        "/channels/~1lobby/publish/operationId",
    );
    let trait_line = pos_nth(&text, "operationId: notify", 1).0;
    assert!(
        d.message.contains("`notify`")
            && d.message.contains(&format!("first on line {trait_line}")),
        "{}",
        d.message
    );

    let fixed = edit(
        &text,
        "operationId: notify\n      message",
        "operationId: announce\n      message",
    );
    let c = check(&fixed, &lint());
    c.lacks("asyncapi2-operation-operationId-uniqueness");
    c.no_errors();
}

#[test]
fn v2_same_message_referenced_twice_is_not_a_duplicate_message_id() {
    let text = doc(r#"
        asyncapi: 2.6.0
        info:
          title: Chat
          version: 1.0.0
          description: A chat.
        channels:
          /a:
            publish:
              message:
                $ref: '#/components/messages/chat'
          /b:
            publish:
              message:
                $ref: '#/components/messages/chat'
        components:
          messages:
            chat:
              messageId: chat
              payload:
                type: string
    "#);
    let c = check(&text, &lint());
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
}

#[test]
fn v3_operation_messages_must_come_from_its_channel() {
    let text = edit(
        &chat3(),
        "operations:\n",
        "  lobby:\n    address: /lobby\n    messages:\n      hello:\n        payload:\n          type: string\noperations:\n",
    );
    let text = edit(
        &text,
        "- $ref: '#/channels/room/messages/chat'",
        "- $ref: '#/channels/lobby/messages/hello'",
    );
    let c = check(&text, &lint());
    let d = c.expect(
        "asyncapi3-operation-messages-from-referred-channel",
        Error,
        pos(&text, "'#/channels/lobby/messages/hello'"),
        "/operations/sendChat/messages/0/$ref",
    );
    assert!(d.message.contains("`sendChat`"), "{}", d.message);

    let c = check(&chat3(), &lint());
    c.lacks("asyncapi3-operation-messages-from-referred-channel");
}

#[test]
fn v3_operation_may_reference_the_same_component_its_channel_references() {
    let text = doc(r#"
        asyncapi: 3.1.0
        info:
          title: Chat
          version: 1.0.0
          description: A chat.
        channels:
          room:
            address: /rooms
            messages:
              chat:
                $ref: '#/components/messages/chat'
        operations:
          sendChat:
            action: receive
            channel:
              $ref: '#/channels/room'
            messages:
              - $ref: '#/components/messages/chat'
        components:
          messages:
            chat:
              payload:
                type: string
    "#);
    // The same definition, so the gateway serves it; but the specification says the link goes
    // through the channel (and the official parser rejects it): a warning naming the right spelling.
    let c = check(&text, &lint());
    let d = c.expect(
        "asyncapi3-operation-messages-from-referred-channel",
        Warning,
        pos_nth(&text, "'#/components/messages/chat'", 1),
        "/operations/sendChat/messages/0/$ref",
    );
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("'#/channels/room/messages/chat'")),
        "{d:?}"
    );
    c.no_errors();

    let fixed = edit(
        &text,
        "      - $ref: '#/components/messages/chat'",
        "      - $ref: '#/channels/room/messages/chat'",
    );
    let c = check(&fixed, &lint());
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
}

#[test]
fn v3_operation_message_in_components_but_not_in_its_channel_is_an_error() {
    let text = edit(
        &chat3(),
        "- $ref: '#/channels/room/messages/chat'",
        "- $ref: '#/components/messages/other'",
    );
    let text = format!(
        "{text}components:\n  messages:\n    other:\n      payload:\n        type: integer\n"
    );
    let c = check(&text, &lint());
    c.expect(
        "asyncapi3-operation-messages-from-referred-channel",
        Error,
        pos(&text, "'#/components/messages/other'"),
        "/operations/sendChat/messages/0/$ref",
    );
}

#[test]
fn v3_operation_channel_and_messages_must_be_reference_objects() {
    let text = edit(
        &chat3(),
        "    channel:\n      $ref: '#/channels/room'\n",
        "    channel: room\n",
    );
    let c = check(&text, &lint());
    let d = c.expect(
        "schema",
        Error,
        pos(&text, "room\n    messages"),
        "/operations/sendChat/channel",
    );
    assert!(d.message.contains("Reference Object"), "{}", d.message);
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("'#/channels/room'")),
        "{d:?}"
    );

    let text = edit(
        &chat3(),
        "      - $ref: '#/channels/room/messages/chat'",
        "      - chat",
    );
    let c = check(&text, &lint());
    let d = c.expect(
        "schema",
        Error,
        pos_after(&text, "      - "),
        "/operations/sendChat/messages/0",
    );
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("'#/channels/room/messages/chat'")),
        "{d:?}"
    );

    // An inline message instead of a reference.
    let text = edit(
        &chat3(),
        "      - $ref: '#/channels/room/messages/chat'",
        "      - payload: {type: string}",
    );
    let c = check(&text, &lint());
    c.expect(
        "schema",
        Error,
        pos(&text, "payload: {type"),
        "/operations/sendChat/messages/0",
    );

    check(&chat3(), &lint()).lacks("schema");
}

#[test]
fn v3_reply_messages_must_belong_to_the_replys_channel() {
    let text = edit(
        &chat3(),
        "operations:\n",
        "  lobby:\n    address: /lobby\n    messages:\n      hello:\n        payload:\n          type: string\noperations:\n",
    );
    let text = format!("{text}    reply:\n      channel:\n        $ref: '#/channels/lobby'\n      messages:\n        - $ref: '#/channels/room/messages/chat'\n");
    let c = check(&text, &lint());
    let d = c.expect(
        "asyncapi3-reply-messages-from-referred-channel",
        Error,
        pos_nth(&text, "'#/channels/room/messages/chat'", 1),
        "/operations/sendChat/reply/messages/0/$ref",
    );
    assert!(d.message.contains("reply of `sendChat`"), "{}", d.message);

    let fixed = edit(
        &text,
        "        - $ref: '#/channels/room/messages/chat'",
        "        - $ref: '#/channels/lobby/messages/hello'",
    );
    let c = check(&fixed, &lint());
    c.lacks("asyncapi3-reply-messages-from-referred-channel");
    c.no_errors();

    // Without its own `channel`, a reply travels on the operation's: its messages belong there.
    let no_channel = edit(
        &text,
        "      channel:\n        $ref: '#/channels/lobby'\n",
        "",
    );
    let c = check(&no_channel, &lint());
    c.lacks("asyncapi3-reply-messages-from-referred-channel");
    c.no_errors();
    let wrong = edit(
        &fixed,
        "      channel:\n        $ref: '#/channels/lobby'\n",
        "",
    );
    let c = check(&wrong, &lint());
    c.expect(
        "asyncapi3-reply-messages-from-referred-channel",
        Error,
        pos(&wrong, "'#/channels/lobby/messages/hello'"),
        "/operations/sendChat/reply/messages/0/$ref",
    );
}

#[test]
fn v3_reply_in_components_is_checked_once_where_it_is_written() {
    let text = edit(
        &chat3(),
        "operations:\n",
        "  lobby:\n    address: /lobby\n    messages:\n      hello:\n        payload:\n          type: string\noperations:\n",
    );
    let text = format!("{text}    reply:\n      $ref: '#/components/replies/answer'\ncomponents:\n  replies:\n    answer:\n      channel: lobby\n      messages:\n        - $ref: '#/channels/room/messages/chat'\n");
    let c = check(&text, &lint());
    c.expect(
        "schema",
        Error,
        pos(&text, "lobby\n      messages"),
        "/components/replies/answer/channel",
    );
    // The reply's channel is unusable, so its messages are checked against nothing rather than guessed.
    c.lacks("asyncapi3-reply-messages-from-referred-channel");

    let text = edit(
        &text,
        "      channel: lobby\n",
        "      channel:\n        $ref: '#/channels/lobby'\n",
    );
    let c = check(&text, &lint());
    let all = c.all("asyncapi3-reply-messages-from-referred-channel");
    assert_eq!(all.len(), 1, "{}", c.dump());
    c.assert_diag(
        all[0],
        Error,
        pos_nth(&text, "'#/channels/room/messages/chat'", 1),
        "/components/replies/answer/messages/0/$ref",
    );
}

#[test]
fn v3_channel_servers_must_be_servers_of_the_document() {
    let text = edit(
        &chat3(),
        "channels:\n",
        "servers:\n  production:\n    host: localhost\n    protocol: ws\nchannels:\n",
    );
    let text = edit(
        &text,
        "    parameters:\n",
        "    servers:\n      - $ref: '#/components/servers/elsewhere'\n    parameters:\n",
    );
    let text = format!("{text}components:\n  servers:\n    elsewhere:\n      host: elsewhere\n      protocol: ws\n");
    let c = check(&text, &lint());
    c.expect(
        "asyncapi3-channel-servers",
        Error,
        pos(&text, "'#/components/servers/elsewhere'"),
        "/channels/room/servers/0/$ref",
    );

    let fixed = edit(
        &text,
        "'#/components/servers/elsewhere'",
        "'#/servers/production'",
    );
    let c = check(&fixed, &lint());
    c.lacks("asyncapi3-channel-servers");
    c.no_errors();
}

#[test]
fn v3_channel_may_list_two_different_servers() {
    let text = edit(
        &chat3(),
        "channels:\n",
        "servers:\n  production:\n    host: localhost\n    protocol: ws\n  backup:\n    host: backup\n    protocol: ws\nchannels:\n",
    );
    let text = edit(
        &text,
        "    parameters:\n",
        "    servers:\n      - $ref: '#/servers/production'\n      - $ref: '#/servers/backup'\n    parameters:\n",
    );
    let c = check(&text, &lint());
    c.no_errors();
}

#[test]
fn v3_channel_servers_given_as_names_are_errors() {
    let text = edit(
        &chat3(),
        "channels:\n",
        "servers:\n  production:\n    host: localhost\n    protocol: ws\nchannels:\n",
    );
    let text = edit(
        &text,
        "    parameters:\n",
        "    servers: [production]\n    parameters:\n",
    );
    let c = check(&text, &lint());
    let d = c.expect(
        "asyncapi3-channel-servers",
        Error,
        pos(&text, "production]"),
        "/channels/room/servers/0",
    );
    assert!(d.message.contains("the name `production`"), "{}", d.message);
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("$ref: '#/servers/production'")),
        "{d:?}"
    );

    let fixed = edit(&text, "[production]", "[$ref: '#/servers/production']");
    let c = check(&fixed, &lint());
    c.lacks("asyncapi3-channel-servers");
    c.no_errors();
}

#[test]
fn v3_channel_defined_in_components_is_checked_where_it_is_written() {
    let text = edit(
        &chat3(),
        "channels:\n",
        "servers:\n  production:\n    host: localhost\n    protocol: ws\nchannels:\n  lobby:\n    $ref: '#/components/channels/lobby'\n",
    );
    let text = format!("{text}components:\n  channels:\n    lobby:\n      address: /lobby\n      servers: [prod]\n");
    let c = check(&text, &lint());
    c.expect(
        "asyncapi3-channel-servers",
        Error,
        pos(&text, "prod]"),
        "/components/channels/lobby/servers/0",
    );
}

#[test]
fn v2_channel_servers_must_be_declared_servers() {
    let text = edit(
        &chat2(),
        "channels:\n",
        "servers:\n  production:\n    url: ws://localhost\n    protocol: ws\nchannels:\n",
    );
    let text = edit(
        &text,
        "    parameters:\n",
        "    servers: [prodution]\n    parameters:\n",
    );
    let c = check(&text, &lint());
    let d = c.expect(
        "asyncapi2-channel-servers",
        Error,
        pos(&text, "prodution"),
        "/channels/~1rooms~1{roomId}/servers/0",
    );
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("`production`")),
        "{d:?}"
    );

    let c = check(&edit(&text, "prodution", "production"), &lint());
    c.lacks("asyncapi2-channel-servers");
    c.no_errors();
}

#[test]
fn v3_channel_parameters_without_an_address_are_an_error() {
    let text = edit(
        &chat3(),
        "    address: /rooms/{roomId}\n",
        "    address: null\n",
    );
    let c = check(&text, &lint());
    c.expect(
        "asyncapi3-channel-parameters",
        Error,
        pos(&text, "parameters:"),
        "/channels/room/parameters",
    );
    let without = edit(&text, "    address: null\n", "");
    let c = check(&without, &lint());
    c.expect(
        "asyncapi3-channel-parameters",
        Error,
        pos(&without, "parameters:"),
        "/channels/room/parameters",
    );

    let fixed = edit(&text, "    parameters:\n      roomId: {}\n", "");
    let c = check(&fixed, &lint());
    c.lacks("asyncapi3-channel-parameters");
    c.no_errors();
}

/// chat3 with `bindings` (indented for the channel `room`) added to the channel.
fn chat3_with_channel_bindings(bindings: &str) -> String {
    edit(
        &chat3(),
        "    parameters:\n",
        &format!("    bindings:\n{}    parameters:\n", indent(bindings, 6)),
    )
}

#[test]
fn ws_channel_binding_fields_are_checked_against_the_binding_schema() {
    let code = "asyncapi-binding-ws-invalid";
    // One valid and one invalid document per field of the ws channel binding.
    for (field, valid, invalid, at) in [
        ("method", "method: POST", "method: PUT", "PUT"),
        (
            "query",
            "query: {type: object, properties: {token: {type: string}}}",
            "query: 5",
            "5",
        ),
        (
            "headers",
            "headers: {type: object, properties: {X-Id: {type: string}}}",
            "headers: [a]",
            "[a]",
        ),
        (
            "bindingVersion",
            "bindingVersion: '0.1.0'",
            "bindingVersion: 1",
            "1\n",
        ),
    ] {
        let good = chat3_with_channel_bindings(&format!("ws:\n  {valid}\n"));
        for options in [lint(), gateway()] {
            let c = check(&good, &options);
            c.lacks(code);
            c.no_errors();
        }
        let bad = chat3_with_channel_bindings(&format!("ws:\n  {invalid}\n"));
        for options in [lint(), gateway()] {
            let c = check(&bad, &options);
            let found = c.all(code);
            assert!(!found.is_empty(), "{field}: {}", c.dump());
            // Reported once, by the binding check, not also by the document schema.
            c.lacks("schema");
            for d in found {
                c.assert_diag(
                    d,
                    Error,
                    pos(&bad, at),
                    &format!("/channels/room/bindings/ws/{field}"),
                );
            }
        }
    }
    // A property the binding does not define.
    let text = chat3_with_channel_bindings("ws:\n  verb: GET\n");
    let c = check(&text, &gateway());
    let d = c.expect(
        code,
        Error,
        pos(&text, "verb"),
        "/channels/room/bindings/ws/verb",
    );
    assert!(d.message.contains("`verb`"), "{}", d.message);
}

#[test]
fn an_unknown_binding_version_is_a_warning_and_the_binding_is_not_checked() {
    let text = chat3_with_channel_bindings("ws:\n  method: PUT\n  bindingVersion: '9.9.9'\n");
    let c = check(&text, &lint());
    let d = c.expect(
        "asyncapi-binding-version-unknown",
        Warning,
        pos(&text, "'9.9.9'"),
        "/channels/room/bindings/ws/bindingVersion",
    );
    assert!(
        d.help.as_deref().is_some_and(|h| h.contains("`0.1.0`")),
        "{d:?}"
    );
    c.lacks("asyncapi-binding-ws-invalid");
    c.no_errors();
}

#[test]
fn other_protocol_bindings_are_errors_under_lint_and_warnings_for_the_gateway() {
    let code = "asyncapi-binding-invalid";
    let text = chat3_with_channel_bindings("kafka:\n  partitions: -2\n  bindingVersion: '0.5.0'\n");
    let c = check(&text, &lint());
    c.expect(
        code,
        Error,
        pos(&text, "-2"),
        "/channels/room/bindings/kafka/partitions",
    );
    let c = check(&text, &gateway());
    c.expect(
        code,
        Warning,
        pos(&text, "-2"),
        "/channels/room/bindings/kafka/partitions",
    );
    c.no_errors();
    assert!(c.out.plan.is_some());

    let fixed = edit(&text, "partitions: -2", "partitions: 3");
    let c = check(&fixed, &lint());
    c.lacks(code);
    c.no_errors();

    // 2.x: a message binding inside `oneOf`, and one in `components.messageBindings`.
    let text = doc(r#"
        asyncapi: 2.6.0
        info:
          title: Chat
          version: 1.0.0
          description: A chat.
        channels:
          /rooms:
            publish:
              message:
                oneOf:
                  - payload:
                      type: string
                    bindings:
                      amqp:
                        contentEncoding: 7
        components:
          messageBindings:
            kept:
              mqtt:
                payloadFormatIndicator: 2
    "#);
    let c = check(&text, &lint());
    let all = c.all(code);
    assert_eq!(all.len(), 2, "{}", c.dump());
    c.at(code, pos(&text, "7\n"));
    c.at(code, pos(&text, "2\n"));
    let fixed = edit(
        &edit(&text, "contentEncoding: 7", "contentEncoding: gzip"),
        "payloadFormatIndicator: 2",
        "payloadFormatIndicator: 1",
    );
    let c = check(&fixed, &lint());
    c.lacks(code);
}

#[test]
fn a_zip_archive_is_refused_with_unzip_it_first() {
    let dir = tempfile::tempdir().unwrap();
    let zip = write(dir.path(), "ChatAPI-1.0.0.zip", b"PK\x03\x04 not really");
    let out = compile(std::slice::from_ref(&zip), &Options::default());
    let codes: Vec<&str> = out.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, ["input-archive"], "{:#?}", out.diagnostics);
    let d = &out.diagnostics[0];
    assert!(d.is_error());
    assert!(
        d.help.as_deref().is_some_and(|h| h.contains("unzip")
            && h.contains(&dir.path().join("ChatAPI-1.0.0").display().to_string())),
        "{d:?}"
    );
    assert!(out.plan.is_none());

    // A document named `.json` next to it is read as usual.
    let spec = write(dir.path(), "api.json", "{}");
    let out = compile(&[spec], &Options::default());
    assert!(!out.diagnostics.iter().any(|d| d.code == "input-archive"));
}

#[test]
fn unmapped_topics_of_a_wso2_export_go_to_the_bare_endpoint() {
    // WSO2's markers (`x-auth-type`) in a document with a `production` server.
    let text = edit(
        &chat2(),
        "x-gateway:\n  context: /chat\n  endpoints:\n    production: 'echo:'\n",
        "x-gateway:\n  context: /chat\nservers:\n  production:\n    url: ws://backend:8080/ws\n    protocol: ws\n",
    );
    let text = edit(
        &text,
        "    publish:\n",
        "    x-auth-type: Any\n    publish:\n",
    );
    let c = check(&text, &gateway());
    let d = c.expect(
        "gateway-unmapped-topic",
        Info,
        pos(&text, "/rooms/{roomId}:"),
        "/channels/~1rooms~1{roomId}",
    );
    assert!(d.message.contains("bare endpoint"), "{}", d.message);
    let route = &c.out.plan.as_ref().expect("a plan").apis[0].routes[0];
    assert_eq!(route.backend_path, "");

    // Explicit either way, without the info.
    for (choice, path) in [("append", "/rooms/{roomId}"), ("endpoint", "")] {
        let explicit = edit(
            &text,
            "x-gateway:\n  context: /chat\n",
            &format!("x-gateway:\n  context: /chat\n  unmappedTopics: {choice}\n"),
        );
        let c = check(&explicit, &gateway());
        c.lacks("gateway-unmapped-topic");
        c.no_errors();
        assert_eq!(
            c.out.plan.unwrap().apis[0].routes[0].backend_path,
            path,
            "{choice}"
        );
    }
    let c = check(
        &edit(
            &text,
            "x-gateway:\n  context: /chat\n",
            "x-gateway:\n  context: /chat\n  unmappedTopics: sometimes\n",
        ),
        &gateway(),
    );
    c.at("gateway-extension", pos_after(&c.text, "unmappedTopics: "));

    // A mapped topic keeps its mapping; a plain AsyncAPI document appends the address.
    let mapped = edit(
        &text,
        "    x-auth-type: Any\n",
        "    x-auth-type: Any\n    x-uri-mapping: /r/{roomId}\n",
    );
    let c = check(&mapped, &gateway());
    c.lacks("gateway-unmapped-topic");
    assert_eq!(
        c.out.plan.unwrap().apis[0].routes[0].backend_path,
        "/r/{roomId}"
    );
    let plain = edit(&text, "    x-auth-type: Any\n", "");
    let c = check(&plain, &gateway());
    c.lacks("gateway-unmapped-topic");
    assert_eq!(
        c.out.plan.unwrap().apis[0].routes[0].backend_path,
        "/rooms/{roomId}"
    );
}

#[test]
fn an_api_yaml_setting_portico_does_not_use_is_a_warning_in_api_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let api_yaml =
        "type: api\ndata:\n  context: /chat\n  version: 1.0.0\n  visibility: RESTRICTED\n";
    let project = write(dir.path(), "Chat/api.yaml", api_yaml);
    let spec = write(
        dir.path(),
        "Chat/Definitions/asyncapi.yaml",
        edit(&chat2(), "  context: /chat\n", ""),
    );
    let out = compile(std::slice::from_ref(&spec), &gateway());
    let found: Vec<_> = out
        .diagnostics
        .iter()
        .filter(|d| d.code == "gateway-import-ignored")
        .collect();
    assert_eq!(found.len(), 1, "{:?}", out.diagnostics);
    let d = found[0];
    let span = d.span.unwrap();
    assert_eq!(d.severity, Warning);
    assert_eq!(out.files.path(span.file), project.as_path());
    assert_eq!((span.line, span.col), pos(api_yaml, "visibility"));
    assert_eq!(d.pointer, "/data/visibility");
    assert!(out.plan.is_some(), "a warning does not block the plan");

    std::fs::write(&project, api_yaml.replace("RESTRICTED", "PUBLIC")).unwrap();
    let out = compile(&[spec], &gateway());
    assert!(
        !out.diagnostics
            .iter()
            .any(|d| d.code == "gateway-import-ignored"),
        "{:?}",
        out.diagnostics
    );
}

#[test]
fn api_yaml_tags_are_an_info_in_api_yaml_not_a_silent_drop() {
    let dir = tempfile::tempdir().unwrap();
    let api_yaml = "type: api\ndata:\n  context: /chat\n  version: 1.0.0\n  tags: [chat]\n";
    let project = write(dir.path(), "Chat/api.yaml", api_yaml);
    let spec = write(
        dir.path(),
        "Chat/Definitions/asyncapi.yaml",
        edit(&chat2(), "  context: /chat\n", ""),
    );
    let out = compile(std::slice::from_ref(&spec), &gateway());
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "gateway-import-unused")
        .unwrap_or_else(|| panic!("{:?}", out.diagnostics));
    let span = d.span.unwrap();
    assert_eq!(d.severity, Info);
    assert_eq!(out.files.path(span.file), project.as_path());
    assert_eq!((span.line, span.col), pos(api_yaml, "tags"));
    assert_eq!(d.pointer, "/data/tags");
}

#[test]
fn missing_info_description_is_an_info_at_the_info_object() {
    let text = edit(&chat2(), "  description: A chat.\n", "");
    let c = check(&text, &gateway());
    let d = c.expect("info-description", Info, pos(&text, "info:"), "/info");
    assert!(!d.is_error());
    assert!(c.out.plan.is_some(), "an info does not block the plan");

    check(&chat2(), &gateway()).lacks("info-description");
}

#[test]
fn channel_address_with_trailing_slash_is_a_warning() {
    let text = edit(
        &chat3(),
        "address: /rooms/{roomId}\n",
        "address: /rooms/{roomId}/\n",
    );
    let c = check(&text, &gateway());
    c.expect(
        "channel-trailing-slash",
        Warning,
        pos(&text, "room:"),
        "/channels/room",
    );
    assert!(c.out.plan.is_some(), "a warning does not block the plan");

    check(&chat3(), &gateway()).lacks("channel-trailing-slash");
}

// ---------------------------------------------------------------------------------------------
// Gateway rules (rules/gateway.rs)

#[test]
fn unknown_x_gateway_property_is_reported_with_a_suggestion() {
    let text = edit(
        &chat2(),
        "  context: /chat\n",
        "  context: /chat\n  contxt: /x\n",
    );
    let c = check(&text, &gateway());
    let d = c.expect(
        "gateway-extension",
        Error,
        pos(&text, "contxt"),
        "/x-gateway/contxt",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `context`?"));
    assert!(c.out.plan.is_none());

    check(&chat2(), &gateway()).lacks("gateway-extension");
}

#[test]
fn unknown_x_gateway_property_message_names_x_gateway() {
    let text = edit(
        &chat2(),
        "  context: /chat\n",
        "  context: /chat\n  contxt: /x\n",
    );
    let c = check(&text, &gateway());
    let d = c.one("gateway-extension");
    assert!(d.message.contains("x-gateway"), "{}", d.message);
    assert!(!d.message.contains("the document"), "{}", d.message);
}

#[test]
fn x_gateway_limits_are_type_checked_and_carried_into_the_plan() {
    let text = edit(
        &chat2(),
        "  context: /chat\n",
        "  context: /chat\n  limits:\n    maxMessageBytes: 0\n",
    );
    let c = check(&text, &gateway());
    c.expect(
        "gateway-extension",
        Error,
        pos_after(&text, "maxMessageBytes: "),
        "/x-gateway/limits/maxMessageBytes",
    );

    let fixed = edit(&text, "maxMessageBytes: 0", "maxMessageBytes: 65536");
    let c = check(&fixed, &gateway());
    c.no_errors();
    let plan = c.out.plan.expect("plan");
    assert_eq!(plan.apis[0].limits.max_message_bytes, Some(65536));
}

#[test]
fn reserved_x_gateway_policy_is_a_warning() {
    let text = edit(
        &chat2(),
        "  context: /chat\n",
        "  context: /chat\n  auth: {}\n",
    );
    let c = check(&text, &gateway());
    c.expect(
        "gateway-extension-reserved",
        Warning,
        pos(&text, "auth"),
        "/x-gateway/auth",
    );
    assert!(c.out.plan.is_some());

    check(&chat2(), &gateway()).lacks("gateway-extension-reserved");
}

/// `chat2` with `extra` added under `x-gateway` and ids on a publish and a subscribe operation.
fn chat2_with_policies(extra: &str) -> String {
    let text = edit(
        &chat2(),
        "  context: /chat\n",
        &format!("  context: /chat\n{}", indent(extra, 2)),
    );
    edit(
        &text,
        "    publish:\n",
        "    subscribe:\n      operationId: roomEvents\n      message:\n        payload:\n          type: object\n    publish:\n      operationId: postMessage\n",
    )
}

#[test]
fn x_gateway_origins_must_be_origins_and_are_carried_into_the_plan() {
    let text = chat2_with_policies(
        "origins:\n  - https://*.example.com\n  - https://app.example.com/login\n",
    );
    let c = check(&text, &gateway());
    let d = c.expect(
        "gateway-origin-invalid",
        Error,
        pos(&text, "https://app.example.com/login"),
        "/x-gateway/origins/1",
    );
    assert!(d.message.contains("path"), "{}", d.message);
    assert!(c.out.plan.is_none());

    let fixed = edit(
        &text,
        "https://app.example.com/login",
        "https://App.example.com:8443",
    );
    let c = check(&fixed, &gateway());
    c.no_errors();
    c.lacks("gateway-origin-invalid");
    let plan = c.out.plan.expect("plan");
    assert_eq!(
        plan.apis[0].origins,
        ["https://*.example.com", "https://app.example.com:8443"]
    );
}

#[test]
fn x_gateway_origin_wildcards_only_as_the_first_label() {
    let text = chat2_with_policies("origins: ['https://app.*.com']\n");
    check(&text, &gateway()).expect(
        "gateway-origin-invalid",
        Error,
        pos(&text, "'https://app.*.com'"),
        "/x-gateway/origins/0",
    );
    let c = check(&chat2_with_policies("origins: ['*']\n"), &gateway());
    c.no_errors();
}

#[test]
fn x_gateway_throttling_rates_are_checked_and_carried_into_the_plan() {
    let text = chat2_with_policies(
        "throttling:\n  api: {messages: 1000/minutes}\n  client: {messages: 10/s, bytes: 1M/day, burst: 5}\n  maxConnectionsPerClient: 3\n  onThrottle: close\n",
    );
    let c = check(&text, &gateway());
    let d = c.expect(
        "gateway-throttling-rate-invalid",
        Error,
        pos(&text, "1000/minutes"),
        "/x-gateway/throttling/api/messages",
    );
    assert!(d.help.as_deref().unwrap().contains("1000/min"));

    let fixed = edit(&text, "1000/minutes", "1000/min");
    let c = check(&fixed, &gateway());
    c.no_errors();
    c.lacks("gateway-throttling-rate-invalid");
    let plan = c.out.plan.expect("plan");
    let t = plan.apis[0].throttling.as_ref().expect("throttling");
    let api = t.api.as_ref().unwrap().messages.unwrap();
    assert_eq!((api.limit, api.period_seconds), (1000, 60));
    let client = t.client.as_ref().unwrap();
    assert_eq!(client.messages.unwrap().limit, 10);
    assert_eq!(client.bytes.unwrap().limit, 1_000_000);
    assert_eq!(client.bytes.unwrap().period_seconds, 86_400);
    assert_eq!(client.burst, Some(5));
    assert_eq!(t.max_connections_per_client, Some(3));
    assert_eq!(t.on_throttle, portico_compiler::plan::OnThrottle::Close);
}

#[test]
fn x_gateway_throttling_types_are_checked_by_the_extension_schema() {
    let text = chat2_with_policies("throttling:\n  client: {burst: 0}\n");
    let c = check(&text, &gateway());
    assert!(!c.all("gateway-extension").is_empty(), "{}", c.dump());
    let tier = chat2_with_policies("throttling:\n  client: AsyncGold\n");
    let c = check(&tier, &gateway());
    c.no_errors();
    let plan = c.out.plan.expect("plan");
    let client = plan.apis[0].throttling.as_ref().unwrap().client.clone();
    assert_eq!(client.unwrap().tier.as_deref(), Some("AsyncGold"));
}

#[test]
fn x_gateway_per_operation_policies_must_name_an_operation() {
    let text = chat2_with_policies(
        "throttling:\n  operations:\n    postMesage: {messages: 5/s}\nvalidation:\n  policy: report\n  operations:\n    roomEvents: drop\n",
    );
    let c = check(&text, &gateway());
    let d = c.expect(
        "gateway-operation-unknown",
        Error,
        pos(&text, "postMesage"),
        "/x-gateway/throttling/operations/postMesage",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `postMessage`?"));

    let fixed = edit(&text, "postMesage", "postMessage");
    let c = check(&fixed, &gateway());
    c.no_errors();
    c.lacks("gateway-operation-unknown");
    let plan = c.out.plan.expect("plan");
    let route = &plan.apis[0].routes[0];
    let t = route.throttling.as_ref().expect("route throttling");
    assert_eq!(t.client_to_server.len(), 1);
    assert_eq!(t.client_to_server[0].operation, "postMessage");
    assert!(t.server_to_client.is_empty());
    let v = route.validation.expect("route validation");
    use portico_compiler::plan::ValidationPolicy;
    assert_eq!(v.client_to_server, ValidationPolicy::Report);
    assert_eq!(v.server_to_client, ValidationPolicy::Drop);
    assert!(!v.strict);
}

#[test]
fn x_gateway_validation_takes_a_policy_name() {
    let text = chat2_with_policies("validation: enforced\n");
    let c = check(&text, &gateway());
    assert!(!c.all("gateway-extension").is_empty(), "{}", c.dump());
    let c = check(&chat2_with_policies("validation: enforce\n"), &gateway());
    c.no_errors();
    let plan = c.out.plan.expect("plan");
    let v = plan.apis[0].routes[0].validation.expect("validation");
    assert_eq!(
        v.client_to_server,
        portico_compiler::plan::ValidationPolicy::Enforce
    );
    // Without the extension, messages are not validated.
    let plan = check(&chat2(), &gateway()).out.plan.expect("plan");
    assert!(plan.apis[0].routes[0].validation.is_none());
}

#[test]
fn ws_binding_query_and_headers_must_be_object_schemas() {
    let text = edit(
        &chat2(),
        "    parameters:\n",
        "    bindings:\n      ws:\n        query:\n          type: string\n        headers:\n          type: object\n          properties:\n            X-Tenant: {type: string}\n          required: [X-Tenant]\n    parameters:\n",
    );
    let c = check(&text, &gateway());
    let d = c.expect(
        "gateway-binding-schema-invalid",
        Error,
        pos(&text, "/rooms/{roomId}:"),
        "/channels/~1rooms~1{roomId}/bindings/ws/query",
    );
    assert!(d.message.contains("type: object"), "{}", d.message);

    let fixed = edit(
        &text,
        "        query:\n          type: string\n",
        "        query:\n          type: object\n          properties:\n            token: {type: integer}\n          required: [token]\n",
    );
    let c = check(&fixed, &gateway());
    c.no_errors();
    c.lacks("gateway-binding-schema-invalid");
    let plan = c.out.plan.expect("plan");
    let contract = plan.apis[0].routes[0].handshake.clone().expect("contract");
    assert_eq!(contract.query.unwrap()["required"][0], "token");
    assert_eq!(contract.headers.unwrap()["required"][0], "X-Tenant");
}

#[test]
fn missing_info_version_is_a_gateway_error() {
    let text = edit(&chat2(), "  version: 1.0.0\n", "");
    let c = check(&text, &gateway());
    c.expect(
        "gateway-version-missing",
        Error,
        pos(&text, "info:"),
        "/info",
    );
    // The official schema says so too, at the `info` key.
    c.at("schema", pos(&text, "info:"));

    check(&chat2(), &gateway()).lacks("gateway-version-missing");
}

#[test]
fn version_that_cannot_be_a_path_segment_is_invalid() {
    let text = edit(&chat2(), "version: 1.0.0", "version: 1.0 beta");
    let c = check(&text, &gateway());
    c.expect(
        "gateway-version-invalid",
        Error,
        pos(&text, "1.0 beta"),
        "/info/version",
    );

    let c = check(
        &edit(&chat2(), "version: 1.0.0", "version: v2~rc_1-x"),
        &gateway(),
    );
    c.no_errors();
    assert_eq!(c.out.plan.unwrap().apis[0].context, "/chat/v2~rc_1-x");
}

#[test]
fn api_yaml_version_disagreeing_with_the_document_is_a_warning_in_api_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let api_yaml = "type: api\ndata:\n  context: /chat\n  version: 2.0.0\n";
    let project = write(dir.path(), "Chat-1.0.0/api.yaml", api_yaml);
    let spec = write(
        dir.path(),
        "Chat-1.0.0/Definitions/asyncapi.yaml",
        edit(&chat2(), "  context: /chat\n", ""),
    );
    let out = compile(std::slice::from_ref(&spec), &gateway());
    let found: Vec<_> = out
        .diagnostics
        .iter()
        .filter(|d| d.code == "gateway-version-mismatch")
        .collect();
    assert_eq!(found.len(), 1, "{:?}", out.diagnostics);
    let d = found[0];
    let span = d.span.unwrap();
    assert_eq!(d.severity, Warning);
    assert_eq!(out.files.path(span.file), project.as_path());
    assert_eq!((span.line, span.col), pos(api_yaml, "2.0.0"));
    assert_eq!(d.pointer, "/data/version");
    assert_eq!(
        out.plan.expect("the document wins").apis[0].version,
        "1.0.0"
    );

    std::fs::write(&project, api_yaml.replace("2.0.0", "1.0.0")).unwrap();
    let out = compile(&[spec], &gateway());
    // A WSO2 project: its unmapped topic goes to the bare endpoint, with an info saying so.
    assert!(
        out.diagnostics
            .iter()
            .all(|d| d.code == "gateway-unmapped-topic"),
        "{:?}",
        out.diagnostics
    );
}

#[test]
fn api_without_context_is_reported_at_the_root() {
    let text = edit(&chat2(), "  context: /chat\n", "");
    let c = check(&text, &gateway());
    let d = c.expect("gateway-context-missing", Error, (1, 1), "");
    assert!(d.message.contains("`Chat`"), "{}", d.message);
    assert!(d.help.as_deref().unwrap().contains("--context"));

    // `--context` supplies it.
    let options = Options {
        context: Some("/talk".into()),
        ..Options::default()
    };
    let c = check(&text, &options);
    c.no_errors();
    assert_eq!(c.out.plan.unwrap().apis[0].context, "/talk/1.0.0");
}

#[test]
fn invalid_contexts_are_reported_at_the_context() {
    for bad in [
        "chat",
        "/chat/",
        "/",
        "/a//b",
        "/a/../b",
        "/chat?x",
        "/chat/{id}",
        "/ch at",
        "/chat/v{version}",
    ] {
        let text = edit(&chat2(), "context: /chat\n", &format!("context: '{bad}'\n"));
        let c = check(&text, &gateway());
        let d = c.all("gateway-context-invalid");
        assert_eq!(d.len(), 1, "`{bad}`: {}", c.dump());
        c.assert_diag(
            d[0],
            Error,
            pos(&text, &format!("'{bad}'")),
            "/x-gateway/context",
        );
    }
    for good in ["/chat/{version}", "/{version}/chat", "/a/b-c_d.e"] {
        let text = edit(
            &chat2(),
            "context: /chat\n",
            &format!("context: '{good}'\n"),
        );
        let c = check(&text, &gateway());
        assert!(c.out.diagnostics.is_empty(), "`{good}`: {}", c.dump());
    }
}

#[test]
fn invalid_lifecycle_in_x_gateway_is_reported_once_at_the_value() {
    let text = edit(
        &chat2(),
        "  context: /chat\n",
        "  context: /chat\n  lifecycle: LIVE\n",
    );
    let c = check(&text, &gateway());
    // The extension schema reports it; `gateway-lifecycle-invalid` is for api.yaml (below).
    let errors: Vec<_> = c.out.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(errors.len(), 1, "{}", c.dump());
    let d = c.expect(
        "gateway-extension",
        Error,
        pos(&text, "LIVE"),
        "/x-gateway/lifecycle",
    );
    assert!(
        d.help.as_deref().unwrap().contains("PUBLISHED"),
        "{:?}",
        d.help
    );
    c.lacks("gateway-lifecycle-invalid");

    let text = edit(
        &chat2(),
        "  context: /chat\n",
        "  context: /chat\n  lifecycle: DEPRECATED\n",
    );
    let c = check(&text, &gateway());
    c.no_errors();
    assert_eq!(c.out.plan.unwrap().apis[0].lifecycle.as_str(), "DEPRECATED");
}

#[test]
fn invalid_lifecycle_in_api_yaml_is_reported_in_api_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let api_yaml =
        "type: api\ndata:\n  context: /chat\n  version: 1.0.0\n  lifeCycleStatus: LIVE\n";
    let project = write(dir.path(), "Chat/api.yaml", api_yaml);
    let spec = write(
        dir.path(),
        "Chat/Definitions/asyncapi.yaml",
        edit(&chat2(), "  context: /chat\n", ""),
    );
    let out = compile(std::slice::from_ref(&spec), &gateway());
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "gateway-lifecycle-invalid")
        .expect("gateway-lifecycle-invalid");
    let span = d.span.unwrap();
    assert_eq!(out.files.path(span.file), project.as_path());
    assert_eq!((span.line, span.col), pos(api_yaml, "LIVE"));
    assert_eq!(d.pointer, "/data/lifeCycleStatus");

    std::fs::write(&project, api_yaml.replace("LIVE", "Published")).unwrap();
    let out = compile(&[spec], &gateway());
    // A WSO2 project: its unmapped topic goes to the bare endpoint, with an info saying so.
    assert!(
        out.diagnostics
            .iter()
            .all(|d| d.code == "gateway-unmapped-topic"),
        "{:?}",
        out.diagnostics
    );
}

#[test]
fn api_without_any_backend_is_reported_at_the_root() {
    let text = edit(&chat2(), "  endpoints:\n    production: 'echo:'\n", "");
    let c = check(&text, &gateway());
    c.expect("gateway-endpoint-missing", Error, (1, 1), "");

    // A single ws server is the backend.
    let text = edit(
        &text,
        "channels:\n",
        "servers:\n  main:\n    url: ws://backend:8080\n    protocol: ws\nchannels:\n",
    );
    let c = check(&text, &gateway());
    c.no_errors();
    assert_eq!(
        c.out.plan.unwrap().apis[0].endpoints.production,
        "ws://backend:8080"
    );
}

#[test]
fn server_named_sandbox_is_never_the_production_backend() {
    let text = edit(
        &edit(&chat2(), "  endpoints:\n    production: 'echo:'\n", ""),
        "channels:\n",
        "servers:\n  main:\n    url: ws://main:8080\n    protocol: ws\n  sandbox:\n    url: ws://sandbox:8080\n    protocol: ws\nchannels:\n",
    );
    let c = check(&text, &gateway());
    c.lacks("gateway-endpoint-ambiguous");
    c.no_errors();
    let plan = c.out.plan.unwrap();
    assert_eq!(plan.apis[0].endpoints.production, "ws://main:8080");
    assert_eq!(
        plan.apis[0].endpoints.sandbox.as_deref(),
        Some("ws://sandbox:8080")
    );
}

#[test]
fn two_websocket_servers_without_a_choice_are_ambiguous() {
    let text = edit(
        &edit(&chat2(), "  endpoints:\n    production: 'echo:'\n", ""),
        "channels:\n",
        "servers:\n  one:\n    url: ws://one:8080\n    protocol: ws\n  two:\n    url: wss://two\n    protocol: wss\nchannels:\n",
    );
    let c = check(&text, &gateway());
    let d = c.expect(
        "gateway-endpoint-ambiguous",
        Error,
        pos(&text, "two:"),
        "/servers/two",
    );
    assert!(d.message.contains("`one`, `two`"), "{}", d.message);

    // Naming one of them settles it.
    let fixed = edit(
        &text,
        "  context: /chat\n",
        "  context: /chat\n  endpoints:\n    production: two\n",
    );
    let c = check(&fixed, &gateway());
    c.no_errors();
    assert_eq!(
        c.out.plan.unwrap().apis[0].endpoints.production,
        "wss://two"
    );
}

#[test]
fn endpoint_naming_an_unknown_server_is_reported_with_a_suggestion() {
    let text = edit(
        &edit(&chat2(), "production: 'echo:'", "production: backnd"),
        "channels:\n",
        "servers:\n  backend:\n    url: ws://backend\n    protocol: ws\nchannels:\n",
    );
    let c = check(&text, &gateway());
    let d = c.expect(
        "gateway-endpoint-server-unknown",
        Error,
        pos(&text, "backnd"),
        "/x-gateway/endpoints/production",
    );
    assert_eq!(
        d.help.as_deref(),
        Some("did you mean the server `backend`?")
    );
    let c = check(&edit(&text, "backnd", "backend"), &gateway());
    c.no_errors();
    assert_eq!(
        c.out.plan.unwrap().apis[0].endpoints.production,
        "ws://backend"
    );

    let text = edit(&chat2(), "production: 'echo:'", "production: echo");
    let c = check(&text, &gateway());
    let d = c.one("gateway-endpoint-server-unknown");
    assert!(
        d.help.as_deref().unwrap().contains("'echo:'"),
        "{:?}",
        d.help
    );
}

#[test]
fn endpoint_urls_must_be_usable_websocket_urls() {
    let cases = [
        ("ws://{host}:80", "unresolved"),
        ("ws://backend/x?y=1", "query or fragment"),
        ("ws://user:secret@backend", "credentials"),
        ("not a url:", "not a valid URL"),
    ];
    for (url, says) in cases {
        let text = edit(
            &chat2(),
            "production: 'echo:'",
            &format!("production: '{url}'"),
        );
        let c = check(&text, &gateway());
        let d = c.expect(
            "gateway-endpoint-invalid",
            Error,
            pos(&text, &format!("'{url}'")),
            "/x-gateway/endpoints/production",
        );
        assert!(d.message.contains(says), "{url}: {}", d.message);
        assert!(
            !d.message.contains("secret") || says != "credentials",
            "the password must not be echoed: {}",
            d.message
        );
    }
    for (url, normalized) in [
        ("ws://backend:8080/", "ws://backend:8080"),
        ("wss://b/x/", "wss://b/x"),
        ("mock:", "mock:"),
    ] {
        let text = edit(
            &chat2(),
            "production: 'echo:'",
            &format!("production: '{url}'"),
        );
        let c = check(&text, &gateway());
        c.no_errors();
        assert_eq!(c.out.plan.unwrap().apis[0].endpoints.production, normalized);
    }
}

#[test]
fn http_endpoint_is_a_scheme_error_with_a_ws_hint() {
    let text = edit(
        &chat2(),
        "production: 'echo:'",
        "production: https://backend",
    );
    let c = check(&text, &gateway());
    let d = c.expect(
        "gateway-endpoint-scheme",
        Error,
        pos(&text, "https://backend"),
        "/x-gateway/endpoints/production",
    );
    assert!(
        d.help.as_deref().unwrap().contains("wss://"),
        "{:?}",
        d.help
    );

    let c = check(
        &edit(&chat2(), "production: 'echo:'", "production: wss://backend"),
        &gateway(),
    );
    c.no_errors();
}

#[test]
fn publish_and_subscribe_mappings_must_agree() {
    let text = edit(
        &chat2(),
        "    publish:\n",
        "    subscribe:\n      x-uri-mapping: /a/{roomId}\n      message:\n        payload:\n          type: string\n    publish:\n      x-uri-mapping: /b/{roomId}\n",
    );
    let c = check(&text, &gateway());
    // Reported at the subscribe mapping, against the publish one (operations are read publish first).
    let d = c.one("gateway-mapping-conflict");
    c.assert_diag(
        d,
        Error,
        pos(&text, "/a/{roomId}"),
        "/channels/~1rooms~1{roomId}/subscribe/x-uri-mapping",
    );
    assert!(
        d.message.contains("to `/b/{roomId}` elsewhere"),
        "{}",
        d.message
    );

    let fixed = edit(&text, "/b/{roomId}", "/a/{roomId}");
    let c = check(&fixed, &gateway());
    c.no_errors();
    assert_eq!(
        c.out.plan.unwrap().apis[0].routes[0].backend_path,
        "/a/{roomId}"
    );
}

#[test]
fn v3_channel_without_address_cannot_be_routed() {
    let text = edit(
        &chat3(),
        "operations:\n",
        "  dynamic:\n    address: null\noperations:\n",
    );
    let c = check(&text, &gateway());
    c.expect(
        "gateway-channel-address",
        Error,
        pos(&text, "dynamic:"),
        "/channels/dynamic",
    );
    // Linting plain AsyncAPI accepts it: a null address is valid AsyncAPI 3.
    check(&text, &lint()).no_errors();
}

#[test]
fn mapping_must_start_with_a_slash() {
    let text = edit(
        &chat2(),
        "    publish:\n",
        "    publish:\n      x-uri-mapping: rooms/{roomId}\n",
    );
    let c = check(&text, &gateway());
    let d = c.expect(
        "gateway-mapping-invalid",
        Error,
        pos(&text, "rooms/{roomId}\n"),
        "/channels/~1rooms~1{roomId}/publish/x-uri-mapping",
    );
    assert_eq!(d.help.as_deref(), Some("write `/rooms/{roomId}`"));

    check(
        &edit(&text, "x-uri-mapping: rooms", "x-uri-mapping: /rooms"),
        &gateway(),
    )
    .no_errors();
}

#[test]
fn mapping_may_only_use_parameters_of_the_address() {
    let text = edit(
        &chat2(),
        "    publish:\n",
        "    publish:\n      x-uri-mapping: /rooms?id={uri.var.roomid}\n",
    );
    let c = check(&text, &gateway());
    let d = c.expect(
        "gateway-mapping-parameter",
        Error,
        pos(&text, "/rooms?id="),
        "/channels/~1rooms~1{roomId}/publish/x-uri-mapping",
    );
    assert!(d.message.contains("`roomid`"), "{}", d.message);
    assert_eq!(d.help.as_deref(), Some("did you mean `{roomId}`?"));

    let c = check(&edit(&text, "roomid}", "roomId}"), &gateway());
    c.no_errors();
    assert_eq!(
        c.out.plan.unwrap().apis[0].routes[0].backend_path,
        "/rooms?id={roomId}"
    );
}

#[test]
fn auth_type_must_be_any_or_none() {
    let text = edit(
        &chat2(),
        "    publish:\n",
        "    x-auth-type: Basic\n    publish:\n",
    );
    let c = check(&text, &gateway());
    c.expect(
        "gateway-auth-type-invalid",
        Error,
        pos(&text, "Basic"),
        "/channels/~1rooms~1{roomId}/x-auth-type",
    );

    let c = check(&edit(&text, "Basic", "none"), &gateway());
    c.no_errors();
    assert_eq!(
        c.out.plan.unwrap().apis[0].routes[0].auth,
        portico_compiler::plan::RouteAuth::None
    );
}

#[test]
fn operation_scope_must_be_declared_by_a_security_scheme() {
    let text = edit(
        &chat2(),
        "    publish:\n",
        "    publish:\n      x-scopes: [chat:admn]\n",
    );
    let text = format!(
        "{text}components:\n  securitySchemes:\n    oauth:\n      type: oauth2\n      flows:\n        implicit:\n          authorizationUrl: https://example.com\n          scopes:\n            chat:admin: Administer.\n"
    );
    let c = check(&text, &gateway());
    let d = c.expect(
        "gateway-scope-undeclared",
        Error,
        pos(&text, "chat:admn"),
        "/channels/~1rooms~1{roomId}/publish/x-scopes/0",
    );
    assert_eq!(d.help.as_deref(), Some("did you mean `chat:admin`?"));

    let c = check(&edit(&text, "[chat:admn]", "[chat:admin]"), &gateway());
    c.no_errors();
    assert_eq!(
        c.out.plan.unwrap().apis[0].routes[0].scopes,
        vec!["chat:admin"]
    );
}

#[test]
fn channels_with_one_route_shape_and_different_backends_conflict() {
    let text = edit(
        &chat2(),
        "    publish:\n",
        "    publish:\n      message:\n        payload:\n          type: string\n  /rooms/{id}:\n    parameters:\n      id:\n        schema:\n          type: string\n    subscribe:\n",
    );
    let c = check(&text, &gateway());
    let d = c.expect(
        "gateway-route-conflict",
        Error,
        pos(&text, "/rooms/{id}:"),
        "/channels/~1rooms~1{id}",
    );
    assert!(
        d.message.contains("/chat/1.0.0/rooms/{id}"),
        "{}",
        d.message
    );

    // Same shape, same parameter names and backend: one route.
    let text = edit(
        &chat2(),
        "    publish:\n",
        "    subscribe:\n      message:\n        payload:\n          type: string\n    publish:\n",
    );
    let c = check(&text, &gateway());
    c.no_errors();
    assert_eq!(c.out.plan.unwrap().apis[0].routes.len(), 1);
}

#[test]
fn address_with_a_partial_parameter_segment_is_not_routable() {
    let text = edit(&chat2(), "  /rooms/{roomId}:\n", "  /rooms/id-{roomId}:\n");
    let c = check(&text, &gateway());
    let d = c.expect(
        "gateway-address-invalid",
        Error,
        pos(&text, "/rooms/id-{roomId}:"),
        "/channels/~1rooms~1id-{roomId}",
    );
    assert!(d.message.contains("whole path segment"), "{}", d.message);
    check(&text, &lint()).lacks("gateway-address-invalid");

    let text = edit(&chat2(), "  /rooms/{roomId}:\n", "  /rooms/*/x:\n");
    let text = edit(
        &text,
        "    parameters:\n      roomId:\n        schema:\n          type: string\n",
        "",
    );
    let c = check(&text, &gateway());
    let d = c.one("gateway-address-invalid");
    assert!(d.message.contains("`*`"), "{}", d.message);
}

#[test]
fn two_documents_serving_one_context_conflict() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.yaml", chat2());
    let b_text = edit(&chat2(), "title: Chat", "title: Chat Two");
    let b = write(dir.path(), "b.yaml", &b_text);
    let out = compile(&[dir.path().to_path_buf()], &gateway());
    assert_eq!(out.diagnostics.len(), 1, "{:?}", out.diagnostics);
    let d = &out.diagnostics[0];
    let span = d.span.unwrap();
    assert_eq!((d.code, d.severity), ("gateway-context-duplicate", Error));
    assert_eq!(out.files.path(span.file), b.as_path());
    assert_eq!((span.line, span.col), pos(&b_text, "/chat\n"));
    assert_eq!(d.pointer, "/x-gateway/context");
    assert!(d.message.contains("`/chat/1.0.0`"), "{}", d.message);
    assert!(out.plan.is_none());

    // Two versions of one API are fine, but only one may be the default.
    std::fs::write(&b, b_text.replace("version: 1.0.0", "version: 2.0.0")).unwrap();
    let out = compile(&[dir.path().to_path_buf()], &gateway());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    assert_eq!(out.plan.unwrap().apis.len(), 2);

    let with_default = |t: &str| {
        t.replace(
            "  context: /chat\n",
            "  context: /chat\n  defaultVersion: true\n",
        )
    };
    std::fs::write(dir.path().join("a.yaml"), with_default(&chat2())).unwrap();
    std::fs::write(
        &b,
        with_default(&b_text.replace("version: 1.0.0", "version: 2.0.0")),
    )
    .unwrap();
    let out = compile(&[dir.path().to_path_buf()], &gateway());
    assert_eq!(out.diagnostics.len(), 1, "{:?}", out.diagnostics);
    assert_eq!(out.diagnostics[0].code, "gateway-context-duplicate");
    assert!(
        out.diagnostics[0]
            .message
            .contains("`/chat (default version)`"),
        "{}",
        out.diagnostics[0].message
    );
}

#[test]
fn a_document_named_twice_is_compiled_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "a.yaml", chat2());
    let out = compile(&[dir.path().to_path_buf(), path.clone(), path], &gateway());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    assert_eq!(out.documents.len(), 1);
}

#[test]
fn route_problems_are_reported_even_when_the_endpoint_is_invalid() {
    let text = edit(
        &chat2(),
        "production: 'echo:'",
        "production: http://backend",
    );
    let text = edit(
        &text,
        "    publish:\n",
        "    x-auth-type: Basic\n    publish:\n",
    );
    let c = check(&text, &gateway());
    c.one("gateway-endpoint-scheme");
    c.one("gateway-auth-type-invalid");
}

// ---------------------------------------------------------------------------------------------
// Across files, channels and modes

#[test]
fn columns_count_characters_not_bytes() {
    let text = doc(r#"
        asyncapi: 2.6.0
        info: {title: "Café 𝄞 ü", version: "1.0 beta", description: x}
        x-gateway: {context: /chat, endpoints: {production: "echo:"}}
        channels: {}
    "#);
    let c = check(&text, &gateway());
    c.expect("gateway-version-invalid", Error, (2, 36), "/info/version");
    assert_eq!(pos(&text, "\"1.0 beta\""), (2, 36));

    let json = r#"{"asyncapi":"2.6.0","info":{"title":"Café 𝄞 ü","version":"1.0 beta","description":"x"},"x-gateway":{"context":"/chat","endpoints":{"production":"echo:"}},"channels":{}}"#;
    let c = check_named("api.json", json, &gateway());
    c.expect(
        "gateway-version-invalid",
        Error,
        pos(json, "\"1.0 beta\""),
        "/info/version",
    );
}

#[test]
fn relative_file_refs_resolve_through_nested_files() {
    let dir = tempfile::tempdir().unwrap();
    let main_text = edit(
        &chat2(),
        "      message:\n        payload:\n          type: string\n",
        "      message:\n        $ref: './common/messages.yaml#/chatMessage'\n    subscribe:\n      message:\n        $ref: 'common/messages.yaml#/notice'\n",
    );
    let main = write(dir.path(), "api/asyncapi.yaml", &main_text);
    write(
        dir.path(),
        "api/common/messages.yaml",
        "chatMessage:\n  name: chat\n  payload:\n    $ref: '../schemas/chat.yaml'\nnotice:\n  name: notice\n  payload:\n    $ref: '../schemas/chat.yaml#/properties/text'\n",
    );
    write(
        dir.path(),
        "api/schemas/chat.yaml",
        "type: object\nproperties:\n  text:\n    type: string\n",
    );
    let c = check_paths(dir, main.clone(), &[main], &gateway());
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
    let plan = c.out.plan.expect("plan");
    let route = &plan.apis[0].routes[0];
    let chat = &route.messages.client_to_server[0];
    assert_eq!(chat.name, "chat");
    assert_eq!(
        chat.schema,
        Some(serde_json::json!({"type": "object", "properties": {"text": {"type": "string"}}}))
    );
    let notice = &route.messages.server_to_client[0];
    assert_eq!(notice.name, "notice");
    assert_eq!(notice.schema, Some(serde_json::json!({"type": "string"})));
    // The three files were read, each once.
    assert_eq!(c.out.files.sources.files().count(), 3);
}

#[test]
fn problem_inside_a_referenced_file_points_into_that_file() {
    let dir = tempfile::tempdir().unwrap();
    let main_text = edit(
        &chat2(),
        "      message:\n        payload:\n          type: string\n",
        "      message:\n        $ref: './common/messages.yaml#/chatMessage'\n",
    );
    let main = write(dir.path(), "asyncapi.yaml", &main_text);
    let messages_text = "chatMessage:\n  name: chat\n  contentType: 42\n  payload:\n    $ref: '#/schemas/chatt'\nschemas:\n  chat:\n    type: string\n";
    let messages = write(dir.path(), "common/messages.yaml", messages_text);
    let c = check_paths(dir, main.clone(), &[main], &gateway());

    let schema = c.one("schema");
    assert_eq!(c.file_of(schema), messages);
    let span = schema.span.unwrap();
    assert_eq!((span.line, span.col), pos(messages_text, "42"));
    // The pointer is the node's place in the resolved document being compiled.
    assert_eq!(
        schema.pointer,
        "/channels/~1rooms~1{roomId}/publish/message/contentType"
    );

    let unresolved = c.one("ref-unresolved");
    assert_eq!(c.file_of(unresolved), messages);
    let span = unresolved.span.unwrap();
    assert_eq!(
        (span.line, span.col),
        pos(messages_text, "'#/schemas/chatt'")
    );
    assert!(unresolved.help.as_deref().unwrap().contains("`chat`"));
}

#[test]
fn v3_channels_sharing_an_address_merge_into_one_route_with_all_their_messages() {
    let text = doc(r#"
        asyncapi: 3.1.0
        info:
          title: Kraken style
          version: 1.0.0
          description: Many channels on one socket.
        x-gateway:
          context: /kraken
          endpoints:
            production: 'echo:'
        channels:
          ping:
            address: /
            messages:
              ping:
                payload: {type: object}
          heartbeat:
            address: /
            messages:
              heartbeat:
                payload: {type: object}
          subscribe:
            address: /
            messages:
              subscribe:
                payload: {type: object}
              subscribeAgain:
                payload: {type: object}
        operations:
          receivePing:
            action: receive
            channel:
              $ref: '#/channels/ping'
          sendHeartbeat:
            action: send
            channel:
              $ref: '#/channels/heartbeat'
          receiveSubscribe:
            action: receive
            channel:
              $ref: '#/channels/subscribe'
    "#);
    let c = check(&text, &gateway());
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
    let plan = c.out.plan.expect("plan");
    let routes = &plan.apis[0].routes;
    assert_eq!(routes.len(), 1, "{routes:?}");
    let route = &routes[0];
    assert_eq!(route.pattern, "/kraken/1.0.0");
    assert_eq!(route.backend_path, "");
    assert_eq!(route.channels, ["ping", "heartbeat", "subscribe"]);
    let names = |ms: &[portico_compiler::plan::PlanMessage]| {
        ms.iter().map(|m| m.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(&route.messages.client_to_server),
        ["ping", "subscribe", "subscribeAgain"]
    );
    assert_eq!(names(&route.messages.server_to_client), ["heartbeat"]);
}

#[test]
fn v3_reply_messages_are_server_to_client_messages_of_the_route() {
    let text = doc(r#"
        asyncapi: 3.1.0
        info:
          title: Kraken style
          version: 1.0.0
          description: Request and reply on one socket.
        x-gateway:
          context: /kraken
          endpoints:
            production: 'echo:'
        channels:
          ping:
            address: /
            messages:
              ping:
                payload: {type: object}
          pong:
            address: /
            messages:
              pong:
                payload: {type: object}
        operations:
          receivePing:
            action: receive
            channel:
              $ref: '#/channels/ping'
            reply:
              channel:
                $ref: '#/channels/pong'
    "#);
    let c = check(&text, &gateway());
    let plan = c.out.plan.expect("plan");
    let route = &plan.apis[0].routes[0];
    let names: Vec<_> = route
        .messages
        .server_to_client
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["pong"]);
}

#[test]
fn lint_skips_gateway_rules_and_builds_no_plan() {
    // No context, an http endpoint and an undeclared scope: all gateway problems.
    let text = edit(&chat2(), "  context: /chat\n", "");
    let text = edit(&text, "production: 'echo:'", "production: http://backend");
    let text = edit(
        &text,
        "    publish:\n",
        "    publish:\n      x-scopes: [nobody]\n",
    );
    let c = check(&text, &gateway());
    assert!(
        c.codes().iter().any(|code| code.starts_with("gateway-")),
        "{}",
        c.dump()
    );

    let c = check(&text, &lint());
    assert!(c.out.diagnostics.is_empty(), "{}", c.dump());
    assert!(c.out.plan.is_none(), "--lint builds no plan");
    assert_eq!(c.out.documents.len(), 1);
    assert_eq!(c.out.apis.len(), 1);

    // AsyncAPI problems are still found.
    let text = edit(&text, "title: Chat", "titel: Chat");
    check(&text, &lint()).at("schema", pos(&text, "titel"));
}

// ---------------------------------------------------------------------------------------------

/// Every code that appears as a string literal in the compiler's sources must be exercised by a
/// test in this file.
#[test]
fn every_emitted_code_has_a_test_here() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let code = regex::Regex::new(
        r#""((?:asyncapi[23]?|yaml|input|ref|gateway|info|channel)-[A-Za-z0-9-]+|syntax|schema)""#,
    )
    .unwrap();
    let mut codes = std::collections::BTreeSet::new();
    let mut stack = vec![std::path::PathBuf::from(src)];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                // Ignore the sources' own unit tests.
                let text = text.split("#[cfg(test)]").next().unwrap();
                for m in code.captures_iter(text) {
                    codes.insert(m[1].to_string());
                }
            }
        }
    }
    assert!(codes.len() > 50, "found only {codes:?}");
    let this = include_str!("rules.rs");
    let untested: Vec<_> = codes
        .iter()
        .filter(|c| !this.contains(&format!("\"{c}\"")))
        .collect();
    assert!(
        untested.is_empty(),
        "codes without a test in rules.rs: {untested:?}"
    );
}

#[test]
fn a_folder_without_documents_is_input_no_documents_for_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.yaml"), "just: data\n").unwrap();
    let report = portico_compiler::build(&[dir.path().to_path_buf()], &Default::default())
        .expect_err("no documents");
    let codes: Vec<&str> = report.diagnostics.iter().map(|d| d.code.as_str()).collect();
    assert_eq!(codes, ["input-no-documents"]);
}

// ---------------------------------------------------------------------------------------------
// Route security lowering (what the runtime verifies)

#[test]
fn route_security_names_the_schemes_and_scopes_the_runtime_checks() {
    use portico_compiler::plan::{MessageDirection, SchemeKind};
    // 2.x: the operation's `security` names an apiKey and an oauth2 scheme with scopes.
    let text = edit(
        &chat2(),
        "    publish:\n",
        "    publish:\n      security:\n        - oauth: [chat:write]\n        - key: []\n",
    );
    let text = format!(
        "{text}components:\n  securitySchemes:\n    key:\n      type: httpApiKey\n      in: query\n      name: token\n    bearer:\n      type: http\n      scheme: bearer\n    oauth:\n      type: oauth2\n      flows:\n        implicit:\n          authorizationUrl: https://example.com\n          scopes:\n            chat:write: Write.\n"
    );
    let c = check(&text, &gateway());
    c.no_errors();
    let plan = c.out.plan.unwrap();
    let security = &plan.apis[0].routes[0].security;
    let kinds: Vec<(&str, &SchemeKind)> = security
        .schemes
        .iter()
        .map(|s| (s.name.as_str(), &s.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (
                "key",
                &SchemeKind::ApiKey {
                    location: "query".into(),
                    name: Some("token".into())
                }
            ),
            ("oauth", &SchemeKind::Oauth2),
        ]
    );
    assert_eq!(security.operations.len(), 1);
    assert_eq!(
        security.operations[0].direction,
        MessageDirection::ClientToServer
    );
    assert_eq!(security.operations[0].scopes, vec!["chat:write"]);
    // No secret and nothing from the scheme's URLs reaches the plan.
    assert!(!plan.to_json().contains("example.com"));

    // Declared but not required schemes do not restrict (WSO2 exports): any verifier.
    let open = edit(
        &text,
        "      security:\n        - oauth: [chat:write]\n        - key: []\n",
        "",
    );
    let c = check(&open, &gateway());
    c.no_errors();
    let plan = c.out.plan.unwrap();
    assert!(plan.apis[0].routes[0].security.schemes.is_empty());

    // `x-auth-type: None` carries no requirement at all.
    let none = edit(
        &text,
        "    publish:\n",
        "    x-auth-type: None\n    publish:\n",
    );
    let c = check(&none, &gateway());
    c.no_errors();
    assert!(c.out.plan.unwrap().apis[0].routes[0].security.is_empty());
}

#[test]
fn route_security_of_a_3x_document_follows_references_and_server_security() {
    use portico_compiler::plan::SchemeKind;
    let text = edit(
        &chat3(),
        "operations:\n",
        "servers:\n  prod:\n    host: example.org\n    protocol: wss\n    security:\n      - $ref: '#/components/securitySchemes/basic'\noperations:\n",
    );
    let text = format!(
        "{text}components:\n  securitySchemes:\n    basic:\n      type: http\n      scheme: basic\n    jwt:\n      type: http\n      scheme: bearer\n"
    );
    let c = check(&text, &gateway());
    c.no_errors();
    let route = &c.out.plan.unwrap().apis[0].routes[0];
    assert_eq!(
        route.security.schemes[0].kind,
        SchemeKind::Unsupported {
            declared: "http basic".into()
        },
        "a scheme the gateway cannot check is carried so the runtime fails closed"
    );
    let with_op = edit(
        &text,
        "      - $ref: '#/channels/room/messages/chat'\n",
        "      - $ref: '#/channels/room/messages/chat'\n    security:\n      - $ref: '#/components/securitySchemes/jwt'\n",
    );
    let c = check(&with_op, &gateway());
    c.no_errors();
    let route = &c.out.plan.unwrap().apis[0].routes[0];
    assert_eq!(route.security.schemes.len(), 1);
    assert_eq!(route.security.schemes[0].name, "jwt");
    assert_eq!(route.security.schemes[0].kind, SchemeKind::Bearer);
}
