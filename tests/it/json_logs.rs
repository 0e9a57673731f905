//! `pactum serve --log-format json` as operators run it: every line it writes, on stdout and on
//! stderr, is one JSON object, and the lines logged while a request is handled carry that
//! request's id (the one its response names in `X-Request-Id`).

use std::process::{Child, Command};
use std::time::Duration;

use crate::support::DevChain;
use crate::support::service::{OWNER_KEY, RECEIPT_KEY, unique_dir};
use reqwest::StatusCode;
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Kills the child when the test ends, passing or not.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Every line of `text`, parsed; panics naming the first line that is not a JSON object.
fn json_lines(text: &str) -> Vec<Value> {
    assert!(text.is_empty() || text.ends_with('\n'), "a cut line: {text}");
    text.lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(value) if value.is_object() => value,
            _ => panic!("not a JSON log line: {line:?}"),
        })
        .collect()
}

/// The `request_id` of the spans a line was logged in, if any.
fn request_id(line: &Value) -> Option<&str> {
    line["spans"].as_array()?.iter().find_map(|span| span["request_id"].as_str())
}

#[tokio::test]
async fn json_logs_carry_the_request_id_on_every_line_of_a_request() {
    let chain = DevChain::start().await;
    let dir = unique_dir("pactum-json-logs");
    let port = free_port();
    let (stdout, stderr) = (dir.join("stdout.log"), dir.join("stderr.log"));
    let child = Command::new(env!("CARGO_BIN_EXE_pactum"))
        .args(["serve", "--log-format", "json"])
        .env("PACTUM_DATABASE_URL", format!("sqlite:{}?mode=rwc", dir.join("p.db").display()))
        .env("PACTUM_LISTEN", format!("127.0.0.1:{port}"))
        .env("PACTUM_RPC_URL", chain.anvil.endpoint())
        .env("PACTUM_ESCROW_ADDRESS", chain.escrow.address().to_string())
        .env("PACTUM_RELAYER_PRIVATE_KEYS", chain.relayer.to_bytes().to_string())
        .env("PACTUM_OWNER_KEY", OWNER_KEY)
        .env("PACTUM_RECEIPT_PRIVATE_KEY", RECEIPT_KEY)
        .env("PACTUM_POLL_INTERVAL_MS", "50")
        // The request lines of `TraceLayer` too, so each request logs at least two lines.
        .env("RUST_LOG", "info,tower_http=debug")
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut up = false;
    for _ in 0..300 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "pactum serve did not come up: {}", std::fs::read_to_string(&stderr).unwrap());

    // A request that logs from its handler, with the client's own id.
    let created = http
        .post(format!("{base}/v1/agents"))
        .bearer_auth(OWNER_KEY)
        .header("x-request-id", "json-logs-create-1")
        .json(&json!({ "name": "logger", "capabilities": ["usage"] }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["x-request-id"], "json-logs-create-1");
    let agent: Value = created.json().await.unwrap();
    // Two more, each given an id by the server.
    let mut ids = vec!["json-logs-create-1".to_owned()];
    for path in [format!("/v1/agents/{}", agent["id"].as_str().unwrap()), "/healthz".to_owned()] {
        let response = http.get(format!("{base}{path}")).send().await.unwrap();
        ids.push(response.headers()["x-request-id"].to_str().unwrap().to_owned());
    }
    assert_ne!(ids[1], ids[2], "one id per request");

    // Wait until each request's last line (`TraceLayer`'s "finished processing") is written
    // (reading only whole lines: the process is still writing).
    for _ in 0..100 {
        let text = std::fs::read_to_string(&stderr).unwrap();
        let lines = json_lines(&text[..text.rfind('\n').map_or(0, |end| end + 1)]);
        let finished = |id: &str| {
            lines.iter().any(|l| {
                request_id(l) == Some(id) && l["fields"]["message"] == "finished processing request"
            })
        };
        if ids.iter().all(|id| finished(id)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Stop it (its shutdown lines are checked too) and read everything it wrote.
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    for _ in 0..150 {
        if child.0.try_wait().unwrap().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let lines = json_lines(&std::fs::read_to_string(&stderr).unwrap());
    let stdout = std::fs::read_to_string(&stdout).unwrap();
    let printed = json_lines(&stdout);
    assert!(
        printed.iter().chain(&lines).any(|l| l["fields"]["message"] == "pactum listening"),
        "the listening line is a JSON line too: {stdout}"
    );
    for line in &lines {
        assert!(line["timestamp"].is_string() && line["level"].is_string(), "{line}");
    }
    // Every line `TraceLayer` wrote inside a request (the start-up polls' too) carries an id,
    // and each request above has its own lines.
    let traced: Vec<&Value> =
        lines.iter().filter(|l| l["target"].as_str().unwrap().starts_with("tower_http")).collect();
    assert!(!traced.is_empty());
    for line in &traced {
        assert!(request_id(line).is_some_and(|id| !id.is_empty()), "{line}");
    }
    for id in &ids {
        let of_request = lines.iter().filter(|l| request_id(l) == Some(id.as_str())).count();
        assert!(of_request >= 2, "request {id}: {of_request} lines");
    }
    // The handler's own line is in its request's span.
    let created_line = lines.iter().find(|l| l["fields"]["message"] == "agent created");
    let created_line = created_line.expect("the handler logged the new agent");
    assert_eq!(request_id(created_line), Some("json-logs-create-1"), "{created_line}");
    assert_eq!(created_line["fields"]["agent_id"], agent["id"], "{created_line}");
    assert_eq!(created_line["span"]["route"], "/v1/agents", "{created_line}");
    let _ = std::fs::remove_dir_all(&dir);
}
