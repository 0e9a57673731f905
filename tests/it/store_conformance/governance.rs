//! Governance rows on both engines: policy versions count up per agent, one decision wins an
//! approval however many race for it, expiry and revocation end only what is pending, the
//! audit log filters and pages and refuses every change, the decision lock reports the agent's
//! standing, and what an activation commits counts only while it can still spend.

use super::{Store, StoreError, accept, now, parties, propose};
use crate::support::databases::{drop_postgres, fresh_postgres, fresh_sqlite};
use pactum::agreement::ids::{AgreementId, ApprovalId};
use pactum::agreement::status::{ActivationStatus, AgreementStatus};
use pactum::governance::{AgentState, Policy, Request};
use pactum::store::governance::approvals::{self, Approval, ApprovalKind, ApprovalStatus};
use pactum::store::governance::audit::{
    self, Actor, AuditDecision, AuditEntry, AuditFilter, AuditKind,
};
use pactum::store::governance::{self as rows, Scope, checks, policies};
use pactum::store::outbox::EventType;
use pactum::store::{agents, agreements, outbox, webhooks};
use serde_json::json;

conformance!(
    policy_versions_count_up_per_agent,
    one_decision_wins_an_approval,
    expiry_and_revocation_end_only_pending_approvals,
    the_audit_log_filters_pages_and_refuses_changes,
    the_decision_lock_reports_standing_and_facts_count,
    awaiting_activations_move_once,
    checks_and_agent_events_round_trip,
);

fn approval(agent: &str, account: &str, subject: &str, expires_at: i64) -> Approval {
    Approval {
        id: ApprovalId::generate(),
        account_id: account.to_owned(),
        agent_id: agent.to_owned(),
        kind: ApprovalKind::Check,
        subject_id: subject.to_owned(),
        status: ApprovalStatus::Pending,
        action_type: "spend".into(),
        amount_cents: 1_021,
        currency: "USDC".into(),
        counterparty: Some("vendor".into()),
        reason_code: "escalation_threshold_exceeded".into(),
        violated_rule_id: Some("big".into()),
        message: "Spend of $10.21 exceeds the escalation threshold of $5.00.".into(),
        policy_version: Some(1),
        expires_at,
        decided_at: None,
        decision_reason: None,
        created_at: now(),
    }
}

async fn account_of(store: &Store, agent: &str) -> String {
    agents::get_agent(store.reader(), agent).await.unwrap().unwrap().account_id.to_string()
}

async fn insert(store: &Store, approval: &Approval) {
    let mut tx = store.begin().await.unwrap();
    approvals::insert(&mut tx, approval).await.unwrap();
    tx.commit().await.unwrap();
}

async fn policy_versions_count_up_per_agent(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let mut tx = store.begin().await.unwrap();
    let first =
        policies::write_next(&mut tx, buyer.as_str(), &json!({ "rules": [1] }), 10).await.unwrap();
    let second =
        policies::write_next(&mut tx, buyer.as_str(), &json!({ "rules": [2] }), 20).await.unwrap();
    let other =
        policies::write_next(&mut tx, seller.as_str(), &json!({ "rules": [] }), 30).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!((first.version, second.version, other.version), (1, 2, 1));
    assert_eq!(first.policy_id, second.policy_id);
    assert_ne!(first.policy_id, other.policy_id);
    let current = policies::current_read(store.reader(), buyer.as_str()).await.unwrap().unwrap();
    assert_eq!(current, second);
    let old = policies::version(store.reader(), buyer.as_str(), 1).await.unwrap().unwrap();
    assert_eq!(old.document, json!({ "rules": [1] }));
    assert!(policies::version(store.reader(), buyer.as_str(), 3).await.unwrap().is_none());
    assert!(policies::current_read(store.reader(), "agt_none").await.unwrap().is_none());

    // The decision lock names the version in force, in the same statement.
    let (unruled, _) = parties(store).await;
    let mut tx = store.begin().await.unwrap();
    let locked = rows::lock_agent_with_policy(&mut tx, buyer.as_str()).await.unwrap().unwrap();
    assert_eq!(locked.policy, Some((second.policy_id.to_string(), 2)));
    let locked = rows::lock_agent_with_policy(&mut tx, unruled.as_str()).await.unwrap().unwrap();
    assert_eq!((locked.state, locked.policy), (AgentState::Active, None));
    assert!(rows::lock_agent_with_policy(&mut tx, "agt_none").await.unwrap().is_none());
    assert_eq!(
        policies::version_in(&mut tx, buyer.as_str(), 1).await.unwrap().unwrap().document,
        json!({ "rules": [1] })
    );
}

async fn one_decision_wins_an_approval(store: &Store) {
    let (buyer, _) = parties(store).await;
    let account = account_of(store, buyer.as_str()).await;
    let pending = approval(buyer.as_str(), &account, "chk_1", now() + 3_600);
    insert(store, &pending).await;
    let racers = (0..20).map(|i| {
        let (store, id) = (store.clone(), pending.id.to_string());
        tokio::spawn(async move {
            let status =
                if i % 2 == 0 { ApprovalStatus::Approved } else { ApprovalStatus::Rejected };
            let mut tx = store.begin().await.unwrap();
            let decided =
                approvals::decide(&mut tx, &id, status, Some("race"), now()).await.unwrap();
            tx.commit().await.unwrap();
            decided
        })
    });
    let mut winners = Vec::new();
    for racer in racers {
        if let Some(decided) = racer.await.unwrap() {
            winners.push(decided);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let stored = approvals::get(store.reader(), pending.id.as_str()).await.unwrap().unwrap();
    assert_eq!(stored.status, winners[0].status);
    assert_eq!(stored.decision_reason.as_deref(), Some("race"));

    // Past its time, an approval cannot be decided even before the sweeper comes.
    let late = approval(buyer.as_str(), &account, "chk_2", now() - 1);
    insert(store, &late).await;
    let mut tx = store.begin().await.unwrap();
    let decided =
        approvals::decide(&mut tx, late.id.as_str(), ApprovalStatus::Approved, None, now()).await;
    assert!(decided.unwrap().is_none());
}

async fn expiry_and_revocation_end_only_pending_approvals(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let account = account_of(store, buyer.as_str()).await;
    let due = approval(buyer.as_str(), &account, "chk_due", 100);
    let later = approval(buyer.as_str(), &account, "chk_later", now() + 3_600);
    let mut decided = approval(buyer.as_str(), &account, "chk_done", 100);
    decided.status = ApprovalStatus::Approved;
    let sellers = approval(seller.as_str(), &account, "chk_seller", now() + 3_600);
    for a in [&due, &later, &decided, &sellers] {
        insert(store, a).await;
    }
    let mut tx = store.begin().await.unwrap();
    assert_eq!(rows::expire_due(&mut tx, 200, 100).await.unwrap(), 1);
    assert_eq!(rows::expire_due(&mut tx, 200, 100).await.unwrap(), 0, "expires once");
    let ended = approvals::end_pending_of_agent(&mut tx, buyer.as_str(), "agent_revoked", 300)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ended.iter().map(|a| &a.id).collect::<Vec<_>>(), [&later.id]);
    let status = |id: &ApprovalId| {
        let id = id.to_string();
        async move { approvals::get(store.reader(), &id).await.unwrap().unwrap().status }
    };
    assert_eq!(status(&due.id).await, ApprovalStatus::Expired);
    assert_eq!(status(&later.id).await, ApprovalStatus::Rejected);
    assert_eq!(status(&decided.id).await, ApprovalStatus::Approved);
    assert_eq!(status(&sellers.id).await, ApprovalStatus::Pending);
    let expired = audit::list(
        store.reader(),
        &account,
        &AuditFilter { decisions: vec![AuditDecision::Expired], ..AuditFilter::default() },
        10,
        None,
    )
    .await
    .unwrap();
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].actor, Actor::System);
    let page =
        approvals::list(store.reader(), &account, None, Some(ApprovalStatus::Pending), 10, None)
            .await
            .unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].agent_id, seller.as_str());
}

async fn the_audit_log_filters_pages_and_refuses_changes(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let account = account_of(store, buyer.as_str()).await;
    let mut tx = store.begin().await.unwrap();
    for (i, (agent, decision)) in [
        (&buyer, AuditDecision::Allow),
        (&buyer, AuditDecision::Block),
        (&seller, AuditDecision::Block),
        (&buyer, AuditDecision::Escalate),
        (&buyer, AuditDecision::Block),
    ]
    .into_iter()
    .enumerate()
    {
        let mut entry = AuditEntry::new(
            &account,
            Some(agent.as_str()),
            AuditKind::Check,
            decision,
            Actor::Agent,
            1_000 + i as i64 / 2,
        );
        entry.amount_cents = Some(u64::MAX >> 1);
        entry.detail = json!({ "n": i, "text": super::TRICKY });
        audit::append(&mut tx, &entry).await.unwrap();
    }
    tx.commit().await.unwrap();
    let buyer_blocks = AuditFilter {
        agent_id: Some(buyer.to_string()),
        decisions: vec![AuditDecision::Block],
        ..AuditFilter::default()
    };
    let found = audit::list(store.reader(), &account, &buyer_blocks, 10, None).await.unwrap();
    assert_eq!(found.iter().map(|e| e.detail["n"].as_u64().unwrap()).collect::<Vec<_>>(), [4, 1]);
    assert_eq!(found[0].amount_cents, Some(u64::MAX >> 1));
    assert_eq!(found[0].detail["text"], super::TRICKY);
    // Pages of two, newest first, neither repeating nor skipping rows of one second.
    let mut seen = Vec::new();
    let mut after: Option<(i64, String)> = None;
    loop {
        let page = audit::list(
            store.reader(),
            &account,
            &AuditFilter::default(),
            2,
            after.as_ref().map(|(at, id)| (*at, id.as_str())),
        )
        .await
        .unwrap();
        if page.is_empty() {
            break;
        }
        seen.extend(page.iter().map(|e| e.detail["n"].as_u64().unwrap()));
        let last = page.last().unwrap();
        after = Some((last.created_at, last.id.to_string()));
    }
    assert_eq!(seen, [4, 3, 2, 1, 0]);
    let window = AuditFilter { from: Some(1_001), to: Some(1_002), ..AuditFilter::default() };
    assert_eq!(audit::list(store.reader(), &account, &window, 10, None).await.unwrap().len(), 2);

    for statement in ["UPDATE audit_log SET decision = 'allow'", "DELETE FROM audit_log"] {
        let mut tx = store.begin().await.unwrap();
        assert!(sqlx::query(statement).execute(&mut *tx).await.is_err(), "{statement}");
    }
    let all =
        audit::list(store.reader(), &account, &AuditFilter::default(), 10, None).await.unwrap();
    assert_eq!(all.len(), 5);
}

async fn the_decision_lock_reports_standing_and_facts_count(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let account = account_of(store, buyer.as_str()).await;
    let mut tx = store.begin().await.unwrap();
    assert_eq!(rows::lock_agent(&mut tx, buyer.as_str()).await.unwrap(), Some(AgentState::Active));
    assert_eq!(rows::lock_agent(&mut tx, "agt_none").await.unwrap(), None);
    assert!(agents::set_halted(&mut tx, &buyer, true, Some("why"), now()).await.unwrap());
    assert!(!agents::set_halted(&mut tx, &buyer, true, Some("again"), now()).await.unwrap());
    assert_eq!(rows::lock_agent(&mut tx, buyer.as_str()).await.unwrap(), Some(AgentState::Halted));
    agents::revoke(&mut tx, &seller, now()).await.unwrap();
    assert_eq!(
        rows::lock_agent(&mut tx, seller.as_str()).await.unwrap(),
        Some(AgentState::Revoked)
    );
    tx.commit().await.unwrap();
    let halted = agents::get_agent(store.reader(), buyer.as_str()).await.unwrap().unwrap();
    assert_eq!((halted.halted, halted.halt_reason.as_deref()), (true, Some("why")));

    // Committed spend: queued or confirmed activations inside the window, not failed ones.
    let (buyer2, seller2) = parties(store).await;
    let at = 1_000_000;
    let mut ids = Vec::new();
    for (cents, committed_at) in [(500u64, at), (700, at + 10), (900, at - 10)] {
        let record = propose(store, &buyer2, &seller2, now()).await;
        accept(store, &record, u64::MAX >> 2).await;
        let mut tx = store.begin().await.unwrap();
        agreements::submit_activation(
            &mut tx,
            &record.id,
            AgreementStatus::Accepted,
            &json!({}),
            now(),
        )
        .await
        .unwrap();
        rows::commit_activation(
            &mut tx,
            record.id.as_str(),
            cents,
            committed_at,
            &rows::Bound::default(),
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
        ids.push(record.id);
    }
    let mut tx = store.begin().await.unwrap();
    assert_eq!(rows::committed_spend(&mut tx, buyer2.as_str(), at, at + 100).await.unwrap(), 1_200);
    agreements::activation_failed(&mut tx, &ids[1], "reverted", now()).await.unwrap();
    assert_eq!(rows::committed_spend(&mut tx, buyer2.as_str(), at, at + 100).await.unwrap(), 500);
    assert_eq!(rows::committed_spend(&mut tx, seller2.as_str(), 0, i64::MAX).await.unwrap(), 0);

    // Velocity and duplicates count counted rows of the same kind only.
    let policy = Policy::parse(&json!({
        "rules": [{ "id": "v", "type": "velocity", "max_actions": 5, "window_seconds": 60 }],
        "duplicate_window_seconds": 60,
    }))
    .unwrap();
    for (kind, counted, fingerprint) in [
        (AuditKind::Check, true, "fp"),
        (AuditKind::Check, false, "fp"),
        (AuditKind::Activation, true, "fp2"),
    ] {
        let mut entry = AuditEntry::new(
            &account,
            Some(buyer2.as_str()),
            kind,
            AuditDecision::Allow,
            Actor::Agent,
            5_000,
        );
        entry.counted = counted;
        entry.fingerprint = Some(fingerprint.into());
        audit::append(&mut tx, &entry).await.unwrap();
        if counted {
            let scope = Scope { agent_id: buyer2.as_str(), kind: kind.as_str() };
            rows::count_decisions(&mut tx, scope, 5_000, 1).await.unwrap();
        }
    }
    // Counts of one second add up.
    let checks = Scope { agent_id: buyer2.as_str(), kind: "check" };
    rows::count_decisions(&mut tx, checks, 4_000, 2).await.unwrap();
    rows::count_decisions(&mut tx, checks, 4_000, 3).await.unwrap();
    assert_eq!(rows::recent_decisions(&mut tx, checks, 4_000).await.unwrap(), 6);
    assert_eq!(rows::recent_decisions(&mut tx, checks, 4_001).await.unwrap(), 1);
    assert_eq!(rows::prune_counts(&mut tx, 4_500).await.unwrap(), 1);
    assert_eq!(rows::recent_decisions(&mut tx, checks, 0).await.unwrap(), 1);
    let request = Request {
        action_type: pactum::governance::ActionType::Spend,
        amount_cents: 1,
        counterparties: vec!["x".into()],
        categories: vec![],
        country: None,
        at: 5_030,
        metadata: Default::default(),
    };
    let scope = Scope { agent_id: buyer2.as_str(), kind: "check" };
    let facts =
        rows::facts(&mut tx, scope, &policy, &request, "fp", AgentState::Active).await.unwrap();
    assert_eq!(facts.recent_actions.get("v"), Some(&1));
    assert!(facts.duplicate);
    let facts =
        rows::facts(&mut tx, scope, &policy, &request, "fp2", AgentState::Active).await.unwrap();
    assert!(!facts.duplicate, "an activation's fingerprint is not a check's");
    let late = Request { at: 5_061, ..request };
    let facts =
        rows::facts(&mut tx, scope, &policy, &late, "fp", AgentState::Active).await.unwrap();
    assert_eq!((facts.recent_actions.get("v"), facts.duplicate), (Some(&0), false));

    // One read answers all three at once, as a batch of decisions asks.
    let window = rows::Window {
        spend: vec![(at - 100, at + 100), (at, at + 100)],
        counts_since: Some(0),
        seen: Some((5_000, vec!["fp".into(), "fp2".into(), "never".into()])),
    };
    let observed = rows::observe(&mut tx, buyer2.as_str(), &window).await.unwrap();
    assert_eq!(observed.spent(at - 100, at + 100).unwrap(), 1_400);
    assert_eq!(observed.spent(at, at + 100).unwrap(), 500);
    assert_eq!((observed.recent("check", 0), observed.recent("activation", 0)), (1, 1));
    assert_eq!(observed.last_seen("check", "fp"), Some(5_000));
    assert_eq!(observed.last_seen("activation", "fp2"), Some(5_000));
    assert_eq!(observed.last_seen("check", "fp2"), None);
    assert_eq!(observed.last_seen("check", "never"), None);
    let nothing = rows::observe(&mut tx, buyer2.as_str(), &rows::Window::default()).await.unwrap();
    assert_eq!(nothing, rows::Observed::default());
    assert!(store.checkpoint().await.is_ok(), "a checkpoint beside the writer never fails");
}

async fn awaiting_activations_move_once(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let record = propose(store, &buyer, &seller, now()).await;
    accept(store, &record, u64::MAX >> 2).await;
    let id: &AgreementId = &record.id;
    let signatures = json!({ "activation_signature": "0x01" });
    let mut tx = store.begin().await.unwrap();
    agreements::await_approval(&mut tx, id, AgreementStatus::Accepted, &signatures, now())
        .await
        .unwrap();
    let again =
        agreements::await_approval(&mut tx, id, AgreementStatus::Accepted, &signatures, now())
            .await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    let direct =
        agreements::submit_activation(&mut tx, id, AgreementStatus::Accepted, &signatures, now())
            .await;
    assert!(matches!(direct, Err(StoreError::Conflict)), "no direct activation while it waits");
    tx.commit().await.unwrap();
    let kept = agreements::activation_signatures(store.reader(), id.as_str()).await.unwrap();
    assert_eq!(kept, Some(signatures));
    let waiting = super::get(store, id).await;
    assert_eq!(
        (waiting.status, waiting.activation_status),
        (AgreementStatus::Accepted, ActivationStatus::AwaitingApproval)
    );
    let mut tx = store.begin().await.unwrap();
    assert!(agreements::approve_activation(&mut tx, id, now()).await.unwrap());
    assert!(!agreements::approve_activation(&mut tx, id, now()).await.unwrap());
    let ended =
        agreements::end_awaiting_approval(&mut tx, id, ActivationStatus::Rejected, "late", now());
    assert!(!ended.await.unwrap(), "an approved activation is no longer waiting");
    tx.commit().await.unwrap();
    let queued = super::get(store, id).await;
    assert_eq!(
        (queued.status, queued.activation_status),
        (AgreementStatus::Activating, ActivationStatus::Pending)
    );

    let other = propose(store, &buyer, &seller, now()).await;
    accept(store, &other, u64::MAX >> 2).await;
    let mut tx = store.begin().await.unwrap();
    agreements::await_approval(&mut tx, &other.id, AgreementStatus::Accepted, &json!({}), now())
        .await
        .unwrap();
    let ended = agreements::end_awaiting_approval(
        &mut tx,
        &other.id,
        ActivationStatus::Expired,
        "approval_expired",
        now(),
    );
    assert!(ended.await.unwrap());
    assert!(!agreements::approve_activation(&mut tx, &other.id, now()).await.unwrap());
    tx.commit().await.unwrap();
    let expired = super::get(store, &other.id).await;
    assert_eq!(
        (expired.status, expired.activation_status),
        (AgreementStatus::Accepted, ActivationStatus::Expired)
    );
}

async fn checks_and_agent_events_round_trip(store: &Store) {
    let (buyer, _) = parties(store).await;
    let account = account_of(store, buyer.as_str()).await;
    let response = json!({ "check_id": "chk_1", "message": super::TRICKY });
    let mut tx = store.begin().await.unwrap();
    checks::insert(&mut tx, "chk_1", &account, buyer.as_str(), &response, now()).await.unwrap();
    outbox::record_for_agent(
        &mut tx,
        buyer.as_str(),
        EventType::AgentHalted,
        &json!({ "halted": true }),
        now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let stored = checks::get(store.reader(), "chk_1").await.unwrap().unwrap();
    assert_eq!((stored.agent_id.as_str(), stored.response), (buyer.as_str(), response));
    assert!(checks::get(store.reader(), "chk_2").await.unwrap().is_none());
    let mut tx = store.begin().await.unwrap();
    let events = webhooks::undispatched(&mut tx, 10).await.unwrap();
    let agent_event = events.iter().find(|e| e.2 == "agent.halted").expect("the agent's event");
    assert_eq!((agent_event.1.as_deref(), agent_event.5.as_deref()), (None, Some(buyer.as_str())));
}
