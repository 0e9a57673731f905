//! The operator console in a real browser: Debian's Chromium, driven through chromedriver,
//! against a real service on anvil. Signs in with the owner key, watches an activation made
//! through the API turn up confirmed without a reload, approves an escalated activation,
//! edits a policy with a mistake and then fixes it, replays a failed webhook delivery, and
//! visits every page, saving a screenshot of each (`target/console-screenshots/`).

use std::path::PathBuf;
use std::time::Duration;

use alloy::providers::Provider;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::router::{Api, Client};
use crate::support::service::{Harness, Miner, OWNER_KEY};
use crate::support::webdriver::Browser;
use crate::webhooks::{Receiver, Reply, create_webhook};

/// Generous: the test machine may be a loaded two-core box.
const WAIT: Duration = Duration::from_secs(60);

/// Where screenshots go: `<target>/console-screenshots/`.
fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("console-screenshots")
}

async fn shot(browser: &Browser, name: &str) {
    browser.screenshot(&screenshots().join(format!("{name}.png"))).await;
}

/// Mines one block, so confirmations accrue while the page is watched.
async fn mine(h: &Harness) {
    let _: Value = h.chain.provider.raw_request("evm_mine".into(), ()).await.unwrap();
}

/// Opens the console and signs in with the harness's owner key.
async fn signed_in(h: &Harness) -> Browser {
    let browser = Browser::start().await;
    browser.goto(&format!("{}/console", h.base)).await;
    browser.wait_for("#owner-key", WAIT).await.send_keys(OWNER_KEY).await;
    shot(&browser, "sign-in").await;
    browser.find("#sign-in-form button[type=submit]").await.unwrap().click().await;
    browser.wait_for("#agreements", WAIT).await;
    browser
}

/// Opens page `name` (hash route) and waits for `ready`.
async fn open(browser: &Browser, h: &Harness, name: &str, ready: &str) {
    browser.goto(&format!("{}/console#/{name}", h.base)).await;
    browser.wait_for(ready, WAIT).await;
}

#[tokio::test]
async fn console_shows_a_live_activation_and_approves_an_escalated_one() {
    let h = Harness::start_with(|config| {
        config.console.explorer_url = "https://explorer.invalid".into();
    })
    .await;
    let browser = signed_in(&h).await;
    let key_seen =
        browser.script("return sessionStorage.getItem('pactum.owner_key')", vec![]).await;
    assert_eq!(key_seen, OWNER_KEY, "the key is kept in session storage");
    let url = browser.script("return location.href", vec![]).await;
    assert!(!url.as_str().unwrap().contains(OWNER_KEY), "the key never goes into a URL");

    // An activation made through the API appears, then turns active, without a reload.
    let (buyer, seller) = h.parties().await;
    let id = h.queued(&buyer, &seller).await;
    let status = format!("tr[data-agreement-id=\"{id}\"] td.agreement-status");
    browser.wait_text(&status, WAIT, |t| t == "active", || mine(&h)).await;
    let activation = format!("tr[data-agreement-id=\"{id}\"] td.activation-status");
    assert_eq!(browser.find(&activation).await.unwrap().text().await, "confirmed");
    let marker = browser.script("return window.performance.navigation.type", vec![]).await;
    assert_eq!(marker, 0, "the page was never reloaded");

    // Its timeline: events and the relayer's transaction, linked to the explorer.
    browser.find(&format!("button[data-agreement=\"{id}\"]")).await.unwrap().click().await;
    browser.wait_text("#timeline", WAIT, |t| t.contains("activation.confirmed"), || async {}).await;
    let link =
        browser.wait_for("#timeline a[href^=\"https://explorer.invalid/tx/0x\"]", WAIT).await;
    assert!(link.text().await.starts_with("0x"));
    shot(&browser, "agreements").await;

    // An escalated activation waits on the approvals page; approving it there confirms it.
    h.set_policy(
        &buyer,
        json!([{ "id": "big", "type": "escalation_threshold", "above_cents": 500,
                 "description": "Ask the owner above $5" }]),
    )
    .await;
    let escalated = h.queued(&buyer, &seller).await;
    let (_, waiting) =
        h.call(Method::GET, "/approvals?status=pending", Some(OWNER_KEY), None).await;
    let approval = waiting["data"][0]["id"].as_str().expect("a pending approval").to_owned();
    assert_eq!(waiting["data"][0]["agreement_id"], escalated.as_str());
    open(&browser, &h, "approvals", &format!("tr[data-approval-id=\"{approval}\"]")).await;
    shot(&browser, "approvals").await;
    browser.find(&format!("#reason-{approval}")).await.unwrap().send_keys("expected spend").await;
    browser
        .find(&format!("button.approve[data-approval=\"{approval}\"]"))
        .await
        .unwrap()
        .click()
        .await;
    browser.wait_text("#recent-approvals", WAIT, |t| t.contains("approved"), || async {}).await;
    open(&browser, &h, "agreements", "#agreements").await;
    let status = format!("tr[data-agreement-id=\"{escalated}\"] td.agreement-status");
    browser.wait_text(&status, WAIT, |t| t == "active", || mine(&h)).await;

    // The charts count both activations; the relayer page shows the key that sent them.
    open(&browser, &h, "charts", "#approvals-waiting").await;
    browser.wait_for("#charts svg.chart rect", WAIT).await;
    shot(&browser, "charts").await;
    open(&browser, &h, "relayer", "#relayer tr[data-signer]").await;
    let relayer = browser.find("#relayer").await.unwrap().text().await;
    assert!(relayer.contains(&h.chain.relayer.address().to_string()), "{relayer}");
    shot(&browser, "relayer").await;
}

#[tokio::test]
async fn console_edits_a_policy_replays_a_webhook_and_creates_an_agent() {
    let h = Harness::start_with(|config| {
        config.webhooks.timeout_secs = 1;
        config.webhooks.retry_schedule = "0s,100ms,100ms".parse().unwrap();
    })
    .await;
    // A receiver that fails three times (the whole schedule), then answers 200.
    let receiver = Receiver::start(vec![Reply::Status(500); 3]).await;
    let (hooked, seller) = h.parties().await;
    create_webhook(&h, &hooked, &receiver.url, &["agreement.proposed"]).await;
    h.propose(&hooked, &seller, h.chain.buyer.address()).await;
    receiver.wait_for(3).await;
    // The newest agent is the one the policy page opens first.
    let policy_agent = h.agent("policy-agent").await;
    let browser = signed_in(&h).await;

    // A policy with a mistake: the error shows in place; fixed, it saves a new version.
    open(&browser, &h, "policies", &format!("#policy-agent option[value=\"{}\"]", policy_agent.id))
        .await;
    browser.wait_text("#policy-status", WAIT, |t| !t.is_empty(), || async {}).await;
    let editor = browser.find("#policy-json").await.unwrap();
    editor.clear().await;
    editor
        .send_keys(r#"{"rules": [{"id": "cap", "type": "per_tx_limit", "max_cents": -1}]}"#)
        .await;
    browser.find("#policy-save").await.unwrap().click().await;
    let error = browser.wait_text("#policy-error", WAIT, |t| !t.is_empty(), || async {}).await;
    assert!(error.contains("cap"), "the error names the rule: {error}");
    let invalid = browser
        .script(
            "return document.getElementById('policy-json').getAttribute('aria-invalid')",
            vec![],
        )
        .await;
    assert_eq!(invalid, "true");
    shot(&browser, "policies-error").await;
    editor.clear().await;
    editor
        .send_keys(r#"{"rules": [{"id": "cap", "type": "per_tx_limit", "max_cents": 50000}]}"#)
        .await;
    browser.find("#policy-save").await.unwrap().click().await;
    browser.wait_text("#policy-status", WAIT, |t| t.starts_with("Saved"), || async {}).await;
    assert_eq!(browser.find("#policy-error").await.unwrap().text().await, "");
    let path = format!("/agents/{}/policies", policy_agent.id);
    let (status, policy) = h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(policy["rules"][0]["max_cents"], 50000, "{policy}");

    // The failed delivery, replayed from the webhooks page, is delivered.
    open(&browser, &h, "webhooks", &format!("#webhook-agent option[value=\"{}\"]", hooked.id))
        .await;
    browser
        .script(
            "const s = document.getElementById('webhook-agent'); s.value = arguments[0]; \
             s.dispatchEvent(new Event('change'));",
            vec![json!(hooked.id)],
        )
        .await;
    let replay = browser.wait_for("button.replay", WAIT).await;
    shot(&browser, "webhooks-failed").await;
    replay.click().await;
    receiver.wait_for(4).await;
    browser.wait_text("td.delivery-status", WAIT, |t| t == "succeeded", || async {}).await;
    shot(&browser, "webhooks-replayed").await;

    // A new agent's key is shown once.
    open(&browser, &h, "agents", "#agent-name").await;
    browser.find("#agent-name").await.unwrap().send_keys("console-made").await;
    browser.find("#agent-create").await.unwrap().click().await;
    let key = browser.wait_text("#new-api-key", WAIT, |t| !t.is_empty(), || async {}).await;
    assert!(key.contains("_"), "an agent key: {key}");
    browser.wait_text("#agents", WAIT, |t| t.contains("console-made"), || async {}).await;
    shot(&browser, "agents").await;

    // The go/no-go page starts a run and shows the packet's seven sections once it completes.
    open(&browser, &h, "go-no-go", "#go-no-go-run").await;
    browser.wait_text("#go-no-go", WAIT, |t| t.contains("No run yet"), || async {}).await;
    // The canary's transactions need blocks past their confirmation depth.
    let _miner = Miner::start(&h);
    browser.find("#go-no-go-run").await.unwrap().click().await;
    let sections = [
        "hosted_health",
        "hosted_activation",
        "provider",
        "webhook",
        "reconciliation",
        "support",
        "rollback",
    ];
    let packet = browser
        .wait_text(
            "#go-no-go",
            Duration::from_secs(300),
            |t| t.contains("complete") && sections.iter().all(|s| t.contains(s)),
            || async {},
        )
        .await;
    // The canary settled through this very server, so its section is a `go`.
    let (_, latest) = h.call(Method::GET, "/v1/go-no-go", Some(OWNER_KEY), None).await;
    let canary = latest["packet"]["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["section"] == "hosted_activation")
        .unwrap()
        .clone();
    assert_eq!(canary["verdict"], "go", "{canary}\n{packet}");
    shot(&browser, "go-no-go").await;

    // Phone width: the same pages in one column.
    browser.resize(390, 844).await;
    open(&browser, &h, "agents", "#agents tr").await;
    shot(&browser, "agents-phone").await;
}

/// The page and assets are served from the binary with their types and a strict policy; the
/// relayer view answers only to the operator.
#[tokio::test]
async fn console_assets_and_operator_only_routes() {
    let api = Api::start().await;
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/assets/app.js", "text/javascript"),
        ("/console/assets/app.css", "text/css"),
    ] {
        let response = raw(&api, path).await;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers();
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind), "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
    }
    let html = body_text(raw(&api, "/console").await).await;
    assert!(!html.contains("<script>") && !html.contains("http://") && !html.contains("https://"));
    let js = body_text(raw(&api, "/console/assets/app.js").await).await;
    assert!(!js.contains("innerHTML") && !js.contains("console.log"), "data never as HTML");
    let missing = raw(&api, "/console/assets/nope.js").await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    // The operator sees the relayer; another account's owner gets 404 like any unknown route.
    let (status, _) = api.call(Method::GET, "/v1/relayer", Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    let (other_key, _) = crate::support::router::other_account(&api).await;
    let (status, body) = api.call(Method::GET, "/v1/relayer", Some(&other_key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, config) =
        api.call(Method::GET, "/v1/console/config", Some(&other_key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["operator"], false);
    assert_eq!(config["explorer_url"], Value::Null);
    let (status, page) = api.call(Method::GET, "/v1/agreements", Some(&other_key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["agreements"], json!([]));
    let (status, body) =
        api.call(Method::GET, "/v1/agreements?status=bogus", Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) =
        api.call(Method::GET, "/v1/agreements/ua_nope/timeline", Some(&other_key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, stats) = api.call(Method::GET, "/v1/stats", Some(&other_key), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["hourly"].as_array().unwrap().len(), 24);
    assert_eq!(stats["scope"], "account");
}

/// `GET path` through the router, headers and all.
async fn raw(api: &Api, path: &str) -> axum::response::Response {
    use tower::ServiceExt;
    let request = axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap();
    api.router.clone().oneshot(request).await.unwrap()
}

async fn body_text(response: axum::response::Response) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}
