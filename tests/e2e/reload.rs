//! Reloading the plan while connections stream: nothing that stays in the plan is disturbed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::harness::*;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

fn stream_spec(description: &str, with_b: bool) -> String {
    let mut s = spec("Stream", "v1", "/stream", "echo:")
        .description(description)
        .channel("/a");
    if with_b {
        s = s.channel("/b");
    }
    s.yaml()
}

/// How a streaming client ended.
#[derive(Debug)]
enum Outcome {
    /// Stopped by the test after every message it sent came back, in order.
    Finished { sent: u64 },
    /// The gateway closed it.
    Closed { code: u16, reason: String },
}

struct Streamer {
    topic: &'static str,
    /// Echoes received so far (each one checked to be the next in order).
    progress: Arc<AtomicU64>,
    handle: JoinHandle<Outcome>,
}

/// A client that sends `<id>:<n>` every ~10 ms and checks that the echoes come back in order,
/// with no gap. Panics (failing the test) on any gap, error or unexpected end.
async fn stream(
    url: String,
    id: usize,
    progress: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> Outcome {
    let mut c = connect(&url).await;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut sent, mut received) = (0u64, 0u64);
    let mut stopping = false;
    loop {
        tokio::select! {
            _ = tick.tick(), if !stopping => {
                within(STEP, format!("streamer {id} sending"), c.send(Message::text(format!("{id}:{sent}"))))
                    .await
                    .unwrap_or_else(|e| panic!("streamer {id}: send failed after {sent}: {e}"));
                sent += 1;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                if received == sent {
                    break;
                }
            }
            message = within(STEP, format!("streamer {id}: an echo"), c.next()) => match message {
                Some(Ok(Message::Text(t))) => {
                    assert_eq!(t.as_str(), format!("{id}:{received}"), "streamer {id}: gap or reorder");
                    received += 1;
                    progress.store(received, Ordering::Relaxed);
                    if stopping && received == sent {
                        break;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    while let Some(Ok(_)) = within(STEP, "the end after a Close", c.next()).await {}
                    let (code, reason) = frame
                        .map(|f| (u16::from(f.code), f.reason.to_string()))
                        .unwrap_or((1005, String::new()));
                    return Outcome::Closed { code, reason };
                }
                other => panic!("streamer {id}: {other:?} after {received} of {sent} echoes"),
            }
        }
    }
    within(STEP, "closing", c.close(None))
        .await
        .unwrap_or_else(|e| panic!("streamer {id}: close failed: {e}"));
    while let Some(Ok(_)) = within(STEP, "the end after our Close", c.next()).await {}
    Outcome::Finished { sent }
}

/// Waits until every streamer in `set` has received `more` echoes beyond where it is now.
async fn advance(streamers: &[&Streamer], more: u64, what: &str) {
    let marks: Vec<u64> = streamers
        .iter()
        .map(|s| s.progress.load(Ordering::Relaxed))
        .collect();
    eventually(
        Duration::from_secs(60),
        format!("streams advancing {what}"),
        || {
            for s in streamers {
                assert!(
                    !s.handle.is_finished(),
                    "a {} streamer ended {what}",
                    s.topic
                );
            }
            streamers
                .iter()
                .zip(&marks)
                .all(|(s, m)| s.progress.load(Ordering::Relaxed) >= m + more)
                .then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn reloads_do_not_disturb_streams_that_stay_in_the_plan() {
    let g = Gateway::builder()
        .spec("stream.yaml", stream_spec("First version.", true))
        .start()
        .await;
    g.wait_watching().await;
    let (stop, stop_rx) = watch::channel(false);
    let mut streamers = Vec::new();
    for id in 0..100 {
        let topic = if id % 2 == 0 { "a" } else { "b" };
        let progress = Arc::new(AtomicU64::new(0));
        let handle = tokio::spawn(stream(
            g.url(&format!("/stream/v1/{topic}")),
            id,
            progress.clone(),
            stop_rx.clone(),
        ));
        streamers.push(Streamer {
            topic,
            progress,
            handle,
        });
    }
    let all: Vec<&Streamer> = streamers.iter().collect();
    advance(&all, 5, "after connecting").await;
    let h0 = g.plan_hash().await;

    // 1. A second spec: a new API appears and takes connections.
    g.write_spec(
        "second.yaml",
        &spec("Second", "v1", "/second", "echo:")
            .channel("/x")
            .yaml(),
    );
    let plan = g.wait_for_new_plan(&h0).await;
    assert_eq!(plan["apis"].as_array().map(Vec::len), Some(2), "{plan:#}");
    let mut c = connect(&g.url("/second/v1/x")).await;
    echo_text(&mut c, "new API").await;
    let mut c = connect(&g.url("/stream/v1/a")).await;
    echo_text(&mut c, "new connection, old API").await;
    advance(&all, 20, "after adding a spec").await;

    // 2. A change that keeps every route.
    let h1 = plan["hash"].as_str().unwrap().to_string();
    g.write_spec("stream.yaml", &stream_spec("Second version.", true));
    let plan = g.wait_for_new_plan(&h1).await;
    let h2 = plan["hash"].as_str().unwrap().to_string();
    advance(&all, 20, "after a compatible change").await;
    assert!(
        g.metrics()
            .await
            .contains("portico_reloads_total{result=\"ok\"} 2"),
        "{}",
        g.metrics().await
    );

    // 3. A broken spec: the running plan stays, the error is reported.
    g.write_spec(
        "stream.yaml",
        "asyncapi: 3.0.0\ninfo: {title: Stream, version: v1\nchannels: [\n",
    );
    let plan = g
        .wait_for_plan("lastReloadError", |p| !p["lastReloadError"].is_null())
        .await;
    assert_eq!(plan["hash"], h2.as_str(), "a broken spec replaced the plan");
    assert_eq!(plan["failedReloads"], 1);
    // Located diagnostics, not rendered text.
    assert!(
        plan["lastReloadError"][0]["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("stream.yaml")),
        "{plan:#}"
    );
    assert!(
        plan["lastReloadError"][0]["line"].as_u64().is_some(),
        "{plan:#}"
    );
    assert!(g
        .metrics()
        .await
        .contains("portico_reloads_total{result=\"failed\"} 1"));
    let mut c = connect(&g.url("/stream/v1/b")).await;
    echo_text(&mut c, "the old plan still serves").await;
    drop(c);
    advance(&all, 20, "after a broken spec").await;

    // 4. A channel removed: its connections are closed with 1001 and a reason, the others go on.
    g.write_spec("stream.yaml", &stream_spec("Third version.", false));
    let plan = g.wait_for_new_plan(&h2).await;
    assert!(plan["lastReloadError"].is_null(), "{plan:#}");
    let (a, b): (Vec<Streamer>, Vec<Streamer>) =
        streamers.into_iter().partition(|s| s.topic == "a");
    for s in b {
        let outcome = within(STEP, "a removed route's connection closing", s.handle)
            .await
            .expect("streamer task");
        match outcome {
            Outcome::Closed { code, reason } => {
                assert_eq!(code, 1001, "{reason}");
                assert!(!reason.is_empty(), "the close says why");
            }
            other => panic!("a /b streamer was not closed by the reload: {other:?}"),
        }
    }
    let a_refs: Vec<&Streamer> = a.iter().collect();
    advance(&a_refs, 20, "after removing the other channel").await;
    assert_eq!(refused_status(&g.url("/stream/v1/b")).await, 404);

    stop.send(true).expect("streamers listen");
    for s in a {
        let outcome = within(Duration::from_secs(30), "a streamer finishing", s.handle)
            .await
            .expect("streamer task");
        assert!(
            matches!(outcome, Outcome::Finished { sent } if sent > 0),
            "{outcome:?}"
        );
    }
}

#[tokio::test]
async fn an_editor_style_save_triggers_a_reload() {
    let g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", "echo:").channel("/a").yaml(),
        )
        .start()
        .await;
    g.wait_watching().await;
    let mut s = spec("Svc", "v1", "/svc", "echo:").channel("/a");
    for topic in ["/c", "/d"] {
        let before = g.plan_hash().await;
        assert_eq!(
            refused_status(&g.url(&format!("/svc/v1{topic}"))).await,
            404
        );
        s = s.channel(topic);
        g.save_spec_like_editor("svc.yaml", &s.yaml());
        g.wait_for_new_plan(&before).await;
        let mut c = connect(&g.url(&format!("/svc/v1{topic}"))).await;
        echo_text(&mut c, topic).await;
    }
}

#[tokio::test]
async fn an_editor_style_save_of_a_watched_file_triggers_every_reload() {
    let g = Gateway::builder()
        .spec(
            "svc.yaml",
            spec("Svc", "v1", "/svc", "echo:").channel("/a").yaml(),
        )
        .paths(&["svc.yaml"])
        .start()
        .await;
    let mut s = spec("Svc", "v1", "/svc", "echo:").channel("/a");
    for topic in ["/c", "/d", "/e"] {
        let before = g.plan_hash().await;
        s = s.channel(topic);
        g.save_spec_like_editor("svc.yaml", &s.yaml());
        g.wait_for_new_plan(&before).await;
        let mut c = connect(&g.url(&format!("/svc/v1{topic}"))).await;
        echo_text(&mut c, topic).await;
    }
}

#[tokio::test]
async fn a_configmap_symlink_swap_triggers_a_reload() {
    use std::os::unix::fs::symlink;
    let first = spec("Svc", "v1", "/svc", "echo:").channel("/a").yaml();
    let g = Gateway::builder()
        .setup(move |dir| {
            // What Kubernetes mounts: svc.yaml -> ..data/svc.yaml, ..data -> ..v1 (a folder).
            std::fs::create_dir(dir.join("..v1")).unwrap();
            std::fs::write(dir.join("..v1/svc.yaml"), first).unwrap();
            symlink("..v1", dir.join("..data")).unwrap();
            symlink("..data/svc.yaml", dir.join("svc.yaml")).unwrap();
        })
        .start()
        .await;
    g.wait_watching().await;
    let mut c = connect(&g.url("/svc/v1/a")).await;
    echo_text(&mut c, "before").await;
    let before = g.plan_hash().await;

    // The update: a new folder, a new symlink renamed over ..data, the old folder removed.
    let dir = g.specs_dir();
    std::fs::create_dir(dir.join("..v2")).unwrap();
    std::fs::write(
        dir.join("..v2/svc.yaml"),
        spec("Svc", "v1", "/svc", "echo:")
            .channel("/a")
            .channel("/b")
            .yaml(),
    )
    .unwrap();
    symlink("..v2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..v1")).unwrap();

    g.wait_for_new_plan(&before).await;
    let mut b = connect(&g.url("/svc/v1/b")).await;
    echo_text(&mut b, "new topic").await;
    echo_text(&mut c, "the old connection is untouched").await;
}

#[tokio::test]
async fn removing_a_spec_closes_its_api_and_removing_all_keeps_the_last_plan() {
    let g = Gateway::builder()
        .spec(
            "one.yaml",
            spec("One", "v1", "/one", "echo:").channel("/t").yaml(),
        )
        .spec(
            "two.yaml",
            spec("Two", "v1", "/two", "echo:").channel("/t").yaml(),
        )
        .start()
        .await;
    g.wait_watching().await;
    let mut one = connect(&g.url("/one/v1/t")).await;
    let mut two = connect(&g.url("/two/v1/t")).await;
    echo_text(&mut one, "one").await;
    echo_text(&mut two, "two").await;

    let before = g.plan_hash().await;
    g.remove_spec("one.yaml");
    let plan = g.wait_for_new_plan(&before).await;
    assert_eq!(plan["apis"].as_array().map(Vec::len), Some(1), "{plan:#}");
    let (code, reason) = expect_close(&mut one).await;
    assert_eq!(code, 1001, "{reason}");
    assert_eq!(refused_status(&g.url("/one/v1/t")).await, 404);
    echo_text(&mut two, "two goes on").await;

    // Nothing left to serve: that is an error, and the last plan stays.
    let last = plan["hash"].as_str().unwrap().to_string();
    g.remove_spec("two.yaml");
    let plan = g
        .wait_for_plan("lastReloadError", |p| !p["lastReloadError"].is_null())
        .await;
    assert_eq!(plan["hash"], last.as_str());
    echo_text(&mut two, "still served").await;
    let mut again = connect(&g.url("/two/v1/t")).await;
    echo_text(&mut again, "new connections too").await;
}

fn svc_with(topic: &str) -> String {
    spec("Svc", "v1", "/svc", "echo:").channel(topic).yaml()
}

async fn wait_for_topic(g: &Gateway, topic: &str) {
    let pattern = format!("/svc/v1{topic}");
    g.wait_for_plan(&format!("a plan serving {pattern}"), |plan| {
        plan["apis"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|a| a["routes"].as_array().into_iter().flatten())
            .any(|r| r["pattern"] == pattern.as_str())
    })
    .await;
}

/// The watched folder replaced (deleted and recreated, `mv`-swapped, swapped for a link): the
/// watch follows the name, so later changes keep loading, and `/plan` says how the watch is.
#[tokio::test]
async fn the_watch_follows_a_replaced_folder() {
    use std::os::unix::fs::symlink;
    let g = Gateway::builder()
        .spec("svc.yaml", svc_with("/a"))
        .start()
        .await;
    g.wait_watching().await;
    let dir = g.specs_dir().to_path_buf();
    let outside = dir.parent().unwrap().to_path_buf();

    // mv-swap: a new folder renamed over the old one.
    std::fs::create_dir(outside.join("next")).unwrap();
    std::fs::write(outside.join("next/svc.yaml"), svc_with("/b")).unwrap();
    std::fs::rename(&dir, outside.join("old")).unwrap();
    std::fs::rename(outside.join("next"), &dir).unwrap();
    wait_for_topic(&g, "/b").await;
    // ... and a later edit inside the new folder is still seen.
    g.write_spec("svc.yaml", &svc_with("/c"));
    wait_for_topic(&g, "/c").await;

    // Deleted: the last plan keeps serving, the watch reports the problem.
    std::fs::remove_dir_all(&dir).unwrap();
    let plan = g
        .wait_for_plan("an unhealthy watch", |p| p["watch"]["healthy"] == false)
        .await;
    assert!(
        plan["watch"]["problem"].as_str().unwrap().contains("specs"),
        "{plan}"
    );
    let mut c = connect(&g.url("/svc/v1/c")).await;
    echo_text(&mut c, "still served").await;
    // Recreated: watched again, loaded, healthy, the stale error gone.
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("svc.yaml"), svc_with("/d")).unwrap();
    wait_for_topic(&g, "/d").await;
    let plan = g
        .wait_for_plan("a healthy watch", |p| p["watch"]["healthy"] == true)
        .await;
    assert!(plan["lastReloadError"].is_null(), "{plan}");
    g.write_spec("svc.yaml", &svc_with("/e"));
    wait_for_topic(&g, "/e").await;

    // Replaced by a link to another folder.
    std::fs::create_dir(outside.join("elsewhere")).unwrap();
    std::fs::write(outside.join("elsewhere/svc.yaml"), svc_with("/f")).unwrap();
    std::fs::rename(&dir, outside.join("old2")).unwrap();
    symlink(outside.join("elsewhere"), &dir).unwrap();
    wait_for_topic(&g, "/f").await;
    std::fs::write(outside.join("elsewhere/svc.yaml"), svc_with("/g")).unwrap();
    wait_for_topic(&g, "/g").await;
    let plan = g.plan().await;
    assert!(plan["watch"]["rearms"].as_u64().unwrap() >= 3, "{plan}");
    let metrics = g.metrics().await;
    assert_eq!(
        metric(&metrics, "portico_watch_healthy"),
        Some(1.0),
        "{metrics}"
    );
}

/// A file a spec reads through `$ref` outside the watched folder is watched too.
#[tokio::test]
async fn a_ref_target_outside_the_folder_is_watched() {
    let g = Gateway::builder()
        .setup(|dir| {
            let shared = dir.parent().unwrap().join("shared");
            std::fs::create_dir(&shared).unwrap();
            std::fs::write(
                shared.join("channels.yaml"),
                "topic:\n  subscribe:\n    message:\n      payload: {type: string}\n",
            )
            .unwrap();
            std::fs::write(
                dir.join("svc.yaml"),
                "asyncapi: 2.6.0\ninfo: {title: Svc, version: v1}\n\
                 x-gateway: {context: /svc, endpoints: {production: 'echo:'}}\n\
                 channels:\n  /a:\n    $ref: '../shared/channels.yaml#/topic'\n",
            )
            .unwrap();
        })
        // The test's temporary folders live under the system's temporary folder.
        .args(&["--allow-root", std::env::temp_dir().to_str().unwrap()])
        .start()
        .await;
    g.wait_watching().await;
    let before = g.plan_hash().await;
    let shared = g.specs_dir().parent().unwrap().join("shared/channels.yaml");
    std::fs::write(
        &shared,
        "topic:\n  description: changed\n  subscribe:\n    message:\n      payload: {type: integer}\n",
    )
    .unwrap();
    g.wait_for_new_plan(&before).await;
}
