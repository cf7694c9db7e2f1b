//! SIGTERM: every connection is closed with 1001 and the process exits 0 within the drain timeout.

use std::time::Duration;

use crate::harness::*;

#[tokio::test]
async fn sigterm_closes_every_connection_with_1001_and_exits_0() {
    let backend = Backend::start(Mode::Echo).await;
    let mut g = Gateway::builder()
        .spec(
            "builtin.yaml",
            spec("Builtin", "v1", "/builtin", "echo:")
                .channel("/t")
                .yaml(),
        )
        .spec(
            "remote.yaml",
            spec("Remote", "v1", "/remote", &backend.endpoint())
                .channel("/t")
                .yaml(),
        )
        .args(&["--drain-timeout", "5"])
        .start()
        .await;
    let mut clients = Vec::new();
    for path in [
        "/builtin/v1/t",
        "/builtin/v1/t",
        "/remote/v1/t",
        "/remote/v1/t",
    ] {
        let mut c = connect(&g.url(path)).await;
        echo_text(&mut c, path).await;
        clients.push(c);
    }

    g.terminate();
    for c in &mut clients {
        let (code, reason) = expect_close(c).await;
        assert_eq!(code, 1001, "{reason}");
    }
    let status = g
        .wait_exit(Duration::from_secs(7))
        .await
        .expect("the runtime did not exit within the drain timeout");
    assert_eq!(status.code(), Some(0), "{status}");
    // The backends were told too.
    let closes = backend
        .received()
        .iter()
        .filter(|m| matches!(m, Message::Close(Some(f)) if u16::from(f.code) == 1001))
        .count();
    assert_eq!(closes, 2);
}

#[tokio::test]
async fn sigterm_does_not_wait_past_the_drain_timeout_for_clients_that_never_answer() {
    let mut g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", "echo:").channel("/t").yaml(),
        )
        .args(&["--drain-timeout", "1"])
        .start()
        .await;
    // Connected, but never reads again: its Close is never answered.
    let mut stubborn = connect(&g.url("/svc/v1/t")).await;
    echo_text(&mut stubborn, "then deaf").await;

    g.terminate();
    let status = g
        .wait_exit(Duration::from_secs(4))
        .await
        .expect("the runtime waited for a client past the drain timeout");
    assert_eq!(status.code(), Some(0), "{status}");
    drop(stubborn);
}

#[tokio::test]
async fn sigterm_with_no_connections_exits_0_at_once() {
    let mut g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", "echo:").channel("/t").yaml(),
        )
        .args(&["--drain-timeout", "30"])
        .start()
        .await;
    g.terminate();
    let status = g
        .wait_exit(Duration::from_secs(5))
        .await
        .expect("an idle runtime did not exit");
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(g.log().contains("all connections closed"), "{}", g.log());
}

/// One API of a large spec folder: 100 channels, each with a parameter and a message schema.
fn large_api(n: usize) -> String {
    let mut text = format!(
        "asyncapi: 2.6.0\ninfo: {{title: Large{n}, version: 1.0.0, description: A large folder.}}\n\
         x-gateway: {{context: /large{n}, endpoints: {{production: 'echo:'}}}}\nchannels:\n"
    );
    for c in 0..100 {
        text.push_str(&format!(
            "  /t{c}/{{id}}:\n    parameters:\n      id: {{schema: {{type: string}}}}\n    publish:\n      operationId: pub{c}\n      message:\n        payload:\n          type: object\n          properties:\n            a: {{type: string, description: field a of {c}}}\n            b: {{type: integer, minimum: 0}}\n            c: {{type: array, items: {{type: object, properties: {{x: {{type: number}}, y: {{type: string, enum: [p, q, r]}}}}}}}}\n          required: [a]\n"
        ));
    }
    text
}

#[tokio::test]
async fn sigterm_during_a_long_reload_compile_exits_promptly() {
    let mut g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", "echo:").channel("/t").yaml(),
        )
        .watch(true)
        .args(&["--drain-timeout", "1"])
        .start()
        .await;
    g.wait_watching().await;
    // A real large input: 400 APIs of 100 channels (about 17 MB), whose compile and docs take
    // seconds. Written aside, then moved in with one rename: one event, one compile.
    let parent = g
        .specs_dir()
        .parent()
        .expect("the specs folder has a parent");
    let staging = tempfile::tempdir_in(parent).unwrap();
    let large = staging.path().join("large");
    std::fs::create_dir(&large).unwrap();
    for n in 0..400 {
        std::fs::write(large.join(format!("api{n}.yaml")), large_api(n)).unwrap();
    }
    std::fs::rename(&large, g.specs_dir().join("large")).unwrap();
    // The leading compile starts at the event; give it time to be well under way.
    tokio::time::sleep(Duration::from_millis(700)).await;
    g.terminate();
    // Drain (1 s, no connections: at once) plus the runtime's 500 ms for blocking work: the
    // compile is abandoned, not waited for.
    let status = g
        .wait_exit(Duration::from_secs(4))
        .await
        .expect("the runtime waited for the compile to finish before exiting");
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        !g.log().contains("plan reloaded"),
        "the compile finished before the signal, so this proves nothing:\n{}",
        g.log()
    );
}
