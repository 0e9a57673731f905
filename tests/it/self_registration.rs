//! Agent self-registration against the real server on anvil: an agent registers with no
//! credential and its key works at once (its wallet is set, read and funded), but every spending
//! route refuses it (`agent_unclaimed`) and nothing is queued, held, checked or audited; its
//! owner claims it with the one-time code (stored only as a hash) and from then on it spends
//! within its policy. A code is claimed once
//! (409), an unknown one is 404, an expired one 410; a live deployment refuses registration;
//! registrations are rate-limited per client IP address, whatever credential they carry; the
//! seed's `/agents/{id}/regenerate-key` rotates the key.

use alloy::primitives::U256;
use pactum::agreement::ids::{Environment, SecretKey};
use pactum::config::ServeConfig;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

use crate::support::databases::{drop_postgres, fresh_postgres};
use crate::support::router::Client;
use crate::support::service::{Harness, OWNER_KEY, TestAgent, sign_package};

/// Which database a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Sqlite,
    Postgres,
}

/// A harness on `db` (with `adjust` applied), and the Postgres database to drop after; `None`
/// when Postgres is asked for and not configured.
async fn harness_on(
    db: Db,
    adjust: impl FnOnce(&mut ServeConfig),
) -> Option<(Harness, Option<String>)> {
    let url = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(fresh_postgres().await?),
    };
    let h = Harness::start_with(|config| {
        if let Some(url) = &url {
            config.database_url = url.clone();
        }
        adjust(config);
    })
    .await;
    Some((h, url))
}

async fn finish(mut h: Harness, url: Option<String>) {
    h.stop().await;
    if let Some(url) = url {
        drop_postgres(&url).await;
    }
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("")
}

/// Registers an agent with no credential; the status and the answer.
async fn register(h: &Harness, body: Option<&Value>) -> (StatusCode, Value) {
    h.call(Method::POST, "/agents/register", None, body).await
}

/// Registers an agent and returns it with its claim code.
async fn registered(h: &Harness, name: &str) -> (TestAgent, String) {
    let (status, registration) = register(h, Some(&json!({ "name": name }))).await;
    assert_eq!(status, StatusCode::CREATED, "{registration}");
    let agent = TestAgent {
        id: registration["agent_id"].as_str().unwrap().to_owned(),
        key: registration["api_key"].as_str().unwrap().to_owned(),
    };
    (agent, registration["claim_code"].as_str().unwrap().to_owned())
}

async fn claim(h: &Harness, owner: &str, claim_code: &str) -> (StatusCode, Value) {
    let body = json!({ "claim_code": claim_code });
    h.call(Method::POST, "/agents/claim", Some(owner), Some(&body)).await
}

/// How many rows of `table` name `agent` in `column`.
async fn rows_of(h: &Harness, table: &str, column: &str, agent: &TestAgent) -> i64 {
    let sql = format!("SELECT COUNT(*) AS n FROM {table} WHERE {column} = $1");
    let row = sqlx::query(&sql).bind(&agent.id).fetch_one(h.store().reader()).await.unwrap();
    row.get::<i64, _>("n")
}

/// `(expires_at, created_at, claim_code_hash)` of `agent`'s registration.
async fn registration_row(h: &Harness, agent: &TestAgent) -> (i64, i64, String) {
    let row = sqlx::query(
        "SELECT expires_at, created_at, claim_code_hash FROM agent_registrations \
         WHERE agent_id = $1",
    )
    .bind(&agent.id)
    .fetch_one(h.store().reader())
    .await
    .unwrap();
    (row.get("expires_at"), row.get("created_at"), row.get("claim_code_hash"))
}

/// Spends an agent can try, each with the route's body: a check (naming a policy the agent does
/// not have: the refusal comes before the policy is read), an authorization and a reservation.
fn spends(counterparty: &str) -> [(&'static str, Value); 3] {
    let spend =
        json!({ "action_type": "spend", "amount_cents": 100, "counterparty": counterparty });
    let check = json!({
        "policy_id": "pol_none", "action_type": "spend", "amount_cents": 100, "currency": "USD",
        "counterparty": counterparty,
    });
    [
        ("/v1/checks", check),
        ("/v1/spend-guard/authorize", spend.clone()),
        ("/v1/spend-guard/reservations", spend),
    ]
}

async fn an_unclaimed_agent_spends_nothing_until_its_owner_claims_it(db: Db) {
    let page = "https://console.example/claim?code={claim_code}";
    let Some((h, url)) = harness_on(db, |config| {
        config.registration.claim_code_ttl_secs = 600;
        config.registration.claim_url = Some(page.to_owned());
    })
    .await
    else {
        return;
    };
    let seller = h.agent("seller").await;

    // Registration needs no credential and reveals a test key and a claim code, once.
    let body = json!({ "name": "self-buyer", "capabilities": ["usage"] });
    let (status, registration) = register(&h, Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{registration}");
    assert_eq!(registration["status"], "unclaimed");
    assert_eq!(registration["name"], "self-buyer");
    let key = registration["api_key"].as_str().unwrap();
    let claim_code = registration["claim_code"].as_str().unwrap();
    assert!(key.starts_with("pk_test_"), "{registration}");
    assert!(claim_code.starts_with("claim_test_"), "{registration}");
    assert_eq!(registration["claim_url"], page.replace("{claim_code}", claim_code));
    let agent = TestAgent {
        id: registration["agent_id"].as_str().unwrap().to_owned(),
        key: key.to_owned(),
    };
    // The code is kept only as its hash, and lasts the configured time.
    let (expires_at, created_at, hash) = registration_row(&h, &agent).await;
    assert_eq!(expires_at - created_at, 600);
    assert_eq!(registration["claim_expires_at"], pactum::time::rfc3339(expires_at));
    assert_eq!(hash, SecretKey::from_presented(claim_code).hash());
    let stored = sqlx::query("SELECT claim_code_hash FROM agent_registrations")
        .fetch_all(h.store().reader())
        .await
        .unwrap();
    assert!(stored.iter().all(|row| row.get::<String, _>("claim_code_hash") != claim_code));
    // No body at all registers an agent too, under a default name.
    let (status, unnamed) = register(&h, None).await;
    assert_eq!(status, StatusCode::CREATED, "{unnamed}");
    assert_eq!(unnamed["name"], "self-registered agent");
    let (status, refused) = register(&h, Some(&json!({ "name": "" }))).await;
    assert_eq!((status, code(&refused)), (StatusCode::UNPROCESSABLE_ENTITY, "validation_error"));

    // Its key works at once: it sets its wallet and reads it back.
    let wallet = h.chain.buyer.address();
    let body = json!({ "address": wallet.to_string() });
    let (status, primary) = h.call(Method::POST, "/activate", Some(&agent.key), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{primary}");
    let (status, list) = h.call(Method::GET, "/v1/wallets", Some(&agent.key), None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["data"][0]["id"], primary["id"]);
    // It funds its wallet with demo USDC: minting for it is not spending.
    let fund = format!("/v1/wallets/{}/fund", primary["id"].as_str().unwrap());
    let before = h.chain.balance(wallet).await;
    let body = json!({ "amount_cents": 100 });
    let (status, funded) = h.call(Method::POST, &fund, Some(&agent.key), Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{funded}");
    assert_eq!(h.chain.balance(wallet).await, before + U256::from(1_000_000u64));
    // No owner has it yet: the operator's credential does not reach it.
    let path = format!("/v1/agents/{}", agent.id);
    let (status, _) = h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let rotate = format!("/agents/{}/regenerate-key", agent.id);
    let (status, _) = h.call(Method::POST, &rotate, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // It may agree terms, but every spending route refuses it, and nothing changes.
    let (buyer_wallet, seller_wallet) = (h.chain.buyer.address(), h.chain.seller.address());
    let id = h.accepted(&agent, &seller, buyer_wallet, seller_wallet).await;
    let package = h.package(&agent.key, &id).await;
    let activation = sign_package(&h.chain.buyer, &package);
    let activate = format!("/usage-agreements/{id}/activate-escrow");
    let escrow_before = h.chain.balance(*h.chain.escrow.address()).await;
    let (status, refused) =
        h.call(Method::POST, &activate, Some(&agent.key), Some(&activation)).await;
    assert_eq!((status, code(&refused)), (StatusCode::FORBIDDEN, "agent_unclaimed"), "{refused}");
    assert_eq!(refused["error"]["details"]["agent_id"], agent.id.as_str());
    for (path, body) in spends(&seller.id) {
        let (status, refused) = h.call(Method::POST, path, Some(&agent.key), Some(&body)).await;
        assert_eq!(
            (status, code(&refused)),
            (StatusCode::FORBIDDEN, "agent_unclaimed"),
            "{path}: {refused}"
        );
    }
    let (_, agreement) =
        h.call(Method::GET, &format!("/usage-agreements/{id}"), Some(&agent.key), None).await;
    assert_eq!(agreement["status"], "accepted", "{agreement}");
    assert_eq!(agreement["activation_status"], "not_started", "{agreement}");
    assert_eq!(h.job_count().await, 0);
    assert_eq!(h.chain.balance(*h.chain.escrow.address()).await, escrow_before);
    for table in ["audit_log", "spend_checks", "reservations"] {
        assert_eq!(rows_of(&h, table, "agent_id", &agent).await, 0, "{table}");
    }

    // An unknown code is 404; the right one makes the agent the operator's, and active.
    let (status, unknown) = claim(&h, OWNER_KEY, "claim_test_00").await;
    assert_eq!((status, code(&unknown)), (StatusCode::NOT_FOUND, "not_found"), "{unknown}");
    let (status, claimed) = claim(&h, OWNER_KEY, claim_code).await;
    assert_eq!(status, StatusCode::OK, "{claimed}");
    assert_eq!(claimed["id"], agent.id.as_str());
    assert_eq!(claimed["status"], "active");
    let (_, own) =
        h.call(Method::GET, &format!("/v1/agents/{}", seller.id), Some(OWNER_KEY), None).await;
    assert_eq!(claimed["account_id"], own["account_id"]);
    let (status, read) = h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
    assert_eq!((status, &read["status"]), (StatusCode::OK, &json!("active")), "{read}");
    // Its wallet came along; its holding account is gone.
    let wallets = format!("/v1/wallets?agent_id={}", agent.id);
    let (_, list) = h.call(Method::GET, &wallets, Some(OWNER_KEY), None).await;
    assert_eq!(list["data"][0]["id"], primary["id"], "{list}");
    let holding = sqlx::query("SELECT COUNT(*) AS n FROM accounts WHERE owner_key_hash = $1")
        .bind(format!("unclaimed:{}", agent.id))
        .fetch_one(h.store().reader())
        .await
        .unwrap();
    assert_eq!(holding.get::<i64, _>("n"), 0);
    // A code is used once, by anyone.
    let (status, again) = claim(&h, OWNER_KEY, claim_code).await;
    assert_eq!((status, code(&again)), (StatusCode::CONFLICT, "claim_code_used"), "{again}");

    // Claimed, it spends within its policy: the activation refused before now goes through.
    let policy = json!({ "rules": [{ "id": "cap", "type": "per_tx_limit", "max_cents": 2_000 }] });
    let policies = format!("/agents/{}/policies", agent.id);
    let (status, policy) = h.call(Method::PUT, &policies, Some(OWNER_KEY), Some(&policy)).await;
    assert_eq!(status, StatusCode::CREATED, "{policy}");
    let (status, queued) =
        h.call(Method::POST, &activate, Some(&agent.key), Some(&activation)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    h.wait_for(&agent.key, &id, |a| a["status"] == "active").await;
    assert!(h.chain.balance(*h.chain.escrow.address()).await > escrow_before);
    let over = json!({
        "policy_id": policy["id"], "action_type": "spend", "amount_cents": 2_001,
        "currency": "USD", "counterparty": seller.id,
    });
    let (status, blocked) = h.call(Method::POST, "/v1/checks", Some(&agent.key), Some(&over)).await;
    assert_eq!(status, StatusCode::OK, "{blocked}");
    assert_eq!(blocked["reason_code"], "per_tx_limit_exceeded", "{blocked}");

    // The seed's path rotates the key: the old one stops working, the new one works.
    let (status, rotated) = h.call(Method::POST, &rotate, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_key = rotated["api_key"].as_str().unwrap();
    assert!(new_key.starts_with("pk_test_") && new_key != agent.key, "{rotated}");
    let (status, old) = h.call(Method::GET, "/v1/wallets", Some(&agent.key), None).await;
    assert_eq!((status, code(&old)), (StatusCode::UNAUTHORIZED, "invalid_credential"), "{old}");
    let (status, _) = h.call(Method::GET, "/v1/wallets", Some(new_key), None).await;
    assert_eq!(status, StatusCode::OK);

    // A code whose agent set a wallet the account has already cannot be claimed into it (and
    // stays unused); once expired it is 410, and its agent still spends nothing.
    let (late, late_code) = registered(&h, "late").await;
    let address = alloy::signers::local::PrivateKeySigner::random().address();
    let body = json!({ "address": address.to_string() });
    let (status, _) = h.call(Method::POST, "/activate", Some(&late.key), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED);
    let body = json!({ "agent_id": seller.id, "address": address.to_string() });
    let (status, theirs) = h.call(Method::POST, "/v1/wallets", Some(OWNER_KEY), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let (status, taken) = claim(&h, OWNER_KEY, &late_code).await;
    assert_eq!((status, code(&taken)), (StatusCode::CONFLICT, "wallet_already_registered"));
    assert_eq!(taken["error"]["details"]["wallet_id"], theirs["id"], "{taken}");
    assert!(registration_row(&h, &late).await.0 > pactum::store::now());
    let mut tx = h.store().begin().await.unwrap();
    sqlx::query("UPDATE agent_registrations SET expires_at = $1 WHERE agent_id = $2")
        .bind(pactum::store::now() - 1)
        .bind(&late.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let (status, expired) = claim(&h, OWNER_KEY, &late_code).await;
    assert_eq!((status, code(&expired)), (StatusCode::GONE, "claim_code_expired"), "{expired}");
    let [(path, body), ..] = spends(&seller.id);
    let (status, refused) = h.call(Method::POST, path, Some(&late.key), Some(&body)).await;
    assert_eq!((status, code(&refused)), (StatusCode::FORBIDDEN, "agent_unclaimed"));
    finish(h, url).await;
}

#[tokio::test]
async fn an_unclaimed_agent_spends_nothing_until_claimed_sqlite() {
    an_unclaimed_agent_spends_nothing_until_its_owner_claims_it(Db::Sqlite).await;
}

#[tokio::test]
async fn an_unclaimed_agent_spends_nothing_until_claimed_postgres() {
    an_unclaimed_agent_spends_nothing_until_its_owner_claims_it(Db::Postgres).await;
}

#[tokio::test]
async fn a_live_deployment_refuses_registration() {
    let h = Harness::start_with(|config| config.environment = Some(Environment::Live)).await;
    let (status, refused) = register(&h, Some(&json!({ "name": "intruder" }))).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(code(&refused), "self_registration_unavailable");
    assert_eq!(refused["error"]["details"]["environment"], "live");
    let agents = sqlx::query("SELECT COUNT(*) AS n FROM agents")
        .fetch_one(h.store().reader())
        .await
        .unwrap();
    assert_eq!(agents.get::<i64, _>("n"), 0);
}

/// `POST /agents/register` from `client`, with `bearer` as a made-up credential if given.
async fn register_from(
    h: &Harness,
    client: &reqwest::Client,
    bearer: Option<&str>,
) -> reqwest::Response {
    let mut request = client.post(format!("{}/agents/register", h.base)).json(&json!({}));
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn registrations_are_limited_per_client_address() {
    let h = Harness::start_with(|config| {
        config.rate_limit_registration = 2;
        config.rate_limit_registration_window_secs = 3_600;
    })
    .await;
    // Two registrations an hour from this address, with or without a made-up credential.
    for bearer in [None, Some("made_up_1")] {
        let response = register_from(&h, &h.http, bearer).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        assert!(response.headers().contains_key("x-ratelimit-remaining"));
    }
    for bearer in [None, Some("made_up_2")] {
        let response = register_from(&h, &h.http, bearer).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        // One registration comes back every half hour.
        assert!((1_700..=1_800).contains(&retry_after), "{retry_after}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(code(&body), "rate_limit_exceeded");
        assert_eq!(body["error"]["details"]["group"], "registration");
        assert_eq!(body["error"]["details"]["window_secs"], 3_600);
    }
    let agents = sqlx::query("SELECT COUNT(*) AS n FROM agents")
        .fetch_one(h.store().reader())
        .await
        .unwrap();
    assert_eq!(agents.get::<i64, _>("n"), 2);
    // Another address has a budget of its own (all of 127.0.0.0/8 is loopback on Linux).
    #[cfg(target_os = "linux")]
    {
        let other = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .build()
            .unwrap();
        assert_eq!(register_from(&h, &other, None).await.status(), StatusCode::CREATED);
    }
    // Other routes keep their own budgets.
    let (status, _) = h.call(Method::GET, "/v1/agents", Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
}
