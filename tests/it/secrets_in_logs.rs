//! Secrets never reach the logs: `pactum serve` runs as operators run it, logging everything it
//! can (`RUST_LOG=trace`), through a flow that reveals or uses every kind of secret — the owner
//! credential, agent API keys (created and rotated), an execution token, a webhook signing
//! secret (created and rotated), the relayer key and the receipt key — and its whole output is
//! searched for each of them.

use std::io::Read;
use std::process::Command;
use std::time::Duration;

use crate::support::DevChain;
use crate::support::service::{RECEIPT_KEY, propose_body, sign_package, unique_dir};
use pactum::agreement::ids::{Environment, SecretKey};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request =
            self.http.request(method, format!("{}{path}", self.base)).bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn no_secret_appears_in_the_logs() {
    let chain = DevChain::start().await;
    let dir = unique_dir("pactum-secrets");
    let port = free_port();
    let relayer_key = chain.relayer.to_bytes().to_string();
    // A random owner credential, so no fixed test value can match something else in the logs.
    let owner = SecretKey::generate("ok", Environment::Test);
    let owner_key = owner.reveal();
    let log_path = dir.join("pactum.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pactum"))
        .arg("serve")
        .env("PACTUM_DATABASE_URL", format!("sqlite:{}?mode=rwc", dir.join("p.db").display()))
        .env("PACTUM_LISTEN", format!("127.0.0.1:{port}"))
        .env("PACTUM_RPC_URL", chain.anvil.endpoint())
        .env("PACTUM_ESCROW_ADDRESS", chain.escrow.address().to_string())
        .env("PACTUM_RELAYER_PRIVATE_KEYS", &relayer_key)
        .env("PACTUM_OWNER_KEY", owner_key)
        .env("PACTUM_RECEIPT_PRIVATE_KEY", RECEIPT_KEY)
        .env("PACTUM_CONFIRMATIONS", "1")
        .env("PACTUM_POLL_INTERVAL_MS", "50")
        .env("PACTUM_WEBHOOK_ALLOW_PRIVATE_URLS", "true")
        .env("RUST_LOG", "trace")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let client = Client { http: reqwest::Client::new(), base: format!("http://127.0.0.1:{port}") };
    let mut up = false;
    for _ in 0..150 {
        if client.http.get(format!("{}/health", client.base)).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(up, "pactum serve did not come up");

    let mut secrets = vec![owner_key.to_owned(), relayer_key.clone(), RECEIPT_KEY.to_owned()];
    secrets.push(relayer_key.trim_start_matches("0x").to_owned());
    secrets.push(RECEIPT_KEY.trim_start_matches("0x").to_owned());

    let agent = |name: &'static str| {
        let client = &client;
        async move {
            let (status, created) = client
                .call(Method::POST, "/v1/agents", owner_key, Some(json!({ "name": name })))
                .await;
            assert_eq!(status, StatusCode::CREATED, "{created}");
            (
                created["id"].as_str().unwrap().to_owned(),
                created["api_key"].as_str().unwrap().to_owned(),
            )
        }
    };
    let (buyer_id, buyer_key) = agent("buyer").await;
    let (seller_id, seller_key) = agent("seller").await;
    secrets.extend([buyer_key.clone(), seller_key.clone()]);

    // A webhook for the buyer (its secret revealed, then rotated).
    let hook = json!({ "url": "http://127.0.0.1:9/hook", "event_types": [] });
    let path = format!("/agents/{buyer_id}/webhooks");
    let (status, webhook) = client.call(Method::POST, &path, owner_key, Some(hook)).await;
    assert_eq!(status, StatusCode::CREATED, "{webhook}");
    secrets.push(webhook["secret"].as_str().unwrap().to_owned());
    let rotate = format!("{path}/{}/rotate-secret", webhook["id"].as_str().unwrap());
    let (status, rotated) = client.call(Method::POST, &rotate, owner_key, None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    secrets.push(rotated["secret"].as_str().unwrap().to_owned());

    // An agreement proposed, accepted and activated: keys used on every request.
    let body = propose_body(&seller_id, chain.buyer.address());
    let (status, proposed) =
        client.call(Method::POST, "/usage-agreements", &buyer_key, Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{proposed}");
    let id = proposed["id"].as_str().unwrap().to_owned();
    let accept = json!({ "seller_wallet_address": chain.seller.address().to_string() });
    let path = format!("/usage-agreements/{id}/accept");
    let (status, _) = client.call(Method::PUT, &path, &seller_key, Some(accept)).await;
    assert_eq!(status, StatusCode::OK);

    // The buyer's activation goes through an execution token minted for it.
    let mint = json!({ "action": "activate_escrow", "audience": id });
    let path = format!("/v1/agents/{buyer_id}/execution-tokens");
    let (status, token) = client.call(Method::POST, &path, owner_key, Some(mint)).await;
    assert_eq!(status, StatusCode::CREATED, "{token}");
    let token = token["token"].as_str().unwrap().to_owned();
    secrets.push(token.clone());
    let path = format!("/usage-agreements/{id}/activation-package");
    let (status, package) = client.call(Method::GET, &path, &buyer_key, None).await;
    assert_eq!(status, StatusCode::OK, "{package}");
    let path = format!("/usage-agreements/{id}/activate-escrow");
    let signed = sign_package(&chain.buyer, &package);
    let (status, queued) = client.call(Method::POST, &path, &token, Some(signed)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let mut active = false;
    for _ in 0..200 {
        let path = format!("/usage-agreements/{id}");
        let (_, agreement) = client.call(Method::GET, &path, &buyer_key, None).await;
        if agreement["status"] == "active" {
            active = true;
            break;
        }
        let _: Value =
            alloy::providers::Provider::raw_request(&chain.provider, "evm_mine".into(), ())
                .await
                .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(active, "the activation was relayed and confirmed");

    // A rotated agent key, and requests with wrong credentials (rejections are logged too).
    let path = format!("/v1/agents/{seller_id}/regenerate-key");
    let (status, rotated) = client.call(Method::POST, &path, owner_key, None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    secrets.push(rotated["api_key"].as_str().unwrap().to_owned());
    let (status, _) = client.call(Method::GET, "/v1/agents", &seller_key, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let _ = child.kill();
    let _ = child.wait();
    let mut output = String::new();
    std::fs::File::open(&log_path).unwrap().read_to_string(&mut output).unwrap();
    assert!(output.contains("transaction saved"), "trace logging captured the relay");
    for secret in &secrets {
        assert!(secret.len() >= 20);
        assert!(!output.contains(secret.as_str()), "a secret reached the logs: {}…", &secret[..8]);
        // Nor the part after a `whsec_`/`pk_test_` prefix on its own.
        let tail = secret.rsplit('_').next().unwrap();
        assert!(!output.contains(tail), "a secret's body reached the logs: {}…", &secret[..8]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
