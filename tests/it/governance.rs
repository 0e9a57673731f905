//! Governance against the real service, a real anvil and real signatures: policies bind at
//! activation (a block queues and moves nothing, an escalation waits for the owner), approvals
//! are decided once, a halted agent cannot spend but still settles, owner routes do not exist
//! for agent keys, the audit log cannot be changed, and the governance events reach webhooks.
//! The money-path cases run on SQLite and, when `PACTUM_TEST_DATABASE_URL` is set, Postgres.

use alloy::primitives::U256;
use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::databases::{drop_postgres, fresh_postgres};
use crate::support::service::{Harness, OWNER_KEY, TestAgent, sign_package};
use crate::support::settlement::{UNIT, action_final, record, sign_voucher, sponsor};
use crate::webhooks::{Receiver, create_webhook};

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
    adjust: impl FnOnce(&mut pactum::config::ServeConfig),
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

/// Writes `rules` as `agent`'s policy; returns the policy.
async fn put_policy(h: &Harness, agent: &TestAgent, rules: Value) -> Value {
    let path = format!("/agents/{}/policies", agent.id);
    let body = json!({ "rules": rules });
    let (status, policy) = h.call(Method::PUT, &path, Some(OWNER_KEY), Some(&body)).await;
    assert!(status == StatusCode::CREATED || status == StatusCode::OK, "{status} {policy}");
    policy
}

/// An accepted agreement of the harness's usual terms ($10 deposit, a 20.3 cent fee) and the
/// buyer's signed activation of it, not yet sent.
async fn signed(h: &Harness, buyer: &TestAgent, seller: &TestAgent) -> (String, Value) {
    let (buyer_wallet, seller_wallet) = (h.chain.buyer.address(), h.chain.seller.address());
    let id = h.accepted(buyer, seller, buyer_wallet, seller_wallet).await;
    let package = h.package(&buyer.key, &id).await;
    (id, sign_package(&h.chain.buyer, &package))
}

async fn activate(h: &Harness, buyer: &TestAgent, id: &str, body: &Value) -> (StatusCode, Value) {
    let path = format!("/usage-agreements/{id}/activate-escrow");
    h.call(Method::POST, &path, Some(&buyer.key), Some(body)).await
}

/// What the buyer's activation commits: $10 deposit + 20.3 cents fee, rounded up.
const ACTIVATION_CENTS: u64 = 1_021;

async fn escrow_balance(h: &Harness) -> U256 {
    h.chain.balance(*h.chain.escrow.address()).await
}

async fn audit(h: &Harness, query: &str) -> Vec<Value> {
    let (status, page) =
        h.call(Method::GET, &format!("/v1/audit?{query}"), Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().unwrap().clone()
}

async fn a_blocked_activation_queues_and_moves_nothing(db: Db) {
    let Some((h, url)) = harness_on(db, |_| {}).await else { return };
    let (buyer, seller) = h.parties().await;
    put_policy(
        &h,
        &buyer,
        json!([{ "id": "cap", "type": "per_tx_limit", "max_cents": ACTIVATION_CENTS - 1,
                 "description": "Nothing over $10.20" }]),
    )
    .await;
    let buyer_before = h.chain.balance(h.chain.buyer.address()).await;
    let escrow_before = escrow_balance(&h).await;
    let (id, body) = signed(&h, &buyer, &seller).await;
    let (status, refused) = activate(&h, &buyer, &id, &body).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    let error = &refused["error"];
    assert_eq!(error["code"], "policy_blocked");
    assert_eq!(error["details"]["reason_code"], "per_tx_limit_exceeded");
    assert_eq!(error["details"]["violated_rule_id"], "cap");
    assert!(error["details"]["decline_message"].is_string(), "{refused}");
    let check_id = error["details"]["check_id"].as_str().unwrap();
    assert!(check_id.starts_with("chk_"));

    // Nothing queued, nothing signed, nothing moved, even after blocks go by.
    for _ in 0..3 {
        let _: Value =
            alloy::providers::Provider::raw_request(&h.chain.provider, "evm_mine".into(), ())
                .await
                .unwrap();
    }
    assert_eq!(h.job_count().await, 0);
    let (_, agreement) =
        h.call(Method::GET, &format!("/usage-agreements/{id}"), Some(&buyer.key), None).await;
    assert_eq!(agreement["status"], "accepted", "{agreement}");
    assert_eq!(agreement["activation_status"], "not_started", "{agreement}");
    assert_eq!(h.chain.balance(h.chain.buyer.address()).await, buyer_before);
    assert_eq!(escrow_balance(&h).await, escrow_before);

    // The decision is kept: the check, the audit row and the violation.
    let (status, check) =
        h.call(Method::GET, &format!("/v1/checks/{check_id}"), Some(&buyer.key), None).await;
    assert_eq!(status, StatusCode::OK, "{check}");
    assert_eq!(check["decision"], "block");
    let violations = format!("/agents/{}/violations", buyer.id);
    let (_, page) = h.call(Method::GET, &violations, Some(OWNER_KEY), None).await;
    assert_eq!(page["data"][0]["kind"], "activation", "{page}");
    assert_eq!(page["data"][0]["decision"], "block");
    assert_eq!(page["data"][0]["subject_id"], id.as_str());
    assert_eq!(page["data"][0]["amount_cents"], ACTIVATION_CENTS);
    finish(h, url).await;
}

#[tokio::test]
async fn a_blocked_activation_queues_and_moves_nothing_on_sqlite() {
    a_blocked_activation_queues_and_moves_nothing(Db::Sqlite).await;
}

#[tokio::test]
async fn a_blocked_activation_queues_and_moves_nothing_on_postgres() {
    a_blocked_activation_queues_and_moves_nothing(Db::Postgres).await;
}

/// A policy that escalates every activation of the harness's terms.
fn escalating() -> Value {
    json!([{ "id": "big", "type": "escalation_threshold", "above_cents": 500,
             "description": "Ask the owner above $5" }])
}

/// Submits an activation the policy escalates; returns the agreement and approval ids.
async fn escalated(h: &Harness, buyer: &TestAgent, seller: &TestAgent) -> (String, String) {
    let (id, body) = signed(h, buyer, seller).await;
    let (status, waiting) = activate(h, buyer, &id, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{waiting}");
    assert_eq!(waiting["activation_status"], "awaiting_approval", "{waiting}");
    assert_eq!(waiting["status"], "accepted", "{waiting}");
    let approval = waiting["approval_id"].as_str().expect("an approval").to_owned();
    (id, approval)
}

async fn an_escalated_activation_confirms_only_after_approval(db: Db) {
    let Some((h, url)) = harness_on(db, |_| {}).await else { return };
    let (buyer, seller) = h.parties().await;
    put_policy(&h, &buyer, escalating()).await;
    let (id, approval) = escalated(&h, &buyer, &seller).await;
    assert_eq!(h.job_count().await, 0, "nothing is queued before the owner decides");

    // Asking again while it waits is refused; the owner sees it pending.
    let (_, body) = signed(&h, &buyer, &seller).await;
    let path = format!("/agents/{}/approvals?status=pending", buyer.id);
    let (status, page) = h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["data"][0]["id"], approval.as_str(), "{page}");
    assert_eq!(page["data"][0]["agreement_id"], id.as_str());
    assert_eq!(page["data"][0]["amount_cents"], ACTIVATION_CENTS);
    assert_eq!(page["data"][0]["reason_code"], "escalation_threshold_exceeded");
    drop(body);

    let approve = format!("/agents/{}/approvals/{approval}/approve", buyer.id);
    let (status, decided) = h.call(Method::POST, &approve, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["status"], "approved");
    let active = h
        .wait_for(&buyer.key, &id, |a| {
            a["status"] == "active" && a["activation_status"] == "confirmed"
        })
        .await;
    assert_eq!(active["status"], "active");
    assert_eq!(h.job_count().await, 1);
    let escrowed = U256::from(100 * UNIT) + h.chain.accrued_fees().await;
    assert_eq!(escrow_balance(&h).await, escrowed);

    // A second decision is refused and changes nothing.
    let (status, again) = h.call(Method::POST, &approve, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert_eq!(again["error"]["code"], "approval_already_decided");
    let rows = audit(&h, &format!("agent_id={}&kind=approval", buyer.id)).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["decision"], "approved");
    finish(h, url).await;
}

#[tokio::test]
async fn an_escalated_activation_confirms_only_after_approval_on_sqlite() {
    an_escalated_activation_confirms_only_after_approval(Db::Sqlite).await;
}

#[tokio::test]
async fn an_escalated_activation_confirms_only_after_approval_on_postgres() {
    an_escalated_activation_confirms_only_after_approval(Db::Postgres).await;
}

/// Mines a few blocks and checks the agreement never left `accepted` nor queued anything.
async fn assert_never_sent(h: &Harness, buyer: &TestAgent, id: &str, outcome: &str) {
    for _ in 0..3 {
        let _: Value =
            alloy::providers::Provider::raw_request(&h.chain.provider, "evm_mine".into(), ())
                .await
                .unwrap();
    }
    let (_, agreement) =
        h.call(Method::GET, &format!("/usage-agreements/{id}"), Some(&buyer.key), None).await;
    assert_eq!(agreement["status"], "accepted", "{agreement}");
    assert_eq!(agreement["activation_status"], outcome, "{agreement}");
    assert_eq!(h.job_count().await, 0);
}

async fn a_rejected_activation_never_confirms(db: Db) {
    let Some((h, url)) = harness_on(db, |_| {}).await else { return };
    let (buyer, seller) = h.parties().await;
    put_policy(&h, &buyer, escalating()).await;
    let escrow_before = escrow_balance(&h).await;
    let (id, approval) = escalated(&h, &buyer, &seller).await;
    let reject =
        format!("/agents/{}/approvals/{approval}/reject?reason=not%20this%20vendor", buyer.id);
    let (status, decided) = h.call(Method::POST, &reject, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["status"], "rejected");
    assert_eq!(decided["decision_reason"], "not this vendor");
    assert_never_sent(&h, &buyer, &id, "rejected").await;
    let approve = format!("/agents/{}/approvals/{approval}/approve", buyer.id);
    let (status, late) = h.call(Method::POST, &approve, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{late}");
    assert_never_sent(&h, &buyer, &id, "rejected").await;
    assert_eq!(escrow_balance(&h).await, escrow_before);
    finish(h, url).await;
}

#[tokio::test]
async fn a_rejected_activation_never_confirms_on_sqlite() {
    a_rejected_activation_never_confirms(Db::Sqlite).await;
}

#[tokio::test]
async fn a_rejected_activation_never_confirms_on_postgres() {
    a_rejected_activation_never_confirms(Db::Postgres).await;
}

async fn an_expired_approval_never_confirms(db: Db) {
    let Some((h, url)) = harness_on(db, |config| config.approval_ttl_secs = 1).await else {
        return;
    };
    let (buyer, seller) = h.parties().await;
    let receiver = Receiver::start(Vec::new()).await;
    create_webhook(&h, &buyer, &receiver.url, &["approval.expired"]).await;
    put_policy(&h, &buyer, escalating()).await;
    let (id, approval) = escalated(&h, &buyer, &seller).await;
    // The sweeper expires it (no sleep: poll until the state says so).
    h.poll_until(&buyer.key, &id, |a| a["activation_status"] == "expired").await;
    let approve = format!("/agents/{}/approvals/{approval}/approve", buyer.id);
    let (status, late) = h.call(Method::POST, &approve, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::GONE, "{late}");
    assert_eq!(late["error"]["code"], "approval_expired");
    assert_never_sent(&h, &buyer, &id, "expired").await;
    let rows = audit(&h, &format!("agent_id={}&decision=expired", buyer.id)).await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["actor"], "system");
    let announced = receiver.wait_for(1).await[0].json();
    assert_eq!(announced["type"], "approval.expired");
    assert_eq!(announced["data"]["approval_id"], approval.as_str());
    assert_eq!(announced["data"]["status"], "expired");
    finish(h, url).await;
}

#[tokio::test]
async fn an_expired_approval_never_confirms_on_sqlite() {
    an_expired_approval_never_confirms(Db::Sqlite).await;
}

#[tokio::test]
async fn an_expired_approval_never_confirms_on_postgres() {
    an_expired_approval_never_confirms(Db::Postgres).await;
}

async fn fifty_concurrent_decisions_make_exactly_one(db: Db) {
    let Some((h, url)) = harness_on(db, |_| {}).await else { return };
    let (buyer, seller) = h.parties().await;
    put_policy(&h, &buyer, escalating()).await;
    let (id, approval) = escalated(&h, &buyer, &seller).await;
    let calls = (0..50).map(|i| {
        let verb = if i % 2 == 0 { "approve" } else { "reject" };
        let path = format!("/agents/{}/approvals/{approval}/{verb}", buyer.id);
        let h = &h;
        async move { (verb, h.call(Method::POST, &path, Some(OWNER_KEY), None).await) }
    });
    let answers = join_all(calls).await;
    let won: Vec<_> = answers.iter().filter(|(_, (status, _))| *status == StatusCode::OK).collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for (_, (status, body)) in &answers {
        if *status != StatusCode::OK {
            assert_eq!(*status, StatusCode::CONFLICT, "{body}");
            assert_eq!(body["error"]["code"], "approval_already_decided", "{body}");
        }
    }
    let winner = won[0].0;
    let rows = audit(&h, &format!("agent_id={}&kind=approval", buyer.id)).await;
    assert_eq!(rows.len(), 1, "one decision, one audit row: {rows:?}");
    let (_, stored) =
        h.call(Method::GET, &format!("/approvals/{approval}"), Some(OWNER_KEY), None).await;
    if winner == "approve" {
        assert_eq!(stored["status"], "approved");
        h.wait_for(&buyer.key, &id, |a| a["activation_status"] == "confirmed").await;
        assert_eq!(h.job_count().await, 1);
    } else {
        assert_eq!(stored["status"], "rejected");
        assert_never_sent(&h, &buyer, &id, "rejected").await;
    }
    finish(h, url).await;
}

#[tokio::test]
async fn fifty_concurrent_decisions_make_exactly_one_on_sqlite() {
    fifty_concurrent_decisions_make_exactly_one(Db::Sqlite).await;
}

#[tokio::test]
async fn fifty_concurrent_decisions_make_exactly_one_on_postgres() {
    fifty_concurrent_decisions_make_exactly_one(Db::Postgres).await;
}

async fn halt(h: &Harness, agent: &TestAgent, halted: bool) -> Value {
    let path = format!("/agents/{}/circuit-break", agent.id);
    let body = json!({ "halted": halted, "reason": "investigating" });
    let (status, view) = h.call(Method::POST, &path, Some(OWNER_KEY), Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    view
}

async fn a_halted_agent_cannot_spend_but_its_agreements_settle(db: Db) {
    let Some((h, url)) = harness_on(db, |_| {}).await else { return };
    let (buyer, seller) = h.parties().await;
    let id = h.active(&buyer, &seller).await;
    let (next, body) = signed(&h, &buyer, &seller).await;
    let (buyer_wallet, seller_wallet) = (h.chain.buyer.address(), h.chain.seller.address());
    let (buyer_before, seller_before) =
        (h.chain.balance(buyer_wallet).await, h.chain.balance(seller_wallet).await);

    let view = halt(&h, &buyer, true).await;
    assert_eq!(view["halted"], true);
    assert_eq!(view["halt_reason"], "investigating");
    // Explicit, not a toggle: halting again keeps it halted and records nothing new.
    assert_eq!(halt(&h, &buyer, true).await["halted"], true);
    halt(&h, &seller, true).await;
    let halts = audit(&h, &format!("agent_id={}&kind=halt", buyer.id)).await;
    assert_eq!(halts.len(), 1, "{halts:?}");

    let (status, refused) = activate(&h, &buyer, &next, &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "agent_halted");
    assert!(refused["error"]["details"]["decline_message"].is_string(), "{refused}");
    assert_eq!(h.job_count().await, 1, "only the first activation was ever queued");

    // Settlement is never gated: the halted seller closes with the voucher (paid at once) and
    // the halted buyer withdraws the rest.
    record(&h, &seller, &id, 30, "halted-usage").await;
    sign_voucher(&h, &buyer, &id).await;
    let (status, queued) = sponsor(&h, &seller, &h.chain.seller, &id, "initiate_close").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let done = action_final(&h, &seller.key, &id, queued["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "confirmed", "{done}");
    let (status, queued) = sponsor(&h, &buyer, &h.chain.buyer, &id, "buyer_withdraw").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    let done = action_final(&h, &buyer.key, &id, queued["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "confirmed", "{done}");
    assert_eq!(h.chain.balance(seller_wallet).await - seller_before, U256::from(30 * UNIT));
    assert_eq!(h.chain.balance(buyer_wallet).await - buyer_before, U256::from(70 * UNIT));

    // Resumed, it spends again.
    assert_eq!(halt(&h, &buyer, false).await["halted"], false);
    let (status, queued) = activate(&h, &buyer, &next, &body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{queued}");
    assert_eq!(queued["activation_status"], "pending");
    finish(h, url).await;
}

#[tokio::test]
async fn a_halted_agent_cannot_spend_but_its_agreements_settle_on_sqlite() {
    a_halted_agent_cannot_spend_but_its_agreements_settle(Db::Sqlite).await;
}

#[tokio::test]
async fn a_halted_agent_cannot_spend_but_its_agreements_settle_on_postgres() {
    a_halted_agent_cannot_spend_but_its_agreements_settle(Db::Postgres).await;
}

#[tokio::test]
async fn a_halted_agent_checks_block_and_revoking_ends_its_approvals() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let policy = put_policy(&h, &buyer, escalating()).await;
    let (id, approval) = escalated(&h, &buyer, &seller).await;
    halt(&h, &buyer, true).await;
    let check = json!({
        "policy_id": policy["id"], "action_type": "spend", "amount_cents": 100,
        "currency": "USD", "counterparty": seller.id,
    });
    let (status, answer) = h.call(Method::POST, "/v1/checks", Some(&buyer.key), Some(&check)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["decision"], "block");
    assert_eq!(answer["reason_code"], "agent_halted");
    // Approving a halted agent's spend is refused; the approval stays pending.
    let approve = format!("/agents/{}/approvals/{approval}/approve", buyer.id);
    let (status, refused) = h.call(Method::POST, &approve, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{refused}");
    assert_eq!(refused["error"]["code"], "agent_halted");

    let (status, _) =
        h.call(Method::DELETE, &format!("/v1/agents/{}", buyer.id), Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, ended) =
        h.call(Method::GET, &format!("/approvals/{approval}"), Some(OWNER_KEY), None).await;
    assert_eq!(ended["status"], "rejected", "{ended}");
    assert_eq!(ended["decision_reason"], "agent_revoked");
    let (_, agreement) =
        h.call(Method::GET, &format!("/usage-agreements/{id}"), Some(&seller.key), None).await;
    assert_eq!(agreement["activation_status"], "rejected", "{agreement}");
    assert_eq!(h.job_count().await, 0);
}

#[tokio::test]
async fn owner_routes_answer_404_to_agent_keys() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let policy = put_policy(&h, &buyer, escalating()).await;
    let (_, approval) = escalated(&h, &buyer, &seller).await;
    let a = &buyer.id;
    let routes = [
        (Method::GET, format!("/agents/{a}/policies"), None),
        (Method::PUT, format!("/agents/{a}/policies"), Some(json!({ "rules": [] }))),
        (Method::POST, format!("/agents/{a}/policies"), Some(json!({ "rules": [] }))),
        (Method::GET, format!("/agents/{a}/policies/versions/1"), None),
        (Method::GET, format!("/agents/{a}/approvals"), None),
        (Method::POST, format!("/agents/{a}/approvals/{approval}/approve"), None),
        (Method::POST, format!("/agents/{a}/approvals/{approval}/reject"), None),
        (Method::GET, "/approvals".to_owned(), None),
        (Method::GET, format!("/approvals/{approval}"), None),
        (
            Method::POST,
            format!("/approvals/{approval}/decide"),
            Some(json!({ "decision": "approve" })),
        ),
        (Method::POST, format!("/agents/{a}/circuit-break"), Some(json!({ "halted": false }))),
        (Method::GET, "/v1/audit".to_owned(), None),
        (Method::GET, format!("/agents/{a}/violations"), None),
        (Method::GET, "/v1/agents".to_owned(), None),
        (Method::GET, format!("/agents/{a}/webhooks"), None),
    ];
    for agent in [&buyer, &seller] {
        for (method, path, body) in &routes {
            let (status, answer) =
                h.call(method.clone(), path, Some(&agent.key), body.as_ref()).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {answer}");
            assert_eq!(answer["error"]["code"], "not_found", "{method} {path}: {answer}");
        }
    }
    // Nothing changed: the approval still waits, the policy is still version 1.
    let (_, stored) =
        h.call(Method::GET, &format!("/approvals/{approval}"), Some(OWNER_KEY), None).await;
    assert_eq!(stored["status"], "pending");
    let (_, current) =
        h.call(Method::GET, &format!("/agents/{a}/policies"), Some(OWNER_KEY), None).await;
    assert_eq!(current["version"], policy["version"]);
}

async fn audit_rows_cannot_be_changed(db: Db) {
    let Some((h, url)) = harness_on(db, |_| {}).await else { return };
    let (buyer, _) = h.parties().await;
    put_policy(&h, &buyer, escalating()).await;
    halt(&h, &buyer, true).await;
    let store = h.service.as_ref().unwrap().state().store.clone();
    let count = || async {
        use sqlx::Row;
        sqlx::query("SELECT COUNT(*) AS n FROM audit_log")
            .fetch_one(store.reader())
            .await
            .unwrap()
            .get::<i64, _>("n")
    };
    let before = count().await;
    assert_eq!(before, 2, "the policy write and the halt");
    for statement in [
        "UPDATE audit_log SET decision = 'allow'",
        "UPDATE audit_log SET detail = '{}' WHERE kind = 'halt'",
        "DELETE FROM audit_log",
        "DELETE FROM audit_log WHERE kind = 'policy'",
    ] {
        let mut tx = store.begin().await.unwrap();
        let outcome = sqlx::query(statement).execute(&mut *tx).await;
        assert!(outcome.is_err(), "{statement} was allowed");
        drop(tx);
    }
    assert_eq!(count().await, before);
    let rows = audit(&h, &format!("agent_id={}", buyer.id)).await;
    assert_eq!(rows[0]["decision"], "halted");
    assert_eq!(rows[1]["decision"], "updated");
    finish(h, url).await;
}

#[tokio::test]
async fn audit_rows_cannot_be_changed_on_sqlite() {
    audit_rows_cannot_be_changed(Db::Sqlite).await;
}

#[tokio::test]
async fn audit_rows_cannot_be_changed_on_postgres() {
    audit_rows_cannot_be_changed(Db::Postgres).await;
}

/// Seed 003's example: the refund escalation rule `r2` and its example request.
#[tokio::test]
async fn the_seed_check_example_answers_the_seed_fields() {
    let h = Harness::start().await;
    let agent = h.agent("support-agent-v1").await;
    let policy = put_policy(
        &h,
        &agent,
        json!([{ "id": "r2", "type": "escalation_threshold", "above_cents": 20000,
                 "action_types": ["refund"], "description": "Escalate refunds over $200" }]),
    )
    .await;
    let request = json!({
        "agent_id": agent.id,
        "policy_id": policy["id"],
        "action_type": "refund",
        "amount": 300.00,
        "currency": "USD",
        "counterparty": "customer_789",
        "metadata": { "days_since_purchase": 5 }
    });
    let (status, answer) =
        h.call(Method::POST, "/v1/checks", Some(&agent.key), Some(&request)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["check_id"].as_str().unwrap().starts_with("chk_"), "{answer}");
    assert_eq!(answer["decision"], "escalate");
    assert_eq!(answer["confidence"], "high");
    assert_eq!(answer["reason_code"], "escalation_threshold_exceeded");
    assert_eq!(answer["message"], "Refund of $300.00 exceeds the escalation threshold of $200.00.");
    assert_eq!(answer["violated_rule_id"], "r2");
    assert_eq!(answer["violated_rule_description"], "Escalate refunds over $200");
    assert_eq!(answer["policy_version"], 1);
    assert_eq!(answer["next_step"], "Route to human approval before proceeding.");
    assert!(answer["latency_ms"].is_u64(), "{answer}");
    let timestamp = answer["timestamp"].as_str().unwrap();
    assert!(
        timestamp.ends_with('Z') && timestamp.parse::<jiff::Timestamp>().is_ok(),
        "{timestamp}"
    );
    assert_eq!(answer["violations"][0]["rule_id"], "r2");

    // The owner may check for the agent; the owner sees the check too.
    let (status, again) = h.call(Method::POST, "/v1/checks", Some(OWNER_KEY), Some(&request)).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["decision"], "escalate");
    let path = format!("/v1/checks/{}", answer["check_id"].as_str().unwrap());
    let (status, stored) = h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stored["check_id"], answer["check_id"]);
}

#[tokio::test]
async fn checks_refuse_bad_input_replay_without_auditing_and_stay_in_their_account() {
    let h = Harness::start().await;
    let (agent, other) = h.parties().await;
    let policy = put_policy(
        &h,
        &agent,
        json!([{ "id": "cap", "type": "per_tx_limit", "max_cents": 10000 }]),
    )
    .await;
    let base = json!({
        "policy_id": policy["id"], "action_type": "spend", "amount": 12.5,
        "currency": "USD", "counterparty": "vendor_1",
    });
    let with = |field: &str, value: Value| {
        let mut body = base.clone();
        body[field] = value;
        body
    };
    let without = |field: &str| {
        let mut body = base.clone();
        body.as_object_mut().unwrap().remove(field);
        body
    };
    let checks = before_count(&h).await;
    for (case, body, status, code) in [
        ("a fraction of a cent", with("amount", json!(12.345)), 422, "validation_error"),
        ("negative", with("amount", json!(-1)), 422, "validation_error"),
        ("no amount", without("amount"), 422, "validation_error"),
        ("an unknown currency", with("currency", json!("EUR")), 422, "validation_error"),
        ("no action and no reason", without("action_type"), 422, "validation_error"),
        ("an unknown action", with("action_type", json!("bribe")), 422, "validation_error"),
        ("another policy", with("policy_id", json!("pol_nope")), 404, "policy_not_found"),
        ("another agent", with("agent_id", json!(other.id)), 403, "forbidden"),
        ("an unknown field", with("surprise", json!(1)), 422, "validation_error"),
    ] {
        let (got, answer) = h.call(Method::POST, "/v1/checks", Some(&agent.key), Some(&body)).await;
        assert_eq!(got.as_u16(), status, "{case}: {answer}");
        assert_eq!(answer["error"]["code"], code, "{case}: {answer}");
    }
    assert_eq!(before_count(&h).await, checks, "refused checks record nothing");

    // Exact cents, as a number or as `amount_cents`.
    let (_, answer) = h
        .call(Method::POST, "/v1/checks", Some(&agent.key), Some(&with("amount", json!(100.00))))
        .await;
    assert_eq!(answer["decision"], "allow", "{answer}");
    let (_, answer) = h
        .call(Method::POST, "/v1/checks", Some(&agent.key), Some(&with("amount", json!(100.01))))
        .await;
    assert_eq!(answer["decision"], "block", "{answer}");
    let mut cents = without("amount");
    cents["amount_cents"] = json!(10_001);
    let (_, answer) = h.call(Method::POST, "/v1/checks", Some(&agent.key), Some(&cents)).await;
    assert_eq!(answer["reason_code"], "per_tx_limit_exceeded", "{answer}");

    // A classified action when only a reason is given.
    let mut classified = without("action_type");
    classified["reason_text"] = json!("customer wants a refund for a broken item");
    let (_, answer) = h.call(Method::POST, "/v1/checks", Some(&agent.key), Some(&classified)).await;
    assert_eq!(answer["action_type"], "refund", "{answer}");

    // A replay by the body's key answers the first decision and audits nothing new.
    let keyed = with("idempotency_key", json!("refund-customer789-20260403"));
    let (_, first) = h.call(Method::POST, "/v1/checks", Some(&agent.key), Some(&keyed)).await;
    let rows = before_count(&h).await;
    let (_, second) = h.call(Method::POST, "/v1/checks", Some(&agent.key), Some(&keyed)).await;
    assert_eq!(first, second);
    assert_eq!(before_count(&h).await, rows);
    // The same key with another body is refused.
    let mut changed = keyed.clone();
    changed["amount"] = json!(13);
    let (status, answer) =
        h.call(Method::POST, "/v1/checks", Some(&agent.key), Some(&changed)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(answer["error"]["code"], "idempotency_key_reused");

    // Another agent cannot read the check.
    let path = format!("/v1/checks/{}", first["check_id"].as_str().unwrap());
    let (status, _) = h.call(Method::GET, &path, Some(&other.key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn before_count(h: &Harness) -> usize {
    audit(h, "limit=100").await.len()
}

#[tokio::test]
async fn policies_are_versioned_and_bad_documents_name_the_rule() {
    let h = Harness::start().await;
    let agent = h.agent("governed").await;
    let path = format!("/agents/{}/policies", agent.id);
    let (status, none) = h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(none["error"]["code"], "policy_not_found");

    for (rules, rule_id) in [
        (json!([{ "id": "r1", "type": "teleport" }]), "r1"),
        (json!([{ "id": "r1", "type": "per_tx_limit", "max_cents": -5 }]), "r1"),
        (json!([{ "id": "r1", "type": "per_tx_limit", "max_cents": 1.5 }]), "r1"),
        (
            json!([{ "id": "r1", "type": "per_tx_limit", "max_cents": 5 },
                { "id": "r1", "type": "velocity", "max_actions": 2, "window_seconds": 60 }]),
            "r1",
        ),
        (
            json!([{ "id": "tz", "type": "period_budget", "period": "day", "max_cents": 5, "timezone": "Mars/Olympus" }]),
            "tz",
        ),
    ] {
        let (status, refused) =
            h.call(Method::PUT, &path, Some(OWNER_KEY), Some(&json!({ "rules": rules }))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{rules}: {refused}");
        assert_eq!(refused["error"]["code"], "invalid_policy", "{refused}");
        assert_eq!(refused["error"]["details"]["rule_id"], rule_id, "{refused}");
        assert!(refused["error"]["message"].as_str().unwrap().contains(rule_id), "{refused}");
    }

    let first =
        put_policy(&h, &agent, json!([{ "id": "a", "type": "per_tx_limit", "max_cents": 100 }]))
            .await;
    assert_eq!(first["version"], 1);
    let second =
        put_policy(&h, &agent, json!([{ "id": "b", "type": "per_tx_limit", "max_cents": 200 }]))
            .await;
    assert_eq!(second["version"], 2);
    assert_eq!(second["id"], first["id"], "one policy, two versions");
    let (_, old) = h.call(Method::GET, &format!("{path}/versions/1"), Some(OWNER_KEY), None).await;
    assert_eq!(old["rules"][0]["id"], "a", "{old}");
    let (_, current) = h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
    assert_eq!(current["rules"][0]["max_cents"], 200);
    let (status, _) =
        h.call(Method::GET, &format!("{path}/versions/3"), Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn governance_events_reach_the_agents_webhooks() {
    let h = Harness::start().await;
    let (buyer, seller) = h.parties().await;
    let receiver = Receiver::start(Vec::new()).await;
    let types = [
        "approval.requested",
        "approval.approved",
        "approval.rejected",
        "agent.halted",
        "agent.resumed",
        "policy.updated",
    ];
    let created = create_webhook(&h, &buyer, &receiver.url, &types).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    put_policy(&h, &buyer, escalating()).await;
    let (_, approval) = escalated(&h, &buyer, &seller).await;
    let reject = format!("/agents/{}/approvals/{approval}/reject", buyer.id);
    let (status, _) =
        h.call(Method::POST, &reject, Some(OWNER_KEY), Some(&json!({ "reason": "no" }))).await;
    assert_eq!(status, StatusCode::OK);
    halt(&h, &buyer, true).await;
    halt(&h, &buyer, false).await;
    let (_, second) = escalated(&h, &buyer, &seller).await;
    let approve = format!("/agents/{}/approvals/{second}/approve", buyer.id);
    let (status, _) = h.call(Method::POST, &approve, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    let hits = receiver.wait_for(7).await;
    let mut seen: Vec<String> =
        hits.iter().map(|hit| hit.json()["type"].as_str().unwrap().to_owned()).collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            "agent.halted",
            "agent.resumed",
            "approval.approved",
            "approval.rejected",
            "approval.requested",
            "approval.requested",
            "policy.updated",
        ],
    );
    for hit in &hits {
        assert!(hit.verifies_with(&secret));
        assert_eq!(hit.json()["data"]["agent_id"], buyer.id.as_str());
    }
    let requested: Vec<Value> = hits
        .iter()
        .map(|hit| hit.json())
        .filter(|event| event["type"] == "approval.requested")
        .map(|event| event["data"]["approval_id"].clone())
        .collect();
    assert!(
        requested.contains(&json!(approval)) && requested.contains(&json!(second)),
        "{requested:?}"
    );
}

async fn concurrent_checks_count_each_other(db: Db) {
    let Some((h, url)) = harness_on(db, |_| {}).await else { return };
    let agent = h.agent("burst").await;
    let policy = put_policy(
        &h,
        &agent,
        json!([{ "id": "burst", "type": "velocity", "max_actions": 5, "window_seconds": 3600 }]),
    )
    .await;
    let check = |amount: u64| {
        json!({
            "policy_id": policy["id"], "action_type": "spend", "amount_cents": amount,
            "currency": "USD", "counterparty": "vendor",
        })
    };
    // Twenty different checks at once: the first five (in the order they are decided) pass.
    let bodies: Vec<Value> = (1..=20).map(check).collect();
    let answers = join_all(
        bodies.iter().map(|body| h.call(Method::POST, "/v1/checks", Some(&agent.key), Some(body))),
    )
    .await;
    let allowed = answers.iter().filter(|(_, a)| a["decision"] == "allow").count();
    let blocked = answers.iter().filter(|(_, a)| a["reason_code"] == "velocity_exceeded").count();
    assert_eq!((allowed, blocked), (5, 15), "{answers:?}");

    // Ten identical checks at once under a duplicate guard: exactly one passes.
    let path = format!("/agents/{}/policies", agent.id);
    let body = json!({ "rules": [], "duplicate_window_seconds": 600 });
    let (status, guarded) = h.call(Method::PUT, &path, Some(OWNER_KEY), Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{guarded}");
    assert_eq!(guarded["duplicate_window_seconds"], 600);
    let same = json!({
        "policy_id": guarded["id"], "action_type": "spend", "amount_cents": 700,
        "currency": "USD", "counterparty": "vendor",
    });
    let answers = join_all(
        (0..10).map(|_| h.call(Method::POST, "/v1/checks", Some(&agent.key), Some(&same))),
    )
    .await;
    let allowed = answers.iter().filter(|(_, a)| a["decision"] == "allow").count();
    let duplicates =
        answers.iter().filter(|(_, a)| a["reason_code"] == "duplicate_request").count();
    assert_eq!((allowed, duplicates), (1, 9), "{answers:?}");
    let rows = audit(&h, &format!("agent_id={}&kind=check&limit=100", agent.id)).await;
    assert_eq!(rows.len(), 30, "every decision audited once");
    finish(h, url).await;
}

#[tokio::test]
async fn concurrent_checks_count_each_other_on_sqlite() {
    concurrent_checks_count_each_other(Db::Sqlite).await;
}

#[tokio::test]
async fn concurrent_checks_count_each_other_on_postgres() {
    concurrent_checks_count_each_other(Db::Postgres).await;
}
