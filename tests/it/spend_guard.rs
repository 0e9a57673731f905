//! The spend guard against the real server over HTTP: reservations hold exactly the budget
//! under concurrency, capture and release are exclusive, an uncaptured hold is expired by the
//! sweeper across a restart, escalated holds wait for the owner, budget leases bound their
//! children, halting gives holds back, and an activation's hold follows the chain.

use futures::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::service::{Harness, OWNER_KEY, TestAgent, daily_budget};

async fn reserve(h: &Harness, key: &str, body: Value) -> (StatusCode, Value) {
    h.call(Method::POST, "/v1/spend-guard/reservations", Some(key), Some(&body)).await
}

fn dollar() -> Value {
    json!({ "amount_cents": 100, "action_type": "spend", "counterparty": "vendor_1" })
}

/// What the agent's `daily` budget counts now, by the estimate route.
async fn counted(h: &Harness, agent: &TestAgent) -> u64 {
    let body = json!({ "kind": "payment", "amount_cents": 1 });
    let (status, estimate) =
        h.call(Method::POST, "/v1/spend-guard/estimate", Some(&agent.key), Some(&body)).await;
    assert_eq!(status, StatusCode::OK, "{estimate}");
    estimate["budgets"][0]["counted_cents"].as_u64().unwrap()
}

/// Sends `n` reservations of $1 with `key`, `in_flight` at a time; the statuses answered.
async fn burst(h: &Harness, key: &str, n: usize, in_flight: usize) -> Vec<(StatusCode, Value)> {
    futures::stream::iter(0..n)
        .map(|_| reserve(h, key, dollar()))
        .buffer_unordered(in_flight)
        .collect()
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_reservations_hold_exactly_the_budget() {
    let mut h = Harness::start().await;
    let agent = h.agent("budgeted").await;
    h.set_policy(&agent, daily_budget(5_000)).await;
    let answers = burst(&h, &agent.key, 200, 50).await;
    let reserved = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    assert_eq!(reserved, 50, "exactly $50 of $1 holds fit a $50 budget");
    for (status, body) in answers.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["code"], "policy_blocked");
        assert_eq!(body["error"]["details"]["reason_code"], "period_budget_exceeded");
    }
    assert_eq!(counted(&h, &agent).await, 5_000);
    let (_, list) = h
        .call(
            Method::GET,
            "/v1/spend-guard/reservations?status=reserved&limit=100",
            Some(&agent.key),
            None,
        )
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 50);
    // Authorize says the same and holds nothing.
    let (status, answer) =
        h.call(Method::POST, "/v1/spend-guard/authorize", Some(&agent.key), Some(&dollar())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        (answer["decision"].as_str(), answer["binding"].as_bool()),
        (Some("deny"), Some(false))
    );
    assert_eq!(counted(&h, &agent).await, 5_000);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_captures_and_releases_of_one_hold_resolve_it_once() {
    let mut h = Harness::start().await;
    let agent = h.agent("racer").await;
    h.set_policy(&agent, daily_budget(100_000)).await;
    let (status, hold) = reserve(&h, &agent.key, dollar()).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    let id = hold["id"].as_str().unwrap().to_owned();
    let answers: Vec<(bool, StatusCode, Value)> = futures::stream::iter(0..100)
        .map(|i| {
            let (h, key, id) = (&h, agent.key.clone(), id.clone());
            async move {
                let capture = i % 2 == 0;
                let path = format!(
                    "/v1/spend-guard/reservations/{id}/{}",
                    if capture { "capture" } else { "release" }
                );
                let (status, body) = h.call(Method::POST, &path, Some(&key), None).await;
                (capture, status, body)
            }
        })
        .buffer_unordered(100)
        .collect()
        .await;
    let (_, hold) = h
        .call(Method::GET, &format!("/v1/spend-guard/reservations/{id}"), Some(&agent.key), None)
        .await;
    let captured = hold["status"] == "captured";
    assert!(captured || hold["status"] == "released", "{hold}");
    for (capture, status, body) in &answers {
        if *capture == captured {
            assert_eq!(*status, StatusCode::OK, "the winner's kind answers the same: {body}");
        } else {
            assert_eq!(*status, StatusCode::CONFLICT, "{body}");
            let code =
                if captured { "reservation_already_captured" } else { "reservation_released" };
            assert_eq!(body["error"]["code"], code);
        }
    }
    let resolved: Vec<&Value> = hold["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "captured" || e["event"] == "released")
        .collect();
    assert_eq!(resolved.len(), 1, "one change won: {hold}");
    assert_eq!(counted(&h, &agent).await, if captured { 100 } else { 0 });
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capture_spends_part_and_refuses_what_does_not_fit_its_state() {
    let mut h = Harness::start().await;
    let agent = h.agent("capturer").await;
    let other = h.agent("other").await;
    h.set_policy(&agent, daily_budget(100_000)).await;
    let body = json!({ "amount_cents": 1_000, "action_type": "spend", "counterparty": "v" });
    let (_, hold) = reserve(&h, &agent.key, body).await;
    let path = |what: &str| {
        format!("/v1/spend-guard/reservations/{}/{what}", hold["id"].as_str().unwrap())
    };
    // Another agent of the account does not see it; the owner does.
    let (status, _) = h.call(Method::POST, &path("capture"), Some(&other.key), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let too_much = json!({ "amount_cents": 1_001 });
    let (status, body) =
        h.call(Method::POST, &path("capture"), Some(&agent.key), Some(&too_much)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("validation_error"))
    );
    let part = json!({ "amount_cents": 400 });
    let (status, captured) =
        h.call(Method::POST, &path("capture"), Some(OWNER_KEY), Some(&part)).await;
    assert_eq!(status, StatusCode::OK, "{captured}");
    assert_eq!(
        (captured["captured_cents"].as_u64(), captured["counted_cents"].as_u64()),
        (Some(400), Some(400))
    );
    assert_eq!(counted(&h, &agent).await, 400, "the rest went back");
    // The same capture again is answered again; another amount or a release is refused.
    let (status, _) = h.call(Method::POST, &path("capture"), Some(&agent.key), Some(&part)).await;
    assert_eq!(status, StatusCode::OK);
    let other_part = json!({ "amount_cents": 300 });
    let (status, body) =
        h.call(Method::POST, &path("capture"), Some(&agent.key), Some(&other_part)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("reservation_already_captured"))
    );
    let (status, body) = h.call(Method::POST, &path("release"), Some(&agent.key), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("reservation_already_captured"))
    );
    // Bad input changes nothing.
    for bad in [
        json!({ "amount_cents": 0, "action_type": "spend", "counterparty": "v" }),
        json!({ "amount_cents": 5, "action_type": "spend" }),
        json!({ "amount_cents": 5, "action_type": "spend", "counterparty": "v", "ttl_seconds": 86_401 }),
        json!({ "amount_cents": 5, "action_type": "spend", "counterparty": "v", "surprise": 1 }),
    ] {
        let (status, body) = reserve(&h, &agent.key, bad.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {body}");
    }
    let named = json!({ "agent_id": other.id, "amount_cents": 5, "action_type": "spend", "counterparty": "v" });
    let (status, _) = reserve(&h, &agent.key, named).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "an agent reserves only as itself");
    assert_eq!(counted(&h, &agent).await, 400);
    // An idempotent retry holds once.
    let key = [("Idempotency-Key", "hold-once")];
    let body = json!({ "amount_cents": 50, "action_type": "spend", "counterparty": "v" });
    let first = h
        .call_with(
            Method::POST,
            "/v1/spend-guard/reservations",
            Some(&agent.key),
            Some(&body),
            &key,
        )
        .await;
    let again = h
        .call_with(
            Method::POST,
            "/v1/spend-guard/reservations",
            Some(&agent.key),
            Some(&body),
            &key,
        )
        .await;
    assert_eq!((first.0, again.0), (StatusCode::CREATED, StatusCode::CREATED));
    assert_eq!(first.1["id"], again.1["id"]);
    assert_eq!(counted(&h, &agent).await, 450);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_nobody_captures_is_expired_by_the_sweeper_across_a_restart() {
    let mut h = Harness::start().await;
    let agent = h.agent("forgetful").await;
    h.set_policy(&agent, daily_budget(10_000)).await;
    let body = json!({ "amount_cents": 700, "action_type": "spend", "counterparty": "v", "ttl_seconds": 1 });
    let (status, hold) = reserve(&h, &agent.key, body).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    let id = hold["id"].as_str().unwrap().to_owned();
    h.stop().await;
    // Its time runs out while no instance runs.
    let expires: jiff::Timestamp = hold["expires_at"].as_str().unwrap().parse().unwrap();
    while jiff::Timestamp::now() <= expires {
        tokio::task::yield_now().await;
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    h.restart().await;
    let path = format!("/v1/spend-guard/reservations/{id}");
    let expired = h.wait_path(&agent.key, &path, |r| r["status"] == "expired").await;
    let last = expired["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["event"].as_str(), last["actor"].as_str()), (Some("expired"), Some("system")));
    assert_eq!(counted(&h, &agent).await, 0);
    let (status, body) =
        h.call(Method::POST, &format!("{path}/capture"), Some(&agent.key), None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::GONE, Some("reservation_expired"))
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_escalated_reservation_holds_only_once_approved() {
    let mut h = Harness::start().await;
    let agent = h.agent("escalating").await;
    let mut rules = daily_budget(10_000);
    rules
        .as_array_mut()
        .unwrap()
        .push(json!({ "id": "big", "type": "escalation_threshold", "above_cents": 1_000 }));
    h.set_policy(&agent, rules).await;
    let body = json!({ "amount_cents": 2_000, "action_type": "spend", "counterparty": "v" });
    let (status, hold) = reserve(&h, &agent.key, body.clone()).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{hold}");
    assert_eq!(hold["status"], "pending_approval");
    assert_eq!(counted(&h, &agent).await, 0, "waiting holds nothing");
    let approval = hold["approval_id"].as_str().unwrap();
    let decide = json!({ "decision": "approve" });
    let (status, body) = h
        .call(
            Method::POST,
            &format!("/approvals/{approval}/decide"),
            Some(OWNER_KEY),
            Some(&decide),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let path = format!("/v1/spend-guard/reservations/{}", hold["id"].as_str().unwrap());
    let (_, held) = h.call(Method::GET, &path, Some(&agent.key), None).await;
    assert_eq!(held["status"], "reserved");
    assert_eq!(counted(&h, &agent).await, 2_000);
    // A rejected one ends rejected and never counts.
    let (_, second) = reserve(
        &h,
        &agent.key,
        json!({ "amount_cents": 1_500, "action_type": "spend", "counterparty": "w" }),
    )
    .await;
    let approval = second["approval_id"].as_str().unwrap();
    let reject = json!({ "decision": "reject" });
    h.call(Method::POST, &format!("/approvals/{approval}/decide"), Some(OWNER_KEY), Some(&reject))
        .await;
    let path = format!("/v1/spend-guard/reservations/{}", second["id"].as_str().unwrap());
    let (_, rejected) = h.call(Method::GET, &path, Some(&agent.key), None).await;
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(counted(&h, &agent).await, 2_000);
    h.stop().await;
}

async fn lease(
    h: &Harness,
    parent: &TestAgent,
    child: &TestAgent,
    cents: u64,
) -> (StatusCode, Value) {
    let body =
        json!({ "parent_agent_id": parent.id, "child_agent_id": child.id, "amount_cents": cents });
    h.call(Method::POST, "/v1/spend-guard/budget-leases", Some(OWNER_KEY), Some(&body)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leased_children_spending_at_once_never_pass_their_parent() {
    let mut h = Harness::start().await;
    let parent = h.agent("parent").await;
    let (a, b, c) = (h.agent("child-a").await, h.agent("child-b").await, h.agent("child-c").await);
    h.set_policy(&parent, daily_budget(10_000)).await;
    for child in [&a, &b] {
        let (status, body) = lease(&h, &parent, child, 3_000).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    // What is left of the parent's $100 cannot cover a $50 lease; an agent key cannot lease.
    let (status, body) = lease(&h, &parent, &c, 5_000).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("policy_blocked"))
    );
    let body = json!({ "parent_agent_id": parent.id, "child_agent_id": c.id, "amount_cents": 1 });
    let (status, _) =
        h.call(Method::POST, "/v1/spend-guard/budget-leases", Some(&parent.key), Some(&body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Both children spend at once, far past their leases.
    let (ra, rb) = tokio::join!(burst(&h, &a.key, 45, 15), burst(&h, &b.key, 45, 15));
    for answers in [&ra, &rb] {
        assert_eq!(answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count(), 30);
        let refused = answers.iter().find(|(s, _)| *s != StatusCode::CREATED).unwrap();
        assert_eq!(
            refused.1["error"]["details"]["reason_code"], "lease_exhausted",
            "{}",
            refused.1
        );
    }
    assert_eq!(counted(&h, &parent).await, 6_000, "the parent counts its leases, not more");
    let (_, parent_spend) = reserve(
        &h,
        &parent.key,
        json!({ "amount_cents": 4_001, "action_type": "spend", "counterparty": "v" }),
    )
    .await;
    assert_eq!(parent_spend["error"]["code"], "policy_blocked");
    // Cycles are refused.
    let (status, body) = lease(&h, &a, &parent, 1).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    // Releasing a's lease gives back its open holds and the unspent rest: a captured $5.
    let (_, holds) = h
        .call(
            Method::GET,
            "/v1/spend-guard/reservations?status=reserved&limit=100",
            Some(&a.key),
            None,
        )
        .await;
    let first = holds["data"][0]["id"].as_str().unwrap();
    let capture = json!({ "amount_cents": 100 });
    for hold in holds["data"].as_array().unwrap().iter().take(5) {
        let path = format!("/v1/spend-guard/reservations/{}/capture", hold["id"].as_str().unwrap());
        let (status, body) = h.call(Method::POST, &path, Some(&a.key), Some(&capture)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, leases) = h
        .call(
            Method::GET,
            &format!("/v1/spend-guard/budget-leases?agent_id={}", a.id),
            Some(OWNER_KEY),
            None,
        )
        .await;
    let lease_id = leases["data"][0]["id"].as_str().unwrap();
    assert_eq!(leases["data"][0]["spent_cents"], 3_000);
    let path = format!("/v1/spend-guard/budget-leases/{lease_id}/release");
    let (status, released) = h.call(Method::POST, &path, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{released}");
    assert_eq!(
        (released["status"].as_str(), released["spent_cents"].as_u64()),
        (Some("released"), Some(500))
    );
    assert_eq!(counted(&h, &parent).await, 3_500, "b's lease and a's $5");
    let (_, gone) = h
        .call(Method::GET, &format!("/v1/spend-guard/reservations/{first}"), Some(&a.key), None)
        .await;
    assert!(gone["status"] == "captured" || gone["status"] == "released", "{gone}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn halting_an_agent_gives_its_holds_and_leases_back() {
    let mut h = Harness::start().await;
    let parent = h.agent("halted-parent").await;
    let child = h.agent("its-child").await;
    h.set_policy(&parent, daily_budget(10_000)).await;
    let (status, _) = reserve(&h, &parent.key, dollar()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = lease(&h, &parent, &child, 2_000).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = reserve(&h, &child.key, dollar()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(counted(&h, &parent).await, 2_100);
    let halt = json!({ "halted": true, "reason": "audit" });
    let path = format!("/agents/{}/circuit-break", parent.id);
    let (status, body) = h.call(Method::POST, &path, Some(OWNER_KEY), Some(&halt)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(counted(&h, &parent).await, 0);
    let (_, child_holds) = h
        .call(Method::GET, "/v1/spend-guard/reservations?status=released", Some(&child.key), None)
        .await;
    assert_eq!(
        child_holds["data"].as_array().unwrap().len(),
        1,
        "the child's hold under the lease went too"
    );
    let (status, body) = reserve(&h, &parent.key, dollar()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("agent_halted"))
    );
    h.stop().await;
}

/// The usage summary's figures for a known history, on `db`.
async fn the_usage_summary_tallies_what_happened(db: Option<String>) {
    use crate::support::router::{Api, Client};
    let api = Api::start_with(|config| {
        if let Some(url) = &db {
            config.database_url = url.clone();
        }
    })
    .await;
    let agent = api.agent("summarised").await;
    let child = api.agent("summarised-child").await;
    let rules = json!({ "rules": [
        { "id": "daily", "type": "period_budget", "period": "day", "max_cents": 1_000, "timezone": "UTC" },
        { "id": "big", "type": "escalation_threshold", "above_cents": 500 },
    ] });
    let path = format!("/agents/{}/policies", agent.id);
    api.call(Method::PUT, &path, Some(OWNER_KEY), Some(&rules)).await;
    let reservations = "/v1/spend-guard/reservations";
    let spend =
        |cents: u64| json!({ "amount_cents": cents, "action_type": "spend", "counterparty": "v" });
    let key = Some(agent.key.as_str());
    let (_, first) = api.call(Method::POST, reservations, key, Some(&spend(300))).await;
    let capture = format!("{reservations}/{}/capture", first["id"].as_str().unwrap());
    api.call(Method::POST, &capture, key, Some(&json!({ "amount_cents": 200 }))).await;
    let (status, _) = api.call(Method::POST, reservations, key, Some(&spend(600))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (_, second) = api.call(Method::POST, reservations, key, Some(&spend(400))).await;
    let release = format!("{reservations}/{}/release", second["id"].as_str().unwrap());
    api.call(Method::POST, &release, key, None).await;
    let lease =
        json!({ "parent_agent_id": agent.id, "child_agent_id": child.id, "amount_cents": 100 });
    let (status, body) = api
        .call(Method::POST, "/v1/spend-guard/budget-leases", Some(OWNER_KEY), Some(&lease))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = api.call(Method::POST, reservations, key, Some(&spend(2_000))).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

    let (status, summary) =
        api.call(Method::GET, "/v1/spend-guard/usage/summary", Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    let totals = &summary["totals"];
    assert_eq!(
        totals["decisions"]["reservation"],
        json!({ "allow": 2, "escalate": 1, "block": 1 })
    );
    assert_eq!(totals["decisions"]["lease"], json!({ "allow": 1 }));
    let r = &totals["reservations"];
    assert_eq!(
        [&r["reserved_cents"], &r["captured_cents"], &r["released_cents"], &r["expired_cents"]],
        [&json!(800), &json!(200), &json!(400), &json!(0)],
        "{r}"
    );
    assert_eq!(
        r["events"],
        json!({ "reserved": 3, "pending_approval": 1, "captured": 1, "released": 1 })
    );
    assert_eq!(totals["approvals"], json!({ "pending": 1 }));
    assert_eq!(totals["leases"]["granted"], 1);
    assert_eq!(totals["leases"]["granted_cents"], 100);

    let by_decision = "/v1/spend-guard/usage/summary?group_by=decision";
    let (_, grouped) = api.call(Method::GET, by_decision, Some(OWNER_KEY), None).await;
    let keys: Vec<&str> =
        grouped["groups"].as_array().unwrap().iter().map(|g| g["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["allow", "block", "escalate"]);
    // An agent sees its own figures only; a window of more than 366 days is refused.
    let (_, own) =
        api.call(Method::GET, "/v1/spend-guard/usage/summary", Some(&child.key), None).await;
    assert_eq!(own["totals"]["decisions"], json!({}), "{own}");
    let wide = "/v1/spend-guard/usage/summary?from=2020-01-01T00:00:00Z&to=2026-01-01T00:00:00Z";
    let (status, _) = api.call(Method::GET, wide, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    drop(api);
    if let Some(url) = db {
        crate::support::databases::drop_postgres(&url).await;
    }
}

#[tokio::test]
async fn the_usage_summary_tallies_what_happened_on_sqlite() {
    the_usage_summary_tallies_what_happened(None).await;
}

#[tokio::test]
async fn the_usage_summary_tallies_what_happened_on_postgres() {
    let Some(url) = crate::support::databases::fresh_postgres().await else { return };
    the_usage_summary_tallies_what_happened(Some(url)).await;
}

/// Another account's owner and agents see none of this account's reservations and leases, and
/// cannot name its agents.
#[tokio::test]
async fn another_account_finds_nothing_of_this_one() {
    use crate::support::router::{Api, Client, other_account};
    let api = Api::start().await;
    let (other_owner, other_agent) = other_account(&api).await;
    let agent = api.agent("ours").await;
    let child = api.agent("our-child").await;
    let body = json!({ "amount_cents": 100, "action_type": "spend", "counterparty": "v" });
    let (status, hold) =
        api.call(Method::POST, "/v1/spend-guard/reservations", Some(&agent.key), Some(&body)).await;
    assert_eq!(status, StatusCode::CREATED, "{hold}");
    let lease =
        json!({ "parent_agent_id": agent.id, "child_agent_id": child.id, "amount_cents": 50 });
    let (_, lease) = api
        .call(Method::POST, "/v1/spend-guard/budget-leases", Some(OWNER_KEY), Some(&lease))
        .await;
    let hold_path = format!("/v1/spend-guard/reservations/{}", hold["id"].as_str().unwrap());
    let lease_release =
        format!("/v1/spend-guard/budget-leases/{}/release", lease["id"].as_str().unwrap());
    for key in [other_owner.as_str(), other_agent.key.as_str()] {
        for (method, path) in [
            (Method::GET, hold_path.clone()),
            (Method::POST, format!("{hold_path}/capture")),
            (Method::POST, format!("{hold_path}/release")),
            (Method::POST, lease_release.clone()),
        ] {
            let (status, body) = api.call(method.clone(), &path, Some(key), None).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}: {body}");
        }
    }
    // The other owner cannot spend, estimate or lease for our agents.
    let named = json!({ "agent_id": agent.id, "amount_cents": 1, "action_type": "spend", "counterparty": "v" });
    for path in ["/v1/spend-guard/reservations", "/v1/spend-guard/authorize"] {
        let (status, _) = api.call(Method::POST, path, Some(&other_owner), Some(&named)).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let theirs =
        json!({ "parent_agent_id": agent.id, "child_agent_id": other_agent.id, "amount_cents": 1 });
    let (status, _) = api
        .call(Method::POST, "/v1/spend-guard/budget-leases", Some(&other_owner), Some(&theirs))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, lists) =
        api.call(Method::GET, "/v1/spend-guard/reservations", Some(&other_owner), None).await;
    assert_eq!(lists["data"], json!([]));
    let (_, leases) =
        api.call(Method::GET, "/v1/spend-guard/budget-leases", Some(&other_owner), None).await;
    assert_eq!(leases["data"], json!([]));
    // Ours is untouched.
    let (_, still) = api.call(Method::GET, &hold_path, Some(&agent.key), None).await;
    assert_eq!(still["status"], "reserved");
}

/// Estimates price each kind (rounding up to the cent, prices from the request or the
/// policy's list) and refuse what a kind needs but lacks; a second lease to one child is
/// refused and changes nothing.
#[tokio::test]
async fn estimates_price_each_kind_and_refuse_what_they_lack() {
    use crate::support::router::{Api, Client};
    let api = Api::start().await;
    let agent = api.agent("estimator").await;
    let policy = json!({
        "rules": [{ "id": "daily", "type": "period_budget", "period": "day", "max_cents": 1_000,
                    "timezone": "UTC" }],
        "prices": { "tokens": { "m": { "input_per_million_cents": 300, "output_per_million_cents": 1_500 } },
                    "tools": { "search": 2 } },
    });
    let path = format!("/agents/{}/policies", agent.id);
    let (status, body) = api.call(Method::PUT, &path, Some(OWNER_KEY), Some(&policy)).await;
    assert!(status.is_success(), "{body}");
    let estimate = |body: Value| {
        let (api, key) = (&api, agent.key.clone());
        async move { api.call(Method::POST, "/v1/spend-guard/estimate", Some(&key), Some(&body)).await }
    };
    for (body, cents) in [
        (json!({ "kind": "payment", "amount_cents": 250 }), 250),
        (json!({ "kind": "token", "model": "m", "input_tokens": 1_000, "output_tokens": 1 }), 1),
        (
            json!({ "kind": "token", "input_tokens": 2_000_000, "input_price_per_million_cents": 7,
                 "output_price_per_million_cents": 0 }),
            14,
        ),
        (json!({ "kind": "tool", "tool": "search", "calls": 30 }), 60),
        (json!({ "kind": "agreement", "quantity": 100, "price_per_unit_cents": 10 }), 1_021),
    ] {
        let (status, answer) = estimate(body.clone()).await;
        assert_eq!(status, StatusCode::OK, "{body}: {answer}");
        assert_eq!(answer["amount_cents"], cents, "{body}: {answer}");
        assert_eq!(answer["budgets"][0]["remaining_cents"], 1_000);
    }
    let (_, over) = estimate(json!({ "kind": "delegated", "amount_cents": 1_001 })).await;
    assert_eq!(
        (over["fits"].as_bool(), over["budgets"][0]["remaining_after_cents"].as_i64()),
        (Some(false), Some(-1))
    );
    for (body, field) in [
        (json!({ "kind": "payment" }), "amount_cents"),
        (json!({ "kind": "payment", "amount_cents": 0 }), "amount_cents"),
        (
            json!({ "kind": "token", "model": "unknown", "input_tokens": 5 }),
            "input_price_per_million_cents",
        ),
        (json!({ "kind": "tool", "calls": 3 }), "unit_price_cents"),
        (json!({ "kind": "agreement", "quantity": 3 }), "price_per_unit_cents"),
    ] {
        let (status, refused) = estimate(body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {refused}");
        assert_eq!(refused["error"]["details"]["field"], field, "{body}: {refused}");
    }
    let (status, _) = estimate(json!({ "kind": "barter", "amount_cents": 1 })).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = estimate(json!({ "kind": "agreement", "agreement_id": "ua_nope" })).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // One active lease per child: the second is refused, and the parent's budget is unchanged.
    let child = api.agent("leased-once").await;
    let lease =
        json!({ "parent_agent_id": agent.id, "child_agent_id": child.id, "amount_cents": 100 });
    let leases = "/v1/spend-guard/budget-leases";
    let (status, first) = api.call(Method::POST, leases, Some(OWNER_KEY), Some(&lease)).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    let (status, refused) = api.call(Method::POST, leases, Some(OWNER_KEY), Some(&lease)).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("lease_exists"))
    );
    assert_eq!(refused["error"]["details"]["lease_id"], first["id"]);
    let (_, after) = estimate(json!({ "kind": "payment", "amount_cents": 1 })).await;
    assert_eq!(after["budgets"][0]["counted_cents"], 100);
    // Releasing twice answers the release again; capture and release refuse a lease's hold.
    let release = format!("{leases}/{}/release", first["id"].as_str().unwrap());
    let (status, _) = api.call(Method::POST, &release, Some(OWNER_KEY), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, again) = api.call(Method::POST, &release, Some(OWNER_KEY), None).await;
    assert_eq!((status, again["status"].as_str()), (StatusCode::OK, Some("released")));
    let hold = format!(
        "/v1/spend-guard/reservations/{}/capture",
        first["reservation_id"].as_str().unwrap()
    );
    let (status, refused) = api.call(Method::POST, &hold, Some(OWNER_KEY), None).await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("reservation_not_manual"))
    );
}
