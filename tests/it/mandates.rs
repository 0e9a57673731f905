//! Mandates through the real router (no chain is needed): the owner grants, reads, changes and
//! revokes them; bad terms name their field; another account's mandate and every agent key get
//! 404; writes replay under their `Idempotency-Key`; revocation is final; execution tokens
//! minted under a mandate are refused once it is revoked or expired; halting or revoking the
//! agent revokes its mandates; every write leaves an audit row and a `mandate.*` event. The
//! cases run on SQLite and, when `PACTUM_TEST_DATABASE_URL` is set, Postgres.

use alloy::primitives::Address;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::Row;

use crate::support::databases::{drop_postgres, fresh_postgres};
use crate::support::router::{Api, Client, other_account};
use crate::support::service::{OWNER_KEY, TestAgent, propose_body};
use pactum::store::{agents, now};

/// Which database a case runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Sqlite,
    Postgres,
}

/// The router over a fresh store on `db`, and the Postgres database to drop after; `None` when
/// Postgres is asked for and not configured.
async fn api_on(db: Db) -> Option<(Api, Option<String>)> {
    let url = match db {
        Db::Sqlite => None,
        Db::Postgres => Some(fresh_postgres().await?),
    };
    let api = Api::start_with(|config| {
        if let Some(url) = &url {
            config.database_url = url.clone();
        }
    })
    .await;
    Some((api, url))
}

async fn finish(api: Api, url: Option<String>) {
    api.state.store.close().await;
    drop(api);
    if let Some(url) = url {
        drop_postgres(&url).await;
    }
}

/// RFC 3339 of `offset` seconds from now.
fn from_now(offset: i64) -> String {
    pactum::time::rfc3339(now() + offset)
}

async fn create(api: &Api, body: &Value) -> (StatusCode, Value) {
    api.call(Method::POST, "/v1/mandates", Some(OWNER_KEY), Some(body)).await
}

/// Grants `agent` a mandate of `max_total_cents` with `extra` fields; returns it.
async fn granted(api: &Api, agent: &TestAgent, max_total_cents: u64, extra: Value) -> Value {
    let mut body = json!({ "agent_id": agent.id, "max_total_cents": max_total_cents });
    for (field, value) in extra.as_object().unwrap() {
        body[field] = value.clone();
    }
    let (status, mandate) = create(api, &body).await;
    assert_eq!(status, StatusCode::CREATED, "{mandate}");
    mandate
}

fn id(value: &Value) -> String {
    value["id"].as_str().unwrap().to_owned()
}

async fn get(api: &Api, mandate: &str) -> Value {
    let (status, body) =
        api.call(Method::GET, &format!("/v1/mandates/{mandate}"), Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn revoke(api: &Api, mandate: &str, body: Option<&Value>) -> (StatusCode, Value) {
    let path = format!("/v1/mandates/{mandate}/revoke");
    api.call(Method::POST, &path, Some(OWNER_KEY), body).await
}

/// The audit rows of `agent` of kind `mandate`, newest first.
async fn audited(api: &Api, agent: &TestAgent) -> Vec<Value> {
    let path = format!("/v1/audit?agent_id={}&kind=mandate", agent.id);
    let (status, page) = api.call(Method::GET, &path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().unwrap().clone()
}

/// The `mandate.*` events recorded for `agent`'s webhooks, oldest first: `(type, data)`.
async fn events(api: &Api, agent: &TestAgent) -> Vec<(String, Value)> {
    let rows = sqlx::query(
        "SELECT event_type, data FROM outbox_events WHERE agent_id = $1 \
         AND event_type LIKE 'mandate.%' ORDER BY id",
    )
    .bind(&agent.id)
    .fetch_all(api.store().reader())
    .await
    .unwrap();
    rows.iter()
        .map(|row| {
            let data: String = row.get("data");
            (row.get("event_type"), serde_json::from_str(&data).unwrap())
        })
        .collect()
}

/// Stores a hold of `agent` under `mandate` that counts `cents` (as the reservations code will).
async fn hold(api: &Api, agent: &TestAgent, mandate: &str, cents: i64) {
    let store = api.store();
    let account = agents::get_agent(store.reader(), &agent.id).await.unwrap().unwrap().account_id;
    let mut tx = store.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO reservations (id, account_id, agent_id, source, status, amount_cents, \
         counted_cents, action_type, currency, mandate_id, counted_at, created_at, updated_at) \
         VALUES ($1, $2, $3, 'api', 'reserved', $4, $4, 'spend', 'USD', $5, 1, 1, 1)",
    )
    .bind(format!("rsv_test_{mandate}_{cents}"))
    .bind(account.as_str())
    .bind(&agent.id)
    .bind(cents)
    .bind(mandate)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn the_owner_grants_reads_changes_and_revokes(db: Db) {
    let Some((api, url)) = api_on(db).await else { return };
    let agent = api.agent("buyer").await;
    let other = api.agent("seller").await;
    let until = from_now(86_400);
    let mandate = granted(
        &api,
        &agent,
        50_000,
        json!({
            "per_tx_max_cents": 5_000, "valid_until": until, "action_types": ["spend", "spend"],
            "counterparties": ["vendor_42"], "categories": ["api_calls"],
            "purpose": " Search API credits ",
        }),
    )
    .await;
    let mandate_id = id(&mandate);
    assert!(mandate_id.starts_with("mdt_"), "{mandate}");
    assert_eq!(mandate["agent_id"], agent.id.as_str());
    assert_eq!(mandate["status"], "active");
    assert_eq!(mandate["valid_until"], until.as_str());
    assert_eq!(mandate["valid_from"], Value::Null);
    assert_eq!(mandate["action_types"], json!(["spend"]));
    assert_eq!(mandate["purpose"], "Search API credits");
    assert_eq!(
        (mandate["spent_cents"].as_u64(), mandate["remaining_cents"].as_u64()),
        (Some(0), Some(50_000))
    );

    // What its holds count is what it spent.
    hold(&api, &agent, &mandate_id, 1_200).await;
    let read = get(&api, &mandate_id).await;
    assert_eq!(
        (read["spent_cents"].as_u64(), read["remaining_cents"].as_u64()),
        (Some(1_200), Some(48_800))
    );
    let second = granted(&api, &agent, 100, json!({})).await;
    let others = granted(&api, &other, 100, json!({})).await;

    // Lists: newest first, by agent and status, paged.
    let (status, page) = api.call(Method::GET, "/v1/mandates?limit=2", Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"][0]["id"], others["id"]);
    assert_eq!(page["data"][1]["id"], second["id"]);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, rest) = api
        .call(Method::GET, &format!("/v1/mandates?limit=2&cursor={cursor}"), Some(OWNER_KEY), None)
        .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1, "{rest}");
    assert_eq!(rest["data"][0]["spent_cents"], 1_200);
    assert!(rest.get("next_cursor").is_none(), "{rest}");
    let path = format!("/v1/mandates?agent_id={}&status=active", agent.id);
    let (_, mine) = api.call(Method::GET, &path, Some(OWNER_KEY), None).await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 2, "{mine}");
    let (status, bad) =
        api.call(Method::GET, "/v1/mandates?status=paused", Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    assert_eq!(bad["error"]["details"]["field"], "status");

    // PUT replaces the terms: what is left out takes its default.
    let path = format!("/v1/mandates/{mandate_id}");
    let body = json!({ "max_total_cents": 1_000, "counterparties": ["vendor_43"] });
    let (status, changed) = api.call(Method::PUT, &path, Some(OWNER_KEY), Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["max_total_cents"], 1_000);
    assert_eq!(changed["per_tx_max_cents"], Value::Null);
    assert_eq!(changed["valid_until"], Value::Null);
    assert_eq!(changed["action_types"], json!([]));
    assert_eq!(changed["counterparties"], json!(["vendor_43"]));
    assert_eq!(changed["created_at"], mandate["created_at"]);
    assert_eq!(
        (changed["spent_cents"].as_u64(), changed["remaining_cents"].as_u64()),
        (Some(1_200), Some(0))
    );

    // Revoked once, for good: a second revocation and a change are 409.
    let (status, revoked) =
        revoke(&api, &mandate_id, Some(&json!({ "reason": "quarter over" }))).await;
    assert_eq!(status, StatusCode::OK, "{revoked}");
    assert_eq!(revoked["status"], "revoked");
    assert_eq!(revoked["revoke_reason"], "quarter over");
    assert!(revoked["revoked_at"].is_string());
    let (status, again) = revoke(&api, &mandate_id, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["error"]["code"], "mandate_not_active");
    assert_eq!(again["error"]["details"]["revoke_reason"], "quarter over");
    let (status, late) = api.call(Method::PUT, &path, Some(OWNER_KEY), Some(&body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{late}");
    assert_eq!(late["error"]["code"], "mandate_not_active");
    assert_eq!(get(&api, &mandate_id).await, revoked);

    // Each write: one audit row and one event to the agent, in order.
    let rows = audited(&api, &agent).await;
    let decisions: Vec<_> = rows.iter().map(|r| r["decision"].as_str().unwrap()).collect();
    assert_eq!(decisions, ["revoked", "updated", "created", "created"], "{rows:?}");
    assert!(rows.iter().all(|r| r["actor"] == "owner" && r["kind"] == "mandate"));
    assert_eq!(rows[0]["subject_id"], mandate_id.as_str());
    let seen = events(&api, &agent).await;
    let types: Vec<_> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["mandate.created", "mandate.created", "mandate.updated", "mandate.revoked"]);
    let (_, revoked_event) = &seen[3];
    assert_eq!(revoked_event["mandate_id"], mandate_id.as_str());
    assert_eq!(revoked_event["status"], "revoked");
    assert_eq!(revoked_event["revoke_reason"], "quarter over");
    finish(api, url).await;
}

#[tokio::test]
async fn the_owner_grants_reads_changes_and_revokes_on_sqlite() {
    the_owner_grants_reads_changes_and_revokes(Db::Sqlite).await;
}

#[tokio::test]
async fn the_owner_grants_reads_changes_and_revokes_on_postgres() {
    the_owner_grants_reads_changes_and_revokes(Db::Postgres).await;
}

#[tokio::test]
async fn bad_terms_name_their_field_and_record_nothing() {
    let api = Api::start().await;
    let agent = api.agent("buyer").await;
    let revoked = api.agent("gone").await;
    let path = format!("/v1/agents/{}", revoked.id);
    let (status, _) = api.call(Method::DELETE, &path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, foreign) = other_account(&api).await;
    let base = json!({ "agent_id": agent.id, "max_total_cents": 10_000 });
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    for (case, body, field) in [
        ("a zero total", with("max_total_cents", json!(0)), "max_total_cents"),
        ("a negative total", with("max_total_cents", json!(-5)), "max_total_cents"),
        ("a fractional total", with("max_total_cents", json!(1.5)), "max_total_cents"),
        ("a zero cap", with("per_tx_max_cents", json!(0)), "per_tx_max_cents"),
        ("a cap above the total", with("per_tx_max_cents", json!(10_001)), "per_tx_max_cents"),
        ("a bad time", with("valid_from", json!("next tuesday")), "valid_from"),
        ("a past end", with("valid_until", json!(from_now(-60))), "valid_until"),
        (
            "an end before the start",
            json!({ "agent_id": agent.id, "max_total_cents": 1, "valid_from": from_now(7_200),
                    "valid_until": from_now(3_600) }),
            "valid_until",
        ),
        ("an unknown action", with("action_types", json!(["spend", "bribe"])), "action_types"),
        ("a blank counterparty", with("counterparties", json!([" "])), "counterparties"),
        ("an unknown agent", with("agent_id", json!("agt_none")), "agent_id"),
        ("another account's agent", with("agent_id", json!(foreign.id)), "agent_id"),
        ("a revoked agent", with("agent_id", json!(revoked.id)), "agent_id"),
        ("an unknown field", with("surprise", json!(1)), "surprise"),
    ] {
        let (status, answer) = create(&api, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{case}: {answer}");
        assert_eq!(answer["error"]["code"], "validation_error", "{case}: {answer}");
        assert_eq!(answer["error"]["details"]["field"], field, "{case}: {answer}");
    }
    // A halted agent is granted nothing until resumed.
    let halt = format!("/agents/{}/circuit-break", agent.id);
    let (status, _) =
        api.call(Method::POST, &halt, Some(OWNER_KEY), Some(&json!({ "halted": true }))).await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = create(&api, &base).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["details"]["field"], "agent_id");

    let (_, page) = api.call(Method::GET, "/v1/mandates", Some(OWNER_KEY), None).await;
    assert_eq!(page["data"], json!([]), "refused writes store nothing");
    assert!(audited(&api, &agent).await.is_empty());
}

#[tokio::test]
async fn other_accounts_and_agent_keys_get_404() {
    let api = Api::start().await;
    let agent = api.agent("buyer").await;
    let mandate = id(&granted(&api, &agent, 1_000, json!({})).await);
    let (foreign_owner, foreign_agent) = other_account(&api).await;
    let put = json!({ "max_total_cents": 5 });
    let create_body = json!({ "agent_id": agent.id, "max_total_cents": 5 });
    let routes = [
        (Method::POST, "/v1/mandates".to_owned(), Some(create_body)),
        (Method::GET, "/v1/mandates".to_owned(), None),
        (Method::GET, format!("/v1/mandates/{mandate}"), None),
        (Method::PUT, format!("/v1/mandates/{mandate}"), Some(put.clone())),
        (Method::POST, format!("/v1/mandates/{mandate}/revoke"), None),
    ];
    for key in [&agent.key, &foreign_agent.key] {
        for (method, path, body) in &routes {
            let (status, answer) = api.call(method.clone(), path, Some(key), body.as_ref()).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
            assert_eq!(answer["error"]["code"], "not_found", "{method} {path}: {answer}");
        }
    }
    // Another owner: the mandate does not exist for it, nor does the agent to filter on.
    for (method, path, body) in &routes[2..] {
        let (status, answer) =
            api.call(method.clone(), path, Some(&foreign_owner), body.as_ref()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
    }
    let path = format!("/v1/mandates?agent_id={}", agent.id);
    let (status, _) = api.call(Method::GET, &path, Some(&foreign_owner), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, theirs) = api.call(Method::GET, "/v1/mandates", Some(&foreign_owner), None).await;
    assert_eq!(theirs["data"], json!([]));
    // Nothing changed.
    let stored = get(&api, &mandate).await;
    assert_eq!(
        (stored["status"].as_str(), stored["max_total_cents"].as_u64()),
        (Some("active"), Some(1_000))
    );
}

#[tokio::test]
async fn writes_replay_under_their_idempotency_key() {
    let api = Api::start().await;
    let agent = api.agent("buyer").await;
    let body = json!({ "agent_id": agent.id, "max_total_cents": 2_500 });
    let keyed = |body: &Value, key: &'static str| {
        let api = &api;
        let body = body.clone();
        async move {
            api.call_with(
                Method::POST,
                "/v1/mandates",
                Some(OWNER_KEY),
                Some(&body),
                &[("Idempotency-Key", key)],
            )
            .await
        }
    };
    let first = keyed(&body, "grant-1").await;
    let replay = keyed(&body, "grant-1").await;
    assert_eq!(first.0, StatusCode::CREATED, "{}", first.1);
    assert_eq!(first, replay);
    let reused = keyed(&json!({ "agent_id": agent.id, "max_total_cents": 2_600 }), "grant-1").await;
    assert_eq!(reused.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", reused.1);
    assert_eq!(reused.1["error"]["code"], "idempotency_key_reused");
    let (_, page) = api.call(Method::GET, "/v1/mandates", Some(OWNER_KEY), None).await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");

    let mandate = id(&first.1);
    let headers = [("Idempotency-Key", "revoke-1")];
    let path = format!("/v1/mandates/{mandate}/revoke");
    let once = api.call_with(Method::POST, &path, Some(OWNER_KEY), None, &headers).await;
    let twice = api.call_with(Method::POST, &path, Some(OWNER_KEY), None, &headers).await;
    assert_eq!(once.0, StatusCode::OK, "{}", once.1);
    assert_eq!(once, twice, "a replayed revocation answers the first, not 409");
    let decisions: Vec<_> =
        audited(&api, &agent).await.iter().map(|r| r["decision"].clone()).collect();
    assert_eq!(decisions, [json!("revoked"), json!("created")], "replays audit nothing");
    assert_eq!(events(&api, &agent).await.len(), 2);
}

/// Mints an execution token for `agent` with `body`.
async fn mint(api: &Api, agent: &TestAgent, body: Value) -> (StatusCode, Value) {
    let path = format!("/v1/agents/{}/execution-tokens", agent.id);
    api.call(Method::POST, &path, Some(OWNER_KEY), Some(&body)).await
}

/// Proposes to `seller` with the execution token `token`.
async fn propose_with(api: &Api, token: &str, seller: &TestAgent) -> (StatusCode, Value) {
    let body = propose_body(&seller.id, Address::repeat_byte(0xb1));
    api.call(Method::POST, "/usage-agreements", Some(token), Some(&body)).await
}

async fn tokens_spend_only_under_a_mandate_in_force(db: Db) {
    let Some((api, url)) = api_on(db).await else { return };
    let buyer = api.agent("buyer").await;
    let seller = api.agent("seller").await;
    let mandate =
        id(&granted(&api, &buyer, 10_000, json!({ "counterparties": ["vendor_42"] })).await);
    let sellers = id(&granted(&api, &seller, 10_000, json!({})).await);

    // Minting checks the mandate: unknown → 404; another agent's, revoked, expired → 422.
    let propose = |mandate: &str| json!({ "action": "propose", "audience": seller.id, "mandate_id": mandate });
    let (status, answer) = mint(&api, &buyer, propose("mdt_none")).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );
    let (status, answer) = mint(&api, &buyer, propose(&sellers)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["details"]["field"], "mandate_id");
    // A reservation token's counterparty must be one the mandate covers.
    let reserve = |audience: &str| json!({ "action": "reserve", "audience": audience, "mandate_id": mandate });
    let (status, answer) = mint(&api, &buyer, reserve("vendor_43")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["details"]["field"], "audience");
    let (status, minted) = mint(&api, &buyer, reserve("VENDOR_42")).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    assert_eq!(minted["action"], "reserve");
    assert_eq!(minted["mandate_id"], mandate.as_str());

    // A token under an active mandate gets past the token layer (whatever its handler says
    // next); its twin, once the mandate is revoked, is refused before it is used.
    let (status, first) = mint(&api, &buyer, propose(&mandate)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["mandate_id"], mandate.as_str());
    let (status, second) = mint(&api, &buyer, propose(&mandate)).await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let (status, answer) = propose_with(&api, first["token"].as_str().unwrap(), &seller).await;
    let code = answer["error"]["code"].as_str().unwrap_or("");
    assert!(
        status != StatusCode::UNAUTHORIZED && !code.starts_with("mandate_"),
        "an active mandate's token was refused: {status} {answer}"
    );
    let (status, _) = revoke(&api, &mandate, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, refused) = propose_with(&api, second["token"].as_str().unwrap(), &seller).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"]["code"], "mandate_revoked");
    let used = sqlx::query("SELECT used_at FROM execution_tokens WHERE id = $1")
        .bind(second["id"].as_str().unwrap())
        .fetch_one(api.store().reader())
        .await
        .unwrap()
        .get::<Option<i64>, _>("used_at");
    assert_eq!(used, None, "a refused token is not spent");
    let (status, answer) = mint(&api, &buyer, propose(&mandate)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["details"]["field"], "mandate_id");

    // Past its `valid_until`, a mandate refuses its tokens with `mandate_expired`.
    let expiring =
        id(&granted(&api, &buyer, 10_000, json!({ "valid_until": from_now(3_600) })).await);
    let (status, minted) = mint(&api, &buyer, propose(&expiring)).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    sqlx::query("UPDATE mandates SET valid_until = $1 WHERE id = $2")
        .bind(now() - 1)
        .bind(&expiring)
        .execute(api.store().reader())
        .await
        .unwrap();
    let (status, refused) = propose_with(&api, minted["token"].as_str().unwrap(), &seller).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"]["code"], "mandate_expired");
    let (status, answer) = mint(&api, &buyer, propose(&expiring)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["details"]["field"], "mandate_id");
    finish(api, url).await;
}

#[tokio::test]
async fn tokens_spend_only_under_a_mandate_in_force_on_sqlite() {
    tokens_spend_only_under_a_mandate_in_force(Db::Sqlite).await;
}

#[tokio::test]
async fn tokens_spend_only_under_a_mandate_in_force_on_postgres() {
    tokens_spend_only_under_a_mandate_in_force(Db::Postgres).await;
}

/// The refusal on the route reservation tokens are minted for.
#[tokio::test]
async fn a_reservation_token_is_refused_once_its_mandate_is_revoked() {
    let api = Api::start().await;
    let buyer = api.agent("buyer").await;
    let mandate = id(&granted(&api, &buyer, 10_000, json!({})).await);
    let body = json!({ "action": "reserve", "audience": "vendor_42", "mandate_id": mandate });
    let (status, minted) = mint(&api, &buyer, body).await;
    assert_eq!(status, StatusCode::CREATED, "{minted}");
    let (status, _) = revoke(&api, &mandate, None).await;
    assert_eq!(status, StatusCode::OK);
    let reservation = json!({
        "amount_cents": 100, "action_type": "spend", "counterparty": "vendor_42",
        "mandate_id": mandate,
    });
    let token = minted["token"].as_str().unwrap();
    let (status, refused) = api
        .call(Method::POST, "/v1/spend-guard/reservations", Some(token), Some(&reservation))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{refused}");
    assert_eq!(refused["error"]["code"], "mandate_revoked");
}

async fn halting_or_revoking_the_agent_revokes_its_mandates(db: Db) {
    let Some((api, url)) = api_on(db).await else { return };
    let agent = api.agent("buyer").await;
    let bystander = api.agent("other").await;
    let first = id(&granted(&api, &agent, 1_000, json!({})).await);
    let second = id(&granted(&api, &agent, 2_000, json!({})).await);
    let done = id(&granted(&api, &agent, 3_000, json!({})).await);
    let kept = id(&granted(&api, &bystander, 1_000, json!({})).await);
    let (status, _) = revoke(&api, &done, Some(&json!({ "reason": "owner" }))).await;
    assert_eq!(status, StatusCode::OK);

    let halt = format!("/agents/{}/circuit-break", agent.id);
    let halted = json!({ "halted": true, "reason": "investigating" });
    let (status, _) = api.call(Method::POST, &halt, Some(OWNER_KEY), Some(&halted)).await;
    assert_eq!(status, StatusCode::OK);
    for mandate in [&first, &second] {
        let read = get(&api, mandate).await;
        assert_eq!(read["status"], "revoked", "{read}");
        assert_eq!(read["revoke_reason"], "agent_halted");
    }
    assert_eq!(get(&api, &done).await["revoke_reason"], "owner");
    assert_eq!(get(&api, &kept).await["status"], "active");
    let revocations: Vec<_> = events(&api, &agent)
        .await
        .into_iter()
        .filter(|(t, _)| t == "mandate.revoked")
        .map(|(_, data)| (data["mandate_id"].clone(), data["revoke_reason"].clone()))
        .collect();
    assert_eq!(
        revocations,
        [
            (json!(done), json!("owner")),
            (json!(first), json!("agent_halted")),
            (json!(second), json!("agent_halted")),
        ]
    );
    let rows = audited(&api, &agent).await;
    assert_eq!(rows.iter().filter(|r| r["decision"] == "revoked").count(), 3, "{rows:?}");

    // Resuming grants nothing back; a new mandate may be granted then, and revoking the
    // agent revokes it.
    let resumed = json!({ "halted": false });
    let (status, _) = api.call(Method::POST, &halt, Some(OWNER_KEY), Some(&resumed)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(get(&api, &first).await["status"], "revoked");
    let fresh = id(&granted(&api, &agent, 500, json!({})).await);
    let path = format!("/v1/agents/{}", agent.id);
    let (status, _) = api.call(Method::DELETE, &path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    let read = get(&api, &fresh).await;
    assert_eq!(
        (read["status"].as_str(), read["revoke_reason"].as_str()),
        (Some("revoked"), Some("agent_revoked"))
    );
    let last = events(&api, &agent).await.pop().unwrap();
    assert_eq!(last.0, "mandate.revoked");
    assert_eq!(last.1["mandate_id"], fresh.as_str());
    assert_eq!(get(&api, &kept).await["status"], "active");
    finish(api, url).await;
}

#[tokio::test]
async fn halting_or_revoking_the_agent_revokes_its_mandates_on_sqlite() {
    halting_or_revoking_the_agent_revokes_its_mandates(Db::Sqlite).await;
}

#[tokio::test]
async fn halting_or_revoking_the_agent_revokes_its_mandates_on_postgres() {
    halting_or_revoking_the_agent_revokes_its_mandates(Db::Postgres).await;
}

/// A reservation made under a mandate (named, or by a token minted for it) spends only within
/// it: its per-spend cap, its counterparties, its total; what it holds shows as spent.
#[tokio::test]
async fn reservations_spend_within_their_mandate() {
    let api = Api::start().await;
    let agent = api.agent("mandated").await;
    let extra = json!({ "per_tx_max_cents": 300, "counterparties": ["vendor_42"] });
    let mandate = id(&granted(&api, &agent, 500, extra).await);
    let other = id(&granted(&api, &agent, 10_000, json!({})).await);
    let reserve = |cents: u64, counterparty: &str, mandate: Option<&str>| {
        let mut body =
            json!({ "amount_cents": cents, "action_type": "spend", "counterparty": counterparty });
        if let Some(mandate) = mandate {
            body["mandate_id"] = json!(mandate);
        }
        body
    };
    let path = "/v1/spend-guard/reservations";
    let refused =
        |body: &Value| body["error"]["details"]["reason_code"].as_str().map(str::to_owned);
    // A token minted for the mandate spends under it without naming it.
    let token_body = json!({ "action": "reserve", "audience": "vendor_42", "mandate_id": mandate });
    let (_, minted) = mint(&api, &agent, token_body).await;
    let token = minted["token"].as_str().unwrap();
    let (status, held) =
        api.call(Method::POST, path, Some(token), Some(&reserve(300, "vendor_42", None))).await;
    assert_eq!(status, StatusCode::CREATED, "{held}");
    assert_eq!(held["mandate_id"], json!(mandate));
    // Naming another mandate with such a token is refused.
    let token_body = json!({ "action": "reserve", "audience": "vendor_42", "mandate_id": mandate });
    let (_, minted) = mint(&api, &agent, token_body).await;
    let token = minted["token"].as_str().unwrap();
    let (status, body) = api
        .call(Method::POST, path, Some(token), Some(&reserve(10, "vendor_42", Some(&other))))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The agent's key names it: each limit refuses with its own reason.
    let key = Some(agent.key.as_str());
    let (status, body) =
        api.call(Method::POST, path, key, Some(&reserve(301, "vendor_42", Some(&mandate)))).await;
    assert_eq!(
        (status, refused(&body).as_deref()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("mandate_per_tx_exceeded"))
    );
    let (status, body) =
        api.call(Method::POST, path, key, Some(&reserve(10, "vendor_7", Some(&mandate)))).await;
    assert_eq!(
        (status, refused(&body).as_deref()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("mandate_counterparty_not_allowed"))
    );
    let (status, body) =
        api.call(Method::POST, path, key, Some(&reserve(201, "vendor_42", Some(&mandate)))).await;
    assert_eq!(
        (status, refused(&body).as_deref()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("mandate_exhausted"))
    );
    let (status, body) =
        api.call(Method::POST, path, key, Some(&reserve(200, "vendor_42", Some(&mandate)))).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let read = get(&api, &mandate).await;
    assert_eq!(
        (read["spent_cents"].as_u64(), read["remaining_cents"].as_u64()),
        (Some(500), Some(0))
    );
    // Released, a hold no longer counts against the mandate.
    let release = format!("{path}/{}/release", body["id"].as_str().unwrap());
    let (status, _) = api.call(Method::POST, &release, key, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(get(&api, &mandate).await["spent_cents"], 300);
    // A mandate of another agent is not one to spend under.
    let stranger = api.agent("stranger").await;
    let (status, body) = api
        .call(
            Method::POST,
            path,
            Some(&stranger.key),
            Some(&reserve(1, "vendor_42", Some(&mandate))),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["error"]["details"]["field"], "mandate_id");
}

/// Approving an escalated reservation checks its mandate again: revoked meanwhile, the
/// approval is refused and the reservation keeps waiting.
#[tokio::test]
async fn approving_a_reservation_rechecks_its_mandate() {
    let api = Api::start().await;
    let agent = api.agent("escalated").await;
    let rules =
        json!({ "rules": [{ "id": "big", "type": "escalation_threshold", "above_cents": 100 }] });
    let path = format!("/agents/{}/policies", agent.id);
    let (status, _) = api.call(Method::PUT, &path, Some(OWNER_KEY), Some(&rules)).await;
    assert!(status.is_success());
    let mandate = id(&granted(&api, &agent, 1_000, json!({})).await);
    let body = json!({ "amount_cents": 200, "action_type": "spend", "counterparty": "v",
                       "mandate_id": mandate });
    let (status, held) =
        api.call(Method::POST, "/v1/spend-guard/reservations", Some(&agent.key), Some(&body)).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{held}");
    let (status, _) = revoke(&api, &mandate, None).await;
    assert_eq!(status, StatusCode::OK);
    let decide = format!("/approvals/{}/decide", held["approval_id"].as_str().unwrap());
    let approve = json!({ "decision": "approve" });
    let (status, refused) = api.call(Method::POST, &decide, Some(OWNER_KEY), Some(&approve)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["error"]["details"]["reason_code"], "mandate_revoked");
    let path = format!("/v1/spend-guard/reservations/{}", held["id"].as_str().unwrap());
    let (_, still) = api.call(Method::GET, &path, Some(&agent.key), None).await;
    assert_eq!(still["status"], "pending_approval");
}
