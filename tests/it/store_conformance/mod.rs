//! One conformance suite for the store, run on both engines: every case is written once as
//! `async fn case(store: &Store)` and [`conformance!`] runs it on a fresh SQLite file
//! (`sqlite::case`) and on a fresh Postgres database (`postgres::case`) when
//! `PACTUM_TEST_DATABASE_URL` names a server (otherwise the Postgres half prints a skip note).
//!
//! The cases pin the contracts money and queues rely on: conditional status transitions (a
//! second, conflicting writer changes nothing), exclusive claims under concurrency (jobs,
//! nonces, webhook deliveries, execution tokens, idempotency keys), leases that lapse, stable
//! paging and event order, exact round trips of 256-bit amounts and of any text, and rollbacks
//! that leave nothing behind. They call the store's functions and check what they return, not
//! the SQL behind them.

use std::collections::{BTreeSet, HashSet};

use crate::support::databases::{drop_postgres, fresh_postgres, fresh_sqlite};
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use pactum::agreement::ids::{
    AgentId, AgreementId, Environment, ExecutionTokenId, JobId, MandateId, ReceiptId,
    SettlementActionId,
};
use pactum::agreement::settlement::{Action, Party};
use pactum::agreement::status::InfraFeeStatus;
use pactum::agreement::status::{ActivationStatus, AgreementStatus};
use pactum::agreement::terms::Terms;
use pactum::money::TokenAmount;
use pactum::receipts::{Receipt, ReceiptKind};
use pactum::store::agreements::{self, AgreementRecord, Proposal};
use pactum::store::attempts::{self, Attempt, AttemptStatus};
use pactum::store::chain::{self, Cursor};
use pactum::store::idempotency::{self, StoredResponse, Taken};
use pactum::store::jobs::{self, Job, JobKind, JobStatus, KIND_ACTIVATE, KIND_SELLER_CLAIM};
use pactum::store::outbox::EventType;
use pactum::store::settlement::{self, SettlementAction};
use pactum::store::signers::{self, Allocation};
use pactum::store::tokens::{self, ExecutionToken};
use pactum::store::webhooks::{self, AfterAttempt, Delivery, Endpoint};
use pactum::store::{Store, StoreError, agents, console, outbox, receipts};
use serde_json::json;

/// Declares each case once and runs it on both engines, each test on a database of its own.
/// A multi-threaded runtime, so that tasks racing for a row really run at the same time.
macro_rules! conformance {
    ($($case:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let store = super::Store::connect(&super::fresh_sqlite()).await.unwrap();
                    super::$case(&store).await;
                    store.close().await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let Some(url) = super::fresh_postgres().await else { return };
                    let store = super::Store::connect(&url).await.unwrap();
                    super::$case(&store).await;
                    store.close().await;
                    super::drop_postgres(&url).await;
                }
            )+
        }
    };
}

// Governance rows (policies, approvals, audit, the decision lock) are cases of their own file.
mod governance;
// Mandates: writes only while active, final revocation, and what each has spent.
mod mandates;
// Spend-guard holds and budget leases.
mod holds;
// Agents' registered wallets.
mod wallets;
// Self-registered agents and their claim codes.
mod registrations;
// Intents and the holds that follow them.
mod intents;
// Go/no-go runs and readiness samples.
mod gonogo;

conformance!(
    agreements_round_trip_and_page_newest_first,
    agreement_transitions_are_conditional,
    racing_transitions_have_one_winner,
    activation_outcomes_apply_once,
    usage_and_vouchers_only_move_forward,
    idempotency_keys_take_replay_and_expire,
    idempotency_key_taken_by_one_of_many,
    owner_account_made_once_by_racing_starts,
    the_watcher_position_moves_only_from_where_it_was_seen,
    jobs_are_claimed_oldest_first_and_leases_lapse,
    job_claims_are_exclusive_under_concurrency,
    a_claim_racing_an_open_claim_takes_the_next_job,
    claim_more_takes_a_batch_of_one_kind,
    handed_jobs_lease_by_id_and_batch_in_one_statement_each,
    requeued_jobs_wait_then_return,
    attempts_track_broadcast_replacement_and_mining,
    nonces_are_allocated_once_under_concurrency,
    settlement_actions_keep_amounts_and_digests,
    outbox_keeps_event_order,
    webhook_deliveries_claimed_by_one,
    a_delivery_claim_racing_an_open_claim_takes_the_next,
    webhook_leases_and_outcomes,
    an_attempt_in_flight_when_its_endpoint_retires_is_logged,
    receipts_are_stored_once_per_event,
    execution_token_binds_once,
    large_amounts_round_trip_exactly,
    any_text_round_trips,
    rollback_leaves_nothing_behind,
    keyed_agreements_carry_their_escrow_and_scope_by_account,
    console_reads_scope_by_account_and_count,
);

/// Text with everything that trips naive quoting or encoding: quotes, backslashes, LIKE
/// wildcards, SQL, placeholders, combining and right-to-left marks, emoji, CJK, whitespace.
const TRICKY: &str = "Ünïcødé ✓ 🚀 日本語 e\u{301} 'single' \"double\" `back` \\slash\\ %_* \
    '); DROP TABLE usage_agreements; -- $1 ? \u{202e}rtl\u{202c} tab\tnew\nline";

// ---------------------------------------------------------------------------------------------
// Set-up helpers
// ---------------------------------------------------------------------------------------------

fn now() -> i64 {
    pactum::store::now()
}

/// A buyer and a seller agent of one account.
pub(crate) async fn parties(store: &Store) -> (AgentId, AgentId) {
    let mut tx = store.begin().await.unwrap();
    let account =
        agents::ensure_account(&mut tx, "Conformance", "owner-key-hash", now()).await.unwrap();
    let mut ids = Vec::new();
    for name in ["buyer", "seller"] {
        let (agent, _key) =
            agents::new_agent(account.id.clone(), name, None, vec![], Environment::Test, now());
        agents::insert_agent(&mut tx, &agent, &format!("hash-{}", agent.id)).await.unwrap();
        ids.push(agent.id);
    }
    tx.commit().await.unwrap();
    let seller = ids.pop().unwrap();
    (ids.pop().unwrap(), seller)
}

fn proposal(buyer: &AgentId, seller: &AgentId) -> Proposal {
    Proposal {
        buyer_agent_id: buyer.clone(),
        seller_agent_id: seller.clone(),
        service_id: "svc_search".into(),
        quantity: 100,
        unit: "api_calls".into(),
        price_per_unit_cents: 10,
        payment_method: json!({ "type": "usdc_base" }),
        buyer_wallet: Address::repeat_byte(0xb1),
    }
}

/// Stores a proposal created at `created_at`.
pub(crate) async fn propose(
    store: &Store,
    buyer: &AgentId,
    seller: &AgentId,
    created_at: i64,
) -> AgreementRecord {
    let record = AgreementRecord::proposed(proposal(buyer, seller), created_at);
    let mut tx = store.begin().await.unwrap();
    agreements::insert(&mut tx, &record).await.unwrap();
    tx.commit().await.unwrap();
    record
}

fn terms(id: &AgreementId, activate_by: u64) -> Terms {
    Terms {
        buyer: Address::repeat_byte(0xb1),
        seller: Address::repeat_byte(0x5e),
        unit_price: TokenAmount::new(U256::from(100_000u64)),
        quantity: 100,
        infra_fee: TokenAmount::new(U256::from(100_000u64)),
        activate_by,
        expiry: activate_by + 86_400,
        close_window: 3600,
        salt: keccak256(id.as_str()),
        agreement_id: keccak256(format!("agreement-{id}")),
    }
}

/// Accepts `record` with a fee pending; returns its agreement key.
async fn accept(store: &Store, record: &AgreementRecord, activate_by: u64) -> B256 {
    let key = keccak256(record.id.as_str());
    let mut tx = store.begin().await.unwrap();
    let terms = terms(&record.id, activate_by);
    let seller = Address::repeat_byte(0x5e);
    agreements::accept(&mut tx, &record.id, seller, &terms, key, InfraFeeStatus::Pending, now())
        .await
        .unwrap();
    tx.commit().await.unwrap();
    key
}

async fn get(store: &Store, id: &AgreementId) -> AgreementRecord {
    agreements::get(store.reader(), id.as_str()).await.unwrap().expect("agreement stored")
}

fn job(kind: JobKind, agreement: Option<&AgreementId>) -> Job {
    Job {
        id: JobId::generate(),
        kind,
        agreement_id: agreement.cloned(),
        to: Address::repeat_byte(0xe5),
        calldata: Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]),
        status: JobStatus::Queued,
        error: None,
    }
}

/// Queues `jobs` with the given `created_at`s.
async fn enqueue(store: &Store, jobs: &[(&Job, i64)]) {
    let mut tx = store.begin().await.unwrap();
    for (job, at) in jobs {
        jobs::enqueue(&mut tx, job, *at).await.unwrap();
    }
    tx.commit().await.unwrap();
}

async fn claim_next(store: &Store, owner: &str, lease_until: i64, at: i64) -> Option<Job> {
    let mut tx = store.begin().await.unwrap();
    let job = jobs::claim_next(&mut tx, owner, lease_until, at).await.unwrap();
    tx.commit().await.unwrap();
    job
}

async fn job_status(store: &Store, id: &JobId) -> Job {
    jobs::get(store.reader(), id.as_str()).await.unwrap().expect("job stored")
}

fn attempt(job: &JobId, signer: Address, nonce: u64, fee: u128, tag: &str) -> Attempt {
    Attempt {
        tx_hash: keccak256(format!("{job}-{tag}")),
        job_id: job.clone(),
        signer,
        nonce,
        raw_tx: Bytes::from(tag.as_bytes().to_vec()),
        gas_limit: 210_000,
        max_fee_per_gas: fee,
        max_priority_fee_per_gas: fee / 10,
        status: AttemptStatus::Signed,
        block_number: None,
        block_hash: None,
        succeeded: None,
    }
}

/// The `kind` an [`event`] carries in its stored data.
fn kind_of(data: &str) -> String {
    let data: serde_json::Value = serde_json::from_str(data).unwrap();
    data["kind"].as_str().unwrap().to_owned()
}

/// An outbox event about `agreement`, committed; `kind` tells it apart in its data.
async fn event(store: &Store, agreement: Option<&AgreementId>, kind: &str, at: i64) -> String {
    let mut tx = store.begin().await.unwrap();
    let accepted = EventType::AgreementAccepted;
    let id =
        outbox::record(&mut tx, agreement, accepted, &json!({ "kind": kind }), at).await.unwrap();
    tx.commit().await.unwrap();
    id.0
}

fn endpoint(agent: &AgentId, status: &str) -> Endpoint {
    Endpoint {
        id: format!("whk_{}", JobId::generate().0.trim_start_matches("job_")),
        agent_id: agent.0.clone(),
        url: "https://example.test/hooks".into(),
        description: None,
        event_types: vec![],
        status: status.into(),
        status_reason: None,
        created_at: now(),
        updated_at: now(),
    }
}

/// An active webhook endpoint of a fresh agent, stored.
async fn stored_active_endpoint(store: &Store) -> Endpoint {
    let (agent, _) = parties(store).await;
    let hook = endpoint(&agent, webhooks::ACTIVE);
    let mut tx = store.begin().await.unwrap();
    webhooks::insert_endpoint(&mut tx, &hook, "whsec_test").await.unwrap();
    tx.commit().await.unwrap();
    hook
}

fn delivery(endpoint: &Endpoint, event_id: &str, due_ms: i64) -> Delivery {
    Delivery {
        id: format!("msg_{}", JobId::generate().0.trim_start_matches("job_")),
        endpoint_id: endpoint.id.clone(),
        agent_id: endpoint.agent_id.clone(),
        event_id: event_id.into(),
        event_type: "agreement.accepted".into(),
        payload: json!({ "event": event_id }).to_string(),
        status: webhooks::PENDING.into(),
        attempts: 0,
        round_attempts: 0,
        next_attempt_at_ms: Some(due_ms),
        last_status_code: None,
        last_error: None,
        created_at: now(),
        updated_at: now(),
        completed_at: None,
    }
}

async fn claim_due(
    store: &Store,
    now_ms: i64,
    until_ms: i64,
    token: &str,
    limit: i64,
) -> Vec<Delivery> {
    let mut tx = store.begin().await.unwrap();
    let claimed = webhooks::claim_due(&mut tx, now_ms, until_ms, token, limit).await.unwrap();
    tx.commit().await.unwrap();
    claimed
}

fn receipt(record: &AgreementRecord, tx_hash: B256, log_index: u64, amount: U256) -> Receipt {
    Receipt {
        id: ReceiptId::generate(),
        kind: ReceiptKind::Activation,
        agreement_id: record.id.clone(),
        agreement_key: keccak256(record.id.as_str()),
        buyer_agent_id: record.buyer_agent_id.clone(),
        seller_agent_id: record.seller_agent_id.clone(),
        buyer_wallet: Address::repeat_byte(0xb1),
        seller_wallet: Address::repeat_byte(0x5e),
        amount: TokenAmount::new(amount),
        infra_fee: TokenAmount::new(U256::from(u128::MAX) + U256::from(1u8)),
        token: Address::repeat_byte(0x05),
        escrow: Address::repeat_byte(0xe5),
        chain_id: 8453,
        tx_hash,
        block_number: 1_000 + log_index,
        block_hash: keccak256(format!("block-{log_index}")),
        log_index,
        issued_at: now(),
        signer: Address::repeat_byte(0x77),
        signature: Bytes::from(vec![0x1b; 65]),
    }
}

fn action(record: &AgreementRecord, job: &JobId, amount: U256, digest: B256) -> SettlementAction {
    let at = now();
    SettlementAction {
        id: SettlementActionId::generate(),
        agreement_id: record.id.clone(),
        action: Action::SellerClaim,
        party: Party::Seller,
        signer: Address::repeat_byte(0x5e),
        units: 40,
        amount: TokenAmount::new(amount),
        deadline: 1_900_000_000,
        authorization_digest: digest,
        authorization_signature: Bytes::from(vec![0x1c; 65]),
        job_id: job.clone(),
        status: settlement::PENDING,
        tx_hash: None,
        block_number: None,
        error: None,
        created_at: at,
        updated_at: at,
    }
}

// ---------------------------------------------------------------------------------------------
// Agreements
// ---------------------------------------------------------------------------------------------

/// An agreement reads back field for field; a party's list pages newest first by
/// `(created_at, id)`, so rows created in the same second are neither repeated nor skipped.
async fn agreements_round_trip_and_page_newest_first(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let (other_buyer, other_seller) = parties(store).await;
    let mut expected = Vec::new();
    for created_at in [1_000, 3_000, 2_000, 2_000, 2_000, 3_000, 1_000, 2_000] {
        expected.push(propose(store, &buyer, &seller, created_at).await);
    }
    // Someone else's agreement is in nobody's list here.
    propose(store, &other_buyer, &other_seller, 2_000).await;

    for record in &expected {
        assert_eq!(&get(store, &record.id).await, record);
    }
    assert!(agreements::get(store.reader(), "ua_missing").await.unwrap().is_none());

    expected.sort_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
    let want: Vec<_> = expected.iter().map(|r| r.id.clone()).collect();
    for agent in [&buyer, &seller] {
        let mut seen = Vec::new();
        let mut cursor: Option<(i64, String)> = None;
        loop {
            let after = cursor.as_ref().map(|(t, id)| (*t, id.as_str()));
            let page = agreements::list_for_agent(store.reader(), agent, 3, after).await.unwrap();
            assert!(page.len() <= 3);
            let Some(last) = page.last() else { break };
            cursor = Some((last.created_at, last.id.0.clone()));
            seen.extend(page.iter().map(|r| r.id.clone()));
        }
        assert_eq!(seen, want, "pages of {agent} newest first, no repeats, no gaps");
    }
    let one = agreements::list_for_agent(store.reader(), &other_buyer, 10, None).await.unwrap();
    assert_eq!(one.len(), 1);
}

/// Each transition names the status it expects: once a proposal is accepted (or rejected), a
/// second accept or a reject is refused with `Conflict` and changes nothing.
async fn agreement_transitions_are_conditional(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let record = propose(store, &buyer, &seller, now()).await;
    let key = accept(store, &record, 4_000_000_000).await;
    let accepted = get(store, &record.id).await;
    assert_eq!(accepted.status, AgreementStatus::Accepted);
    assert_eq!(accepted.agreement_key, Some(key));
    assert_eq!(accepted.terms, Some(terms(&record.id, 4_000_000_000)));
    assert_eq!(accepted.infra_fee_status, InfraFeeStatus::Pending);

    let mut tx = store.begin().await.unwrap();
    let again = agreements::accept(
        &mut tx,
        &record.id,
        Address::repeat_byte(0x99),
        &terms(&record.id, 1),
        B256::repeat_byte(9),
        InfraFeeStatus::None,
        now(),
    )
    .await;
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    let reject = agreements::reject(&mut tx, &record.id, Some("too late"), now()).await;
    assert!(matches!(reject, Err(StoreError::Conflict)), "{reject:?}");
    tx.commit().await.unwrap();
    assert_eq!(get(store, &record.id).await, accepted, "refused transitions change nothing");

    // Rejected first: accepting afterwards is refused.
    let other = propose(store, &buyer, &seller, now()).await;
    let mut tx = store.begin().await.unwrap();
    agreements::reject(&mut tx, &other.id, Some("no capacity"), now()).await.unwrap();
    let refused = agreements::accept(
        &mut tx,
        &other.id,
        Address::repeat_byte(0x5e),
        &terms(&other.id, 4_000_000_000),
        keccak256(other.id.as_str()),
        InfraFeeStatus::Pending,
        now(),
    )
    .await;
    assert!(matches!(refused, Err(StoreError::Conflict)), "{refused:?}");
    tx.commit().await.unwrap();
    let rejected = get(store, &other.id).await;
    assert_eq!(rejected.status, AgreementStatus::Rejected);
    assert_eq!(rejected.rejection_reason.as_deref(), Some("no capacity"));
    assert_eq!(rejected.agreement_key, None);

    // Submitting an activation names the status it comes from.
    let signatures = json!({ "activation": "0x01" });
    let mut tx = store.begin().await.unwrap();
    let wrong = agreements::submit_activation(
        &mut tx,
        &record.id,
        AgreementStatus::Proposed,
        &signatures,
        now(),
    )
    .await;
    assert!(matches!(wrong, Err(StoreError::Conflict)), "{wrong:?}");
    agreements::submit_activation(
        &mut tx,
        &record.id,
        AgreementStatus::Accepted,
        &signatures,
        now(),
    )
    .await
    .unwrap();
    let twice = agreements::submit_activation(
        &mut tx,
        &record.id,
        AgreementStatus::Accepted,
        &signatures,
        now(),
    )
    .await;
    assert!(matches!(twice, Err(StoreError::Conflict)), "{twice:?}");
    tx.commit().await.unwrap();
    let activating = get(store, &record.id).await;
    assert_eq!(activating.status, AgreementStatus::Activating);
    assert_eq!(activating.activation_status, ActivationStatus::Pending);

    // Only agreements accepted (or failed) past their deadline expire, and only once.
    let due = propose(store, &buyer, &seller, now()).await;
    accept(store, &due, 1_000).await;
    let mut tx = store.begin().await.unwrap();
    let expired = agreements::expire_due(&mut tx, 2_000).await.unwrap();
    assert_eq!(expired, vec![due.id.clone()], "the activating one and the far one stay");
    assert!(agreements::expire_due(&mut tx, 2_000).await.unwrap().is_empty());
    tx.commit().await.unwrap();
    assert_eq!(get(store, &due.id).await.status, AgreementStatus::Expired);
}

/// Many writers racing to move one proposal: exactly one accept or reject wins, and the
/// agreement ends in the winner's status.
async fn racing_transitions_have_one_winner(store: &Store) {
    let (buyer, seller) = parties(store).await;
    for round in 0..3 {
        let record = propose(store, &buyer, &seller, now()).await;
        let racers = (0..8).map(|i| {
            let store = store.clone();
            let id = record.id.clone();
            tokio::spawn(async move {
                let mut tx = store.begin().await.unwrap();
                let outcome = if (i + round) % 2 == 0 {
                    let terms = terms(&id, 4_000_000_000);
                    let key = keccak256(format!("{id}-{i}"));
                    let seller = Address::repeat_byte(0x5e);
                    agreements::accept(&mut tx, &id, seller, &terms, key, InfraFeeStatus::None, 1)
                        .await
                        .map(|()| AgreementStatus::Accepted)
                } else {
                    agreements::reject(&mut tx, &id, Some("racing"), 1)
                        .await
                        .map(|()| AgreementStatus::Rejected)
                };
                tx.commit().await.unwrap();
                outcome
            })
        });
        let mut winners = Vec::new();
        for racer in racers {
            match racer.await.unwrap() {
                Ok(status) => winners.push(status),
                Err(StoreError::Conflict) => {}
                Err(e) => panic!("unexpected error {e}"),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one transition wins: {winners:?}");
        assert_eq!(get(store, &record.id).await.status, winners[0]);
    }
}

/// The relayer's progress and the chain's outcome each apply to an activation in flight only:
/// once the escrow is confirmed active, late progress or a late failure changes nothing, and a
/// second confirmation is a no-op. A confirmation after a failure (the transaction mined after
/// all) wins.
async fn activation_outcomes_apply_once(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let record = propose(store, &buyer, &seller, now()).await;
    let key = accept(store, &record, 4_000_000_000).await;
    let signatures = json!({});
    let tx_hash = B256::repeat_byte(0xaa);
    let block = B256::repeat_byte(0xbb);

    let mut tx = store.begin().await.unwrap();
    agreements::submit_activation(&mut tx, &record.id, AgreementStatus::Accepted, &signatures, 1)
        .await
        .unwrap();
    assert!(
        agreements::activation_progress(&mut tx, &record.id, ActivationStatus::Submitting, None, 2)
            .await
            .unwrap()
    );
    assert!(
        agreements::activation_progress(
            &mut tx,
            &record.id,
            ActivationStatus::Submitted,
            Some(tx_hash),
            3
        )
        .await
        .unwrap()
    );
    // The same progress again (a transaction broadcast again) changes nothing and reports so;
    // without a hash it keeps the one recorded.
    assert!(
        !agreements::activation_progress(&mut tx, &record.id, ActivationStatus::Submitted, None, 4)
            .await
            .unwrap()
    );
    assert!(
        !agreements::activation_progress(
            &mut tx,
            &record.id,
            ActivationStatus::Submitted,
            Some(tx_hash),
            4
        )
        .await
        .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(get(store, &record.id).await.activation_tx_hash, Some(tx_hash));

    let mut tx = store.begin().await.unwrap();
    assert!(agreements::escrow_activated(&mut tx, key, tx_hash, 7, block, 5).await.unwrap());
    assert!(!agreements::escrow_activated(&mut tx, key, tx_hash, 7, block, 6).await.unwrap());
    let unknown = B256::repeat_byte(0x01);
    assert!(!agreements::escrow_activated(&mut tx, unknown, tx_hash, 7, block, 6).await.unwrap());
    assert!(
        !agreements::activation_progress(
            &mut tx,
            &record.id,
            ActivationStatus::Submitting,
            None,
            7
        )
        .await
        .unwrap()
    );
    assert!(!agreements::activation_failed(&mut tx, &record.id, "late", 8).await.unwrap());
    tx.commit().await.unwrap();
    let active = get(store, &record.id).await;
    assert_eq!(active.status, AgreementStatus::Active);
    assert_eq!(active.activation_status, ActivationStatus::Confirmed);
    assert_eq!(active.infra_fee_status, InfraFeeStatus::Collected);
    assert_eq!(active.activation_error, None);
    let escrow = active.escrow.expect("escrow seen");
    assert_eq!((escrow.block_number, escrow.block_hash, escrow.tx_hash), (7, block, Some(tx_hash)));

    // Failed, then mined after all: the confirmation wins.
    let late = propose(store, &buyer, &seller, now()).await;
    let late_key = accept(store, &late, 4_000_000_000).await;
    let mut tx = store.begin().await.unwrap();
    agreements::submit_activation(&mut tx, &late.id, AgreementStatus::Accepted, &signatures, 1)
        .await
        .unwrap();
    assert!(agreements::activation_failed(&mut tx, &late.id, "reverted", 2).await.unwrap());
    assert!(!agreements::activation_failed(&mut tx, &late.id, "again", 3).await.unwrap());
    tx.commit().await.unwrap();
    let failed = get(store, &late.id).await;
    assert_eq!(failed.status, AgreementStatus::Failed);
    assert_eq!(failed.activation_error.as_deref(), Some("reverted"));
    assert_eq!(failed.infra_fee_status, InfraFeeStatus::Failed);
    let mut tx = store.begin().await.unwrap();
    assert!(agreements::escrow_activated(&mut tx, late_key, tx_hash, 9, block, 4).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(get(store, &late.id).await.status, AgreementStatus::Active);
}

/// Recorded usage never passes the quantity, even with many sellers' requests racing; the kept
/// voucher only ever rises.
async fn usage_and_vouchers_only_move_forward(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let record = propose(store, &buyer, &seller, now()).await;
    let racers = (0..16).map(|_| {
        let store = store.clone();
        let id = record.id.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let total = agreements::record_usage(&mut tx, &id, 10, now()).await;
            tx.commit().await.unwrap();
            total
        })
    });
    let mut totals = Vec::new();
    let mut refused = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(total) => totals.push(total),
            Err(StoreError::Conflict) => refused += 1,
            Err(e) => panic!("unexpected error {e}"),
        }
    }
    totals.sort_unstable();
    assert_eq!(totals, (1..=10).map(|n| n * 10).collect::<Vec<u64>>(), "each total once");
    assert_eq!(refused, 6);
    assert_eq!(get(store, &record.id).await.usage_units, 100);

    let mut tx = store.begin().await.unwrap();
    let sig = |b: u8| Bytes::from(vec![b; 65]);
    assert!(agreements::keep_voucher(&mut tx, &record.id, 40, &sig(1), 1).await.unwrap());
    assert!(!agreements::keep_voucher(&mut tx, &record.id, 40, &sig(2), 2).await.unwrap());
    assert!(!agreements::keep_voucher(&mut tx, &record.id, 30, &sig(3), 3).await.unwrap());
    assert!(agreements::keep_voucher(&mut tx, &record.id, 60, &sig(4), 4).await.unwrap());
    tx.commit().await.unwrap();
    let kept = get(store, &record.id).await;
    assert_eq!((kept.voucher_units, kept.voucher_signature), (60, Some(sig(4))));
}

// ---------------------------------------------------------------------------------------------
// Idempotency keys
// ---------------------------------------------------------------------------------------------

async fn take(store: &Store, scope: &str, key: &str, hash: &str, lease: &str, at: i64) -> Taken {
    let mut tx = store.begin().await.unwrap();
    let taken = idempotency::take(&mut tx, scope, key, hash, lease, at, at + 30, at - 86_400)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    taken
}

/// A key is taken once (a second request sees it in flight), completed only under its lease,
/// then replayed; keys are exact (case and spaces count) and scoped; a lapsed lease or an
/// expired response frees the key.
async fn idempotency_keys_take_replay_and_expire(store: &Store) {
    let t = 1_000_000;
    let (scope, key) = ("agt_1", "Key-1 ✓");
    assert_eq!(take(store, scope, key, "h1", "lease-a", t).await, Taken::Ours);
    let busy = take(store, scope, key, "h2", "lease-b", t + 1).await;
    assert_eq!(busy, Taken::InFlight { request_hash: "h1".into() });
    for (other_scope, other_key) in [(scope, "key-1 ✓"), (scope, "Key-1 ✓ "), ("agt_2", key)] {
        assert_eq!(take(store, other_scope, other_key, "h", "l", t).await, Taken::Ours);
    }

    let response = StoredResponse {
        request_hash: "h1".into(),
        status: 202,
        body: json!({ "id": "ua_1", "amount": "115792089237316195423570985008687907853269984665640564039457584007913129639935" }),
    };
    let mut tx = store.begin().await.unwrap();
    assert!(!idempotency::complete(&mut tx, scope, key, "lease-b", &response).await.unwrap());
    assert!(idempotency::complete(&mut tx, scope, key, "lease-a", &response).await.unwrap());
    assert!(!idempotency::complete(&mut tx, scope, key, "lease-a", &response).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(
        take(store, scope, key, "h9", "lease-c", t + 2).await,
        Taken::Completed(response.clone())
    );
    // A completed key is not released by a late `release`.
    let mut tx = store.begin().await.unwrap();
    idempotency::release(&mut tx, scope, key, "lease-a").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(take(store, scope, key, "h9", "lease-c", t + 3).await, Taken::Completed(response));

    // Released by its holder: forgotten. Released by someone else: kept.
    let key2 = "k2";
    assert_eq!(take(store, scope, key2, "h", "mine", t).await, Taken::Ours);
    let mut tx = store.begin().await.unwrap();
    idempotency::release(&mut tx, scope, key2, "not-mine").await.unwrap();
    tx.commit().await.unwrap();
    assert!(matches!(take(store, scope, key2, "h", "x", t).await, Taken::InFlight { .. }));
    let mut tx = store.begin().await.unwrap();
    idempotency::release(&mut tx, scope, key2, "mine").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(take(store, scope, key2, "h", "again", t).await, Taken::Ours);

    // The holder died: its lease (t + 30) lapses and the next request takes the key; the old
    // holder can no longer complete it.
    let key3 = "k3";
    assert_eq!(take(store, scope, key3, "h", "dead", t).await, Taken::Ours);
    assert!(matches!(take(store, scope, key3, "h", "x", t + 30).await, Taken::InFlight { .. }));
    assert_eq!(take(store, scope, key3, "h", "successor", t + 31).await, Taken::Ours);
    let mut tx = store.begin().await.unwrap();
    let ok = StoredResponse { request_hash: "h".into(), status: 200, body: json!({}) };
    assert!(!idempotency::complete(&mut tx, scope, key3, "dead", &ok).await.unwrap());
    assert!(idempotency::complete(&mut tx, scope, key3, "successor", &ok).await.unwrap());
    tx.commit().await.unwrap();

    // A stored response older than the retention window is forgotten; purge counts what it
    // deletes.
    let later = t + 86_400 + 100;
    assert_eq!(take(store, scope, key3, "new", "fresh", later).await, Taken::Ours);
    let mut tx = store.begin().await.unwrap();
    let purged = idempotency::purge_expired(&mut tx, t + 100).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(purged, 5, "every key but the fresh one was taken at t..t+31");
    assert!(matches!(take(store, scope, key3, "new", "x", later).await, Taken::InFlight { .. }));
    assert_eq!(take(store, scope, key, "h", "y", later).await, Taken::Ours);
}

/// Concurrent requests with one key: exactly one takes it, every other sees it in flight.
async fn idempotency_key_taken_by_one_of_many(store: &Store) {
    for round in 0..3 {
        let key = format!("race-{round}");
        let racers = (0..8).map(|i| {
            let store = store.clone();
            let key = key.clone();
            tokio::spawn(async move {
                take(&store, "scope", &key, "hash", &format!("lease-{i}"), 1_000_000).await
            })
        });
        let mut ours = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Taken::Ours => ours += 1,
                Taken::InFlight { request_hash } => assert_eq!(request_hash, "hash"),
                Taken::Completed(c) => panic!("nothing completed it: {c:?}"),
            }
        }
        assert_eq!(ours, 1, "one request holds the key");
    }
}

/// Instances starting at once on one database each make sure the operator's owner account
/// exists, each in its own transaction: while the first has made it but not yet committed, the
/// second waits for it and gets the same account (not a duplicate-key error).
async fn owner_account_made_once_by_racing_starts(store: &Store) {
    let mut first = store.begin().await.unwrap();
    let made = agents::ensure_account(&mut first, "operator", "owner-hash", now()).await.unwrap();
    let second = {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let account = agents::ensure_account(&mut tx, "operator", "owner-hash", now()).await;
            tx.commit().await.unwrap();
            account
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    first.commit().await.unwrap();
    let got = second.await.unwrap().expect("the second start gets the account");
    assert_eq!(got.id, made.id);
    let stored: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts WHERE owner_key_hash = $1")
        .bind("owner-hash")
        .fetch_one(store.reader())
        .await
        .unwrap();
    assert_eq!(stored, 1);
}

/// The watcher's position moves only from where the mover last saw it, so of two watchers
/// recording the same block (or rolling back the same reorganisation) exactly one does.
async fn the_watcher_position_moves_only_from_where_it_was_seen(store: &Store) {
    let at = |n: u64| Cursor {
        block_number: n,
        block_hash: keccak256(n.to_be_bytes()),
        head_number: n + 2,
        head_timestamp: 1_000 + n,
    };
    let seen = |c: Cursor| Some((c.block_number, c.block_hash));
    let step = |expected: Option<(u64, B256)>, to: Cursor| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let moved = chain::move_cursor(&mut tx, expected, &to, now()).await.unwrap();
            tx.commit().await.unwrap();
            moved
        }
    };
    assert!(step(None, at(10)).await, "the first position is written");
    assert!(!step(None, at(11)).await, "a second first position is not");
    assert!(step(seen(at(10)), at(11)).await);
    assert!(!step(seen(at(10)), at(11)).await, "the same step twice moves once");
    let other_hash = Some((11, keccak256(b"another chain")));
    assert!(!step(other_hash, at(12)).await, "same height, another hash");
    assert!(step(seen(at(11)), at(9)).await, "a rollback moves it down");
    assert_eq!(chain::cursor(store.reader()).await.unwrap(), Some(at(9)));
}

// ---------------------------------------------------------------------------------------------
// Relayer jobs and attempts
// ---------------------------------------------------------------------------------------------

/// The oldest queued job goes first; a leased job is not handed out again until its lease
/// lapses; a job no longer queued is never handed out.
async fn jobs_are_claimed_oldest_first_and_leases_lapse(store: &Store) {
    let t = 1_000_000;
    let (old, mid, new) =
        (job(KIND_ACTIVATE, None), job(KIND_ACTIVATE, None), job(KIND_ACTIVATE, None));
    enqueue(store, &[(&new, t + 2), (&old, t), (&mid, t + 1)]).await;
    assert_eq!(job_status(store, &old.id).await, old, "a job reads back as queued");
    let mut tx = store.begin().await.unwrap();
    assert_eq!(jobs::queued_at(&mut tx, &mid.id).await.unwrap(), Some(t + 1));
    assert_eq!(jobs::queued_at(&mut tx, &JobId("job_missing".into())).await.unwrap(), None);
    tx.commit().await.unwrap();

    let first = claim_next(store, "w1", t + 60, t).await.unwrap();
    assert_eq!(first.id, old.id);
    let second = claim_next(store, "w2", t + 60, t).await.unwrap();
    assert_eq!(second.id, mid.id);
    // The newest is failed meanwhile: nothing is left to claim.
    let mut tx = store.begin().await.unwrap();
    jobs::set_job_status(&mut tx, &new.id, JobStatus::Failed, Some("simulation reverted"), t)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(claim_next(store, "w3", t + 60, t + 59).await, None);
    assert_eq!(claim_next(store, "w3", t + 60, t + 60).await, None, "a lease holds until it ends");
    let failed = job_status(store, &new.id).await;
    assert_eq!(
        (failed.status.as_str(), failed.error.as_deref()),
        ("failed", Some("simulation reverted"))
    );

    // Both leases lapse: the successor gets them back, oldest first.
    let again = claim_next(store, "successor", t + 1_000, t + 61).await.unwrap();
    assert_eq!(again.id, old.id);
    let again = claim_next(store, "successor", t + 1_000, t + 61).await.unwrap();
    assert_eq!(again.id, mid.id);

    // A job stored already leased (a batch being sent) is not claimable until its lease ends.
    let leased = job(KIND_ACTIVATE, None);
    let mut tx = store.begin().await.unwrap();
    jobs::enqueue_leased(&mut tx, &leased, "batcher", t + 500, t).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(claim_next(store, "w4", t + 600, t + 300).await, None);
    assert_eq!(claim_next(store, "w4", t + 600, t + 501).await.map(|j| j.id), Some(leased.id));
}

/// Workers racing for a queue of jobs (each claim its own transaction) get distinct jobs, and
/// every job is claimed once; afterwards an expired lease frees a job again.
async fn job_claims_are_exclusive_under_concurrency(store: &Store) {
    let t = now();
    let queued: Vec<Job> = (0..60).map(|_| job(KIND_ACTIVATE, None)).collect();
    enqueue(store, &queued.iter().map(|j| (j, t)).collect::<Vec<_>>()).await;
    let queued: HashSet<JobId> = queued.into_iter().map(|j| j.id).collect();

    let workers = (0..6).map(|worker| {
        let store = store.clone();
        tokio::spawn(async move {
            let owner = format!("worker-{worker}");
            let (mut mine, mut empty_while_free) = (Vec::new(), 0);
            loop {
                if let Some(job) = claim_next(&store, &owner, t + 60, t).await {
                    mine.push(job.id);
                    continue;
                }
                // No lease lapses in this test, so a job claimed right after an empty answer
                // was free during it: the queue answered "empty" while it was not.
                match claim_next(&store, &owner, t + 60, t).await {
                    Some(job) => {
                        mine.push(job.id);
                        empty_while_free += 1;
                    }
                    None => return (mine, empty_while_free),
                }
            }
        })
    });
    let mut claimed = Vec::new();
    let mut empty_while_free = 0;
    for worker in workers {
        let (mine, spurious) = worker.await.unwrap();
        claimed.extend(mine);
        empty_while_free += spurious;
    }
    eprintln!("claim_next answered empty while jobs were free: {empty_while_free} times");
    let distinct: HashSet<JobId> = claimed.iter().cloned().collect();
    assert_eq!(claimed.len(), distinct.len(), "a job was claimed twice");
    assert_eq!(distinct, queued, "every job claimed (none left while a worker saw an empty queue)");

    let later = t + 120;
    let again = claim_next(store, "successor", later + 60, later).await;
    assert!(again.is_some_and(|job| queued.contains(&job.id)));
}

/// A claim made while another instance's claim is still uncommitted waits for it (on Postgres
/// for the row, on SQLite for the writer) and then takes the next free job: it never answers
/// "nothing queued" because it lost the race for the oldest one.
async fn a_claim_racing_an_open_claim_takes_the_next_job(store: &Store) {
    let t = 1_000_000;
    let (first, second) = (job(KIND_ACTIVATE, None), job(KIND_ACTIVATE, None));
    enqueue(store, &[(&first, t), (&second, t + 1)]).await;
    let mut holder = store.begin().await.unwrap();
    let held = jobs::claim_next(&mut holder, "holder", t + 60, t).await.unwrap();
    assert_eq!(held.map(|j| j.id), Some(first.id));
    let racer = tokio::spawn({
        let store = store.clone();
        async move { claim_next(&store, "racer", t + 60, t).await }
    });
    // Gives the racer's claim time to reach the database and wait behind the holder's; if it
    // has not yet, the case still passes (it only checks less).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    holder.commit().await.unwrap();
    let got = racer.await.unwrap();
    assert_eq!(got.map(|j| j.id), Some(second.id), "claim_next answered None while a job was free");
}

/// `claim_more` leases queued jobs of one kind, oldest first, up to the limit, skipping jobs
/// leased to others; racing batchers never share a job.
async fn claim_more_takes_a_batch_of_one_kind(store: &Store) {
    let t = 1_000_000;
    let claims: Vec<Job> = (0..12).map(|_| job(KIND_SELLER_CLAIM, None)).collect();
    let activation = job(KIND_ACTIVATE, None);
    let mut rows: Vec<(&Job, i64)> =
        claims.iter().enumerate().map(|(i, j)| (j, t + i as i64)).collect();
    rows.push((&activation, t - 1));
    enqueue(store, &rows).await;

    let first = claim_next(store, "w1", t + 60, t).await.unwrap();
    assert_eq!(first.id, activation.id, "the oldest job of any kind");
    let mut tx = store.begin().await.unwrap();
    assert!(
        jobs::claim_more(&mut tx, KIND_SELLER_CLAIM, "w1", t + 60, t, 0).await.unwrap().is_empty()
    );
    let batch = jobs::claim_more(&mut tx, KIND_SELLER_CLAIM, "w1", t + 60, t, 4).await.unwrap();
    tx.commit().await.unwrap();
    let ids: Vec<_> = batch.iter().map(|j| j.id.clone()).collect();
    assert_eq!(ids, claims[..4].iter().map(|j| j.id.clone()).collect::<Vec<_>>());
    assert!(batch.iter().all(|j| j.kind == KIND_SELLER_CLAIM));

    let racers = (0..4).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let owner = format!("batcher-{i}");
            let got = jobs::claim_more(&mut tx, KIND_SELLER_CLAIM, &owner, t + 60, t, 3).await;
            tx.commit().await.unwrap();
            got.unwrap()
        })
    });
    let mut taken = Vec::new();
    for racer in racers {
        taken.extend(racer.await.unwrap().into_iter().map(|j| j.id));
    }
    let distinct: HashSet<_> = taken.iter().cloned().collect();
    assert_eq!(distinct.len(), taken.len(), "a job went into two batches");
    assert!(distinct.len() <= 8);
    assert!(!distinct.iter().any(|id| ids.contains(id)), "leased jobs are skipped");
    // Whatever the racers left is still claimable by one more call.
    let mut tx = store.begin().await.unwrap();
    let rest = jobs::claim_more(&mut tx, KIND_SELLER_CLAIM, "last", t + 60, t, 20).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(distinct.len() + rest.len(), 8, "every seller claim leased exactly once");
}

/// Jobs handed over by the API are leased by id (only those still queued and free, each with
/// when it was queued), exclusively under concurrency; a batch holds, marks and moves all its
/// members at once, and refuses to hold when one lease was lost.
async fn handed_jobs_lease_by_id_and_batch_in_one_statement_each(store: &Store) {
    let t = 1_000_000;
    let claims: Vec<Job> = (0..6).map(|_| job(KIND_SELLER_CLAIM, None)).collect();
    let rows: Vec<(&Job, i64)> =
        claims.iter().enumerate().map(|(i, j)| (j, t + i as i64)).collect();
    enqueue(store, &rows).await;
    let ids: Vec<JobId> = claims.iter().map(|j| j.id.clone()).collect();

    // One is taken by the poll first; another is failed: the rest lease, in id order.
    let polled = claim_next(store, "poller", t + 60, t).await.unwrap();
    assert_eq!(polled.id, ids[0]);
    let mut tx = store.begin().await.unwrap();
    jobs::set_job_status(&mut tx, &ids[1], JobStatus::Failed, Some("refused"), t).await.unwrap();
    let missing = JobId("job_never_queued".into());
    let mut wanted = ids.clone();
    wanted.push(missing);
    let leased = jobs::lease_ids(&mut tx, &wanted, "w1", t + 60, t + 10).await.unwrap();
    tx.commit().await.unwrap();
    let got: Vec<_> = leased.iter().map(|(j, _)| j.id.clone()).collect();
    let mut expected = ids[2..].to_vec();
    expected.sort();
    assert_eq!(got, expected);
    let queued: Vec<i64> = leased.iter().map(|(_, at)| *at).collect();
    assert!(queued.iter().all(|at| (t + 2..=t + 5).contains(at)), "{queued:?}");
    let mut tx = store.begin().await.unwrap();
    assert!(jobs::lease_ids(&mut tx, &ids, "w2", t + 60, t + 11).await.unwrap().is_empty());
    assert!(jobs::lease_ids(&mut tx, &[], "w2", t + 60, t + 11).await.unwrap().is_empty());
    tx.commit().await.unwrap();

    // Racing leases by id of the same ids: each job goes to one owner.
    let fresh: Vec<Job> = (0..8).map(|_| job(KIND_SELLER_CLAIM, None)).collect();
    enqueue(store, &fresh.iter().map(|j| (j, t)).collect::<Vec<_>>()).await;
    let fresh_ids: Vec<JobId> = fresh.iter().map(|j| j.id.clone()).collect();
    let racers = (0..4).map(|i| {
        let (store, ids) = (store.clone(), fresh_ids.clone());
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let got = jobs::lease_ids(&mut tx, &ids, &format!("racer-{i}"), t + 60, t).await;
            tx.commit().await.unwrap();
            got.unwrap().into_iter().map(|(j, _)| j.id).collect::<Vec<_>>()
        })
    });
    let mut taken = Vec::new();
    for racer in racers {
        taken.extend(racer.await.unwrap());
    }
    let distinct: HashSet<_> = taken.iter().cloned().collect();
    assert_eq!((distinct.len(), taken.len()), (8, 8), "each job leased exactly once");

    // A batch of w1's leases: held, marked and moved together.
    let members = expected.clone();
    let mut tx = store.begin().await.unwrap();
    assert!(signers::hold_all(&mut tx, &members, "w1").await.unwrap());
    assert!(signers::hold_all(&mut tx, &[], "w1").await.unwrap());
    let mut with_foreign = members.clone();
    with_foreign.push(ids[0].clone());
    assert!(!signers::hold_all(&mut tx, &with_foreign, "w1").await.unwrap(), "one is the poller's");
    jobs::set_status_of_all(&mut tx, &members, JobStatus::Batched, t + 12).await.unwrap();
    tx.commit().await.unwrap();
    for id in &members {
        assert_eq!(job_status(store, id).await.status, JobStatus::Batched);
    }
    assert_eq!(job_status(store, &ids[0]).await.status, JobStatus::Queued, "others untouched");
    let mut tx = store.begin().await.unwrap();
    assert!(
        !signers::hold_all(&mut tx, &members, "w1").await.unwrap(),
        "batched, no longer queued"
    );
    tx.commit().await.unwrap();
}

/// A job waiting for fees goes back to the queue with its reason shown on the job and on the
/// activation it carries, is not claimable until its wait ends, and the reason clears when an
/// attempt is recorded.
async fn requeued_jobs_wait_then_return(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let record = propose(store, &buyer, &seller, now()).await;
    accept(store, &record, 4_000_000_000).await;
    let t = 1_000_000;
    let activation = job(KIND_ACTIVATE, Some(&record.id));
    let mut tx = store.begin().await.unwrap();
    agreements::submit_activation(&mut tx, &record.id, AgreementStatus::Accepted, &json!({}), t)
        .await
        .unwrap();
    jobs::enqueue(&mut tx, &activation, t).await.unwrap();
    tx.commit().await.unwrap();

    let claimed = claim_next(store, "w1", t + 60, t).await.unwrap();
    assert_eq!(claimed.id, activation.id);
    let reason = format!("{}: base fee above the cap", jobs::WAITING_FOR_FEES);
    let mut tx = store.begin().await.unwrap();
    jobs::requeue_waiting(&mut tx, &activation.id, &reason, t + 30, t + 1).await.unwrap();
    tx.commit().await.unwrap();
    let waiting = job_status(store, &activation.id).await;
    assert_eq!(
        (waiting.status.as_str(), waiting.error.as_deref()),
        ("queued", Some(reason.as_str()))
    );
    assert_eq!(get(store, &record.id).await.activation_error.as_deref(), Some(reason.as_str()));
    assert_eq!(claim_next(store, "w2", t + 90, t + 30).await, None, "still waiting");
    let back = claim_next(store, "w2", t + 90, t + 31).await.unwrap();
    assert_eq!(back.id, activation.id);

    // Signed at last: the waiting note is cleared from the activation.
    let signer = Address::repeat_byte(0x51);
    let mut tx = store.begin().await.unwrap();
    attempts::record_attempt(&mut tx, &attempt(&activation.id, signer, 0, 100, "a"), t + 32)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(job_status(store, &activation.id).await.status, "signed");
    assert_eq!(get(store, &record.id).await.activation_error, None);
}

/// An attempt is saved `signed`, then `broadcast`; a replacement marks the old one `replaced`
/// (still watched); when either mines, its siblings are `replaced` and the job `mined`; a
/// replacement after that is refused; confirmation is recorded once.
async fn attempts_track_broadcast_replacement_and_mining(store: &Store) {
    let t = 1_000_000;
    let signer = Address::repeat_byte(0x51);
    let carried = job(KIND_ACTIVATE, None);
    enqueue(store, &[(&carried, t)]).await;
    claim_next(store, "w1", t + 60, t).await.unwrap();
    let first = attempt(&carried.id, signer, 7, 1_000, "first");
    let mut tx = store.begin().await.unwrap();
    attempts::record_attempt(&mut tx, &first, t).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(job_status(store, &carried.id).await.status, "signed");
    assert_eq!(attempts::live_attempts(store.reader()).await.unwrap(), vec![first.clone()]);

    let mut tx = store.begin().await.unwrap();
    attempts::attempt_broadcast(&mut tx, &first, t + 1).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(job_status(store, &carried.id).await.status, "broadcast");

    // Replaced with higher fees: both are watched, only the new one is live.
    let second = attempt(&carried.id, signer, 7, 2_000, "second");
    let mut tx = store.begin().await.unwrap();
    assert!(signers::replace(&mut tx, &second, &first, t + 2).await.unwrap());
    tx.commit().await.unwrap();
    let statuses = |attempts: Vec<Attempt>| -> Vec<(B256, String)> {
        attempts.into_iter().map(|a| (a.tx_hash, a.status.to_string())).collect()
    };
    let history = attempts::attempts_of_job(store.reader(), &carried.id).await.unwrap();
    assert_eq!(
        statuses(history),
        vec![(first.tx_hash, "replaced".into()), (second.tx_hash, "signed".into())]
    );
    let watched = attempts::attempts_watched(store.reader()).await.unwrap();
    let watched: BTreeSet<B256> = watched.into_iter().map(|a| a.tx_hash).collect();
    assert_eq!(watched, BTreeSet::from([first.tx_hash, second.tx_hash]));
    let live = attempts::live_attempts(store.reader()).await.unwrap();
    assert_eq!(live.iter().map(|a| a.tx_hash).collect::<Vec<_>>(), vec![second.tx_hash]);

    // The replacement is refused by the node: the first is live again.
    let third = attempt(&carried.id, signer, 7, 3_000, "third");
    let mut tx = store.begin().await.unwrap();
    assert!(signers::replace(&mut tx, &third, &second, t + 3).await.unwrap());
    attempts::replacement_refused(&mut tx, &third, &second).await.unwrap();
    tx.commit().await.unwrap();
    let failed = attempts::attempts_in(store.reader(), &[AttemptStatus::Failed]).await.unwrap();
    assert_eq!(failed.iter().map(|a| a.tx_hash).collect::<Vec<_>>(), vec![third.tx_hash]);

    // The old, replaced attempt is the one that mines.
    let block = B256::repeat_byte(0xbb);
    let mut tx = store.begin().await.unwrap();
    attempts::attempt_mined(&mut tx, first.tx_hash, 42, block, true, t + 4).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(job_status(store, &carried.id).await.status, "mined");
    let history = attempts::attempts_of_job(store.reader(), &carried.id).await.unwrap();
    let mined = history.iter().find(|a| a.tx_hash == first.tx_hash).unwrap();
    assert_eq!(
        (mined.status.as_str(), mined.block_number, mined.block_hash, mined.succeeded),
        ("mined", Some(42), Some(block), Some(true))
    );
    assert!(
        history
            .iter()
            .filter(|a| a.tx_hash != first.tx_hash)
            .all(|a| a.status != "signed" && a.status != "broadcast")
    );
    assert!(attempts::live_attempts(store.reader()).await.unwrap().is_empty());

    // Too late to replace; confirmation happens once.
    let fourth = attempt(&carried.id, signer, 7, 4_000, "fourth");
    let mut tx = store.begin().await.unwrap();
    assert!(!signers::replace(&mut tx, &fourth, &second, t + 5).await.unwrap());
    tx.commit().await.unwrap();
    assert!(
        !attempts::attempts_of_job(store.reader(), &carried.id)
            .await
            .unwrap()
            .iter()
            .any(|a| a.tx_hash == fourth.tx_hash)
    );
    let mut tx = store.begin().await.unwrap();
    assert!(attempts::attempt_confirmed(&mut tx, mined, None, t + 6).await.unwrap());
    assert!(!attempts::attempt_confirmed(&mut tx, mined, None, t + 7).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(job_status(store, &carried.id).await.status, "confirmed");
    assert!(attempts::attempts_watched(store.reader()).await.unwrap().is_empty());
}

/// Instances sharing a signer allocate its nonces under the signer's row lock: tasks racing
/// for nonces each get a different one, with no gap, and the window of unmined transactions is
/// respected; a job leased to another owner gets none.
async fn nonces_are_allocated_once_under_concurrency(store: &Store) {
    let t = now();
    let signer = Address::repeat_byte(0x51);
    let mut tx = store.begin().await.unwrap();
    assert_eq!(signers::reconcile(&mut tx, signer, 5).await.unwrap(), 5);
    tx.commit().await.unwrap();

    let queued: Vec<Job> = (0..12).map(|_| job(KIND_ACTIVATE, None)).collect();
    enqueue(store, &queued.iter().map(|j| (j, t)).collect::<Vec<_>>()).await;
    let mut leased = Vec::new();
    for i in 0..queued.len() {
        let owner = format!("instance-{i}");
        leased.push((claim_next(store, &owner, t + 60, t).await.unwrap(), owner));
    }
    let racers = leased.into_iter().map(|(job, owner)| {
        let store = store.clone();
        tokio::spawn(async move {
            let mut tx = store.begin().await.unwrap();
            let allocation = signers::allocate(&mut tx, signer, &job.id, &owner, 10).await.unwrap();
            if let Allocation::Nonce(nonce) = allocation {
                let a = attempt(&job.id, signer, nonce, 1_000, "a");
                attempts::record_attempt(&mut tx, &a, t).await.unwrap();
            }
            tx.commit().await.unwrap();
            allocation
        })
    });
    let mut nonces = Vec::new();
    let mut full = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Allocation::Nonce(n) => nonces.push(n),
            Allocation::WindowFull => full += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    nonces.sort_unstable();
    assert_eq!(nonces, (5..15).collect::<Vec<u64>>(), "distinct nonces, no gap, window of 10");
    assert_eq!(full, 2);
    assert_eq!(attempts::stored_next_nonce(store.reader(), signer).await.unwrap(), Some(15));
    assert_eq!(signers::in_flight(store.reader()).await.unwrap().get(&signer), Some(&10));

    // A job leased to someone else is not this owner's to sign.
    let stolen = job(KIND_ACTIVATE, None);
    enqueue(store, &[(&stolen, t)]).await;
    let holder = claim_next(store, "holder", t + 60, t).await.unwrap();
    assert_eq!(holder.id, stolen.id);
    let mut tx = store.begin().await.unwrap();
    let refused = signers::allocate(&mut tx, signer, &stolen.id, "thief", 100).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(refused, Allocation::NotLeased);
    assert_eq!(attempts::stored_next_nonce(store.reader(), signer).await.unwrap(), Some(15));
}

// ---------------------------------------------------------------------------------------------
// Settlement, outbox, webhooks, receipts, tokens
// ---------------------------------------------------------------------------------------------

/// A settlement action reads back exactly (its amount as a 256-bit decimal); a second action
/// for the same signed authorization is a unique violation on both engines; actions follow
/// their job into a batch and record its progress.
async fn settlement_actions_keep_amounts_and_digests(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let record = propose(store, &buyer, &seller, now()).await;
    let (one, two, batch) = (
        job(KIND_SELLER_CLAIM, Some(&record.id)),
        job(KIND_SELLER_CLAIM, Some(&record.id)),
        job(JobKind::SellerClaimBatch, Some(&record.id)),
    );
    enqueue(store, &[(&one, 1), (&two, 2), (&batch, 3)]).await;
    let first = action(&record, &one.id, U256::MAX, B256::repeat_byte(1));
    let second =
        action(&record, &two.id, U256::from(40u64) * U256::from(100_000u64), B256::repeat_byte(2));
    let mut tx = store.begin().await.unwrap();
    settlement::insert_action(&mut tx, &first).await.unwrap();
    settlement::insert_action(&mut tx, &second).await.unwrap();
    assert_eq!(
        settlement::by_digest(&mut tx, B256::repeat_byte(1)).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(settlement::by_digest(&mut tx, B256::repeat_byte(3)).await.unwrap(), None);
    tx.commit().await.unwrap();
    let read = settlement::get_action(store.reader(), &record.id, first.id.as_str()).await.unwrap();
    assert_eq!(read, Some(first.clone()));
    let other_agreement = AgreementId("ua_other".into());
    assert_eq!(
        settlement::get_action(store.reader(), &other_agreement, first.id.as_str()).await.unwrap(),
        None
    );

    let mut tx = store.begin().await.unwrap();
    let replay = action(&record, &one.id, U256::from(1u8), B256::repeat_byte(1));
    let err = settlement::insert_action(&mut tx, &replay).await.unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    drop(tx);
    let all = settlement::actions_of(store.reader(), &record.id).await.unwrap();
    assert_eq!(all, vec![first.clone(), second.clone()], "oldest first; the replay left nothing");

    // Batched, submitted, then finished one by one.
    let hash = B256::repeat_byte(0xcc);
    let mut tx = store.begin().await.unwrap();
    settlement::move_to_job(&mut tx, &[one.id.clone(), two.id.clone()], &batch.id, 10)
        .await
        .unwrap();
    assert_eq!(settlement::actions_of_job(&mut tx, &batch.id).await.unwrap().len(), 2);
    assert!(settlement::actions_of_job(&mut tx, &one.id).await.unwrap().is_empty());
    settlement::job_submitted(&mut tx, &batch.id, hash, 11).await.unwrap();
    settlement::finish(&mut tx, &first.id, None, None, Some(77), 12).await.unwrap();
    settlement::finish(&mut tx, &second.id, Some("ClaimAboveVoucher()"), None, None, 12)
        .await
        .unwrap();
    // A late progress report does not reopen a finished action.
    settlement::job_submitted(&mut tx, &batch.id, B256::repeat_byte(0xdd), 13).await.unwrap();
    tx.commit().await.unwrap();
    let all = settlement::actions_of(store.reader(), &record.id).await.unwrap();
    assert_eq!(
        (all[0].status.as_str(), all[0].tx_hash, all[0].block_number),
        ("confirmed", Some(hash), Some(77))
    );
    assert_eq!(
        (all[1].status.as_str(), all[1].error.as_deref()),
        ("failed", Some("ClaimAboveVoucher()"))
    );
    assert_eq!(all[0].amount, TokenAmount::new(U256::MAX));
}

/// Outbox events read back oldest first by `(created_at, id)`: in the order they were written
/// within a second. The dispatcher sees undispatched events in the same order, in pages.
async fn outbox_keeps_event_order(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let record = propose(store, &buyer, &seller, now()).await;
    let other = propose(store, &buyer, &seller, now()).await;
    let mut want = Vec::new();
    want.push((event(store, Some(&record.id), "late", 2_000).await, 2_000));
    for i in 0..6 {
        want.push((
            event(store, Some(&record.id), &format!("same-second-{i}"), 1_000).await,
            1_000,
        ));
    }
    event(store, Some(&other.id), "elsewhere", 1_500).await;
    event(store, None, "no.agreement", 500).await;
    want.sort_by_key(|(_, at)| *at);
    let want: Vec<String> = want.into_iter().map(|(id, _)| id).collect();

    let events = outbox::for_agreement(store.reader(), &record.id).await.unwrap();
    assert_eq!(events.iter().map(|e| e.id.0.clone()).collect::<Vec<_>>(), want);
    // Every helper event is `agreement.accepted`; its `kind` in the data tells them apart.
    assert_eq!(events[0].event_type, EventType::AgreementAccepted);
    assert_eq!(events[0].data, json!({ "kind": "same-second-0" }));
    assert_eq!(events[0].agreement_id.as_ref(), Some(&record.id));
    assert_eq!(events[6].data["kind"], "late");

    let mut tx = store.begin().await.unwrap();
    let page = webhooks::undispatched(&mut tx, 3).await.unwrap();
    let kinds: Vec<String> = page.iter().map(|e| kind_of(&e.3)).collect();
    assert_eq!(kinds, ["no.agreement", "same-second-0", "same-second-1"]);
    assert_eq!(page[0].1, None);
    for (id, ..) in &page {
        webhooks::mark_dispatched(&mut tx, id, 3_000).await.unwrap();
    }
    let next = webhooks::undispatched(&mut tx, 100).await.unwrap();
    tx.commit().await.unwrap();
    let kinds: Vec<String> = next.iter().map(|e| kind_of(&e.3)).collect();
    assert_eq!(
        kinds,
        ["same-second-2", "same-second-3", "same-second-4", "same-second-5", "elsewhere", "late"]
    );
}

/// Instances racing to claim due deliveries never get the same one; every due delivery is
/// claimed once.
async fn webhook_deliveries_claimed_by_one(store: &Store) {
    let hook = stored_active_endpoint(store).await;
    let now_ms = 5_000_000;
    let mut all = HashSet::new();
    for i in 0..40 {
        let event_id = event(store, None, "agreement.accepted", 1_000).await;
        let mut tx = store.begin().await.unwrap();
        let d = delivery(&hook, &event_id, now_ms - 40 + i);
        assert!(webhooks::insert_delivery(&mut tx, &d).await.unwrap());
        // The same event fanned out again (a second instance) makes no second delivery.
        let again = delivery(&hook, &event_id, now_ms);
        assert!(!webhooks::insert_delivery(&mut tx, &again).await.unwrap());
        tx.commit().await.unwrap();
        all.insert(d.id);
    }
    let claimers = (0..6).map(|i| {
        let store = store.clone();
        tokio::spawn(async move {
            let token = format!("instance-{i}");
            let mut mine = Vec::new();
            loop {
                let got = claim_due(&store, now_ms, now_ms + 30_000, &token, 4).await;
                if got.is_empty() {
                    return mine;
                }
                assert!(got.len() <= 4);
                mine.extend(got.into_iter().map(|d| d.id));
            }
        })
    });
    let mut claimed = Vec::new();
    for claimer in claimers {
        claimed.extend(claimer.await.unwrap());
    }
    let distinct: HashSet<String> = claimed.iter().cloned().collect();
    assert_eq!(distinct.len(), claimed.len(), "a delivery was claimed twice");
    assert_eq!(distinct, all, "every due delivery claimed (none left while a claimer saw none)");
}

/// A delivery claim made while another instance's claim is still uncommitted waits for it and
/// then takes the next due deliveries, instead of answering "nothing due".
async fn a_delivery_claim_racing_an_open_claim_takes_the_next(store: &Store) {
    let hook = stored_active_endpoint(store).await;
    let now_ms = 5_000_000;
    let mut ids = Vec::new();
    for i in 0..4 {
        let event_id = event(store, None, "agreement.accepted", 1_000).await;
        let d = delivery(&hook, &event_id, now_ms - 10 + i);
        let mut tx = store.begin().await.unwrap();
        webhooks::insert_delivery(&mut tx, &d).await.unwrap();
        tx.commit().await.unwrap();
        ids.push(d.id);
    }
    let mut holder = store.begin().await.unwrap();
    let held =
        webhooks::claim_due(&mut holder, now_ms, now_ms + 30_000, "holder", 2).await.unwrap();
    assert_eq!(held.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), ids[..2]);
    let racer = tokio::spawn({
        let store = store.clone();
        async move { claim_due(&store, now_ms, now_ms + 30_000, "racer", 2).await }
    });
    // As in the job case: time for the racer to wait behind the holder, not a timed check.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    holder.commit().await.unwrap();
    let got = racer.await.unwrap();
    assert_eq!(got.iter().map(|d| d.id.clone()).collect::<Vec<_>>(), ids[2..], "the next due ones");
}

/// A claimed delivery is not claimed again until its lease lapses; an outcome is recorded only
/// under the current claim; paused endpoints' deliveries wait; retiring an endpoint fails its
/// pending deliveries; a finished delivery can be replayed once.
async fn webhook_leases_and_outcomes(store: &Store) {
    let (agent, _) = parties(store).await;
    let (hook, paused) = (endpoint(&agent, webhooks::ACTIVE), endpoint(&agent, webhooks::PAUSED));
    let mut tx = store.begin().await.unwrap();
    webhooks::insert_endpoint(&mut tx, &hook, "whsec_a").await.unwrap();
    webhooks::insert_endpoint(&mut tx, &paused, "whsec_b").await.unwrap();
    tx.commit().await.unwrap();
    let t = 5_000_000;
    let (e1, e2, e3) = (
        event(store, None, "a", 1).await,
        event(store, None, "b", 2).await,
        event(store, None, "c", 3).await,
    );
    let (early, late, waiting) = (
        delivery(&hook, &e1, t - 10),
        delivery(&hook, &e2, t + 1_000),
        delivery(&paused, &e3, t - 10),
    );
    let mut tx = store.begin().await.unwrap();
    for d in [&early, &late, &waiting] {
        assert!(webhooks::insert_delivery(&mut tx, d).await.unwrap());
    }
    tx.commit().await.unwrap();

    let first = claim_due(store, t, t + 30_000, "one", 10).await;
    assert_eq!(
        first.iter().map(|d| d.id.as_str()).collect::<Vec<_>>(),
        [early.id.as_str()],
        "due, active only"
    );
    assert!(
        claim_due(store, t + 29_999, t + 60_000, "two", 10).await.iter().all(|d| d.id != early.id),
        "still claimed"
    );
    // The first claim lapses; another instance takes over; the first's outcome is refused.
    let taken = claim_due(store, t + 30_000, t + 60_000, "two", 10).await;
    assert!(taken.iter().any(|d| d.id == early.id));
    let success = AfterAttempt {
        status: webhooks::SUCCEEDED.into(),
        next_attempt_at_ms: None,
        status_code: Some(204),
        error: None,
    };
    let mut tx = store.begin().await.unwrap();
    assert!(!webhooks::after_attempt(&mut tx, &early.id, "one", &success, 100).await.unwrap());
    assert!(webhooks::after_attempt(&mut tx, &early.id, "two", &success, 100).await.unwrap());
    assert!(
        !webhooks::after_attempt(&mut tx, &early.id, "two", &success, 101).await.unwrap(),
        "once"
    );
    let attempt = webhooks::Attempt {
        number: 1,
        status_code: Some(204),
        error: None,
        latency_ms: 12,
        response_body: Some(TRICKY.into()),
        attempted_at_ms: t,
    };
    webhooks::insert_attempt(&mut tx, &early.id, &attempt).await.unwrap();
    let done = webhooks::get_delivery(&mut tx, &agent.0, &early.id).await.unwrap().unwrap();
    assert!(webhooks::get_delivery(&mut tx, "agt_other", &early.id).await.unwrap().is_none());
    tx.commit().await.unwrap();
    assert_eq!(
        (done.status.as_str(), done.attempts, done.last_status_code, done.completed_at),
        (webhooks::SUCCEEDED, 1, Some(204), Some(100))
    );
    assert_eq!(webhooks::attempts_of(store.reader(), &early.id).await.unwrap(), vec![attempt]);

    // Replay: pending again, due at once, schedule restarted; replaying a pending one does not.
    let mut tx = store.begin().await.unwrap();
    assert!(webhooks::replay(&mut tx, &early.id, t + 40_000, 200).await.unwrap());
    assert!(!webhooks::replay(&mut tx, &early.id, t + 40_000, 201).await.unwrap());
    tx.commit().await.unwrap();
    let again = claim_due(store, t + 40_000, t + 70_000, "three", 10).await;
    let replayed = again.iter().find(|d| d.id == early.id).expect("replayed delivery due");
    assert_eq!((replayed.attempts, replayed.round_attempts), (1, 0));

    // Released without an attempt: claimable at once by anyone.
    let mut tx = store.begin().await.unwrap();
    webhooks::release(&mut tx, &early.id, "three").await.unwrap();
    tx.commit().await.unwrap();
    assert!(
        claim_due(store, t + 40_001, t + 70_000, "four", 10).await.iter().any(|d| d.id == early.id)
    );

    // The paused endpoint resumes: its delivery is due. Retired: its pending deliveries fail.
    let mut resumed = paused.clone();
    resumed.status = webhooks::ACTIVE.into();
    let mut tx = store.begin().await.unwrap();
    webhooks::update_endpoint(&mut tx, &resumed).await.unwrap();
    tx.commit().await.unwrap();
    assert!(claim_due(store, t, t + 1, "five", 10).await.iter().any(|d| d.id == waiting.id));
    let mut tx = store.begin().await.unwrap();
    assert_eq!(
        webhooks::retire_endpoint(&mut tx, &hook.id, webhooks::DISABLED, "410 Gone", 300)
            .await
            .unwrap(),
        2
    );
    tx.commit().await.unwrap();
    let listed = webhooks::list_deliveries(store.reader(), &agent.0, Some(webhooks::FAILED), 10)
        .await
        .unwrap();
    let failed: BTreeSet<_> = listed.iter().map(|d| d.id.clone()).collect();
    assert_eq!(failed, BTreeSet::from([early.id.clone(), late.id.clone()]));
    assert!(listed.iter().all(|d| d.last_error.as_deref() == Some("410 Gone")));
    assert!(
        claim_due(store, t + 100_000, t + 200_000, "six", 10)
            .await
            .iter()
            .all(|d| d.endpoint_id != hook.id)
    );
}

/// An endpoint retired (410 Gone, or deleted) while two of its deliveries are being sent: both
/// fail at once and are never claimed again, yet the attempts already on their way are still
/// counted under their claim: one the receiver accepted succeeds, the other stays failed.
async fn an_attempt_in_flight_when_its_endpoint_retires_is_logged(store: &Store) {
    let hook = stored_active_endpoint(store).await;
    let t = 7_000_000;
    let (e1, e2) = (event(store, None, "a", 1).await, event(store, None, "b", 2).await);
    let (refused, accepted) = (delivery(&hook, &e1, t - 10), delivery(&hook, &e2, t - 5));
    let mut tx = store.begin().await.unwrap();
    for d in [&refused, &accepted] {
        assert!(webhooks::insert_delivery(&mut tx, d).await.unwrap());
    }
    tx.commit().await.unwrap();
    assert_eq!(claim_due(store, t, t + 30_000, "sender", 10).await.len(), 2);

    let mut tx = store.begin().await.unwrap();
    let retired = webhooks::retire_endpoint(&mut tx, &hook.id, webhooks::DELETED, "deleted", 300);
    assert_eq!(retired.await.unwrap(), 2);
    tx.commit().await.unwrap();

    let retry = AfterAttempt {
        status: webhooks::PENDING.into(),
        next_attempt_at_ms: Some(t + 1_000),
        status_code: Some(500),
        error: Some("HTTP 500".into()),
    };
    let success = AfterAttempt {
        status: webhooks::SUCCEEDED.into(),
        next_attempt_at_ms: None,
        status_code: Some(200),
        error: None,
    };
    let mut tx = store.begin().await.unwrap();
    assert!(!webhooks::after_attempt(&mut tx, &refused.id, "other", &retry, 301).await.unwrap());
    assert!(webhooks::after_attempt(&mut tx, &refused.id, "sender", &retry, 301).await.unwrap());
    assert!(webhooks::after_attempt(&mut tx, &accepted.id, "sender", &success, 302).await.unwrap());
    assert!(
        !webhooks::after_attempt(&mut tx, &accepted.id, "sender", &success, 303).await.unwrap()
    );
    let refused = webhooks::get_delivery(&mut tx, &hook.agent_id, &refused.id).await.unwrap();
    let accepted = webhooks::get_delivery(&mut tx, &hook.agent_id, &accepted.id).await.unwrap();
    tx.commit().await.unwrap();
    let (refused, accepted) = (refused.unwrap(), accepted.unwrap());
    assert_eq!(
        (refused.status.as_str(), refused.attempts, refused.next_attempt_at_ms),
        (webhooks::FAILED, 1, None)
    );
    assert_eq!((refused.last_status_code, refused.completed_at), (Some(500), Some(300)));
    assert_eq!(
        (accepted.status.as_str(), accepted.attempts, accepted.last_status_code),
        (webhooks::SUCCEEDED, 1, Some(200))
    );
    assert!(claim_due(store, t + 100_000, t + 200_000, "later", 10).await.is_empty());
}

/// A receipt is stored once per (transaction, log index), whatever its id; it reads back
/// exactly; a party's receipts page newest first.
async fn receipts_are_stored_once_per_event(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let record = propose(store, &buyer, &seller, now()).await;
    let tx_hash = B256::repeat_byte(0x7a);
    let mut stored = Vec::new();
    let mut tx = store.begin().await.unwrap();
    for log_index in 0..5 {
        let r = receipt(&record, tx_hash, log_index, U256::MAX - U256::from(log_index));
        assert!(receipts::insert(&mut tx, &r).await.unwrap());
        // The same event applied again (a retried pass, another instance): no second receipt.
        let again = receipt(&record, tx_hash, log_index, U256::from(1u8));
        assert!(!receipts::insert(&mut tx, &again).await.unwrap());
        stored.push(r);
    }
    tx.commit().await.unwrap();
    assert_eq!(
        receipts::get(store.reader(), stored[0].id.as_str()).await.unwrap().as_ref(),
        Some(&stored[0])
    );

    stored.reverse();
    for agent in [&buyer, &seller] {
        let mut seen = Vec::new();
        let mut before: Option<String> = None;
        loop {
            let page = receipts::list_for_agent(store.reader(), agent, 2, before.as_deref())
                .await
                .unwrap();
            let Some(last) = page.last() else { break };
            before = Some(last.id.0.clone());
            seen.extend(page);
        }
        assert_eq!(seen, stored, "newest first, exact amounts");
    }
    let (stranger, _) = parties(store).await;
    assert!(
        receipts::list_for_agent(store.reader(), &stranger, 10, None).await.unwrap().is_empty()
    );
}

/// An execution token is bound by the first request presenting it; only a retry carrying the
/// same `Idempotency-Key` may present it again. Of many requests racing with one token, one
/// binds it.
async fn execution_token_binds_once(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    let account = agents::ensure_account(&mut tx, "Tokens", "owner-hash-tokens", 1).await.unwrap();
    let (agent, _) =
        agents::new_agent(account.id.clone(), "agent", None, vec![], Environment::Test, 1);
    agents::insert_agent(&mut tx, &agent, "agent-key-hash").await.unwrap();
    let mut minted = Vec::new();
    for i in 0..4 {
        let token = ExecutionToken {
            id: ExecutionTokenId::generate(),
            account_id: account.id.clone(),
            agent_id: agent.id.clone(),
            action: "accept".into(),
            audience: format!("ua_{i}"),
            // A token's mandate round-trips (and its absence does).
            mandate_id: (i == 0).then(|| MandateId("mdt_conformance".into())),
            expires_at: 2_000,
            used_at: None,
            used_idempotency_key: None,
            created_at: 1,
        };
        tokens::insert(&mut tx, &token, &format!("token-hash-{i}")).await.unwrap();
        minted.push(token);
    }
    tx.commit().await.unwrap();
    assert_eq!(
        tokens::by_hash(store.reader(), "token-hash-0").await.unwrap(),
        Some(minted[0].clone())
    );
    assert_eq!(tokens::by_hash(store.reader(), "nope").await.unwrap(), None);

    let bind = |id: ExecutionTokenId, key: Option<&'static str>, at: i64| {
        let store = store.clone();
        async move {
            let mut tx = store.begin().await.unwrap();
            let bound = tokens::bind_use(&mut tx, &id, key, at).await.unwrap();
            tx.commit().await.unwrap();
            bound
        }
    };
    let first = minted[0].id.clone();
    assert!(bind(first.clone(), Some("idem-1"), 10).await);
    assert!(bind(first.clone(), Some("idem-1"), 11).await, "a retry with the same key");
    assert!(!bind(first.clone(), Some("idem-2"), 12).await);
    assert!(!bind(first.clone(), Some("IDEM-1"), 12).await, "keys are exact");
    assert!(!bind(first.clone(), None, 13).await);
    let used = tokens::by_hash(store.reader(), "token-hash-0").await.unwrap().unwrap();
    assert_eq!((used.used_at, used.used_idempotency_key.as_deref()), (Some(10), Some("idem-1")));
    // Bound without a key: never presentable again.
    assert!(bind(minted[1].id.clone(), None, 10).await);
    assert!(!bind(minted[1].id.clone(), None, 11).await);

    const KEYS: [&str; 12] =
        ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10", "k11"];
    for token in &minted[2..] {
        let racers: Vec<_> =
            KEYS.iter().map(|key| tokio::spawn(bind(token.id.clone(), Some(*key), 20))).collect();
        let mut bound = 0;
        for racer in racers {
            bound += usize::from(racer.await.unwrap());
        }
        assert_eq!(bound, 1, "a token consumed by racing requests is consumed once");
    }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// Token amounts beyond 64 and 128 bits, fee caps at `u128::MAX` and counters at `i64::MAX`
/// read back exactly.
async fn large_amounts_round_trip_exactly(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let mut big = AgreementRecord::proposed(proposal(&buyer, &seller), now());
    big.quantity = i64::MAX as u64;
    big.price_per_unit_cents = i64::MAX as u64;
    let mut tx = store.begin().await.unwrap();
    agreements::insert(&mut tx, &big).await.unwrap();
    let mut huge = terms(&big.id, u32::MAX as u64);
    huge.unit_price = TokenAmount::new(U256::MAX);
    huge.infra_fee = TokenAmount::new(U256::from(u128::MAX) + U256::from(1u8));
    let key = keccak256(big.id.as_str());
    agreements::accept(
        &mut tx,
        &big.id,
        Address::repeat_byte(0x5e),
        &huge,
        key,
        InfraFeeStatus::Pending,
        now(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let read = get(store, &big.id).await;
    assert_eq!((read.quantity, read.price_per_unit_cents), (i64::MAX as u64, i64::MAX as u64));
    assert_eq!(read.terms, Some(huge));

    let carried = job(KIND_ACTIVATE, Some(&big.id));
    enqueue(store, &[(&carried, 1)]).await;
    let signer = Address::repeat_byte(0x51);
    let mut extreme = attempt(&carried.id, signer, i64::MAX as u64 - 1, u128::MAX, "max");
    extreme.max_priority_fee_per_gas = u128::MAX - 1;
    extreme.gas_limit = i64::MAX as u64;
    let mut tx = store.begin().await.unwrap();
    attempts::record_attempt(&mut tx, &extreme, 1).await.unwrap();
    tx.commit().await.unwrap();
    let stored = attempts::attempts_of_job(store.reader(), &carried.id).await.unwrap();
    assert_eq!(stored, vec![extreme]);

    let r = receipt(&big, B256::repeat_byte(1), 0, U256::MAX);
    let mut tx = store.begin().await.unwrap();
    receipts::insert(&mut tx, &r).await.unwrap();
    tx.commit().await.unwrap();
    let read = receipts::get(store.reader(), r.id.as_str()).await.unwrap().unwrap();
    assert_eq!(read.amount.to_string(), U256::MAX.to_string());
    assert_eq!(read.infra_fee.to_string(), "340282366920938463463374607431768211456");
}

/// Any text (quotes, backslashes, SQL, wildcards, emoji, combining and bidi marks, newlines)
/// is stored and read back byte for byte, in plain and in JSON columns.
async fn any_text_round_trips(store: &Store) {
    let mut tx = store.begin().await.unwrap();
    let account = agents::ensure_account(&mut tx, TRICKY, TRICKY, 1).await.unwrap();
    let (agent, _) = agents::new_agent(
        account.id.clone(),
        TRICKY,
        Some(TRICKY.into()),
        vec![TRICKY.into(), "plain".into()],
        Environment::Test,
        1,
    );
    agents::insert_agent(&mut tx, &agent, TRICKY).await.unwrap();
    let again = agents::ensure_account(&mut tx, "other name", TRICKY, 2).await.unwrap();
    assert_eq!(again, account, "found by the exact owner hash");
    tx.commit().await.unwrap();
    let read = agents::get_agent(store.reader(), agent.id.as_str()).await.unwrap().unwrap();
    assert_eq!(read, agent);
    assert_eq!(agents::agent_by_key(store.reader(), TRICKY).await.unwrap(), Some(agent.clone()));

    let (_, seller) = parties(store).await;
    let mut p = proposal(&agent.id, &seller);
    p.service_id = TRICKY.into();
    p.unit = TRICKY.into();
    p.payment_method = json!({ "type": TRICKY, "nested": { TRICKY: [TRICKY, 1, null] } });
    let record = AgreementRecord::proposed(p, 1);
    let mut tx = store.begin().await.unwrap();
    agreements::insert(&mut tx, &record).await.unwrap();
    agreements::reject(&mut tx, &record.id, Some(TRICKY), 2).await.unwrap();
    agreements::record_screening(&mut tx, &record.id, &json!({ "note": TRICKY })).await.unwrap();
    let rejected = EventType::AgreementRejected;
    let event_id =
        outbox::record(&mut tx, Some(&record.id), rejected, &json!({ "why": TRICKY }), 3)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    let read = get(store, &record.id).await;
    assert_eq!((read.service_id.as_str(), read.unit.as_str()), (TRICKY, TRICKY));
    assert_eq!(read.payment_method, record.payment_method);
    assert_eq!(read.rejection_reason.as_deref(), Some(TRICKY));
    assert_eq!(read.screening, Some(json!({ "note": TRICKY })));
    let events = outbox::for_agreement(store.reader(), &record.id).await.unwrap();
    assert_eq!((events[0].id.clone(), events[0].event_type), (event_id.clone(), rejected));
    assert_eq!(events[0].data, json!({ "why": TRICKY }));

    // Idempotency: a tricky key and scope, a tricky stored body.
    assert_eq!(take(store, TRICKY, TRICKY, TRICKY, TRICKY, 10).await, Taken::Ours);
    let response = StoredResponse {
        request_hash: TRICKY.into(),
        status: 201,
        body: json!({ TRICKY: TRICKY }),
    };
    let mut tx = store.begin().await.unwrap();
    assert!(idempotency::complete(&mut tx, TRICKY, TRICKY, TRICKY, &response).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(take(store, TRICKY, TRICKY, "x", "y", 11).await, Taken::Completed(response));

    // Webhook endpoint fields and the exact payload.
    let mut hook = endpoint(&agent.id, webhooks::ACTIVE);
    hook.url = format!("https://example.test/{}", "ü'\"%20?q=1&r=ü");
    hook.description = Some(TRICKY.into());
    hook.event_types = vec![TRICKY.into()];
    let mut tx = store.begin().await.unwrap();
    webhooks::insert_endpoint(&mut tx, &hook, TRICKY).await.unwrap();
    let mut d = delivery(&hook, &event_id.0, 1);
    d.payload = TRICKY.into();
    webhooks::insert_delivery(&mut tx, &d).await.unwrap();
    tx.commit().await.unwrap();
    let (read, secrets) =
        webhooks::endpoint_with_secrets(store.reader(), &hook.id).await.unwrap().unwrap();
    assert_eq!((read, secrets.current.as_str()), (hook.clone(), TRICKY));
    let claimed = claim_due(store, 1, 2, "t", 1).await;
    assert_eq!(claimed[0].payload, TRICKY);
}

/// A transaction that is rolled back (or dropped, as when a handler returns early) leaves none
/// of its writes; on Postgres a failed statement does too.
async fn rollback_leaves_nothing_behind(store: &Store) {
    let (buyer, seller) = parties(store).await;
    let kept = propose(store, &buyer, &seller, 1).await;
    assert_eq!(take(store, "scope", "key", "h", "lease", 100).await, Taken::Ours);

    let ghost = AgreementRecord::proposed(proposal(&buyer, &seller), 2);
    let ghost_job = job(KIND_ACTIVATE, Some(&ghost.id));
    for commit_path in ["rollback", "drop"] {
        let mut tx = store.begin().await.unwrap();
        agreements::insert(&mut tx, &ghost).await.unwrap();
        agreements::accept(
            &mut tx,
            &kept.id,
            Address::repeat_byte(0x5e),
            &terms(&kept.id, 9),
            B256::repeat_byte(3),
            InfraFeeStatus::None,
            3,
        )
        .await
        .unwrap();
        jobs::enqueue(&mut tx, &ghost_job, 3).await.unwrap();
        let accepted = EventType::AgreementAccepted;
        outbox::record(&mut tx, Some(&kept.id), accepted, &json!({}), 3).await.unwrap();
        let response = StoredResponse { request_hash: "h".into(), status: 200, body: json!({}) };
        assert!(idempotency::complete(&mut tx, "scope", "key", "lease", &response).await.unwrap());
        receipts::insert(&mut tx, &receipt(&kept, B256::repeat_byte(4), 0, U256::from(5u8)))
            .await
            .unwrap();
        match commit_path {
            "rollback" => tx.rollback().await.unwrap(),
            _ => drop(tx),
        }

        assert!(agreements::get(store.reader(), ghost.id.as_str()).await.unwrap().is_none());
        assert_eq!(get(store, &kept.id).await, kept, "the accept was undone");
        assert!(jobs::get(store.reader(), ghost_job.id.as_str()).await.unwrap().is_none());
        assert!(claim_next(store, "w", 200, 100).await.is_none());
        assert!(outbox::for_agreement(store.reader(), &kept.id).await.unwrap().is_empty());
        assert!(
            receipts::list_for_agent(store.reader(), &buyer, 10, None).await.unwrap().is_empty()
        );
        assert!(
            matches!(take(store, "scope", "key", "h", "other", 101).await, Taken::InFlight { .. }),
            "the key is still in flight, not completed"
        );
    }

    // A statement that fails mid-transaction: the caller drops the transaction and nothing of
    // it remains, on either engine.
    let mut tx = store.begin().await.unwrap();
    agreements::insert(&mut tx, &ghost).await.unwrap();
    let err = agreements::insert(&mut tx, &kept).await.unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    drop(tx);
    assert!(agreements::get(store.reader(), ghost.id.as_str()).await.unwrap().is_none());
    // And the pool is healthy afterwards.
    let fresh = propose(store, &buyer, &seller, 4).await;
    assert_eq!(get(store, &fresh.id).await, fresh);
}

/// `keyed` lists every agreement with an agreement key, ordered by key, with the escrow as the
/// watcher recorded it; scoped to an account, only those its agents are party to.
async fn keyed_agreements_carry_their_escrow_and_scope_by_account(store: &Store) {
    let (buyer, seller) = parties(store).await;
    propose(store, &buyer, &seller, now()).await;
    let accepted = propose(store, &buyer, &seller, now()).await;
    let accepted_key = accept(store, &accepted, 4_000_000_000).await;
    let active = propose(store, &buyer, &seller, now()).await;
    let active_key = accept(store, &active, 4_000_000_000).await;
    let mut tx = store.begin().await.unwrap();
    let (tx_hash, block) = (B256::repeat_byte(0xaa), B256::repeat_byte(0xbb));
    assert!(agreements::escrow_activated(&mut tx, active_key, tx_hash, 7, block, 5).await.unwrap());
    let other = agents::ensure_account(&mut tx, "Other", "other-owner-hash", now()).await.unwrap();
    let mut others = Vec::new();
    for name in ["buyer", "seller"] {
        let (agent, _) =
            agents::new_agent(other.id.clone(), name, None, vec![], Environment::Test, now());
        agents::insert_agent(&mut tx, &agent, &format!("hash-{}", agent.id)).await.unwrap();
        others.push(agent.id);
    }
    tx.commit().await.unwrap();
    let foreign = propose(store, &others[0], &others[1], now()).await;
    let foreign_key = accept(store, &foreign, 4_000_000_000).await;

    let all = agreements::keyed(store.reader(), None).await.unwrap();
    let mut want = vec![accepted_key, active_key, foreign_key];
    want.sort_by_key(|key| key.to_string());
    assert_eq!(all.iter().map(|a| a.key).collect::<Vec<_>>(), want);
    let listed = all.iter().find(|a| a.key == active_key).unwrap();
    assert_eq!(listed.id, active.id);
    assert_eq!(
        (listed.status, listed.activation_status),
        (AgreementStatus::Active, ActivationStatus::Confirmed)
    );
    assert_eq!(listed.activation_tx_hash, Some(tx_hash));
    assert_eq!(listed.terms, Some(terms(&active.id, 4_000_000_000)));
    assert_eq!(
        listed.escrow,
        Some(agreements::StoredEscrow {
            status: pactum::agreement::settlement::EscrowStatus::Active,
            claimed_units: 0,
            buyer_withdrawn: false,
        })
    );
    let waiting = all.iter().find(|a| a.key == accepted_key).unwrap();
    assert_eq!((waiting.status, waiting.escrow), (AgreementStatus::Accepted, None));

    let account =
        agents::get_agent(store.reader(), buyer.as_str()).await.unwrap().unwrap().account_id;
    let mine = agreements::keyed(store.reader(), Some(&account.to_string())).await.unwrap();
    let mut want = vec![accepted_key, active_key];
    want.sort_by_key(|key| key.to_string());
    assert_eq!(mine.iter().map(|a| a.key).collect::<Vec<_>>(), want);
    let theirs = agreements::keyed(store.reader(), Some(&other.id.to_string())).await.unwrap();
    assert_eq!(theirs.iter().map(|a| a.key).collect::<Vec<_>>(), [foreign_key]);
}

/// The console's reads: an account's agreements by status and page, an agreement's attempts
/// with what they cost, each relayer key's activity, and the counts behind the charts, each
/// scoped to the account (or the whole deployment when asked).
async fn console_reads_scope_by_account_and_count(store: &Store) {
    let t = now();
    let pool = store.reader();
    let (buyer, seller) = parties(store).await;
    let account = agents::get_agent(pool, buyer.as_str()).await.unwrap().unwrap().account_id;
    let first = propose(store, &buyer, &seller, t - 10).await;
    let second = propose(store, &buyer, &seller, t - 5).await;
    let mut tx = store.begin().await.unwrap();
    let other = agents::ensure_account(&mut tx, "Other", "other-owner-hash", t).await.unwrap();
    let mut theirs = Vec::new();
    for name in ["other-buyer", "other-seller"] {
        let (agent, _key) =
            agents::new_agent(other.id.clone(), name, None, vec![], Environment::Test, t);
        agents::insert_agent(&mut tx, &agent, &format!("hash-{}", agent.id)).await.unwrap();
        theirs.push(agent.id);
    }
    tx.commit().await.unwrap();
    let foreign = propose(store, &theirs[0], &theirs[1], t).await;

    let ids = |records: Vec<AgreementRecord>| -> Vec<AgreementId> {
        records.into_iter().map(|r| r.id).collect()
    };
    let page = agreements::list_for_account(pool, account.as_str(), None, 10, None).await;
    assert_eq!(ids(page.unwrap()), vec![second.id.clone(), first.id.clone()]);
    let after = Some((second.created_at, second.id.as_str()));
    let page = agreements::list_for_account(pool, account.as_str(), None, 10, after).await;
    assert_eq!(ids(page.unwrap()), vec![first.id.clone()]);
    let page = agreements::list_for_account(pool, account.as_str(), Some("active"), 10, None);
    assert!(page.await.unwrap().is_empty());
    let page = agreements::list_for_account(pool, account.as_str(), Some("proposed"), 1, None);
    assert_eq!(ids(page.await.unwrap()), vec![second.id.clone()]);
    let page = agreements::list_for_account(pool, other.id.as_str(), None, 10, None).await;
    assert_eq!(ids(page.unwrap()), vec![foreign.id.clone()]);

    // One attempt, broadcast long ago: in flight and stuck; then mined, with its cost kept.
    let carried = job(KIND_ACTIVATE, Some(&first.id));
    enqueue(store, &[(&carried, t)]).await;
    claim_next(store, "w1", t + 60, t).await.unwrap();
    let signer = Address::repeat_byte(0x61);
    let sent = attempt(&carried.id, signer, 3, 1_000, "console");
    let mut tx = store.begin().await.unwrap();
    attempts::record_attempt(&mut tx, &sent, t - 600).await.unwrap();
    attempts::attempt_broadcast(&mut tx, &sent, t - 600).await.unwrap();
    tx.commit().await.unwrap();
    let activity = console::signer_activity(pool, t - 120).await.unwrap();
    assert_eq!(
        activity.get(&signer),
        Some(&console::SignerActivity { in_flight: 1, stuck: 1, waiting_for_fees: 0 })
    );
    assert_eq!(console::jobs_waiting_for_fees(pool).await.unwrap(), 0);

    let block = B256::repeat_byte(0xcc);
    let mut tx = store.begin().await.unwrap();
    attempts::attempt_mined(&mut tx, sent.tx_hash, 9, block, true, t).await.unwrap();
    attempts::attempt_gas(&mut tx, sent.tx_hash, 21_000, 2_000_000_000, t).await.unwrap();
    outbox::record(&mut tx, Some(&first.id), EventType::ActivationConfirmed, &json!({}), t)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let timeline = console::attempts_of_agreement(pool, &first.id).await.unwrap();
    assert_eq!(timeline.len(), 1);
    let mined = &timeline[0];
    assert_eq!(
        (
            mined.attempt.tx_hash,
            mined.job_kind,
            mined.attempt.nonce,
            mined.attempt.status,
            mined.attempt.block_number
        ),
        (sent.tx_hash, JobKind::Activate, 3, AttemptStatus::Mined, Some(9))
    );
    assert_eq!((mined.gas_used, mined.effective_gas_price), (Some(21_000), Some(2_000_000_000)));
    assert_eq!(attempts::gas_used(pool, sent.tx_hash).await.unwrap(), Some(21_000));
    assert_eq!(attempts::gas_used(pool, B256::repeat_byte(0x0f)).await.unwrap(), None);
    assert_eq!(mined.broadcast_at, Some(t - 600));
    assert!(console::attempts_of_agreement(pool, &second.id).await.unwrap().is_empty());
    let activity = console::signer_activity(pool, t - 120).await.unwrap();
    assert!(!activity.contains_key(&signer), "a mined job is no longer in flight: {activity:?}");

    let spent = 21_000u128 * 2_000_000_000;
    let mine = Some(account.as_str());
    assert_eq!(console::gas_spent(pool, mine, t - 10).await.unwrap(), vec![(t, spent)]);
    assert_eq!(console::gas_spent(pool, None, t - 10).await.unwrap(), vec![(t, spent)]);
    assert!(console::gas_spent(pool, Some(other.id.as_str()), t - 10).await.unwrap().is_empty());
    assert!(console::gas_spent(pool, mine, t + 1).await.unwrap().is_empty());

    let confirmed = EventType::ActivationConfirmed;
    assert_eq!(console::event_times(pool, mine, confirmed, t - 10).await.unwrap(), vec![t]);
    let theirs = console::event_times(pool, Some(other.id.as_str()), confirmed, t - 10).await;
    assert!(theirs.unwrap().is_empty());
    let settled = EventType::AgreementSettled;
    assert!(console::event_times(pool, None, settled, t - 10).await.unwrap().is_empty());
    assert_eq!(console::approvals_waiting(pool, account.as_str(), t).await.unwrap(), 0);
}
