//! The hosted-activation section: a canary agreement run end to end through this service's own
//! HTTP API, as two agents would: propose, accept, the activation package signed locally,
//! `activate-escrow`, confirmation; then usage, the buyer's voucher and the seller's sponsored
//! close with it, which settles at once.
//!
//! The canary buyer and seller are agents of the operator's account, created on first use.
//! Their API keys and wallet keys are derived from the receipt key (domain-separated keccak,
//! [`crate::receipts::ReceiptKey::derive_secret`]), so nothing secret is stored and they are
//! the same after a restart and on every instance. On a test chain the buyer's wallet is
//! funded the way demo funding does it; on a live chain the canary is refused unless
//! `PACTUM_GO_NO_GO_ALLOW_LIVE_CANARY` is set, and then the buyer must already hold the funds.

use std::time::{Duration, Instant};

use alloy::primitives::{Address, B256, U256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use reqwest::Method;
use serde_json::{Value, json};

use crate::agreement::ids::{Environment, SecretKey};
use crate::api::AppState;
use crate::chain::faucet;
use crate::gonogo::evidence::{self, ActivationEvidence, CanaryStep};
use crate::gonogo::{Section, SectionReport};
use crate::store::StoreError;
use crate::store::agents::{self, Account, Agent};

/// Base mainnet's chain id: always a live chain.
const BASE_MAINNET: u64 = 8453;
/// Units the canary buys, at [`PRICE_CENTS`] each.
const QUANTITY: u64 = 10;
/// The canary's unit price, in cents.
const PRICE_CENTS: u64 = 1;
/// What the buyer's wallet is topped up to hold (5 USDC: many runs' deposits and fees).
const FUND_BASE_UNITS: u64 = 5_000_000;
/// Below this the buyer's wallet is topped up (1 USDC: one deposit and fee, with room).
const LOW_BASE_UNITS: u64 = 1_000_000;
/// Between polls of an agreement or an action.
const POLL: Duration = Duration::from_millis(200);
/// How long one wait (activation, settlement) may take.
const WAIT: Duration = Duration::from_secs(120);

/// Why the canary stopped.
#[derive(Debug, thiserror::Error)]
enum CanaryError {
    /// The canary is not allowed on this chain.
    #[error("{0}")]
    Refused(String),
    /// A call to the service failed or answered unexpectedly.
    #[error("{step}: {message}")]
    Step {
        /// The step.
        step: &'static str,
        /// What happened.
        message: String,
    },
    /// The store could not be read or written.
    #[error("store: {0}")]
    Store(#[from] StoreError),
}

fn step_error(step: &'static str, message: impl Into<String>) -> CanaryError {
    CanaryError::Step { step, message: message.into() }
}

/// A canary party: its agent, API key and wallet.
struct Party {
    agent: Agent,
    key: SecretKey,
    wallet: PrivateKeySigner,
}

/// Gathers the hosted-activation section.
pub(super) async fn gather(state: &AppState, account: &Account) -> SectionReport {
    let mut evidence =
        ActivationEvidence { chain_id: state.chain.chain_id, ..ActivationEvidence::default() };
    let started = Instant::now();
    if let Err(error) = flow(state, account, &mut evidence, started).await {
        evidence.error = Some(error.to_string());
    }
    evidence.elapsed_ms = elapsed_ms(started);
    let (verdict, summary) = evidence::judge_activation(&evidence);
    SectionReport::new(Section::HostedActivation, verdict, summary, &evidence)
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Whether the canary may run: anywhere but a live chain, or there when explicitly allowed.
fn allowed(state: &AppState) -> bool {
    let live = state.environment == Environment::Live || state.chain.chain_id == BASE_MAINNET;
    !live || state.go_no_go.settings.allow_live_canary
}

async fn flow(
    state: &AppState,
    account: &Account,
    evidence: &mut ActivationEvidence,
    started: Instant,
) -> Result<(), CanaryError> {
    evidence.allowed = allowed(state);
    if !evidence.allowed {
        return Err(CanaryError::Refused(format!(
            "refused on live chain {}: set PACTUM_GO_NO_GO_ALLOW_LIVE_CANARY to run a real \
             agreement with the canary agents",
            state.chain.chain_id
        )));
    }
    let buyer = party(state, account, "buyer").await?;
    let seller = party(state, account, "seller").await?;
    evidence.buyer_agent_id = Some(buyer.agent.id.to_string());
    evidence.seller_agent_id = Some(seller.agent.id.to_string());
    evidence.buyer_wallet = Some(buyer.wallet.address().to_checksum(None));
    evidence.seller_wallet = Some(seller.wallet.address().to_checksum(None));

    evidence.funding_tx_hash = fund(state, buyer.wallet.address()).await?.map(|h| h.to_string());
    push(
        evidence,
        started,
        "fund_buyer",
        evidence.funding_tx_hash.clone().unwrap_or("already funded".into()),
    );

    let api = Api { http: reqwest::Client::new(), base: state.go_no_go.self_url.clone() };
    let proposal = json!({
        "seller_agent_id": seller.agent.id,
        "service_id": "go_no_go_canary",
        "quantity": QUANTITY,
        "unit": "api_calls",
        "price_per_unit_cents": PRICE_CENTS,
        "payment_method": { "rail": "stablecoin", "provider": "x402" },
        "settlement_model": "bilateral_escrow",
        "activation_version": "v2",
        "buyer_wallet_address": buyer.wallet.address().to_checksum(None),
    });
    let agreement = api
        .expect("propose", Method::POST, "/usage-agreements", &buyer.key, Some(&proposal), 201)
        .await?;
    let id = text(&agreement["id"]).ok_or_else(|| step_error("propose", "no agreement id"))?;
    evidence.agreement_id = Some(id.clone());
    push(evidence, started, "propose", id.clone());

    let acceptance = json!({ "seller_wallet_address": seller.wallet.address().to_checksum(None) });
    let path = format!("/usage-agreements/{id}/accept");
    api.expect("accept", Method::PUT, &path, &seller.key, Some(&acceptance), 200).await?;
    push(evidence, started, "accept", "accepted".into());

    let path = format!("/usage-agreements/{id}/activation-package");
    let package =
        api.expect("activation_package", Method::GET, &path, &buyer.key, None, 200).await?;
    let signed = sign_package(&buyer.wallet, &package)?;
    let path = format!("/usage-agreements/{id}/activate-escrow");
    api.expect("activate_escrow", Method::POST, &path, &buyer.key, Some(&signed), 202).await?;
    push(evidence, started, "activate_escrow", "queued".into());

    let path = format!("/usage-agreements/{id}");
    let active = api
        .wait("activation", &path, &buyer.key, |a| {
            a["status"] == "active" || a["activation_status"] == "failed"
        })
        .await?;
    evidence.activation_tx_hash = text(&active["activation_tx_hash"]);
    evidence.final_status = text(&active["status"]);
    evidence.final_activation_status = text(&active["activation_status"]);
    if active["status"] != "active" {
        return Err(step_error(
            "activation",
            format!("activation failed: {}", active["activation_error"]),
        ));
    }
    push(
        evidence,
        started,
        "activation_confirmed",
        evidence.activation_tx_hash.clone().unwrap_or_default(),
    );

    let path = format!("/usage-agreements/{id}/record-usage");
    let usage = json!({ "units": QUANTITY });
    api.expect("record_usage", Method::POST, &path, &seller.key, Some(&usage), 201).await?;
    push(evidence, started, "record_usage", format!("{QUANTITY} units"));

    let path = format!("/usage-agreements/{id}/usage");
    let usage = api.expect("usage", Method::GET, &path, &buyer.key, None, 200).await?;
    let document = &usage["voucher_to_sign"];
    let units = document["message"]["cumulativeUnits"]
        .as_str()
        .and_then(|u| u.parse::<u64>().ok())
        .ok_or_else(|| step_error("voucher", "no voucher to sign"))?;
    let voucher =
        json!({ "cumulative_units": units, "signature": sign_document(&buyer.wallet, document)? });
    let path = format!("/usage-agreements/{id}/usage-vouchers");
    api.expect("voucher", Method::POST, &path, &buyer.key, Some(&voucher), 200).await?;
    push(evidence, started, "voucher", format!("{units} units signed by the buyer"));

    let path = format!("/usage-agreements/{id}/settlement-action-options?action=initiate_close");
    let options = api.expect("close_options", Method::GET, &path, &seller.key, None, 200).await?;
    let sponsored = &options["paths"]["sponsored"];
    let submit_to = text(&sponsored["submit_to"])
        .ok_or_else(|| step_error("close_options", format!("no sponsored path: {options}")))?;
    let final_units = sponsored["typed_data"]["message"]["finalUnits"]
        .as_str()
        .and_then(|u| u.parse::<u64>().ok());
    let mut close = json!({
        "deadline": sponsored["deadline"],
        "authorization_signature": sign_document(&seller.wallet, &sponsored["typed_data"])?,
    });
    if let Some(units) = final_units {
        close["units"] = json!(units);
    }
    let action = api
        .expect("initiate_close", Method::POST, &submit_to, &seller.key, Some(&close), 202)
        .await?;
    let action_id =
        text(&action["id"]).ok_or_else(|| step_error("initiate_close", "no action id"))?;
    push(evidence, started, "initiate_close", action_id.clone());

    let path = format!("/usage-agreements/{id}/settlement-actions/{action_id}");
    let done = api
        .wait("settlement", &path, &seller.key, |a| {
            a["status"] == "confirmed" || a["status"] == "failed"
        })
        .await?;
    evidence.settlement_tx_hash = text(&done["tx_hash"]);
    if done["status"] != "confirmed" {
        return Err(step_error("settlement", format!("the close failed: {done}")));
    }
    push(
        evidence,
        started,
        "close_confirmed",
        evidence.settlement_tx_hash.clone().unwrap_or_default(),
    );

    let path = format!("/usage-agreements/{id}");
    let settled = api
        .wait("settled", &path, &buyer.key, |a| a["status"] == "settled" || a["status"] == "failed")
        .await?;
    evidence.final_status = text(&settled["status"]);
    evidence.final_activation_status = text(&settled["activation_status"]);
    push(evidence, started, "settled", evidence.final_status.clone().unwrap_or_default());
    Ok(())
}

/// The canary `role`'s agent in the operator's account, created on first use, with its
/// derived API key and wallet.
async fn party(state: &AppState, account: &Account, role: &str) -> Result<Party, CanaryError> {
    let derive = |what: &str| {
        state.go_no_go.receipt_key.derive_secret(&format!("go-no-go/canary-{role}/{what}"))
    };
    let key = SecretKey::from_presented(format!(
        "{}_{}_{}",
        crate::api::auth::AGENT_KEY_KIND,
        state.environment.as_str(),
        alloy::hex::encode(derive("api-key"))
    ));
    let wallet = PrivateKeySigner::from_bytes(&derive("wallet"))
        .map_err(|_| step_error("canary_agents", "the derived wallet key is not a valid key"))?;
    let agent = match agents::agent_by_key(state.store.reader(), &key.hash()).await? {
        Some(agent) if agent.account_id == account.id => agent,
        Some(_) => {
            return Err(step_error("canary_agents", "the canary key belongs to another account"));
        }
        None => {
            let (mut agent, _) = agents::new_agent(
                account.id.clone(),
                &format!("go-no-go canary {role}"),
                Some(format!("The {role} of the go/no-go canary agreement (docs/go-no-go.md)")),
                vec!["go_no_go_canary".into()],
                state.environment,
                crate::store::now(),
            );
            agent.api_key_hint = key.hint();
            let mut tx = state.store.begin().await?;
            agents::insert_agent(&mut tx, &agent, &key.hash()).await?;
            tx.commit().await.map_err(StoreError::from)?;
            tracing::info!(agent_id = %agent.id, role, "go/no-go canary agent created");
            agent
        }
    };
    Ok(Party { agent, key, wallet })
}

/// Tops up the buyer's wallet on a test chain; on a live chain checks it holds enough.
/// Returns the funding transaction, if one was sent.
async fn fund(state: &AppState, buyer: Address) -> Result<Option<B256>, CanaryError> {
    let chain = &state.chain;
    let held = chain.balance(buyer).await.map_err(|e| {
        step_error("fund_buyer", format!("the buyer's balance could not be read: {e}"))
    })?;
    if held >= U256::from(LOW_BASE_UNITS) {
        return Ok(None);
    }
    if !crate::wallets::funding_allowed(state.environment, chain.chain_id) {
        return Err(step_error(
            "fund_buyer",
            format!(
                "the canary buyer {buyer} holds {held} base units; fund it with at least {LOW_BASE_UNITS}"
            ),
        ));
    }
    let amount = U256::from(FUND_BASE_UNITS);
    let minted = match &state.faucet {
        Some(faucet) => {
            faucet::send_from_faucet(&chain.provider, faucet, chain.token, buyer, amount).await
        }
        None => faucet::mint_demo_usdc(&chain.provider, chain.token, buyer, amount).await,
    };
    minted.map(|m| Some(m.tx_hash)).map_err(|e| step_error("fund_buyer", e.to_string()))
}

/// Notes a step, timed from the flow's start.
fn push(evidence: &mut ActivationEvidence, started: Instant, step: &str, result: String) {
    evidence.steps.push(CanaryStep { step: step.to_owned(), at_ms: elapsed_ms(started), result });
}

fn text(value: &Value) -> Option<String> {
    value.as_str().map(str::to_owned)
}

/// `document` (`eth_signTypedData_v4` JSON) signed by `wallet`, as a wallet library would.
fn sign_document(wallet: &PrivateKeySigner, document: &Value) -> Result<String, CanaryError> {
    let digest = crate::escrow::package::digest_of(document)
        .map_err(|e| step_error("sign", format!("a document to sign does not hash: {e}")))?;
    let signature =
        wallet.sign_hash_sync(&digest).map_err(|e| step_error("sign", e.to_string()))?;
    Ok(alloy::hex::encode_prefixed(signature.as_bytes()))
}

/// The body of `activate-escrow` for `package`, every document signed by the buyer's wallet.
fn sign_package(wallet: &PrivateKeySigner, package: &Value) -> Result<Value, CanaryError> {
    let mut body = json!({
        "activation_signature": sign_document(wallet, &package["activation"])?,
        "funding_signature": sign_document(wallet, &package["funding"])?,
        "agreement_key": package["agreement_key"],
        "chain_id": package["chain_id"],
    });
    if let Some(fee) = package.get("infra_fee").filter(|fee| fee.get("permit").is_some()) {
        body["infra_fee_permit_signature"] = json!(sign_document(wallet, &fee["permit"])?);
    }
    Ok(body)
}

/// This service's own API, called as the canary agents.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    /// Sends the request; the answer's status and JSON body.
    async fn call(
        &self,
        step: &'static str,
        method: Method,
        path: &str,
        key: &SecretKey,
        body: Option<&Value>,
    ) -> Result<(u16, Value), CanaryError> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key.reveal())
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header("Idempotency-Key", crate::agreement::ids::GoNoGoRunId::generate().as_str())
                .body(body.to_string());
        }
        let response = request.send().await.map_err(|e| step_error(step, e.to_string()))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| step_error(step, e.to_string()))?;
        Ok((status, serde_json::from_slice(&bytes).unwrap_or(Value::Null)))
    }

    /// [`Api::call`], failing unless the status is `expected`.
    async fn expect(
        &self,
        step: &'static str,
        method: Method,
        path: &str,
        key: &SecretKey,
        body: Option<&Value>,
        expected: u16,
    ) -> Result<Value, CanaryError> {
        let (status, answer) = self.call(step, method, path, key, body).await?;
        if status != expected {
            return Err(step_error(step, format!("HTTP {status}: {}", answer["error"])));
        }
        Ok(answer)
    }

    /// Polls `GET path` until `done` holds; fails after [`WAIT`].
    async fn wait(
        &self,
        step: &'static str,
        path: &str,
        key: &SecretKey,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, CanaryError> {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, body) = self.call(step, Method::GET, path, key, None).await?;
            if status == 200 && done(&body) {
                return Ok(body);
            }
            if Instant::now() >= deadline {
                return Err(step_error(
                    step,
                    format!("not done after {} s: {body}", WAIT.as_secs()),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
