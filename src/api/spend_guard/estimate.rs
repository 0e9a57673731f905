//! Asking before spending: `POST /v1/spend-guard/estimate` prices a spend (an agreement, a
//! payment, model tokens, tool calls, a delegated amount) and shows what it would leave of each
//! budget that applies; `POST /v1/spend-guard/authorize` answers what the policy would decide.
//! Neither changes anything: authorize decides in a transaction it rolls back, so its answer
//! is the one a reservation made at that instant would get, but it holds nothing; only a
//! reservation binds.

use alloy::primitives::U256;
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::{SpendFields, grant_mandate};
use crate::api::AppState;
use crate::api::auth::Checker;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::ApiJson;
use crate::api::spend_gate::{self, Spend};
use crate::governance::{Confidence, Decision, Policy, RuleKind, Violation};
use crate::money::Cents;
use crate::store::Conn;
use crate::store::governance::audit::AuditKind;
use crate::store::governance::{self as rows};
use crate::vocab::string_enum;

string_enum!(
    /// What an estimate prices.
    EstimateKind {
        /// A direct payment of `amount_cents`.
        Payment = "payment",
        /// A usage agreement: deposit plus the infra fee.
        Agreement = "agreement",
        /// Model tokens, priced per million.
        Token = "token",
        /// Tool calls at a unit price.
        Tool = "tool",
        /// An amount delegated to another agent.
        Delegated = "delegated",
    }
);

/// The body of `POST /v1/spend-guard/estimate`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EstimateRequest {
    /// What is priced.
    pub kind: EstimateKind,
    /// The agent: an agent key may name only itself; the owner names any of its account.
    #[serde(default)]
    pub agent_id: Option<String>,
    /// `payment`, `delegated`: the amount.
    #[serde(default)]
    pub amount_cents: Option<u64>,
    /// `agreement`: an existing agreement the agent buys under.
    #[serde(default)]
    pub agreement_id: Option<String>,
    /// `agreement` (without `agreement_id`): units.
    #[serde(default)]
    pub quantity: Option<u64>,
    /// `agreement` (without `agreement_id`): cents per unit.
    #[serde(default)]
    pub price_per_unit_cents: Option<u64>,
    /// `token`: the model, to take prices from the policy's price list.
    #[serde(default)]
    pub model: Option<String>,
    /// `token`: input tokens.
    #[serde(default)]
    pub input_tokens: Option<u64>,
    /// `token`: output tokens.
    #[serde(default)]
    pub output_tokens: Option<u64>,
    /// `token`: cents per million input tokens (else the policy's price for `model`).
    #[serde(default)]
    pub input_price_per_million_cents: Option<u64>,
    /// `token`: cents per million output tokens (else the policy's price for `model`).
    #[serde(default)]
    pub output_price_per_million_cents: Option<u64>,
    /// `tool`: the tool, to take its price from the policy's price list.
    #[serde(default)]
    pub tool: Option<String>,
    /// `tool`: how many calls.
    #[serde(default)]
    pub calls: Option<u64>,
    /// `tool`: cents per call (else the policy's price for `tool`).
    #[serde(default)]
    pub unit_price_cents: Option<u64>,
}

/// One `period_budget` rule as a spend would leave it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BudgetLeft {
    /// The rule's id.
    pub rule_id: String,
    /// `day`, `week` or `month`.
    pub period: String,
    /// The budget.
    pub max_cents: u64,
    /// Held and spent in the current period.
    pub counted_cents: u64,
    /// Left now.
    pub remaining_cents: u64,
    /// Left after this spend (negative: it would not fit).
    pub remaining_after_cents: i64,
    /// The current period's start (UTC, RFC 3339).
    pub period_start: String,
    /// The current period's end.
    pub period_end: String,
}

/// The agent's budget lease as a spend would leave it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LeaseLeft {
    /// `bls_…`.
    pub lease_id: String,
    /// Its capacity.
    pub amount_cents: u64,
    /// Held and spent under it.
    pub counted_cents: u64,
    /// Left after this spend (negative: it would not fit).
    pub remaining_after_cents: i64,
}

/// What a spend would leave.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Headroom {
    /// Each `period_budget` rule of the agent's policy.
    pub budgets: Vec<BudgetLeft>,
    /// The agent's budget lease, when it holds one.
    pub lease: Option<LeaseLeft>,
    /// Whether the amount fits every budget and the lease.
    pub fits: bool,
}

/// The answer of `POST /v1/spend-guard/estimate`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct EstimateResponse {
    /// What was priced.
    pub kind: EstimateKind,
    /// The agent.
    pub agent_id: String,
    /// The cost in cents, rounded up to the whole cent.
    pub amount_cents: u64,
    /// How it was reached (the deposit and fee, the token prices, …).
    #[schema(value_type = Object)]
    pub breakdown: serde_json::Value,
    /// What it would leave.
    #[serde(flatten)]
    pub headroom: Headroom,
}

/// The answer of `POST /v1/spend-guard/authorize`, in the seed's words.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AuthorizeResponse {
    /// `allow`, `deny` or `approval_required`.
    pub decision: String,
    /// The engine's word for it: `allow`, `block` or `escalate`.
    pub policy_decision: Decision,
    /// Why (null on allow).
    pub reason_code: Option<crate::governance::ReasonCode>,
    /// A human-readable explanation.
    pub message: Option<String>,
    /// The rule that decided.
    pub violated_rule_id: Option<String>,
    /// That rule's description.
    pub violated_rule_description: Option<String>,
    /// A short counter-message for the agent's model.
    pub decline_message: Option<String>,
    /// What the agent should do next.
    pub next_step: Option<String>,
    /// Every rule that fired.
    pub violations: Vec<Violation>,
    /// The policy version evaluated.
    pub policy_version: u64,
    /// The amount evaluated.
    pub amount_cents: u64,
    /// Always false: nothing is held; reserve to bind.
    pub binding: bool,
    /// What the spend would leave.
    #[serde(flatten)]
    pub headroom: Headroom,
}

/// What `amount` would leave of `agent_id`'s budgets and lease, read in `conn` as of `at`.
pub(crate) async fn headroom(
    conn: &mut Conn,
    agent_id: &str,
    policy: Option<&Policy>,
    amount: u64,
    at: i64,
) -> ApiResult<Headroom> {
    let after = |left: u64| {
        i64::try_from(left).unwrap_or(i64::MAX) - i64::try_from(amount).unwrap_or(i64::MAX)
    };
    let mut budgets = Vec::new();
    if let Some(policy) = policy {
        let needs: Vec<_> = policy
            .needs(at)
            .into_iter()
            .filter(|n| matches!(n, crate::governance::Need::PeriodSpent { .. }))
            .collect();
        let mut window = rows::Window::default();
        for need in &needs {
            window.widen(need, "");
        }
        let observed = rows::observe(conn, agent_id, &window).await?;
        for need in needs {
            let crate::governance::Need::PeriodSpent { rule_id, from, to } = need else { continue };
            let Some(rule) = policy.rules.iter().find(|r| r.id == rule_id) else { continue };
            let RuleKind::PeriodBudget { period, max_cents, .. } = &rule.kind else { continue };
            let counted = observed.spent(from, to)?;
            let remaining = max_cents.saturating_sub(counted);
            budgets.push(BudgetLeft {
                rule_id,
                period: period.as_str().to_owned(),
                max_cents: *max_cents,
                counted_cents: counted,
                remaining_cents: remaining,
                remaining_after_cents: after(remaining),
                period_start: crate::time::rfc3339(from),
                period_end: crate::time::rfc3339(to),
            });
        }
    }
    let lease = match rows::leases::active_of(conn, agent_id).await? {
        Some(lease) => {
            let counted = rows::holds::counted_under_lease(conn, lease.id.as_str()).await?;
            Some(LeaseLeft {
                remaining_after_cents: after(lease.amount_cents.saturating_sub(counted)),
                lease_id: lease.id.to_string(),
                amount_cents: lease.amount_cents,
                counted_cents: counted,
            })
        }
        None => None,
    };
    let fits = budgets.iter().all(|b| b.remaining_after_cents >= 0)
        && lease.as_ref().is_none_or(|l| l.remaining_after_cents >= 0);
    Ok(Headroom { budgets, lease, fits })
}

/// Cents of `numerator / divisor`, rounded up.
fn ceil_div(numerator: u128, divisor: u128) -> u64 {
    u64::try_from(numerator.div_ceil(divisor)).unwrap_or(u64::MAX)
}

fn required<T: Copy>(value: Option<T>, field: &str, kind: EstimateKind) -> ApiResult<T> {
    value.ok_or_else(|| {
        ApiError::validation(field, format!("`{field}` is required for kind `{}`", kind.as_str()))
    })
}

/// Prices `body` for `agent_id` under `policy`; the cost and how it was reached.
async fn price(
    state: &AppState,
    body: &EstimateRequest,
    agent_id: &str,
    policy: Option<&Policy>,
) -> ApiResult<(u64, serde_json::Value)> {
    use serde_json::json;
    let kind = body.kind;
    let priced = match kind {
        EstimateKind::Payment | EstimateKind::Delegated => {
            let amount = required(body.amount_cents, "amount_cents", kind)?;
            if amount == 0 {
                return Err(ApiError::validation(
                    "amount_cents",
                    "`amount_cents` must be at least 1",
                ));
            }
            (amount, json!({ "amount_cents": amount }))
        }
        EstimateKind::Agreement => {
            let terms = match &body.agreement_id {
                Some(id) => {
                    let record = crate::store::agreements::get(state.store.reader(), id)
                        .await?
                        .filter(|r| r.buyer_agent_id.as_str() == agent_id)
                        .ok_or_else(|| ApiError::not_found("agreement"))?;
                    let terms = record.terms.ok_or_else(|| {
                        ApiError::validation("agreement_id", "the agreement has no terms yet")
                    })?;
                    (terms.deposit(), terms.infra_fee)
                }
                None => {
                    let quantity = required(body.quantity, "quantity", kind)?;
                    let price = required(body.price_per_unit_cents, "price_per_unit_cents", kind)?;
                    let deposit = quantity.checked_mul(price).ok_or_else(|| {
                        ApiError::validation("quantity", "the deposit is too large")
                    })?;
                    let deposit = Cents(deposit).to_token_amount();
                    let fee = state.policy.fee.fee_for(deposit).map_err(ApiError::internal)?;
                    (deposit, fee)
                }
            };
            let (deposit, fee) = terms;
            let per_cent = U256::from(10_000u64);
            let total = deposit.0.saturating_add(fee.0).div_ceil(per_cent);
            let cents = u64::try_from(total).unwrap_or(u64::MAX);
            (
                cents,
                json!({
                    "deposit_amount": deposit.0.to_string(),
                    "infra_fee_amount": fee.0.to_string(),
                    "agreement_id": body.agreement_id,
                }),
            )
        }
        EstimateKind::Token => {
            let listed = body.model.as_ref().and_then(|m| policy?.prices.tokens.get(m).copied());
            let input_price =
                body.input_price_per_million_cents.or(listed.map(|p| p.input_per_million_cents));
            let output_price =
                body.output_price_per_million_cents.or(listed.map(|p| p.output_per_million_cents));
            let input_price = required(input_price, "input_price_per_million_cents", kind)?;
            let output_price = required(output_price, "output_price_per_million_cents", kind)?;
            let input = body.input_tokens.unwrap_or(0);
            let output = body.output_tokens.unwrap_or(0);
            let total = u128::from(input) * u128::from(input_price)
                + u128::from(output) * u128::from(output_price);
            (
                ceil_div(total, 1_000_000),
                json!({
                    "model": body.model,
                    "input_tokens": input,
                    "output_tokens": output,
                    "input_price_per_million_cents": input_price,
                    "output_price_per_million_cents": output_price,
                    "price_source": match (
                        body.input_price_per_million_cents.is_some(),
                        body.output_price_per_million_cents.is_some(),
                    ) {
                        (true, true) => "request",
                        (false, false) => "policy",
                        _ => "request_and_policy",
                    },
                }),
            )
        }
        EstimateKind::Tool => {
            let listed = body.tool.as_ref().and_then(|t| policy?.prices.tools.get(t).copied());
            let unit = required(body.unit_price_cents.or(listed), "unit_price_cents", kind)?;
            let calls = required(body.calls, "calls", kind)?;
            let total = u128::from(calls) * u128::from(unit);
            (
                u64::try_from(total).unwrap_or(u64::MAX),
                json!({ "tool": body.tool, "calls": calls, "unit_price_cents": unit }),
            )
        }
    };
    if priced.0 > crate::api::spend_request::MAX_CENTS {
        return Err(ApiError::validation("amount_cents", "the estimate is above $10 billion"));
    }
    Ok(priced)
}

/// `POST /v1/spend-guard/estimate`: the cost of a spend and what it would leave of each
/// budget that applies. Changes nothing.
#[utoipa::path(
    post,
    path = "/v1/spend-guard/estimate",
    operation_id = "estimate_spend",
    tag = "spend-guard",
    request_body = EstimateRequest,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The estimate", body = EstimateResponse),
        (status = 404, description = "No such agent (or agreement) of the caller", body = crate::api::error::ErrorBody),
        (status = 422, description = "A field the kind needs is missing or wrong", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn estimate(
    State(state): State<AppState>,
    checker: Checker,
    ApiJson(body): ApiJson<EstimateRequest>,
) -> ApiResult<Json<EstimateResponse>> {
    let (agent, _) = checker.agent(&state, body.agent_id.as_deref()).await?;
    let mut conn = state.store.reader().acquire().await.map_err(crate::store::StoreError::from)?;
    let policy = spend_gate::policy_in_force(&mut conn, agent.id.as_str()).await?;
    let policy = policy.as_ref().map(|(p, _)| p);
    let (amount, breakdown) = price(&state, &body, agent.id.as_str(), policy).await?;
    let at = crate::store::now();
    let headroom = headroom(&mut conn, agent.id.as_str(), policy, amount, at).await?;
    Ok(Json(EstimateResponse {
        kind: body.kind,
        agent_id: agent.id.to_string(),
        amount_cents: amount,
        breakdown,
        headroom,
    }))
}

/// `POST /v1/spend-guard/authorize`: what the policy (with the agent's lease and mandate)
/// would decide on this spend now, in the seed's words, without holding anything.
#[utoipa::path(
    post,
    path = "/v1/spend-guard/authorize",
    operation_id = "authorize_spend",
    tag = "spend-guard",
    request_body = SpendFields,
    security(("bearerAuth" = [])),
    responses(
        (status = 200, description = "The decision (binding nothing)", body = AuthorizeResponse),
        (status = 404, description = "No such agent of the caller", body = crate::api::error::ErrorBody),
        (status = 422, description = "A field fails validation", body = crate::api::error::ErrorBody),
    ),
)]
pub async fn authorize(
    State(state): State<AppState>,
    checker: Checker,
    ApiJson(body): ApiJson<SpendFields>,
) -> ApiResult<Json<AuthorizeResponse>> {
    let started = std::time::Instant::now();
    let (agent, actor) = checker.agent(&state, body.agent_id.as_deref()).await?;
    let mandate_id = grant_mandate(None, body.mandate_id.as_deref())?;
    let at = crate::store::now();
    let spend = Spend {
        account_id: agent.account_id.to_string(),
        agent_id: agent.id.to_string(),
        kind: AuditKind::Reservation,
        actor,
        subject_id: None,
        currency: body.currency()?,
        confidence: Confidence::High,
        request: body.request(at)?,
        expect_policy: None,
        mandate_id,
        budgets_only: false,
        started,
    };
    // Decided exactly as a reservation would be, in a transaction that is rolled back: the
    // decision lock is taken and given back, nothing is recorded.
    let mut tx = state.store.begin().await?;
    let decided = spend_gate::decide_batch(&mut tx, std::slice::from_ref(&spend))
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("a batch of one decided nothing"))??;
    let policy = spend_gate::policy_in_force(&mut tx, agent.id.as_str()).await?;
    let headroom = headroom(
        &mut tx,
        agent.id.as_str(),
        policy.as_ref().map(|(p, _)| p),
        spend.request.amount_cents,
        at,
    )
    .await?;
    tx.rollback().await.map_err(crate::store::StoreError::from)?;
    let e = &decided.evaluation;
    let decision = match e.decision {
        Decision::Allow => "allow",
        Decision::Block => "deny",
        Decision::Escalate => "approval_required",
    };
    Ok(Json(AuthorizeResponse {
        decision: decision.to_owned(),
        policy_decision: e.decision,
        reason_code: e.reason_code,
        message: e.message.clone(),
        violated_rule_id: e.violated_rule_id.clone(),
        violated_rule_description: e.violated_rule_description.clone(),
        decline_message: e.decline_message.clone(),
        next_step: e.next_step.map(str::to_owned),
        violations: e.violations.clone(),
        policy_version: decided.policy_version,
        amount_cents: spend.request.amount_cents,
        binding: false,
        headroom,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_costs_round_up_to_the_cent() {
        // 1,500 tokens at 250 ¢/M = 0.375 ¢ → 1 ¢; exact millions stay exact.
        assert_eq!(ceil_div(1_500 * 250, 1_000_000), 1);
        assert_eq!(ceil_div(2_000_000 * 250, 1_000_000), 500);
        assert_eq!(ceil_div(0, 1_000_000), 0);
    }
}
