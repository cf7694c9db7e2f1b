//! A non-Rust client: Python's `websockets` against the sample spec (specs/ of the repository).

use std::time::Duration;

use crate::harness::*;

const CLIENT: &str = r#"
import asyncio, json, sys
from websockets.asyncio.client import connect
from websockets.protocol import State

async def main(url):
    out = {}
    async with connect(url, ping_interval=None) as ws:
        await ws.send("hello from python")
        out["text"] = await asyncio.wait_for(ws.recv(), 10)
        await ws.send(bytes([0, 1, 2, 254, 255]))
        out["binary"] = list(await asyncio.wait_for(ws.recv(), 10))
        await asyncio.wait_for(ws.close(code=4001, reason="python bye"), 10)
        rcvd = ws.protocol.close_rcvd
        out["close_rcvd"] = [rcvd.code, rcvd.reason] if rcvd else None
        out["closed"] = ws.protocol.state is State.CLOSED
    print(json.dumps(out))

asyncio.run(asyncio.wait_for(main(sys.argv[1]), 30))
"#;

#[tokio::test]
async fn python_websockets_client_talks_to_the_sample_spec() {
    let python = python();
    let g = Gateway::builder()
        .paths(&[workspace_root()
            .join("specs")
            .to_str()
            .expect("a UTF-8 path")])
        .watch(false)
        .start()
        .await;
    let url = g.url("/chat/1.0.0/rooms/lobby");
    let output = within(
        Duration::from_secs(40),
        "the Python client",
        tokio::process::Command::new(&python)
            .arg("-c")
            .arg(CLIENT)
            .arg(&url)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("running python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the Python client failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let result: Value = serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the Python client printed no JSON ({e}):\n{stdout}\n{stderr}"));
    assert_eq!(result["text"], "hello from python", "{result}");
    assert_eq!(result["binary"], serde_json::json!([0, 1, 2, 254, 255]));
    assert_eq!(
        result["close_rcvd"],
        serde_json::json!([4001, "python bye"])
    );
    assert_eq!(result["closed"], true);

    // The same API through its default version (defaultVersion: true in the sample).
    let mut c = connect(&g.url("/chat/rooms/lobby")).await;
    echo_text(&mut c, "default version").await;
}
