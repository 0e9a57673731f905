//! The HTTP API: agents, usage agreements, activation packages, activation and escrow status,
//! usage, vouchers and settlement on both paths, governance, agents' wallets and the risk check.
//!
//! [`app`] builds the router from shared state and is separate from serving it, so tests can
//! drive it with or without a socket.

pub mod activation;
mod activation_queue;
pub mod agents;
mod agreement_access;
pub mod agreement_view;
pub mod agreements;
pub mod auth;
pub mod check_queue;
pub mod console;
pub mod credentials;
pub mod credentials_seen;
pub mod document_number;
pub mod error;
pub mod extract;
pub mod go_no_go;
pub mod governance;
pub mod health;
pub mod idempotency;
pub mod intents;
pub mod observability;
pub mod openapi;
pub mod page;
pub mod payments;
pub mod rate_limit;
pub mod read_model;
pub mod receipts;
pub mod reconciliation;
pub mod risk;
pub mod settlement;
mod signature;
pub mod spend_gate;
pub mod spend_guard;
mod spend_request;
pub mod telemetry;
mod time;
pub mod typed_data_view;
pub mod validate;
pub mod wallets;
pub mod webhooks;

use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use tower_http::trace::TraceLayer;

use crate::agreement::ids::Environment;
use crate::agreement::settlement::Action;
use crate::agreement::terms::TermsPolicy;
use crate::chain::context::ChainContext;
use crate::screening::Screener;
use crate::store::Store;
use error::{ApiError, ErrorCode};

/// What every handler shares.
#[derive(Debug)]
pub struct Shared {
    /// The store.
    pub store: Store,
    /// The account of the configured owner credential (`PACTUM_OWNER_KEY`): the operator, the
    /// only owner who sees deployment-wide views (relayer keys, go/no-go).
    pub operator_account: Option<crate::agreement::ids::AccountId>,
    /// The faucet wallet demo funding moves USDC from, when one is configured (otherwise demo
    /// funding mints on the dev node).
    pub faucet: Option<alloy::signers::local::PrivateKeySigner>,
    /// The chain and the escrow deployment.
    pub chain: ChainContext,
    /// Wallet screening.
    pub screener: Screener,
    /// How terms are fixed at acceptance.
    pub policy: TermsPolicy,
    /// Which kind of keys this deployment issues.
    pub environment: Environment,
    /// Hands each committed job to this process's relayer, so it need not wait for its next
    /// poll (see [`crate::relayer::feed`]).
    pub relayer: crate::relayer::feed::JobFeed,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a request may take before it is answered 503 `timeout`.
    pub request_timeout: std::time::Duration,
    /// How webhooks are delivered (the SSRF policy applies to registration too).
    pub webhooks: crate::webhooks::WebhookSettings,
    /// Seconds a sponsored-action authorization offered by the options endpoint stays valid.
    pub authorization_ttl: u64,
    /// The receipt key's address: a receipt verifies only if it recovers this signer.
    pub receipt_signer: alloy::primitives::Address,
    /// Rate limits per credential and route group.
    pub rate_limits: rate_limit::Limits,
    /// Seconds a response stays stored under its `Idempotency-Key`.
    pub idempotency_ttl: u64,
    /// `GET /readyz` fails when the watcher is more blocks than this behind the head.
    pub ready_max_lag_blocks: u64,
    /// Blocks deep the watcher confirms at: reconciliation reads the chain that deep.
    pub confirmations: u64,
    /// Unclaimed voucher value (token base units) of a buyer with code at which the seller's
    /// settlement options recommend an early claim.
    pub early_claim_threshold: crate::money::TokenAmount,
    /// Seconds an approval waits for its owner (capped by what it holds).
    pub approval_ttl: u64,
    /// Where `POST /v1/checks` hands its decisions, to be decided in batches.
    pub checks: check_queue::CheckQueue,
    /// Agreements and the watcher's position as last read from the store (escrow status).
    pub read_model: read_model::ReadModel,
    /// Credentials recently read from the store (trusted for at most a second).
    pub credentials_seen: credentials_seen::CredentialsSeen,
    /// Wallet balances, each valid for the block it was read at.
    pub wallet_balances: crate::wallets::balances::BalanceCache,
    /// Signers' ether as the settlement options read it, each valid for its block.
    pub gas_balances: crate::wallets::balances::GasBalanceCache,
    /// Risk-check verdicts, kept for a few seconds.
    pub risk_verdicts: crate::screening::cache::VerdictCache,
    /// Agent self-registration: claim codes' lifetime and the claim page.
    pub registration: crate::registration::RegistrationSettings,
    /// The operator console's settings.
    pub console: crate::console::ConsoleSettings,
    /// The relayer's signer addresses, in configuration order (the console's relayer page).
    pub relayer_addresses: Vec<alloy::primitives::Address>,
    /// What a go/no-go run needs: the receipt key, its settings, the store URL, this API's URL.
    pub go_no_go: go_no_go::Equipment,
}

/// Cheaply cloneable handle to [`Shared`].
#[derive(Debug, Clone)]
pub struct AppState(pub Arc<Shared>);

impl Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Answers 503 `timeout` in the API's error shape when a request (reading its body included)
/// takes longer than `limit`. The handler's future is dropped, so an open transaction rolls back.
async fn timeout(
    limit: std::time::Duration,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(ErrorCode::Timeout,
            format!(
                "the request took longer than {} s; retry it (a write with the same Idempotency-Key)",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}

/// The API router over `state`.
pub fn app(state: AppState) -> Router {
    let body_limit = state.max_body_bytes;
    let time_limit = state.request_timeout;
    Router::new()
        .route("/v1/agents", post(agents::create).get(agents::list))
        .route("/v1/agents/{agent_id}", get(agents::get).delete(agents::revoke))
        .route("/v1/agents/{agent_id}/regenerate-key", post(agents::regenerate_key))
        .route("/agents/{agent_id}/regenerate-key", post(agents::regenerate_key_at_seed_path))
        .route("/agents/claim", post(agents::registration::claim))
        .route("/v1/agents/{agent_id}/execution-tokens", post(credentials::mint))
        .route("/agents/{agent_id}/webhooks", post(webhooks::create).get(webhooks::list))
        .route("/agents/{agent_id}/webhooks/deliveries", get(webhooks::list_deliveries))
        .route("/agents/{agent_id}/webhooks/deliveries/{delivery_id}", get(webhooks::delivery))
        .route(
            "/agents/{agent_id}/webhooks/deliveries/{delivery_id}/replay",
            post(webhooks::replay),
        )
        .route(
            "/agents/{agent_id}/webhooks/{webhook_id}",
            get(webhooks::get).patch(webhooks::update).delete(webhooks::delete),
        )
        .route(
            "/agents/{agent_id}/webhooks/{webhook_id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route("/v1/checks", post(governance::checks::create))
        .route("/v1/checks/{check_id}", get(governance::checks::get))
        .route("/v1/audit", get(governance::audit::list))
        .route("/v1/spend-guard/estimate", post(spend_guard::estimate::estimate))
        .route("/v1/spend-guard/authorize", post(spend_guard::estimate::authorize))
        .route(
            "/v1/spend-guard/reservations",
            post(spend_guard::reservations::create).get(spend_guard::reservations::list),
        )
        .route("/v1/spend-guard/reservations/{reservation_id}", get(spend_guard::reservations::get))
        .route(
            "/v1/spend-guard/reservations/{reservation_id}/capture",
            post(spend_guard::reservations::capture),
        )
        .route(
            "/v1/spend-guard/reservations/{reservation_id}/release",
            post(spend_guard::reservations::release),
        )
        .route(
            "/v1/spend-guard/budget-leases",
            post(spend_guard::leases::create).get(spend_guard::leases::list),
        )
        .route(
            "/v1/spend-guard/budget-leases/{lease_id}/release",
            post(spend_guard::leases::release),
        )
        .route("/v1/spend-guard/usage/summary", get(spend_guard::summary::summary))
        .route(
            "/agents/{agent_id}/policies",
            get(governance::policies::get)
                .put(governance::policies::put)
                .post(governance::policies::post),
        )
        .route("/agents/{agent_id}/policies/versions/{version}", get(governance::policies::version))
        .route("/agents/{agent_id}/approvals", get(governance::approvals::list_for_agent))
        .route(
            "/agents/{agent_id}/approvals/{request_id}/approve",
            post(governance::approvals::approve),
        )
        .route(
            "/agents/{agent_id}/approvals/{request_id}/reject",
            post(governance::approvals::reject),
        )
        .route("/agents/{agent_id}/circuit-break", post(governance::halt::circuit_break))
        .route("/agents/{agent_id}/violations", get(governance::audit::violations))
        .route("/approvals", get(governance::approvals::list_all))
        .route("/approvals/{approval_id}", get(governance::approvals::get))
        .route("/approvals/{approval_id}/decide", post(governance::approvals::decide_by_id))
        .route("/v1/mandates", post(governance::mandates::create).get(governance::mandates::list))
        .route(
            "/v1/mandates/{mandate_id}",
            get(governance::mandates::get).put(governance::mandates::update),
        )
        .route("/v1/mandates/{mandate_id}/revoke", post(governance::mandates::revoke))
        .route("/usage-agreements", post(agreements::propose))
        .route("/usage-agreements/{agreement_id}", get(agreements::get))
        .route("/usage-agreements/agents/{agent_id}/agreements", get(agreements::list))
        .route("/usage-agreements/{agreement_id}/accept", put(agreements::accept))
        .route("/usage-agreements/{agreement_id}/reject", put(agreements::reject))
        .route("/usage-agreements/{agreement_id}/activation-package", get(activation::package))
        .route("/usage-agreements/{agreement_id}/activate-escrow", post(activation::activate))
        .route(
            "/usage-agreements/{agreement_id}/escrow-status",
            get(activation::escrow_status::escrow_status),
        )
        .route(
            "/usage-agreements/{agreement_id}/record-usage",
            post(settlement::usage::record_usage),
        )
        .route("/usage-agreements/{agreement_id}/usage", get(settlement::usage::usage))
        .route(
            "/usage-agreements/{agreement_id}/usage-vouchers",
            post(settlement::usage::submit_voucher),
        )
        .route(
            "/usage-agreements/{agreement_id}/settlement-action-options",
            get(settlement::options::options),
        )
        .route(
            "/usage-agreements/{agreement_id}/initiate-close-calldata",
            get(settlement::direct::direct_handler(Action::InitiateClose)),
        )
        .route(
            "/usage-agreements/{agreement_id}/claim-instructions",
            get(settlement::direct::direct_handler(Action::SellerClaim)),
        )
        .route(
            "/usage-agreements/{agreement_id}/withdraw-instructions",
            get(settlement::direct::direct_handler(Action::BuyerWithdraw)),
        )
        .route(
            "/usage-agreements/{agreement_id}/sponsored-actions/{action}",
            post(settlement::sponsored::sponsored_action),
        )
        .route(
            "/usage-agreements/{agreement_id}/settlement-actions",
            get(settlement::actions::list_actions),
        )
        .route(
            "/usage-agreements/{agreement_id}/settlement-actions/{action_id}",
            get(settlement::actions::get_action),
        )
        .route("/usage-agreements/{agreement_id}/events", get(settlement::actions::events))
        .route("/v1/wallets", post(wallets::register).get(wallets::list))
        .route("/v1/wallets/{wallet_id}", get(wallets::get))
        .route("/v1/wallets/{wallet_id}/balance", get(wallets::balance))
        .route("/v1/wallets/{wallet_id}/fund", post(wallets::fund))
        .route("/activate", post(wallets::activate))
        .route("/v1/payments", post(payments::create).get(payments::list))
        .route("/v1/payments/{payment_id}", get(payments::get))
        .route("/v1/payments/{payment_id}/authorize", post(payments::authorize))
        .route("/risk/check", post(risk::check))
        .route("/validate", post(intents::validate))
        .route("/intents/{intentId}/events", post(intents::post_event))
        .route("/intents/{intentId}/status", get(intents::status))
        .route("/v1/reconciliation", get(reconciliation::reconciliation))
        .route("/v1/go-no-go", post(go_no_go::start).get(go_no_go::latest))
        .route("/v1/go-no-go/{run_id}", get(go_no_go::get))
        .route("/receipts", get(receipts::list))
        .route("/v1/agreements", get(console::agreements::list))
        .route("/v1/agreements/{agreement_id}/timeline", get(console::agreements::timeline))
        .route("/v1/relayer", get(console::relayer::overview))
        .route("/v1/stats", get(console::stats::stats))
        .route("/v1/console/config", get(console::config))
        .route("/receipts/verify/{receipt_id}", get(receipts::verify))
        // Execution tokens are checked against the matched route, for every route above.
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), credentials::verify))
        // Public routes come after that layer: they take no credential, so whatever
        // `Authorization` a client sends along is ignored rather than checked. Registration
        // creates an agent per request: its rate limit is per client IP address.
        .route("/health", get(health::health))
        .route("/healthz", get(observability::healthz))
        .route("/readyz", get(observability::readyz))
        .route("/metrics", get(observability::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .merge(crate::console::routes())
        .route("/agents/register", post(agents::registration::register))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorCode::MethodNotAllowed, "this route does not take that method")
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::middleware::from_fn(move |request, next| timeout(time_limit, request, next)))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(rate_limit::RateLimiter::new(state.rate_limits)),
            rate_limit::enforce,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(telemetry::span))
        .layer(axum::middleware::from_fn(telemetry::track))
        .with_state(state)
}
