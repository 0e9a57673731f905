//! The HTTP API: agents, usage agreements, activation packages, activation and escrow status,
//! usage, vouchers and settlement on both paths.
//!
//! [`app`] builds the router from shared state and is separate from serving it, so tests can
//! drive it with or without a socket.

pub mod activation;
pub mod agents;
pub mod agreements;
pub mod error;
pub mod extract;
pub mod idempotency;
pub mod settlement;
pub mod status;
mod time;

use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use tokio::sync::Notify;
use tower_http::trace::TraceLayer;

use crate::agreement::ids::Environment;
use crate::agreement::settlement::Action;
use crate::agreement::terms::TermsPolicy;
use crate::chain::context::ChainContext;
use crate::screening::Screener;
use crate::store::Store;
use error::ApiError;

/// What every handler shares.
#[derive(Debug)]
pub struct Shared {
    /// The store.
    pub store: Store,
    /// The chain and the escrow deployment.
    pub chain: ChainContext,
    /// Wallet screening.
    pub screener: Screener,
    /// How terms are fixed at acceptance.
    pub policy: TermsPolicy,
    /// Which kind of keys this deployment issues.
    pub environment: Environment,
    /// Wakes the relayer when a job is queued, so it need not wait for its next poll.
    pub relayer_wake: Arc<Notify>,
    /// The largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Seconds a sponsored-action authorization offered by the options endpoint stays valid.
    pub authorization_ttl: u64,
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

/// The API router over `state`.
pub fn app(state: AppState) -> Router {
    let body_limit = state.max_body_bytes;
    Router::new()
        .route("/health", get(status::health))
        .route("/v1/agents", post(agents::create))
        .route("/v1/agents/{agent_id}", get(agents::get))
        .route("/usage-agreements", post(agreements::propose))
        .route("/usage-agreements/{agreement_id}", get(agreements::get))
        .route("/usage-agreements/agents/{agent_id}/agreements", get(agreements::list))
        .route("/usage-agreements/{agreement_id}/accept", put(agreements::accept))
        .route("/usage-agreements/{agreement_id}/reject", put(agreements::reject))
        .route("/usage-agreements/{agreement_id}/activation-package", get(activation::package))
        .route("/usage-agreements/{agreement_id}/activate-escrow", post(activation::activate))
        .route("/usage-agreements/{agreement_id}/escrow-status", get(status::escrow_status))
        .route("/usage-agreements/{agreement_id}/record-usage", post(settlement::record_usage))
        .route("/usage-agreements/{agreement_id}/usage", get(settlement::usage))
        .route("/usage-agreements/{agreement_id}/usage-vouchers", post(settlement::submit_voucher))
        .route(
            "/usage-agreements/{agreement_id}/settlement-action-options",
            get(settlement::options),
        )
        .route(
            "/usage-agreements/{agreement_id}/initiate-close-calldata",
            get(settlement::direct_handler(Action::InitiateClose)),
        )
        .route(
            "/usage-agreements/{agreement_id}/claim-instructions",
            get(settlement::direct_handler(Action::SellerClaim)),
        )
        .route(
            "/usage-agreements/{agreement_id}/withdraw-instructions",
            get(settlement::direct_handler(Action::BuyerWithdraw)),
        )
        .route(
            "/usage-agreements/{agreement_id}/sponsored-actions/{action}",
            post(settlement::sponsored_action),
        )
        .route("/usage-agreements/{agreement_id}/settlement-actions", get(settlement::list_actions))
        .route(
            "/usage-agreements/{agreement_id}/settlement-actions/{action_id}",
            get(settlement::get_action),
        )
        .route("/usage-agreements/{agreement_id}/events", get(settlement::events))
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}
