//! The go/no-go packet (docs/go-no-go.md) from a real service on anvil: every section `go` on a
//! dev-like deployment (the canary activated and settled, the packet signed by the receipt
//! key), and `no_go` in the right section when a store row is edited behind the service's
//! back, a webhook endpoint answers 500, or the RPC is down; `pactum go-no-go` as a process;
//! the routes answer only to the operator.

use std::path::Path;
use std::time::{Duration, Instant};

use alloy::signers::local::PrivateKeySigner;
use pactum::gonogo::{Packet, Section, Verdict, html, signing};
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::router::{Api, Client, other_account};
use crate::support::service::{Harness, Miner, OWNER_KEY, RECEIPT_KEY, unique_dir};
use crate::webhooks::{Receiver, Reply, create_webhook};

/// How long a run may take on a loaded machine (the canary alone waits for confirmations).
const RUN_LIMIT: Duration = Duration::from_secs(400);

/// Waits until the service has recorded a ready readiness sample (the hosted-health section
/// wants the last one before a run ready; the very first, at start-up, may predate the
/// watcher's first block).
async fn ready_recorded(h: &Harness) {
    use sqlx::Row;
    let store = h.service.as_ref().unwrap().state().store.clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let latest =
            sqlx::query("SELECT ready FROM readiness_samples ORDER BY checked_at_ms DESC LIMIT 1")
                .fetch_optional(store.reader())
                .await
                .unwrap();
        if latest.is_some_and(|row| row.get::<i64, _>("ready") == 1) {
            return;
        }
        assert!(Instant::now() < deadline, "no ready readiness sample recorded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A harness recording readiness every second, so a ready sample follows start-up at once.
async fn harness() -> Harness {
    Harness::start_with(|config| config.go_no_go.readiness_record_secs = 1).await
}

/// Starts a run as the operator and waits until it is complete; returns the run.
async fn run(h: &Harness) -> Value {
    let (status, started) = h.call(Method::POST, "/v1/go-no-go", Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["status"], "running");
    let id = started["run_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("gng_"), "{id}");
    let deadline = Instant::now() + RUN_LIMIT;
    loop {
        let (status, run) =
            h.call(Method::GET, &format!("/v1/go-no-go/{id}"), Some(OWNER_KEY), None).await;
        assert_eq!(status, StatusCode::OK, "{run}");
        if run["status"] == "complete" {
            let (_, latest) = h.call(Method::GET, "/v1/go-no-go", Some(OWNER_KEY), None).await;
            assert_eq!(latest["run_id"], id.as_str(), "the latest run is this one");
            return run;
        }
        assert!(Instant::now() < deadline, "run {id} not complete in time: {run}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn packet_of(run: &Value) -> Packet {
    serde_json::from_value(run["packet"].clone()).unwrap()
}

fn verdicts(packet: &Packet) -> Vec<(Section, Verdict)> {
    packet.sections.iter().map(|s| (s.section, s.verdict)).collect()
}

/// Every section `go` except those in `no_go`.
fn assert_verdicts(packet: &Packet, no_go: &[Section]) {
    let expected: Vec<_> = Section::ALL
        .iter()
        .map(|s| (*s, if no_go.contains(s) { Verdict::NoGo } else { Verdict::Go }))
        .collect();
    assert_eq!(verdicts(packet), expected, "{}", serde_json::to_string_pretty(packet).unwrap());
}

fn receipt_signer() -> alloy::primitives::Address {
    RECEIPT_KEY.parse::<PrivateKeySigner>().unwrap().address()
}

/// No secret the service holds is anywhere in the packet.
fn assert_no_secrets(packet_json: &str) {
    for secret in [&RECEIPT_KEY[2..], OWNER_KEY, "whsec_", "pk_test_"] {
        assert!(!packet_json.contains(secret), "the packet shows a secret ({secret})");
    }
}

/// `pactum go-no-go` as a process against the harness: its exit code and output.
async fn cli(h: &Harness, args: &[&str]) -> (i32, String) {
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_pactum"))
        .arg("go-no-go")
        .args(args)
        .env("PACTUM_URL", &h.base)
        .env("PACTUM_OWNER_KEY", OWNER_KEY)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap(), text)
}

fn read_packet(dir: &Path) -> Packet {
    serde_json::from_str(&std::fs::read_to_string(dir.join("packet.json")).unwrap()).unwrap()
}

#[tokio::test]
async fn go_no_go_is_all_go_on_a_dev_deployment_and_a_planted_store_edit_is_a_reconciliation_no_go()
{
    let h = harness().await;
    let agent = h.agent("hooked").await;
    let receiver = Receiver::start(Vec::new()).await;
    let hook = create_webhook(&h, &agent, &receiver.url, &[]).await;
    let miner = Miner::start(&h);
    ready_recorded(&h).await;

    let first = run(&h).await;
    let packet = packet_of(&first);
    assert_verdicts(&packet, &[]);
    assert_eq!(first["verdict"], "go");
    assert_eq!(signing::verify(&packet), Ok(receipt_signer()));
    assert_no_secrets(&first["packet"].to_string());

    // The canary ran end to end on this chain.
    let canary = &packet.section(Section::HostedActivation).unwrap().evidence;
    assert_eq!(canary["final_status"], "settled", "{canary}");
    assert!(canary["activation_tx_hash"].as_str().is_some_and(|h| h.starts_with("0x")));
    assert!(canary["settlement_tx_hash"].as_str().is_some_and(|h| h.starts_with("0x")));
    // The webhook endpoint got one signed test delivery that a standard verifier accepts.
    let hits = receiver.wait_for(1).await;
    assert_eq!(hits[0].json()["type"], "go_no_go.test");
    assert!(hits[0].verifies_with(hook["secret"].as_str().unwrap()));
    let rollback = &packet.section(Section::Rollback).unwrap().evidence;
    assert_eq!(rollback["reversible"], false);
    assert!(rollback["backup"]["commands"][0].as_str().unwrap().starts_with("VACUUM INTO"));

    let page = html::render(&packet);
    for section in Section::ALL {
        assert!(page.contains(&format!("<section id=\"{}\">", section.as_str())), "{section}");
    }

    // The CLI writes the same kind of packet and exits 0; `verify` accepts the file.
    let out = unique_dir("pactum-go-no-go");
    let (code, output) = cli(&h, &["--out", out.to_str().unwrap()]).await;
    assert_eq!(code, 0, "{output}");
    assert_verdicts(&read_packet(&out), &[]);
    let html_page = std::fs::read_to_string(out.join("packet.html")).unwrap();
    assert!(html_page.contains("hosted_activation") && html_page.contains("rollback"));
    let file = out.join("packet.json");
    let signer = receipt_signer().to_string();
    let (code, output) = cli(&h, &["verify", file.to_str().unwrap(), "--signer", &signer]).await;
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("verified"), "{output}");
    // An edited file no longer verifies.
    let edited = std::fs::read_to_string(&file).unwrap();
    let edited = edited.replacen("store and chain agree", "store and chain agreed", 1);
    std::fs::write(&file, edited).unwrap();
    let (code, output) = cli(&h, &["verify", file.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{output}");

    // Behind the service's back: the store now believes the canary agreement claimed 7 units.
    let canary_id = canary["agreement_id"].as_str().unwrap();
    let store = h.service.as_ref().unwrap().state().store.clone();
    sqlx::query("UPDATE usage_agreements SET escrow_claimed_units = 7 WHERE id = $1")
        .bind(canary_id)
        .execute(store.reader())
        .await
        .unwrap();
    let second = run(&h).await;
    let packet = packet_of(&second);
    assert_verdicts(&packet, &[Section::Reconciliation]);
    assert_eq!(second["verdict"], "no_go");
    let reconciliation = packet.section(Section::Reconciliation).unwrap();
    assert_eq!(reconciliation.evidence["mismatches"][0]["kind"], "claimed_units");
    drop(miner);
    let _ = std::fs::remove_dir_all(out);
}

#[tokio::test]
async fn go_no_go_a_failing_webhook_endpoint_is_a_webhook_no_go_and_the_cli_exits_1() {
    let h = harness().await;
    let agent = h.agent("hooked").await;
    let good = Receiver::start(Vec::new()).await;
    let bad = Receiver::start(vec![Reply::Status(500); 50]).await;
    create_webhook(&h, &agent, &good.url, &[]).await;
    let failing = create_webhook(&h, &agent, &bad.url, &[]).await;
    let _miner = Miner::start(&h);
    ready_recorded(&h).await;

    let out = unique_dir("pactum-go-no-go");
    let (code, output) = cli(&h, &["--out", out.to_str().unwrap()]).await;
    assert_eq!(code, 1, "{output}");
    let packet = read_packet(&out);
    assert_verdicts(&packet, &[Section::Webhook]);
    assert_eq!(signing::verify(&packet), Ok(receipt_signer()));
    let webhook = packet.section(Section::Webhook).unwrap();
    assert!(webhook.summary.contains(failing["id"].as_str().unwrap()), "{}", webhook.summary);
    assert!(webhook.summary.contains("500"), "{}", webhook.summary);
    let (code, output) = cli(&h, &["verify", out.join("packet.json").to_str().unwrap()]).await;
    assert_eq!(code, 0, "a no-go packet verifies too: {output}");
    let _ = std::fs::remove_dir_all(out);
}

#[tokio::test]
async fn go_no_go_with_the_rpc_down_the_provider_is_no_go() {
    let mut h = harness().await;
    let pid = h.chain.anvil.child().id();
    let killed = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    assert!(killed.unwrap().success());
    h.chain.anvil.child_mut().wait().unwrap();

    let packet = packet_of(&run(&h).await);
    let provider = packet.section(Section::Provider).unwrap();
    assert_eq!(provider.verdict, Verdict::NoGo, "{provider:?}");
    assert!(provider.evidence["endpoints"][0]["error"].is_string(), "{:?}", provider.evidence);
    // What needs the chain is no-go with it; what does not stays go.
    for section in [Section::HostedHealth, Section::HostedActivation, Section::Reconciliation] {
        assert_eq!(packet.section(section).unwrap().verdict, Verdict::NoGo, "{section}");
    }
    for section in [Section::Webhook, Section::Support, Section::Rollback] {
        assert_eq!(packet.section(section).unwrap().verdict, Verdict::Go, "{section}");
    }
    assert_eq!(signing::verify(&packet), Ok(receipt_signer()));
    h.stop().await;
}

#[tokio::test]
async fn go_no_go_answers_only_the_operator() {
    let api = Api::start().await;
    let (other_owner, other_agent) = other_account(&api).await;
    for key in [other_owner.as_str(), other_agent.key.as_str()] {
        for (method, path) in [
            (Method::POST, "/v1/go-no-go"),
            (Method::GET, "/v1/go-no-go"),
            (Method::GET, "/v1/go-no-go/gng_1"),
        ] {
            let (status, body) = api.call(method.clone(), path, Some(key), None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
            assert_eq!(body["error"]["code"], "not_found");
        }
    }
    // The operator before any run: no run yet.
    let (status, body) = api.call(Method::GET, "/v1/go-no-go", Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = api.call(Method::GET, "/v1/go-no-go", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn go_no_go_on_postgres_restores_a_pg_dump_into_a_scratch_database() {
    let Some(url) = crate::support::databases::fresh_postgres().await else { return };
    let database_url = url.clone();
    let mut h = Harness::start_with(move |config| {
        config.database_url = database_url;
        config.go_no_go.readiness_record_secs = 1;
    })
    .await;
    let _miner = Miner::start(&h);
    ready_recorded(&h).await;

    let packet = packet_of(&run(&h).await);
    assert_verdicts(&packet, &[]);
    let rollback = &packet.section(Section::Rollback).unwrap().evidence;
    assert_eq!(rollback["backend"], "postgres");
    let commands = rollback["backup"]["commands"].to_string();
    assert!(commands.contains("pg_dump") && commands.contains("psql"), "{commands}");
    // The scratch database is gone again.
    let scratch = rollback["backup"]["restored_into"].as_str().unwrap();
    let name = scratch.rsplit_once('/').unwrap().1.to_owned();
    let store = h.service.as_ref().unwrap().state().store.clone();
    let left: Vec<sqlx::any::AnyRow> =
        sqlx::query("SELECT datname FROM pg_database WHERE datname = $1")
            .bind(&name)
            .fetch_all(store.reader())
            .await
            .unwrap();
    assert!(left.is_empty(), "{name} was not dropped");
    h.stop().await;
    crate::support::databases::drop_postgres(&url).await;
}

/// The acceptance case as an operator meets it: `pactum go-no-go` against a real `pactum dev`
/// process comes out all `go` (exit 0) and its packet verifies. Right after start-up the
/// readiness history may not yet hold a ready sample, so a packet whose only `no_go` is hosted
/// health is taken as "too early" and the run repeated, for up to two minutes.
#[test]
fn pactum_go_no_go_on_pactum_dev_is_all_go() {
    let dev = crate::support::docs_page::Dev::start("pactum-go-no-go-dev");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&dev.out).unwrap()).unwrap();
    let url = summary["api_url"].as_str().unwrap().to_owned();
    let owner_key = summary["owner_key"].as_str().unwrap().to_owned();
    let out = dev.dir.join("packet");
    let go_no_go = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_pactum"))
            .arg("go-no-go")
            .args(args)
            .env("PACTUM_URL", &url)
            .env("PACTUM_OWNER_KEY", &owner_key)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.code().unwrap(), text)
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let (code, text, packet) = loop {
        let (code, text) = go_no_go(&["--out", out.to_str().unwrap()]);
        let packet = (code != 2).then(|| read_packet(&out));
        let too_early = packet.as_ref().is_some_and(|p| {
            verdicts(p).iter().all(|(s, v)| *v == Verdict::Go || *s == Section::HostedHealth)
        }) && code == 1;
        if !too_early || Instant::now() > deadline {
            break (code, text, packet);
        }
    };
    assert_eq!(code, 0, "{text}\n{}", dev.log());
    assert_verdicts(&packet.unwrap(), &[]);
    assert!(std::fs::read_to_string(out.join("packet.html")).unwrap().contains("rollback"));
    let (code, text) = go_no_go(&["verify", out.join("packet.json").to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    let dir = dev.dir.clone();
    drop(dev);
    let _ = std::fs::remove_dir_all(&dir);
}
