//! The `compile` binary as CI runs it: exit codes, output formats, `--out`, and a plan that is the
//! same bytes whenever the specs are the same.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{doc, edit, pos, workspace, write};
use portico_compiler::Plan;
use serde_json::Value;

/// A clean document (no diagnostics at all).
fn clean() -> String {
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
    "#)
}

/// The clean document with two errors (an unresolved `$ref` and a bad `x-auth-type`), one warning
/// (a trailing slash) and one info (no description).
fn broken() -> String {
    let text = edit(&clean(), "  description: A chat.\n", "");
    let text = edit(
        &text,
        "address: /rooms/{roomId}\n",
        "address: /rooms/{roomId}/\n    x-auth-type: Basic\n",
    );
    edit(&text, "$ref: '#/channels/room'", "$ref: '#/channels/rom'")
}

/// The clean document with one warning only.
fn warning_only() -> String {
    edit(
        &clean(),
        "address: /rooms/{roomId}\n",
        "address: /rooms/{roomId}/\n",
    )
}

fn compile_cmd(cwd: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_compile"));
    cmd.current_dir(cwd)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    cmd
}

fn run(cwd: &Path, args: &[&str]) -> Output {
    compile_cmd(cwd).args(args).output().expect("run compile")
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited normally")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(out: &Output) -> String {
    String::from_utf8(out.stderr.clone()).expect("stderr is UTF-8")
}

/// A temporary folder holding `api.yaml` with `text`.
fn folder_with(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "api.yaml", text);
    dir
}

#[test]
fn clean_spec_exits_0_with_a_summary_on_stderr() {
    let dir = folder_with(&clean());
    let out = run(dir.path(), &["api.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "human output goes to stderr only");
    assert_eq!(
        stderr(&out).trim_end(),
        "0 errors, 0 warnings in 1 document"
    );
}

#[test]
fn errors_exit_1_and_are_shown_with_code_position_and_help() {
    let dir = folder_with(&broken());
    let out = run(dir.path(), &["api.yaml"]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains("ref-unresolved"), "{err}");
    let (line, col) = pos(&broken(), "'#/channels/rom'");
    assert!(err.contains(&format!("[api.yaml:{line}:{col}]")), "{err}");
    assert!(err.contains("help: did you mean `room`?"), "{err}");
    assert!(
        !err.contains('\u{1b}'),
        "no colour when stderr is not a terminal"
    );
    assert!(
        err.trim_end()
            .ends_with("2 errors, 1 warning in 1 document"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = folder_with(&clean());
    for args in [
        &["--frobnicate", "api.yaml"][..],
        &["--format", "xml", "api.yaml"],
        &[],
        &["--out"],
    ] {
        let out = run(dir.path(), args);
        assert_eq!(code(&out), 2, "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty(), "{args:?} explains itself");
        assert!(!dir.path().join("plan.json").exists());
    }
    let out = run(dir.path(), &["--format", "xml", "api.yaml"]);
    assert!(stderr(&out).contains("xml"), "{}", stderr(&out));
}

#[test]
fn help_and_version_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--help"]);
    assert_eq!(code(&out), 0);
    let help = stdout(&out);
    for flag in [
        "--out",
        "--lint",
        "--context",
        "--format",
        "--deny-warnings",
        "--quiet",
    ] {
        assert!(help.contains(flag), "--help lists {flag}:\n{help}");
    }
    let out = run(dir.path(), &["--version"]);
    assert_eq!(code(&out), 0);
    assert_eq!(
        stdout(&out).trim(),
        format!("compile {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn deny_warnings_turns_warnings_into_exit_1() {
    let dir = folder_with(&warning_only());
    let out = run(dir.path(), &["api.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("channel-trailing-slash"));

    let out = run(dir.path(), &["--deny-warnings", "api.yaml", "--out", "out"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        !dir.path().join("out").exists(),
        "no plan when the run fails"
    );

    // Infos do not count as warnings.
    let dir = folder_with(&edit(&clean(), "  description: A chat.\n", ""));
    let out = run(dir.path(), &["--deny-warnings", "api.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn deny_warnings_blocks_what_only_the_specification_forbids() {
    // A discriminator that is not required: accepted (a warning) for the gateway, refused with
    // --deny-warnings and by --lint.
    let text = format!(
        "{}components:\n  schemas:\n    pet:\n      type: object\n      discriminator: kind\n      properties:\n        kind:\n          type: string\n",
        clean()
    );
    let dir = folder_with(&text);
    let out = run(dir.path(), &["api.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("asyncapi-schema-discriminator"));
    let out = run(dir.path(), &["--deny-warnings", "api.yaml"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let out = run(dir.path(), &["--lint", "api.yaml"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
}

#[test]
fn quiet_hides_infos_but_not_warnings() {
    let dir = folder_with(&broken());
    let loud = stderr(&run(dir.path(), &["api.yaml"]));
    assert!(loud.contains("info-description"), "{loud}");
    let out = run(dir.path(), &["-q", "api.yaml"]);
    let quiet = stderr(&out);
    assert!(!quiet.contains("info-description"), "{quiet}");
    assert!(quiet.contains("channel-trailing-slash"), "{quiet}");
    assert_eq!(code(&out), 1);
}

#[test]
fn json_format_prints_a_json_array_on_stdout() {
    let dir = folder_with(&broken());
    let out = run(dir.path(), &["--format", "json", "api.yaml"]);
    assert_eq!(code(&out), 1);
    let value: Value = serde_json::from_str(&stdout(&out)).expect("stdout is JSON");
    let items = value.as_array().expect("an array");
    let codes: Vec<&str> = items.iter().map(|d| d["code"].as_str().unwrap()).collect();
    assert_eq!(
        codes,
        [
            "info-description",
            "channel-trailing-slash",
            "gateway-auth-type-invalid",
            "ref-unresolved"
        ]
    );
    let unresolved = &items[3];
    assert_eq!(unresolved["severity"], "error");
    assert_eq!(unresolved["file"], "api.yaml");
    let (line, col) = pos(&broken(), "'#/channels/rom'");
    assert_eq!(unresolved["line"], line);
    assert_eq!(unresolved["column"], col);
    assert_eq!(unresolved["pointer"], "/operations/sendChat/channel/$ref");
    assert_eq!(
        unresolved["help"],
        "did you mean `room`? (defined under `/channels`)"
    );
    for item in items {
        let keys: Vec<&str> = item
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            ["code", "severity", "message", "help", "file", "line", "column", "pointer"]
        );
    }
    // Only the summary goes to stderr.
    assert_eq!(stderr(&out).trim_end(), "2 errors, 1 warning in 1 document");

    let dir = folder_with(&clean());
    let out = run(dir.path(), &["--format", "json", "api.yaml"]);
    assert_eq!(code(&out), 0);
    assert_eq!(
        serde_json::from_str::<Value>(&stdout(&out)).unwrap(),
        serde_json::json!([])
    );
}

#[test]
fn sarif_format_is_sarif_2_1_0_with_rules_and_regions() {
    let dir = folder_with(&broken());
    let out = run(dir.path(), &["--format", "sarif", "api.yaml"]);
    assert_eq!(code(&out), 1);
    let log: Value = serde_json::from_str(&stdout(&out)).expect("stdout is JSON");
    assert_eq!(log["version"], "2.1.0");
    assert!(log["$schema"].as_str().unwrap().contains("sarif-2.1.0"));
    let run0 = &log["runs"][0];
    assert_eq!(run0["tool"]["driver"]["name"], "portico-compile");
    let rules = run0["tool"]["driver"]["rules"].as_array().unwrap();
    let results = run0["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for result in results {
        let rule_id = result["ruleId"].as_str().unwrap();
        let index = result["ruleIndex"].as_u64().unwrap() as usize;
        assert_eq!(rules[index]["id"], rule_id, "ruleIndex points at the rule");
        assert!(["error", "warning", "note"].contains(&result["level"].as_str().unwrap()));
        assert!(!result["message"]["text"].as_str().unwrap().is_empty());
        let location = &result["locations"][0]["physicalLocation"];
        assert_eq!(location["artifactLocation"]["uri"], "api.yaml");
        assert!(location["region"]["startLine"].as_u64().unwrap() >= 1);
        assert!(location["region"]["startColumn"].as_u64().unwrap() >= 1);
    }
    let unresolved = results
        .iter()
        .find(|r| r["ruleId"] == "ref-unresolved")
        .expect("ref-unresolved result");
    assert_eq!(unresolved["level"], "error");
    let region = &unresolved["locations"][0]["physicalLocation"]["region"];
    let (line, col) = pos(&broken(), "'#/channels/rom'");
    assert_eq!(
        (region["startLine"].as_u64(), region["startColumn"].as_u64()),
        (Some(line.into()), Some(col.into()))
    );
    assert_eq!(
        unresolved["locations"][0]["logicalLocations"][0]["fullyQualifiedName"],
        "/operations/sendChat/channel/$ref"
    );
    let info = results
        .iter()
        .find(|r| r["ruleId"] == "info-description")
        .unwrap();
    assert_eq!(info["level"], "note");
}

#[test]
fn sarif_uris_are_percent_encoded() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "my api.yaml", broken());
    let out = run(dir.path(), &["--format", "sarif", "my api.yaml"]);
    let log: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let uri = &log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]
        ["uri"];
    assert_eq!(uri, "my%20api.yaml");
}

#[test]
fn github_format_prints_workflow_annotations() {
    let dir = folder_with(&broken());
    let out = run(dir.path(), &["--format", "github", "api.yaml"]);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let text_of = broken();
    let at = |needle: &str| {
        let (line, col) = pos(&text_of, needle);
        format!("line={line},col={col}")
    };
    assert!(
        lines[0].starts_with(&format!(
            "::notice file=api.yaml,{},title=info-description::",
            at("info:")
        )),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(&format!(
            "::warning file=api.yaml,{},title=channel-trailing-slash::",
            at("room:")
        )),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with(&format!(
            "::error file=api.yaml,{},title=gateway-auth-type-invalid::",
            at("Basic")
        )),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with(&format!(
            "::error file=api.yaml,{},title=ref-unresolved::",
            at("'#/channels/rom'")
        )),
        "{}",
        lines[3]
    );
    // The help follows the message on the same (escaped) line.
    assert!(
        lines[3].contains("%0Ahelp: did you mean `room`?"),
        "{}",
        lines[3]
    );
    for line in lines.iter().filter(|l| l.starts_with("::error")) {
        let props = line
            .trim_start_matches("::error ")
            .split("::")
            .next()
            .unwrap();
        let mut keys = props.split(',').map(|p| p.split('=').next().unwrap());
        assert_eq!(keys.next(), Some("file"));
        assert_eq!(keys.next(), Some("line"));
        assert_eq!(keys.next(), Some("col"));
    }
}

#[test]
fn github_format_escapes_commas_and_colons_in_file_names() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a,b:c.yaml", broken());
    let out = run(dir.path(), &["--format", "github", "a,b:c.yaml"]);
    let text = stdout(&out);
    assert!(
        text.lines()
            .all(|l| l.contains("file=a%2Cb%3Ac.yaml,line=")),
        "{text}"
    );
}

#[test]
fn out_writes_the_plan_only_without_errors() {
    let dir = folder_with(&clean());
    let out = run(dir.path(), &["api.yaml", "--out", "build/plan"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let plan_path = dir.path().join("build/plan/plan.json");
    let text = std::fs::read_to_string(&plan_path).expect("plan.json written");
    assert!(
        stderr(&out).contains("wrote build/plan/plan.json (1 APIs, sha256:"),
        "{}",
        stderr(&out)
    );
    let mut entries: Vec<_> = std::fs::read_dir(dir.path().join("build/plan"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        ["docs", "plan.json"],
        "the plan and the docs, and no temporary file left behind"
    );
    let plan = Plan::from_json(&text).expect("a valid plan");
    assert_eq!(plan.apis[0].routes[0].pattern, "/chat/1.0.0/rooms/{roomId}");

    let dir = folder_with(&broken());
    let out = run(dir.path(), &["api.yaml", "--out", "build"]);
    assert_eq!(code(&out), 1);
    assert!(
        !dir.path().join("build").exists(),
        "nothing is written when there are errors"
    );
    assert!(!stderr(&out).contains("wrote"));
}

#[test]
fn out_overwrites_a_previous_plan() {
    let dir = folder_with(&clean());
    assert_eq!(code(&run(dir.path(), &["api.yaml", "--out", "o"])), 0);
    let first = std::fs::read_to_string(dir.path().join("o/plan.json")).unwrap();
    write(
        dir.path(),
        "api.yaml",
        edit(&clean(), "version: 1.0.0", "version: 1.1.0"),
    );
    assert_eq!(code(&run(dir.path(), &["api.yaml", "--out", "o"])), 0);
    let second = std::fs::read_to_string(dir.path().join("o/plan.json")).unwrap();
    assert_ne!(first, second);
    assert!(second.contains("\"/chat/1.1.0\""));
}

#[test]
fn out_that_cannot_be_written_exits_2() {
    let dir = folder_with(&clean());
    write(dir.path(), "file", "not a folder");
    let out = run(dir.path(), &["api.yaml", "--out", "file/sub"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot write"), "{}", stderr(&out));
}

#[test]
fn lint_ignores_gateway_rules_and_writes_no_plan() {
    let text = edit(&clean(), "  context: /chat\n", "");
    let dir = folder_with(&text);
    let out = run(dir.path(), &["api.yaml"]);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("gateway-context-missing"));
    let out = run(dir.path(), &["--lint", "api.yaml"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(
        stderr(&out).trim_end(),
        "0 errors, 0 warnings in 1 document"
    );
    // `--lint` builds no plan, so asking for one with it is a usage error.
    let out = run(dir.path(), &["--lint", "api.yaml", "--out", "o"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(!dir.path().join("o").exists());
}

#[test]
fn context_flag_serves_a_spec_without_x_gateway_context() {
    let dir = folder_with(&edit(&clean(), "  context: /chat\n", ""));
    let out = run(
        dir.path(),
        &["--context", "/talk", "api.yaml", "--out", "o"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let plan =
        Plan::from_json(&std::fs::read_to_string(dir.path().join("o/plan.json")).unwrap()).unwrap();
    assert_eq!(plan.apis[0].context, "/talk/1.0.0");

    // As WSO2's publisher writes it, without the leading `/`.
    let out = run(
        dir.path(),
        &["--context", "{version}/websocket", "api.yaml", "--out", "w"],
    );
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let plan =
        Plan::from_json(&std::fs::read_to_string(dir.path().join("w/plan.json")).unwrap()).unwrap();
    assert_eq!(plan.apis[0].context, "/1.0.0/websocket");
    assert_eq!(
        plan.apis[0].routes[0].pattern,
        "/1.0.0/websocket/rooms/{roomId}"
    );
}

#[test]
fn folder_without_documents_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "specs/fragment.yaml",
        "chat:\n  payload:\n    type: string\n",
    );
    write(dir.path(), "specs/README.md", "# not a spec\n");
    let out = run(dir.path(), &["specs"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("no AsyncAPI documents found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn missing_input_is_a_diagnostic_and_an_io_error_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["--format", "json", "nope.yaml"]);
    assert_eq!(code(&out), 2);
    let value: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(value[0]["code"], "input-unreadable");
    assert_eq!(value[0]["file"], "nope.yaml");
}

// ---------------------------------------------------------------------------------------------
// Determinism: the plan is a function of the spec files' content and relative layout only.

/// A folder of specs: the WSO2 export, a 2.6 API with file `$ref`s, and a 3.1 API.
fn specs_folder(root: &Path) -> PathBuf {
    let specs = root.join("specs");
    copy_dir(
        &workspace().join("tests/fixtures/wso2"),
        &specs.join("wso2"),
    );
    let two = doc(r#"
        asyncapi: 2.6.0
        info:
          title: Notices
          version: 2.0.0
          description: Announcements.
        x-gateway:
          context: /notices
          endpoints:
            production: ws://notices:9000/
        channels:
          /all:
            subscribe:
              message:
                $ref: 'common/messages.yaml#/notice'
          /teams/{team}:
            parameters:
              team:
                schema:
                  type: string
            subscribe:
              message:
                $ref: 'common/messages.yaml#/notice'
    "#);
    write(&specs, "notices/asyncapi.yaml", two);
    write(
        &specs,
        "notices/common/messages.yaml",
        "notice:\n  name: notice\n  payload:\n    type: object\n    properties:\n      text: {type: string}\n      level: {enum: [info, alert]}\n",
    );
    write(
        &specs,
        "chat.yaml",
        edit(&clean(), "context: /chat", "context: /talk"),
    );
    specs
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn plan_bytes(cwd: &Path, args: &[&str]) -> Vec<u8> {
    let out = run(cwd, args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let dir = args[args.iter().position(|a| *a == "--out").unwrap() + 1];
    std::fs::read(cwd.join(dir).join("plan.json")).unwrap()
}

#[test]
fn plan_is_byte_identical_across_runs_and_folders() {
    let a = tempfile::tempdir().unwrap();
    specs_folder(a.path());
    let first = plan_bytes(a.path(), &["specs", "--out", "out1"]);
    let second = plan_bytes(a.path(), &["specs", "--out", "out2"]);
    assert_eq!(first, second, "two runs give the same bytes");

    // The same specs somewhere else (deeper, by absolute path) give the same plan.
    let b = tempfile::tempdir().unwrap();
    let deep = b.path().join("x/y/z");
    copy_dir(&a.path().join("specs"), &deep.join("specs"));
    let abs = deep.join("specs");
    let elsewhere = plan_bytes(b.path(), &[abs.to_str().unwrap(), "--out", "out"]);
    assert_eq!(
        first, elsewhere,
        "the plan does not depend on where the specs are"
    );

    let plan = Plan::from_json(std::str::from_utf8(&first).unwrap()).expect("valid plan");
    let contexts: Vec<&str> = plan.apis.iter().map(|a| a.context.as_str()).collect();
    assert_eq!(contexts, ["/chat/1.0.0", "/notices/2.0.0", "/talk/1.0.0"]);
    let files: Vec<&str> = plan.apis.iter().map(|a| a.source.file.as_str()).collect();
    assert!(files.contains(&"notices/asyncapi.yaml"), "{files:?}");
    assert!(
        files.contains(&"wso2/ChatAPI-1.0.0/Definitions/asyncapi.yaml"),
        "{files:?}"
    );
}

#[test]
fn plan_does_not_depend_on_the_order_of_the_arguments() {
    let a = tempfile::tempdir().unwrap();
    let specs = specs_folder(a.path());
    write(
        &specs,
        "other.yaml",
        edit(&clean(), "context: /chat", "context: /other"),
    );
    let ab = plan_bytes(&specs, &["chat.yaml", "other.yaml", "--out", "o1"]);
    let ba = plan_bytes(&specs, &["other.yaml", "chat.yaml", "--out", "o2"]);
    assert_eq!(ab, ba);
}

#[test]
fn plan_round_trips_through_from_json() {
    let a = tempfile::tempdir().unwrap();
    specs_folder(a.path());
    let bytes = plan_bytes(a.path(), &["specs", "--out", "out"]);
    let text = String::from_utf8(bytes).unwrap();
    let plan = Plan::from_json(&text).expect("the written plan loads");
    assert_eq!(plan.to_json(), text, "load + save is the identity");
    assert!(
        plan.hash.starts_with("sha256:") && plan.hash.len() == 7 + 64,
        "{}",
        plan.hash
    );
    assert_eq!(plan.apis.len(), 3);

    // The library builds the same plan as the binary wrote.
    let out = portico_compiler::compile(
        &[a.path().join("specs")],
        &portico_compiler::Options::default(),
    );
    assert_eq!(out.plan.expect("plan").to_json(), text);

    // A plan edited by hand is refused.
    let edited = text.replace("\"/notices/2.0.0\"", "\"/hacked/2.0.0\"");
    assert_ne!(edited, text);
    assert!(Plan::from_json(&edited).is_err());
}

#[test]
fn diff_shows_what_a_spec_change_does_to_the_deployed_plan() {
    let dir = folder_with(&clean());
    let out = run(dir.path(), &["api.yaml", "--out", "deployed"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    // The change under review: the room topic moves, a lobby topic appears.
    let changed = edit(
        &clean(),
        "address: /rooms/{roomId}\n",
        "address: /halls/{roomId}\n",
    );
    write(dir.path(), "api.yaml", &changed);
    let out = run(dir.path(), &["api.yaml", "--diff", "deployed/plan.json"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("+ route /chat/1.0.0/halls/{roomId}: route added"),
        "{text}"
    );
    assert!(
        text.contains(
            "- route /chat/1.0.0/rooms/{roomId}: route removed — closes live connections"
        ),
        "{text}"
    );
    assert!(
        text.ends_with("2 changes, 1 of which closes live connections\n"),
        "{text}"
    );

    let out = run(
        dir.path(),
        &[
            "api.yaml",
            "--diff",
            "deployed/plan.json",
            "--diff-format",
            "json",
        ],
    );
    let json: Value = serde_json::from_str(&stdout(&out)).expect("JSON on stdout");
    assert_eq!(json["changes"][1]["kind"]["type"], "routeRemoved");
    assert_eq!(json["changes"][1]["closes"], "the route was removed");
    assert!(json["oldHash"].as_str().unwrap().starts_with("sha256:"));

    // Unchanged specs: no changes.
    write(dir.path(), "api.yaml", clean());
    let out = run(dir.path(), &["api.yaml", "--diff", "deployed/plan.json"]);
    assert!(stdout(&out).ends_with("no changes\n"), "{}", stdout(&out));
}

#[test]
fn diff_against_an_unreadable_plan_is_a_usage_error() {
    let dir = folder_with(&clean());
    let out = run(dir.path(), &["api.yaml", "--diff", "missing.json"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("--diff missing.json"),
        "{}",
        stderr(&out)
    );
    write(dir.path(), "bad.json", "{\"planVersion\": 99}");
    let out = run(dir.path(), &["api.yaml", "--diff", "bad.json"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
}

#[test]
fn allow_root_lets_refs_reach_a_shared_folder_and_is_refused_without_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "shared/chat.yaml", "payload:\n  type: string\n");
    let text = edit(
        &clean(),
        "    messages:\n      chat:\n        payload:\n          type: string\n",
        "    messages:\n      chat:\n        $ref: '../shared/chat.yaml'\n",
    );
    write(dir.path(), "specs/api.yaml", &text);
    let out = run(dir.path(), &["specs"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("ref-outside-root"), "{err}");
    assert!(
        err.contains("`specs`") && err.contains("--allow-root"),
        "{err}"
    );

    let out = run(dir.path(), &["specs", "--allow-root", "shared"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn max_files_flag_sets_the_file_budget() {
    let dir = folder_with(&clean());
    write(dir.path(), "more.yaml", "fragment: true\n");
    let out = run(dir.path(), &[".", "--max-files", "1"]);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).contains("input-too-many-files"),
        "{}",
        stderr(&out)
    );
    let out = run(dir.path(), &[".", "--max-files", "2"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}
