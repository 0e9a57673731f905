//! Governed payments (`/v1/payments`): a one-shot USDC transfer from the agent's own wallet.
//!
//! `POST /v1/payments` screens both wallets, evaluates the agent's policy, lease and mandate,
//! and holds the amount in one transaction (or spends a reservation decided before); it answers
//! the `TransferWithAuthorization` document the wallet signs. `…/authorize` checks the
//! signature (ECDSA, or ERC-1271 for a smart wallet), that the authorization is unspent and
//! that the wallet holds the amount, and queues it on the relayer; the chain watcher confirms
//! it from the token's logs and issues its receipt (see [`crate::payments`]).

mod view;

use alloy::primitives::{Address, Bytes};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::agreement::ids::{JobId, PaymentId, ReservationId};
use crate::api::AppState;
use crate::api::auth::Checker;
use crate::api::error::{ApiError, ApiResult, ErrorCode};
use crate::api::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::idempotency::Write;
use crate::api::page;
use crate::api::spend_gate::{self, Spend};
use crate::api::spend_guard::{SpendFields, grant_mandate};
use crate::escrow::verify::{self, VerifyError};
use crate::governance::{ActionType, Confidence, Decision};
use crate::payments::{Payment, PaymentStatus};
use crate::store::governance::approvals::ApprovalKind;
use crate::store::governance::audit::AuditKind;
use crate::store::governance::holds::{self, Hold, HoldSource, HoldStatus};
use crate::store::jobs::{self, Job, JobKind, JobStatus};
use crate::store::outbox::{self, EventType};
use crate::store::payments::{self as rows, Change};
use crate::store::{agents, wallets};
pub use view::{
    AuthorizeRequest, PaymentCreated, PaymentList, PaymentQuery, PaymentRequest, PaymentView,
};

/// Default seconds an authorization stays valid.
pub const DEFAULT_VALID_FOR_SECS: u64 = 900;
/// The shortest and longest validity a payment may ask for.
pub const VALID_FOR_SECS: std::ops::RangeInclusive<u64> = 60..=86_400;
/// Seconds before `validBefore` within which a signature is no longer taken: the relayer needs
/// the time to get the transfer mined.
pub const SIGNING_MARGIN_SECS: u64 = 30;
/// The longest signature taken, in bytes (a smart wallet's may be long; ECDSA is 65).
const MAX_SIGNATURE_BYTES: usize = 4_096;

/// The payee, resolved: its address and, when named by agent id, the agent.
struct Payee {
    address: Address,
    agent_id: Option<String>,
}

/// `to` as an address, or the primary wallet of the agent it names; 422 on `to` otherwise.
async fn payee(state: &AppState, to: &str) -> ApiResult<Payee> {
    let to = to.trim();
    if let Ok(address) = to.parse::<Address>() {
        if address == Address::ZERO {
            return Err(ApiError::validation("to", "`to` must not be the zero address"));
        }
        return Ok(Payee { address, agent_id: None });
    }
    let refuse = || {
        ApiError::validation("to", "`to` must be a `0x…` address or an active agent with a wallet")
    };
    let agent = agents::get_agent(state.store.reader(), to).await?.ok_or_else(refuse)?;
    if agent.status != agents::AgentStatus::Active {
        return Err(refuse());
    }
    let wallet = wallets::primary_of(state.store.reader(), &agent.id).await?.ok_or_else(refuse)?;
    Ok(Payee { address: wallet.address, agent_id: Some(agent.id.to_string()) })
}

/// Screens payer and payee: 403 `wallet_sanctioned` when a list has one, 503 when screening
/// cannot answer.
async fn screen(state: &AppState, wallets: [Address; 2]) -> ApiResult<()> {
    let report = crate::api::activation_queue::screen_wallets(state, &wallets, "held").await?;
    let sanctioned = report.sanctioned();
    if sanctioned.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::WalletSanctioned,
        "a wallet of the payment is on a sanctions list; nothing was held",
    )
    .with_details(json!({
        "wallets": sanctioned.iter().map(|a| a.to_checksum(None)).collect::<Vec<_>>(),
    })))
}

/// `payment` as answered, with its document while it waits for the signature and its receipt
/// once confirmed.
pub(crate) fn answer(state: &AppState, payment: &Payment) -> PaymentView {
    let document = (payment.status == PaymentStatus::AwaitingSignature)
        .then(|| payment.terms().document(&state.chain.token_domain()));
    let receipt = crate::receipts::payment_receipt(payment, state.chain.deployment())
        .map(|r| crate::api::receipts::ReceiptView::from(&r));
    PaymentView::new(payment, document, receipt)
}

/// `POST /v1/payments`: a governed payment from the agent's primary wallet. 201
/// `awaiting_signature` with the document to sign (the amount held); 202 `pending_approval`;
/// 422 `policy_blocked` (the payment is kept as `blocked`, nothing held); 403
/// `agent_halted` or `wallet_sanctioned`.
#[utoipa::path(
    post,
    path = "/v1/payments",
    operation_id = "create_payment",
    tag = "payments",
    request_body = PaymentRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 201, description = "Held: the wallet signs `typed_data`", body = PaymentCreated),
        (status = 202, description = "Escalated: waits for the owner's approval", body = PaymentCreated),
        (status = 403, description = "`agent_halted`, `wallet_sanctioned`, or naming another agent with an agent key", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such agent or reservation of the caller", body = crate::api::error::ErrorBody),
        (status = 409, description = "The reservation named is not `reserved`", body = crate::api::error::ErrorBody),
        (status = 410, description = "`reservation_expired`", body = crate::api::error::ErrorBody),
        (status = 422, description = "`policy_blocked` (`details.payment_id`), `wallet_required`, or a field fails validation", body = crate::api::error::ErrorBody),
        (status = 503, description = "Screening is unavailable", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn create(
    State(state): State<AppState>,
    checker: Checker,
    grant: Option<axum::Extension<crate::api::auth::ExecutionGrant>>,
    Write(ApiJson(body), idempotency): Write<ApiJson<PaymentRequest>>,
) -> ApiResult<Response> {
    let started = std::time::Instant::now();
    let (agent, actor) = checker.agent(&state, body.agent_id.as_deref()).await?;
    let valid_for = body.valid_for_seconds.unwrap_or(DEFAULT_VALID_FOR_SECS);
    if !VALID_FOR_SECS.contains(&valid_for) {
        return Err(ApiError::validation(
            "valid_for_seconds",
            "`valid_for_seconds` must be 60 to 86,400",
        ));
    }
    if body.memo.as_ref().is_some_and(|m| m.chars().count() > 256) {
        return Err(ApiError::validation("memo", "`memo` is at most 256 characters"));
    }
    let payee = payee(&state, &body.to).await?;
    let fields = SpendFields {
        agent_id: None,
        amount_cents: body.amount_cents,
        action_type: ActionType::Spend,
        counterparty: Some(payee.agent_id.clone().unwrap_or(payee.address.to_checksum(None))),
        category: body.category.clone(),
        currency: body.currency.clone(),
        mandate_id: None,
        metadata: body.metadata.clone(),
        ttl_seconds: None,
        lease_id: None,
    };
    let at = crate::store::now();
    let request = fields.request(at)?;
    let currency = fields.currency()?;
    let wallet = wallets::primary_of(state.store.reader(), &agent.id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::WalletRequired,
            "the agent has no primary wallet to pay from; register one with POST /activate",
        )
    })?;
    if wallet.address == payee.address {
        return Err(ApiError::validation("to", "`to` is the paying wallet itself"));
    }
    let mandate_id = grant_mandate(grant.as_ref().map(|g| &g.0), body.mandate_id.as_deref())?;
    screen(&state, [wallet.address, payee.address]).await?;
    let valid_before = u64::try_from(at).unwrap_or_default().saturating_add(valid_for);
    let mut payment = Payment {
        id: PaymentId::generate(),
        account_id: agent.account_id.to_string(),
        agent_id: agent.id.to_string(),
        from: wallet.address,
        to: payee.address,
        to_agent_id: payee.agent_id.clone(),
        amount_cents: body.amount_cents,
        currency: currency.clone(),
        status: PaymentStatus::AwaitingSignature,
        payment_key: crate::payments::new_key(),
        valid_after: 0,
        valid_before,
        reservation_id: None,
        mandate_id: mandate_id.clone(),
        approval_id: None,
        check_id: None,
        memo: body.memo.clone(),
        metadata: body.metadata.clone().map(Value::Object),
        signature: None,
        job_id: None,
        tx_hash: None,
        block_number: None,
        block_hash: None,
        log_index: None,
        error: None,
        receipt: None,
        created_at: at,
        updated_at: at,
    };
    let mut tx = state.store.begin().await?;
    if let Some(reservation_id) = &body.reservation_id {
        let hold = adopt(&mut tx, &payment, reservation_id, &payee, at).await?;
        payment.reservation_id = Some(hold.id.to_string());
        payment.mandate_id = hold.mandate_id.clone().or(payment.mandate_id);
        payment.check_id = hold.check_id.clone();
        rows::insert(&mut tx, &payment).await?;
        rows::announce(&mut tx, &payment, at).await?;
        let response = PaymentCreated { payment: answer(&state, &payment), decision: None };
        idempotency.save(&mut tx, StatusCode::CREATED, &response).await?;
        tx.commit().await?;
        return Ok((StatusCode::CREATED, Json(response)).into_response());
    }
    let spend = Spend {
        account_id: payment.account_id.clone(),
        agent_id: payment.agent_id.clone(),
        kind: AuditKind::Payment,
        actor,
        subject_id: Some(payment.id.to_string()),
        currency,
        confidence: Confidence::High,
        request,
        expect_policy: None,
        mandate_id,
        budgets_only: false,
        started,
    };
    let mut gated = spend_gate::decide(&mut tx, &spend).await?;
    payment.check_id = Some(gated.response.check_id.clone());
    if gated.evaluation.decision == Decision::Block {
        if gated.evaluation.reason_code == Some(crate::governance::ReasonCode::AgentHalted) {
            spend_gate::store_check(&mut tx, &spend, &gated).await?;
            tx.commit().await?;
            return Err(gated.refusal());
        }
        payment.status = PaymentStatus::Blocked;
        payment.error = gated.evaluation.reason_code.map(|r| r.as_str().to_owned());
        spend_gate::store_check(&mut tx, &spend, &gated).await?;
        rows::insert(&mut tx, &payment).await?;
        rows::announce(&mut tx, &payment, at).await?;
        tx.commit().await?;
        let mut refusal = gated.refusal();
        if let Some(details) = refusal.details.as_mut() {
            details["payment_id"] = json!(payment.id);
        }
        return Err(refusal);
    }
    let escalated = gated.evaluation.decision == Decision::Escalate;
    let hold_id = ReservationId::generate();
    let status = if escalated {
        let ttl = i64::try_from(state.approval_ttl).unwrap_or(i64::MAX);
        let signable = i64::try_from(valid_before - SIGNING_MARGIN_SECS).unwrap_or(i64::MAX);
        let expires_at = at.saturating_add(ttl).min(signable);
        let approval = spend_gate::open_approval(
            &mut tx,
            &spend,
            &gated,
            ApprovalKind::Payment,
            payment.id.as_str(),
            expires_at,
        )
        .await?;
        gated.response.approval_id = Some(approval.id.to_string());
        payment.approval_id = Some(approval.id.to_string());
        payment.status = PaymentStatus::PendingApproval;
        StatusCode::ACCEPTED
    } else {
        StatusCode::CREATED
    };
    let hold = Hold {
        id: hold_id.clone(),
        account_id: payment.account_id.clone(),
        agent_id: payment.agent_id.clone(),
        source: HoldSource::Payment,
        subject_id: Some(payment.id.to_string()),
        status: if escalated { HoldStatus::PendingApproval } else { HoldStatus::Reserved },
        amount_cents: payment.amount_cents,
        captured_cents: None,
        counted_cents: if escalated { 0 } else { payment.amount_cents },
        action_type: spend.request.action_type.as_str().to_owned(),
        currency: spend.currency.clone(),
        counterparty: spend.request.counterparties.first().cloned(),
        category: body.category.clone(),
        metadata: None,
        mandate_id: spend.mandate_id.clone(),
        lease_id: gated.lease_id.clone(),
        approval_id: payment.approval_id.clone(),
        check_id: payment.check_id.clone(),
        ttl_seconds: None,
        expires_at: None,
        counted_at: at,
        created_at: at,
        updated_at: at,
    };
    payment.reservation_id = Some(hold_id.to_string());
    spend_gate::store_check(&mut tx, &spend, &gated).await?;
    holds::insert(&mut tx, &hold, actor.as_str()).await?;
    let reserved = if escalated {
        EventType::ReservationPendingApproval
    } else {
        EventType::ReservationReserved
    };
    outbox::record_for_agent(&mut tx, &hold.agent_id, reserved, &holds::event_data(&hold), at)
        .await?;
    rows::insert(&mut tx, &payment).await?;
    rows::announce(&mut tx, &payment, at).await?;
    let response =
        PaymentCreated { payment: answer(&state, &payment), decision: Some(gated.response) };
    idempotency.save(&mut tx, status, &response).await?;
    tx.commit().await?;
    Ok((status, Json(response)).into_response())
}

/// Makes the agent's reservation `id` the payment's hold: it must be the agent's own API
/// reservation, `reserved` and unexpired, of at least the payment's amount and held for this
/// payee. From now on it follows the payment (no expiry of its own).
async fn adopt(
    tx: &mut crate::store::Conn,
    payment: &Payment,
    id: &str,
    payee: &Payee,
    at: i64,
) -> ApiResult<Hold> {
    let hold = holds::get_in(tx, id)
        .await?
        .filter(|h| h.agent_id == payment.agent_id)
        .ok_or_else(|| ApiError::not_found("reservation"))?;
    if hold.source != HoldSource::Api {
        return Err(ApiError::new(
            ErrorCode::ReservationNotManual,
            "the reservation follows something else and cannot be spent by a payment",
        ));
    }
    if hold.status != HoldStatus::Reserved || hold.expires_at.is_some_and(|e| e <= at) {
        let code = if hold.status == HoldStatus::Reserved || hold.status == HoldStatus::Expired {
            ErrorCode::ReservationExpired
        } else {
            ErrorCode::ReservationReleased
        };
        return Err(ApiError::new(code, "the reservation holds nothing to spend")
            .with_details(json!({ "status": hold.status.as_str() })));
    }
    if hold.amount_cents < payment.amount_cents {
        return Err(ApiError::validation(
            "amount_cents",
            format!(
                "`amount_cents` is more than the {} cents the reservation holds",
                hold.amount_cents
            ),
        ));
    }
    let counterparty = hold.counterparty.as_deref().map(str::to_lowercase);
    let names = [
        Some(payee.address.to_string().to_lowercase()),
        payee.agent_id.as_deref().map(str::to_lowercase),
    ];
    if !names.iter().flatten().any(|n| counterparty.as_deref() == Some(n.as_str())) {
        return Err(ApiError::validation(
            "reservation_id",
            "the reservation was held for another counterparty",
        ));
    }
    holds::adopt(tx, id, payment.id.as_str(), at)
        .await?
        .ok_or_else(|| ApiError::new(ErrorCode::ConcurrentUpdate, "the reservation changed; retry"))
}

/// The payment `id` as `checker` may see it: an agent its own, an owner its account's.
async fn visible(state: &AppState, checker: &Checker, id: &str) -> ApiResult<Payment> {
    let payment = rows::get(state.store.reader(), id).await?;
    payment
        .filter(|p| checker.sees(&p.account_id, &p.agent_id))
        .ok_or_else(|| ApiError::not_found("payment"))
}

/// `GET /v1/payments/{payment_id}`.
#[utoipa::path(
    get,
    path = "/v1/payments/{payment_id}",
    operation_id = "get_payment",
    tag = "payments",
    params(("payment_id" = String, Path, description = "`pay_…`")),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The payment", body = PaymentView),
        (status = 404, description = "No such payment of the caller", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn get(
    State(state): State<AppState>,
    checker: Checker,
    ApiPath(id): ApiPath,
) -> ApiResult<Json<PaymentView>> {
    let payment = visible(&state, &checker, &id).await?;
    Ok(Json(answer(&state, &payment)))
}

/// `GET /v1/payments`: newest first; an agent its own, the owner its account's.
#[utoipa::path(
    get,
    path = "/v1/payments",
    operation_id = "list_payments",
    tag = "payments",
    params(
        ("agent_id" = Option<String>, Query, description = "Only this agent's"),
        ("status" = Option<String>, Query, description = "Only payments in this status"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 100, description = "Page size (default 50)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
    ),
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "A page of payments", body = PaymentList),
        (status = 404, description = "`agent_id` is not an agent of the caller", body = crate::api::error::ErrorBody),
        (status = 422, description = "`status` is not a payment status", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn list(
    State(state): State<AppState>,
    checker: Checker,
    ApiQuery(query): ApiQuery<PaymentQuery>,
) -> ApiResult<Json<PaymentList>> {
    let limit = page::limit(query.limit)?;
    let status =
        page::status_filter(query.status.as_deref(), PaymentStatus::ALL, PaymentStatus::as_str)?;
    let (account, agent_id) = checker.listing(&state, query.agent_id.as_deref()).await?;
    let cursor = query.cursor.as_deref().map(page::decode_cursor).transpose()?;
    let mut found = rows::list(
        state.store.reader(),
        &account,
        agent_id.as_deref(),
        status,
        limit + 1,
        cursor.as_ref().map(|(at, id)| (*at, id.as_str())),
    )
    .await?;
    let next_cursor =
        page::cut(&mut found, limit, |p| page::cursor_of(p.created_at, p.id.as_str()));
    let data = found.iter().map(|p| answer(&state, p)).collect();
    Ok(Json(PaymentList { data, next_cursor }))
}

/// `POST /v1/payments/{payment_id}/authorize`: the wallet's signature of the payment's
/// document. Checked before anything is sent: the signature (ECDSA, or ERC-1271 for a smart
/// wallet), the authorization unspent, the balance; then queued on the relayer (202). The same
/// signature again answers the payment as it stands.
#[utoipa::path(
    post,
    path = "/v1/payments/{payment_id}/authorize",
    operation_id = "authorize_payment",
    tag = "payments",
    params(("payment_id" = String, Path, description = "`pay_…`")),
    request_body = AuthorizeRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 202, description = "Queued on the relayer", body = PaymentView),
        (status = 403, description = "`agent_halted`", body = crate::api::error::ErrorBody),
        (status = 404, description = "No such payment of the caller", body = crate::api::error::ErrorBody),
        (status = 409, description = "`payment_not_awaiting_signature`, or `authorization_replayed` (its nonce is spent on chain)", body = crate::api::error::ErrorBody),
        (status = 410, description = "`payment_expired`", body = crate::api::error::ErrorBody),
        (status = 422, description = "`invalid_signature`, `insufficient_funds`, or a malformed signature", body = crate::api::error::ErrorBody),
        (status = 503, description = "The chain is unavailable", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn authorize(
    State(state): State<AppState>,
    checker: Checker,
    ApiPath(id): ApiPath,
    Write(ApiJson(body), idempotency): Write<ApiJson<AuthorizeRequest>>,
) -> ApiResult<Response> {
    let payment = visible(&state, &checker, &id).await?;
    let signature: Bytes = body
        .signature
        .parse()
        .ok()
        .filter(|s: &Bytes| !s.is_empty() && s.len() <= MAX_SIGNATURE_BYTES)
        .ok_or_else(|| {
            ApiError::validation("signature", "`signature` must be `0x` hex of 1 to 4,096 bytes")
        })?;
    if payment.status != PaymentStatus::AwaitingSignature {
        return settled(&state, &payment, &signature);
    }
    let at = crate::store::now();
    if u64::try_from(at).unwrap_or_default() + SIGNING_MARGIN_SECS >= payment.valid_before {
        return Err(ApiError::new(
            ErrorCode::PaymentExpired,
            "the authorization is too close to (or past) its `valid_before` to be relayed",
        ));
    }
    if let Some(agent) = agents::get_agent(state.store.reader(), &payment.agent_id).await?
        && agent.halted
    {
        return Err(ApiError::new(
            ErrorCode::AgentHalted,
            "the agent is halted: its payments cannot be authorized until it is resumed",
        ));
    }
    let terms = payment.terms();
    let digest = terms.digest(&state.chain.token_domain());
    let provider = &state.chain.provider;
    let kind = verify::signer_kind(provider, payment.from).await.map_err(refused_signature)?;
    verify::verify_token_signature(provider, payment.from, kind, digest, &signature)
        .await
        .map_err(refused_signature)?;
    let (used, balance) = tokio::join!(
        state.chain.authorization_used(payment.from, payment.payment_key),
        state.chain.balance(payment.from)
    );
    if used.map_err(ApiError::chain_unavailable)? {
        return Err(ApiError::new(
            ErrorCode::AuthorizationReplayed,
            "this payment's authorization is already spent or cancelled on chain",
        ));
    }
    let balance = balance.map_err(ApiError::chain_unavailable)?;
    if balance < payment.value() {
        return Err(ApiError::new(
            ErrorCode::InsufficientFunds,
            "the wallet's USDC balance does not cover the payment; nothing was sent",
        )
        .with_details(
            json!({ "balance": balance.to_string(), "amount": payment.value().to_string() }),
        ));
    }
    let job = Job {
        id: JobId::generate(),
        kind: JobKind::Payment,
        agreement_id: None,
        to: state.chain.token,
        calldata: terms.call(&signature),
        status: JobStatus::Queued,
        error: None,
    };
    let mut tx = state.store.begin().await?;
    let change = Change { authorized: Some((&signature, job.id.as_str())), ..Change::default() };
    let from = [PaymentStatus::AwaitingSignature];
    let Some(queued) =
        rows::transition(&mut tx, &id, &from, PaymentStatus::Queued, &change, at).await?
    else {
        drop(tx);
        let now = rows::get(state.store.reader(), &id).await?.unwrap_or(payment);
        return settled(&state, &now, &signature);
    };
    jobs::enqueue(&mut tx, &job, at).await?;
    rows::announce(&mut tx, &queued, at).await?;
    let view = answer(&state, &queued);
    idempotency.save(&mut tx, StatusCode::ACCEPTED, &view).await?;
    tx.commit().await?;
    state.relayer.queued(&job);
    Ok((StatusCode::ACCEPTED, Json(view)).into_response())
}

/// The answer to a signature for a payment that no longer waits for one: the same signature
/// once it was taken answers the payment as it stands; otherwise 409 (410 once expired).
fn settled(state: &AppState, payment: &Payment, signature: &Bytes) -> ApiResult<Response> {
    if payment.signature.as_ref() == Some(signature) {
        return Ok((StatusCode::ACCEPTED, Json(answer(state, payment))).into_response());
    }
    let details = json!({ "status": payment.status.as_str() });
    Err(match payment.status {
        PaymentStatus::Expired => {
            ApiError::new(ErrorCode::PaymentExpired, "the payment expired before it was signed")
        }
        _ => ApiError::new(
            ErrorCode::PaymentNotAwaitingSignature,
            "the payment does not wait for a signature",
        ),
    }
    .with_details(details))
}

/// A signature the wallet did not make (422), or a node that could not say (503).
fn refused_signature(error: VerifyError) -> ApiError {
    match error {
        VerifyError::Unavailable(reason) => ApiError::chain_unavailable(reason),
        other => ApiError::new(
            ErrorCode::InvalidSignature,
            format!("the signature is not the paying wallet's over this payment: {other}"),
        ),
    }
}
