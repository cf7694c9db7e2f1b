//! URL user-info is never shown (issue 7, item 11). The compiler refuses a backend endpoint
//! written as `ws://user:password@host` (credentials belong in the runtime configuration), and its
//! diagnostic quotes the offending source line: in the runtime, that reload error goes to the log
//! and to `/plan`. The password must appear in neither, nor in a metric, a docs page or a served
//! spec, while the running plan keeps being served.

use crate::harness::*;

const PASSWORD: &str = "s3cr3t-pw-item11";

#[tokio::test]
async fn a_backend_password_in_the_spec_is_never_shown() {
    let backend = Backend::start(Mode::Echo).await;
    let spec_of = |endpoint: &str| {
        spec("Private", "1.0.0", "/private", endpoint)
            .channel("/rooms")
            .yaml()
    };
    let g = Gateway::builder()
        .spec("private.yaml", spec_of(&backend.endpoint()))
        .watch(true)
        .start()
        .await;
    let mut client = connect(&g.url("/private/1.0.0/rooms")).await;
    echo_text(&mut client, "before").await;
    // The endpoint gains credentials: refused, and the error quotes that line.
    let with_password =
        backend
            .endpoint()
            .replacen("ws://", &format!("ws://portico:{PASSWORD}@"), 1);
    g.write_spec("private.yaml", &spec_of(&with_password));
    let plan = g
        .wait_for_plan("lastReloadError", |p| !p["lastReloadError"].is_null())
        .await;
    let error = plan["lastReloadError"].to_string();
    assert!(
        error.contains("credentials"),
        "the endpoint's error: {error}"
    );
    // The running plan stays, and so does what it shows.
    echo_text(&mut client, "after").await;
    let mut shown = g.admin_exposure().await;
    assert!(
        shown
            .iter()
            .any(|(path, _)| path.starts_with("/docs/private"))
            && shown
                .iter()
                .any(|(path, _)| path.starts_with("/specs/private")),
        "the API's pages and spec are checked: {:?}",
        shown.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let log = g.log();
    assert!(
        log.contains("credentials"),
        "the log reports the error:\n{log}"
    );
    shown.push(("the log".to_string(), log));
    for (path, body) in &shown {
        assert!(
            !body.contains(PASSWORD),
            "{path} shows the endpoint's password:\n{body}"
        );
    }
}
