//! Accounts and credentials against the real service: the access matrix (every route group ×
//! every kind of credential → the expected status and code, with nothing changed by a
//! refusal), agent listing, revocation (immediate, final, refusing queued work), key rotation,
//! execution tokens (scoped, single-use, expiring) and environment-prefixed keys.

use std::time::Duration;

use crate::support::router::{Api, Client};
use crate::support::service::{Harness, OWNER_KEY, TestAgent};
use crate::support::settlement::{options, record, sign_voucher, sponsored_body};
use pactum::agreement::ids::{AccountId, Environment, SecretKey};
use pactum::store::agents::{ensure_account, insert_agent, new_agent};
use pactum::store::now;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

/// A second account, created through the store the way an operator provisions one; returns
/// its owner credential.
async fn second_account(h: &impl Client, environment: Environment) -> String {
    let key = SecretKey::generate("ok", environment);
    let store = &h.store();
    let mut tx = store.begin().await.unwrap();
    ensure_account(&mut tx, "second", &key.hash(), now()).await.unwrap();
    tx.commit().await.unwrap();
    key.reveal().to_owned()
}

/// An agent created with `owner`'s credential.
async fn agent_of(h: &impl Client, owner: &str, name: &str) -> TestAgent {
    let body = json!({ "name": name });
    let (status, agent) = h.call(Method::POST, "/v1/agents", Some(owner), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    TestAgent {
        id: agent["id"].as_str().unwrap().to_owned(),
        key: agent["api_key"].as_str().unwrap().to_owned(),
    }
}

/// Mints an execution token for `agent`; returns the answer.
async fn mint(h: &Harness, owner: &str, agent: &str, body: Value) -> (StatusCode, Value) {
    let path = format!("/v1/agents/{agent}/execution-tokens");
    h.call(Method::POST, &path, Some(owner), Some(&body)).await
}

/// A token for `action` on `audience`, valid for `ttl` seconds.
async fn token(h: &Harness, agent: &TestAgent, action: &str, audience: &str, ttl: u64) -> String {
    let body = json!({ "action": action, "audience": audience, "ttl_seconds": ttl });
    let (status, minted) = mint(h, OWNER_KEY, &agent.id, body).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    minted["token"].as_str().unwrap().to_owned()
}

fn code(response: &(StatusCode, Value)) -> (StatusCode, &str) {
    (response.0, response.1["error"]["code"].as_str().unwrap_or(""))
}

async fn scalar(h: &Harness, sql: &str) -> i64 {
    let store = h.service.as_ref().unwrap().state().store.clone();
    sqlx::query(sql).fetch_one(store.reader()).await.unwrap().get::<i64, _>(0)
}

/// Who a route is for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum For {
    /// The account owner.
    Owner,
    /// The buyer of the agreement.
    Buyer,
    /// The seller of the agreement.
    Seller,
    /// The owner or the agent itself (the buyer).
    Either,
}

/// One route of the matrix. `body` is what a caller the route lets in sends: on writes a body
/// that fails validation, so getting past the credential check shows as 422 and changes
/// nothing. `valid` is what every other caller sends: a body the route would act on, so a
/// credential wrongly let through would change state (which the test checks did not happen).
struct Route {
    group: &'static str,
    method: Method,
    path: String,
    who: For,
    body: Option<Value>,
    valid: Option<Value>,
    /// What the rightful caller gets.
    allowed: (StatusCode, &'static str),
    /// Whether the route names a resource of the account (another account's caller → 404).
    scoped: bool,
}

/// The credentials of the matrix.
#[derive(Debug, Clone, Copy)]
enum Credential {
    Owner,
    OwnAgent,
    OtherAccountOwner,
    OtherAccountAgent,
    RevokedAgent,
    ExpiredToken,
    TokenForAnotherActionOrAgreement,
    LiveKeyOnTestDeployment,
}

const OK: (StatusCode, &str) = (StatusCode::OK, "");
const INVALID: (StatusCode, &str) = (StatusCode::UNPROCESSABLE_ENTITY, "validation_error");
const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;

fn routes(h: &Harness, agreement: &str, buyer: &TestAgent, seller: &TestAgent) -> Vec<Route> {
    let id = agreement;
    let bad = Some(json!({ "unknown_field": true }));
    let valid = |path: &str| -> Option<Value> {
        let body = if path == "/v1/agents" {
            json!({ "name": "extra" })
        } else if path.ends_with("/execution-tokens") {
            json!({ "action": "activate_escrow", "audience": agreement })
        } else if path == "/usage-agreements" {
            crate::support::service::propose_body(&seller.id, h.chain.buyer.address())
        } else if path.ends_with("/accept") {
            json!({ "seller_wallet_address": h.chain.seller.address().to_string() })
        } else if path.ends_with("/reject") {
            json!({ "reason": "busy" })
        } else if path.ends_with("/activate-escrow") {
            json!({ "activation_signature": "0x00", "funding_signature": "0x00" })
        } else if path.ends_with("/record-usage") {
            json!({ "units": 5 })
        } else if path.ends_with("/usage-vouchers") {
            json!({ "cumulative_units": 5, "signature": "0x00" })
        } else if path.contains("/sponsored-actions/") {
            json!({ "deadline": 1, "authorization_signature": "0x00" })
        } else {
            return None;
        };
        Some(body)
    };
    let route = |group, method, path: String, who, body: Option<Value>, allowed| Route {
        group,
        method,
        valid: valid(&path),
        path,
        who,
        body,
        allowed,
        scoped: true,
    };
    let mut routes = vec![
        // Agent management (owner).
        Route {
            scoped: false,
            ..route("agents", Method::GET, "/v1/agents".into(), For::Owner, None, OK)
        },
        Route {
            scoped: false,
            ..route("agents", Method::POST, "/v1/agents".into(), For::Owner, bad.clone(), INVALID)
        },
        route("agents", Method::GET, format!("/v1/agents/{}", buyer.id), For::Owner, None, OK),
        route(
            "agents",
            Method::DELETE,
            format!("/v1/agents/{}", buyer.id),
            For::Owner,
            bad.clone(),
            INVALID,
        ),
        route(
            "agents",
            Method::POST,
            format!("/v1/agents/{}/regenerate-key", buyer.id),
            For::Owner,
            bad.clone(),
            INVALID,
        ),
        route(
            "agents",
            Method::POST,
            format!("/v1/agents/{}/execution-tokens", buyer.id),
            For::Owner,
            bad.clone(),
            INVALID,
        ),
        // Agreement writes.
        Route {
            scoped: false,
            ..route(
                "agreement writes",
                Method::POST,
                "/usage-agreements".into(),
                For::Buyer,
                bad.clone(),
                INVALID,
            )
        },
        route(
            "agreement writes",
            Method::PUT,
            format!("/usage-agreements/{id}/accept"),
            For::Seller,
            bad.clone(),
            INVALID,
        ),
        route(
            "agreement writes",
            Method::PUT,
            format!("/usage-agreements/{id}/reject"),
            For::Seller,
            bad.clone(),
            INVALID,
        ),
        route(
            "agreement writes",
            Method::POST,
            format!("/usage-agreements/{id}/activate-escrow"),
            For::Buyer,
            bad.clone(),
            INVALID,
        ),
        // Agreement reads.
        route(
            "agreement reads",
            Method::GET,
            format!("/usage-agreements/{id}"),
            For::Buyer,
            None,
            OK,
        ),
        route(
            "agreement reads",
            Method::GET,
            format!("/usage-agreements/agents/{}/agreements", buyer.id),
            For::Buyer,
            None,
            OK,
        ),
        route(
            "agreement reads",
            Method::GET,
            format!("/usage-agreements/{id}/escrow-status"),
            For::Seller,
            None,
            OK,
        ),
        // Settlement writes.
        route(
            "settlement writes",
            Method::POST,
            format!("/usage-agreements/{id}/record-usage"),
            For::Seller,
            bad.clone(),
            INVALID,
        ),
        route(
            "settlement writes",
            Method::POST,
            format!("/usage-agreements/{id}/usage-vouchers"),
            For::Buyer,
            bad.clone(),
            INVALID,
        ),
        route(
            "settlement writes",
            Method::POST,
            format!("/usage-agreements/{id}/sponsored-actions/initiate-close"),
            For::Buyer,
            bad.clone(),
            INVALID,
        ),
        // Settlement reads.
        route(
            "settlement reads",
            Method::GET,
            format!("/usage-agreements/{id}/usage"),
            For::Seller,
            None,
            // Past the credential check, the proposal's status answers.
            (StatusCode::CONFLICT, "invalid_state"),
        ),
        route(
            "settlement reads",
            Method::GET,
            format!("/usage-agreements/{id}/settlement-actions"),
            For::Buyer,
            None,
            OK,
        ),
        route(
            "settlement reads",
            Method::GET,
            format!("/usage-agreements/{id}/events"),
            For::Seller,
            None,
            OK,
        ),
    ];
    // Webhooks (owner routes) and receipts (the owner or the agent itself).
    routes.push(route(
        "webhooks",
        Method::GET,
        format!("/agents/{}/webhooks", buyer.id),
        For::Owner,
        None,
        OK,
    ));
    routes.push(route(
        "receipts",
        Method::GET,
        format!("/receipts?agent_id={}", buyer.id),
        For::Either,
        None,
        OK,
    ));
    routes
}

/// The status and code `credential` must get on `route`.
fn expected(route: &Route, credential: Credential) -> (StatusCode, &'static str) {
    let owner_route = route.who == For::Owner;
    let owner_allowed = owner_route || route.who == For::Either;
    match credential {
        Credential::Owner if owner_allowed => route.allowed,
        Credential::OwnAgent if !owner_route => route.allowed,
        // An agent key on an owner route (no such route for agents), an owner credential on
        // an agent route.
        Credential::OwnAgent => (StatusCode::NOT_FOUND, "not_found"),
        Credential::Owner => (UNAUTHORIZED, "invalid_credential"),
        Credential::OtherAccountOwner if owner_allowed && route.scoped => {
            (StatusCode::NOT_FOUND, "not_found")
        }
        Credential::OtherAccountOwner if owner_allowed => route.allowed,
        Credential::OtherAccountOwner => (UNAUTHORIZED, "invalid_credential"),
        Credential::OtherAccountAgent if owner_route => (StatusCode::NOT_FOUND, "not_found"),
        Credential::OtherAccountAgent if route.scoped => (StatusCode::NOT_FOUND, "not_found"),
        Credential::OtherAccountAgent => route.allowed,
        Credential::RevokedAgent => (UNAUTHORIZED, "invalid_credential"),
        Credential::ExpiredToken => (UNAUTHORIZED, "execution_token_expired"),
        Credential::TokenForAnotherActionOrAgreement if route.path.ends_with("/record-usage") => {
            (UNAUTHORIZED, "execution_token_audience_mismatch")
        }
        Credential::TokenForAnotherActionOrAgreement => {
            (UNAUTHORIZED, "execution_token_action_mismatch")
        }
        Credential::LiveKeyOnTestDeployment => (UNAUTHORIZED, "wrong_environment"),
    }
}

#[tokio::test]
async fn the_access_matrix_gives_each_credential_its_status_on_every_route_group() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let proposal = h.propose(&buyer, &seller, h.chain.buyer.address()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Another account with its own agent.
    let other_owner = second_account(&h, Environment::Test).await;
    let stranger = agent_of(&h, &other_owner, "stranger").await;
    // A revoked agent of this account, party to an agreement of its own with the seller.
    let revoked = h.agent("revoked").await;
    let its_agreement = h.propose(&revoked, &seller, h.chain.buyer.address()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Tokens: one for the seller's `record_usage` on the revoked agent's (cancelled) agreement,
    // valid for another agreement and every other action; one that has expired.
    let elsewhere = token(&h, &seller, "record_usage", &its_agreement, 900).await;
    let expired = token(&h, &buyer, "activate_escrow", &proposal, 1).await;
    let (status, gone) =
        h.call(Method::DELETE, &format!("/v1/agents/{}", revoked.id), Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{gone}");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let live_key = SecretKey::generate("pk", Environment::Live);

    let agents_before = scalar(&h, "SELECT COUNT(*) FROM agents").await;
    let events_before = scalar(&h, "SELECT COUNT(*) FROM outbox_events").await;
    let mut cells = 0;
    let agreements_before = scalar(&h, "SELECT COUNT(*) FROM usage_agreements").await;
    for route in routes(&h, &proposal, &buyer, &seller) {
        let own_key = match route.who {
            For::Owner | For::Buyer | For::Either => buyer.key.clone(),
            For::Seller => seller.key.clone(),
        };
        for credential in [
            Credential::Owner,
            Credential::OwnAgent,
            Credential::OtherAccountOwner,
            Credential::OtherAccountAgent,
            Credential::RevokedAgent,
            Credential::ExpiredToken,
            Credential::TokenForAnotherActionOrAgreement,
            Credential::LiveKeyOnTestDeployment,
        ] {
            let key = match credential {
                Credential::Owner => OWNER_KEY.to_owned(),
                Credential::OwnAgent => own_key.clone(),
                Credential::OtherAccountOwner => other_owner.clone(),
                Credential::OtherAccountAgent => stranger.key.clone(),
                Credential::RevokedAgent => revoked.key.clone(),
                Credential::ExpiredToken => expired.clone(),
                Credential::TokenForAnotherActionOrAgreement => elsewhere.clone(),
                Credential::LiveKeyOnTestDeployment => live_key.reveal().to_owned(),
            };
            // The revoked agent is tried on its own agreement's routes.
            let path = match credential {
                Credential::RevokedAgent => route.path.replace(&proposal, &its_agreement),
                _ => route.path.clone(),
            };
            let want = expected(&route, credential);
            let body = if want == route.allowed { &route.body } else { &route.valid };
            let response = h.call(route.method.clone(), &path, Some(&key), body.as_ref()).await;
            let context = format!("[{}] {} {path} with {credential:?}", route.group, route.method);
            if want.0 == StatusCode::OK {
                assert_eq!(response.0, StatusCode::OK, "{context}: {}", response.1);
            } else {
                assert_eq!(code(&response), want, "{context}: {}", response.1);
            }
            cells += 1;
        }
    }
    assert!(cells >= 21 * 8, "{cells} cells");

    // Nothing a refusal (or a 422) could change did change.
    let path = format!("/usage-agreements/{proposal}");
    let (_, agreement) = h.call(Method::GET, &path, Some(&buyer.key), None).await;
    assert_eq!(agreement["status"], "proposed", "{agreement}");
    assert_eq!(agreement["terms"], Value::Null, "{agreement}");
    assert_eq!(h.job_count().await, 0, "nothing queued");
    assert_eq!(scalar(&h, "SELECT COUNT(*) FROM agents").await, agents_before);
    let agreements = scalar(&h, "SELECT COUNT(*) FROM usage_agreements").await;
    assert_eq!(agreements, agreements_before);
    let revoked_now = scalar(&h, "SELECT COUNT(*) FROM agents WHERE status = 'revoked'").await;
    assert_eq!(revoked_now, 1, "only the agent revoked on purpose");
    assert_eq!(scalar(&h, "SELECT COUNT(*) FROM outbox_events").await, events_before);
    assert_eq!(scalar(&h, "SELECT COUNT(*) FROM usage_records").await, 0);
    assert_eq!(scalar(&h, "SELECT COUNT(*) FROM execution_tokens").await, 2, "none minted");
    let used = scalar(&h, "SELECT COUNT(*) FROM execution_tokens WHERE used_at IS NOT NULL").await;
    assert_eq!(used, 0, "a refused token is not spent");
    let (_, read) =
        h.call(Method::GET, &format!("/v1/agents/{}", buyer.id), Some(OWNER_KEY), None).await;
    assert_eq!(read["status"], "active");
    let (status, _) = h.call(Method::GET, &path, Some(&buyer.key), None).await;
    assert_eq!(status, StatusCode::OK, "the buyer's key was not rotated by a refused request");
}

#[tokio::test]
async fn keys_of_the_other_environment_are_refused_before_any_lookup() {
    // A live deployment (on anvil, by setting): a real test key in its own store is refused.
    let h = Api::start_with(|config| config.environment = Some(Environment::Live)).await;
    let live_owner = second_account(&h, Environment::Live).await;
    let live_agent = agent_of(&h, &live_owner, "live").await;
    assert!(live_agent.key.starts_with("pk_live_"), "{}", live_agent.key);
    let path = format!("/v1/agents/{}", live_agent.id);
    let (_, read) = h.call(Method::GET, &path, Some(&live_owner), None).await;
    let account = AccountId(read["account_id"].as_str().unwrap().to_owned());
    // An agent of the same account whose key has the test prefix, planted in the store.
    let (agent, test_key) = new_agent(account, "planted", None, vec![], Environment::Test, now());
    let store = h.store();
    let mut tx = store.begin().await.unwrap();
    insert_agent(&mut tx, &agent, &test_key.hash()).await.unwrap();
    tx.commit().await.unwrap();

    let own_list = format!("/usage-agreements/agents/{}/agreements", agent.id);
    let response = h.call(Method::GET, &own_list, Some(test_key.reveal()), None).await;
    assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "wrong_environment"), "{}", response.1);
    assert_eq!(response.1["error"]["details"]["environment"], "live");
    // The operator's `ok_test_` credential and any test execution token: the same.
    let response = h.call(Method::GET, "/v1/agents", Some(OWNER_KEY), None).await;
    assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "wrong_environment"));
    let response =
        h.call(Method::PUT, "/usage-agreements/ua_none/accept", Some("xt_test_00"), None).await;
    assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "wrong_environment"));
    // Live credentials work there, and mint live tokens.
    let path = format!("/usage-agreements/agents/{}/agreements", live_agent.id);
    let (status, _) = h.call(Method::GET, &path, Some(&live_agent.key), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, listed) = h.call(Method::GET, "/v1/agents", Some(&live_owner), None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let path = format!("/v1/agents/{}/regenerate-key", live_agent.id);
    let (status, rotated) = h.call(Method::POST, &path, Some(&live_owner), None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert!(rotated["api_key"].as_str().unwrap().starts_with("pk_live_"));
}

#[tokio::test]
async fn agents_are_listed_newest_first_in_pages_and_by_status() {
    let h = Api::start().await;
    let mut created = Vec::new();
    for n in 0..5 {
        created.push(h.agent(&format!("agent-{n}")).await.id);
    }
    let other_owner = second_account(&h, Environment::Test).await;
    agent_of(&h, &other_owner, "not-ours").await;

    let mut seen = Vec::new();
    let mut path = "/v1/agents?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let (status, page) = h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        pages += 1;
        let data = page["data"].as_array().unwrap();
        assert!(data.len() <= 2 && !data.is_empty(), "{page}");
        seen.extend(data.iter().map(|a| a["id"].as_str().unwrap().to_owned()));
        assert!(data.iter().all(|a| a.get("api_key").is_none()), "{page}");
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/agents?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    created.reverse();
    assert_eq!(seen, created, "newest first, each once, only this account's");

    let (status, _) =
        h.call(Method::DELETE, &format!("/v1/agents/{}", created[1]), Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, revoked) =
        h.call(Method::GET, "/v1/agents?status=revoked", Some(OWNER_KEY), None).await;
    let ids: Vec<_> = revoked["data"].as_array().unwrap().iter().map(|a| &a["id"]).collect();
    assert_eq!(ids, [&json!(created[1])]);
    assert_eq!(revoked["next_cursor"], Value::Null);
    let (_, active) = h.call(Method::GET, "/v1/agents?status=active", Some(OWNER_KEY), None).await;
    assert_eq!(active["data"].as_array().unwrap().len(), 4);
    let (_, all) = h.call(Method::GET, "/v1/agents", Some(OWNER_KEY), None).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 5, "default limit 50");

    for query in ["limit=0", "limit=101", "limit=x", "status=deleted", "cursor=nonsense"] {
        let response =
            h.call(Method::GET, &format!("/v1/agents?{query}"), Some(OWNER_KEY), None).await;
        assert_eq!(code(&response), INVALID, "{query}: {}", response.1);
    }
}

#[tokio::test]
async fn revocation_is_immediate_final_and_cancels_open_proposals() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let third = h.agent("third").await;
    let made = h.propose(&buyer, &seller, h.chain.buyer.address()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let received =
        h.propose(&third, &buyer, h.chain.buyer.address()).await["id"].as_str().unwrap().to_owned();
    let accepted =
        h.accepted(&buyer, &seller, h.chain.buyer.address(), h.chain.seller.address()).await;
    let minted = token(&h, &seller, "accept", &made, 300).await;
    let path = format!("/v1/agents/{}", seller.id);

    // Another account cannot revoke it (404), and that changes nothing.
    let other_owner = second_account(&h, Environment::Test).await;
    let response = h.call(Method::DELETE, &path, Some(&other_owner), None).await;
    assert_eq!(code(&response), (StatusCode::NOT_FOUND, "not_found"));
    let (status, _) =
        h.call(Method::GET, &format!("/usage-agreements/{made}"), Some(&seller.key), None).await;
    assert_eq!(status, StatusCode::OK);

    // The seller's key works right before and fails right after.
    let (status, revoked) = h.call(Method::DELETE, &path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    assert!(revoked["revoked_at"].is_string(), "{revoked}");
    let response =
        h.call(Method::GET, &format!("/usage-agreements/{made}"), Some(&seller.key), None).await;
    assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "invalid_credential"));
    // Its execution token too.
    let accept = json!({ "seller_wallet_address": h.chain.seller.address().to_string() });
    let response = h
        .call(
            Method::PUT,
            &format!("/usage-agreements/{made}/accept"),
            Some(&minted),
            Some(&accept),
        )
        .await;
    assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "invalid_credential"), "{}", response.1);

    // Final: a second DELETE answers the same revoked agent; no key, no token, no way back.
    let (status, again) = h.call(Method::DELETE, &path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["revoked_at"], revoked["revoked_at"]);
    let response =
        h.call(Method::POST, &format!("{path}/regenerate-key"), Some(OWNER_KEY), None).await;
    assert_eq!(code(&response), (StatusCode::CONFLICT, "agent_revoked"));
    let body = json!({ "action": "accept", "audience": made });
    let response = mint(&h, OWNER_KEY, &seller.id, body).await;
    assert_eq!(code(&response), (StatusCode::CONFLICT, "agent_revoked"));
    let (_, read) = h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
    assert_eq!(read["status"], "revoked");

    // Its open proposal is cancelled, with an event saying why; the buyer's own proposal to a
    // third agent is untouched, and so is the accepted agreement (its terms stand).
    let (_, cancelled) =
        h.call(Method::GET, &format!("/usage-agreements/{made}"), Some(&buyer.key), None).await;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    let (_, events) = h
        .call(Method::GET, &format!("/usage-agreements/{made}/events"), Some(&buyer.key), None)
        .await;
    let last = events["data"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "agreement.cancelled", "{events}");
    assert_eq!(last["data"]["reason"], "agent_revoked");
    assert_eq!(last["data"]["agent_id"], seller.id.as_str());
    let (_, other) =
        h.call(Method::GET, &format!("/usage-agreements/{received}"), Some(&buyer.key), None).await;
    assert_eq!(other["status"], "proposed");
    let (_, kept) =
        h.call(Method::GET, &format!("/usage-agreements/{accepted}"), Some(&buyer.key), None).await;
    assert_eq!(kept["status"], "accepted");

    // Proposing to a revoked seller is refused.
    let body = crate::support::service::propose_body(&seller.id, h.chain.buyer.address());
    let response = h.call(Method::POST, "/usage-agreements", Some(&buyer.key), Some(&body)).await;
    assert_eq!(code(&response), (StatusCode::UNPROCESSABLE_ENTITY, "unknown_agent"));
}

#[tokio::test]
async fn a_revoked_agents_queued_sponsored_action_is_refused_and_the_other_party_settles() {
    // The relayer waits 6 s for more seller claims after taking one: while it waits, the
    // buyer's sponsored close stays queued, untaken.
    let h = Harness::start_with(|config| config.relayer_batch_wait_ms = Some(6_000)).await;
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    record(&h, &seller, &id, 10, "usage-1").await;
    sign_voucher(&h, &buyer, &id).await;

    let (status, claim) =
        crate::support::settlement::sponsor(&h, &seller, &h.chain.seller, &id, "seller_claim")
            .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{claim}");
    for _ in 0..100 {
        let leased = "SELECT COUNT(*) FROM relayer_jobs WHERE kind = 'seller_claim' \
                      AND lease_owner IS NOT NULL";
        if scalar(&h, leased).await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let offered = options(&h, &buyer, &id, "initiate_close").await;
    let sponsored = &offered["paths"]["sponsored"];
    let body = sponsored_body(&h.chain.buyer, sponsored);
    let submit = sponsored["submit_to"].as_str().unwrap();
    let (status, close) = h.call(Method::POST, submit, Some(&buyer.key), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{close}");
    let queued = "SELECT COUNT(*) FROM relayer_jobs WHERE kind = 'initiate_close' \
                  AND status = 'queued' AND lease_owner IS NULL";
    assert_eq!(scalar(&h, queued).await, 1, "the close is still queued");

    let (status, _) =
        h.call(Method::DELETE, &format!("/v1/agents/{}", buyer.id), Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);

    // Refused in the revocation's transaction: the action and its job failed, with events.
    let path =
        format!("/usage-agreements/{id}/settlement-actions/{}", close["id"].as_str().unwrap());
    let (_, refused) = h.call(Method::GET, &path, Some(&seller.key), None).await;
    assert_eq!(refused["status"], "failed", "{refused}");
    assert_eq!(refused["error"], "agent_revoked");
    assert_eq!(refused["tx_hash"], Value::Null);
    let failed = "SELECT COUNT(*) FROM relayer_jobs WHERE kind = 'initiate_close' \
                  AND status = 'failed' AND error = 'agent_revoked'";
    assert_eq!(scalar(&h, failed).await, 1);
    let (_, events) = h
        .call(Method::GET, &format!("/usage-agreements/{id}/events"), Some(&seller.key), None)
        .await;
    let types: Vec<_> =
        events["data"].as_array().unwrap().iter().map(|e| e["type"].clone()).collect();
    assert!(types.contains(&json!("settlement_action.failed")), "{events}");
    assert!(types.contains(&json!("relayer.job_failed")), "{events}");

    // The seller's claim, already taken by the relayer, goes through; the escrow stays active.
    let claimed = crate::support::settlement::action_final(
        &h,
        &seller.key,
        &id,
        claim["id"].as_str().unwrap(),
    )
    .await;
    assert_eq!(claimed["status"], "confirmed", "{claimed}");
    let (_, agreement) =
        h.call(Method::GET, &format!("/usage-agreements/{id}"), Some(&seller.key), None).await;
    assert_eq!(agreement["status"], "active", "{agreement}");
    let sent = "SELECT COUNT(*) FROM relayer_attempts a JOIN relayer_jobs j ON j.id = a.job_id \
                WHERE j.kind = 'initiate_close'";
    assert_eq!(scalar(&h, sent).await, 0, "the refused close was never signed");
}

#[tokio::test]
async fn a_rotated_key_replaces_the_old_one_at_once() {
    let h = Api::start().await;
    let agent = h.agent("rotating").await;
    let list = format!("/usage-agreements/agents/{}/agreements", agent.id);
    let path = format!("/v1/agents/{}/regenerate-key", agent.id);
    let (status, rotated) = h
        .call_with(Method::POST, &path, Some(OWNER_KEY), None, &[("Idempotency-Key", "rotate-1")])
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new_key = rotated["api_key"].as_str().unwrap().to_owned();
    assert!(new_key.starts_with("pk_test_") && new_key != agent.key);
    assert_eq!(rotated["api_key_hint"], SecretKey::from_presented(new_key.clone()).hint());

    let response = h.call(Method::GET, &list, Some(&agent.key), None).await;
    assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "invalid_credential"));
    let (status, _) = h.call(Method::GET, &list, Some(&new_key), None).await;
    assert_eq!(status, StatusCode::OK);

    // A retry replays the answer without the key and rotates nothing.
    let (status, replayed) = h
        .call_with(Method::POST, &path, Some(OWNER_KEY), None, &[("Idempotency-Key", "rotate-1")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(replayed["api_key"], Value::Null);
    assert_eq!(replayed["api_key_hint"], rotated["api_key_hint"]);
    let (status, _) = h.call(Method::GET, &list, Some(&new_key), None).await;
    assert_eq!(status, StatusCode::OK, "still the key of the first rotation");

    let other_owner = second_account(&h, Environment::Test).await;
    let response = h.call(Method::POST, &path, Some(&other_owner), None).await;
    assert_eq!(code(&response), (StatusCode::NOT_FOUND, "not_found"));
    let (status, _) = h.call(Method::GET, &list, Some(&new_key), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_execution_token_makes_its_one_write_once_and_expires() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let proposal = h.propose(&buyer, &seller, h.chain.buyer.address()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let accept_path = format!("/usage-agreements/{proposal}/accept");
    let accept = json!({ "seller_wallet_address": h.chain.seller.address().to_string() });

    // Minting: checked fields, the token once, a replay without it.
    for (body, field) in [
        (json!({ "action": "withdraw", "audience": proposal }), "action"),
        (json!({ "action": "accept", "audience": proposal, "ttl_seconds": 901 }), "ttl_seconds"),
        (json!({ "action": "accept", "audience": proposal, "ttl_seconds": 0 }), "ttl_seconds"),
        (json!({ "action": "accept", "audience": "ua_unknown" }), "audience"),
        (json!({ "action": "propose", "audience": seller.id }), "audience"),
    ] {
        let response = mint(&h, OWNER_KEY, &seller.id, body.clone()).await;
        assert_eq!(code(&response), INVALID, "{body}: {}", response.1);
        assert_eq!(response.1["error"]["details"]["field"], field);
    }
    let other_owner = second_account(&h, Environment::Test).await;
    let response =
        mint(&h, &other_owner, &seller.id, json!({ "action": "accept", "audience": proposal }))
            .await;
    assert_eq!(code(&response), (StatusCode::NOT_FOUND, "not_found"));
    let path = format!("/v1/agents/{}/execution-tokens", seller.id);
    let body = json!({ "action": "accept", "audience": proposal });
    let (status, minted) = h
        .call_with(
            Method::POST,
            &path,
            Some(OWNER_KEY),
            Some(&body),
            &[("Idempotency-Key", "mint-1")],
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let xt = minted["token"].as_str().unwrap().to_owned();
    assert!(xt.starts_with("xt_test_"), "{xt}");
    assert_eq!(minted["agent_id"], seller.id.as_str());
    assert_eq!(
        (minted["action"].as_str(), minted["audience"].as_str()),
        (Some("accept"), Some(proposal.as_str()))
    );
    assert!(minted["id"].as_str().unwrap().starts_with("xtok_"));
    let (_, replayed) = h
        .call_with(
            Method::POST,
            &path,
            Some(OWNER_KEY),
            Some(&body),
            &[("Idempotency-Key", "mint-1")],
        )
        .await;
    assert_eq!(replayed["id"], minted["id"]);
    assert_eq!(replayed["token"], Value::Null, "the token is shown once");

    // Not a read credential, not another write, not the owner's.
    let response =
        h.call(Method::GET, &format!("/usage-agreements/{proposal}"), Some(&xt), None).await;
    assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "execution_token_action_mismatch"));
    let reject = format!("/usage-agreements/{proposal}/reject");
    let response = h.call(Method::PUT, &reject, Some(&xt), None).await;
    assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "execution_token_action_mismatch"));
    let response = h.call(Method::GET, "/v1/agents", Some(&xt), None).await;
    assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "execution_token_action_mismatch"));

    // Its write, once; a retry with the same Idempotency-Key replays; nothing else gets in.
    let headers = [("Idempotency-Key", "accept-1")];
    let (status, accepted) =
        h.call_with(Method::PUT, &accept_path, Some(&xt), Some(&accept), &headers).await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    assert_eq!(accepted["status"], "accepted");
    let (status, again) =
        h.call_with(Method::PUT, &accept_path, Some(&xt), Some(&accept), &headers).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, accepted, "the stored answer, replayed");
    for headers in [&[("Idempotency-Key", "accept-2")][..], &[][..]] {
        let response =
            h.call_with(Method::PUT, &accept_path, Some(&xt), Some(&accept), headers).await;
        assert_eq!(
            code(&response),
            (StatusCode::UNAUTHORIZED, "execution_token_used"),
            "{}",
            response.1
        );
    }

    // `propose`: the audience is the seller named in the body.
    let body = crate::support::service::propose_body(&seller.id, h.chain.buyer.address());
    let third = h.agent("third").await;
    let for_seller = token(&h, &buyer, "propose", &seller.id, 300).await;
    let mut to_third = body.clone();
    to_third["seller_agent_id"] = json!(third.id);
    let response =
        h.call(Method::POST, "/usage-agreements", Some(&for_seller), Some(&to_third)).await;
    assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "execution_token_audience_mismatch"));
    let (status, proposed) =
        h.call(Method::POST, "/usage-agreements", Some(&for_seller), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{proposed}");
    assert_eq!(proposed["buyer_agent_id"], buyer.id.as_str());

    // Expiry by the wall clock: a 1-second token two seconds later.
    let second = proposed["id"].as_str().unwrap().to_owned();
    let short = token(&h, &seller, "reject", &second, 1).await;
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    let reject = format!("/usage-agreements/{second}/reject");
    let response = h.call(Method::PUT, &reject, Some(&short), None).await;
    assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "execution_token_expired"));
    let (_, still) =
        h.call(Method::GET, &format!("/usage-agreements/{second}"), Some(&buyer.key), None).await;
    assert_eq!(still["status"], "proposed");
    // An unknown token is just an invalid credential.
    let unknown = SecretKey::generate("xt", Environment::Test);
    let response = h.call(Method::PUT, &reject, Some(unknown.reveal()), None).await;
    assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "invalid_credential"));
}

#[tokio::test]
async fn credentials_work_the_same_on_postgres() {
    let Some(database_url) = crate::support::databases::fresh_postgres().await else { return };
    let mut h = Harness::start_with(|config| config.database_url = database_url.clone()).await;
    let (buyer, seller) = h.parties().await;
    let proposal = h.propose(&buyer, &seller, h.chain.buyer.address()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, page) = h.call(Method::GET, "/v1/agents?limit=1", Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"][0]["id"], seller.id.as_str());
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let path = format!("/v1/agents?limit=1&cursor={cursor}");
    let (_, last) = h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
    assert_eq!(last["data"][0]["id"], buyer.id.as_str());
    assert_eq!(last["next_cursor"], Value::Null);

    // A token accepts once; rotation and revocation take effect at once.
    let xt = token(&h, &seller, "accept", &proposal, 300).await;
    let accept = json!({ "seller_wallet_address": h.chain.seller.address().to_string() });
    let accept_path = format!("/usage-agreements/{proposal}/accept");
    let (status, accepted) = h.call(Method::PUT, &accept_path, Some(&xt), Some(&accept)).await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    let response = h.call(Method::PUT, &accept_path, Some(&xt), Some(&accept)).await;
    assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "execution_token_used"));
    let rotate = format!("/v1/agents/{}/regenerate-key", buyer.id);
    let (status, rotated) = h.call(Method::POST, &rotate, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let read = format!("/usage-agreements/{proposal}");
    let response = h.call(Method::GET, &read, Some(&buyer.key), None).await;
    assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "invalid_credential"));
    let new_key = rotated["api_key"].as_str().unwrap().to_owned();
    let second = h
        .propose(
            &TestAgent { id: buyer.id.clone(), key: new_key.clone() },
            &seller,
            h.chain.buyer.address(),
        )
        .await;
    let (status, revoked) =
        h.call(Method::DELETE, &format!("/v1/agents/{}", seller.id), Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    let (_, cancelled) = h
        .call(
            Method::GET,
            &format!("/usage-agreements/{}", second["id"].as_str().unwrap()),
            Some(&new_key),
            None,
        )
        .await;
    assert_eq!(cancelled["status"], "cancelled");
    let (_, kept) = h.call(Method::GET, &read, Some(&new_key), None).await;
    assert_eq!(kept["status"], "accepted");
    h.stop().await;
    crate::support::databases::drop_postgres(&database_url).await;
}

#[tokio::test]
async fn a_key_revoked_behind_the_services_back_is_refused_within_a_second() {
    // Keys are trusted from memory for at most `FRESH`: another instance (or an operator's SQL)
    // revoking an agent is seen here within that bound, with no route of this instance told.
    let h = Api::start().await;
    let agent = h.agent("elsewhere").await;
    let list = format!("/usage-agreements/agents/{}/agreements", agent.id);
    let (status, _) = h.call(Method::GET, &list, Some(&agent.key), None).await;
    assert_eq!(status, StatusCode::OK);
    sqlx::query("UPDATE agents SET status = 'revoked', revoked_at = $1 WHERE id = $2")
        .bind(now())
        .bind(&agent.id)
        .execute(h.store().reader())
        .await
        .unwrap();
    let revoked = std::time::Instant::now();
    let bound = pactum::api::credentials_seen::FRESH;
    loop {
        let response = h.call(Method::GET, &list, Some(&agent.key), None).await;
        if response.0 == StatusCode::UNAUTHORIZED {
            assert_eq!(code(&response), (StatusCode::UNAUTHORIZED, "invalid_credential"));
            break;
        }
        assert_eq!(response.0, StatusCode::OK, "{}", response.1);
        // Past the bound the very next request is refused; the slack is for a stalled machine
        // between the clock read and the request, not for the cache.
        assert!(revoked.elapsed() < bound * 3, "still accepted {:?} after", revoked.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
