//! The OpenAPI 3.1 document of the whole API, generated from the handlers' `#[utoipa::path]`
//! annotations and the `ToSchema` derives of the very request and view types the handlers take
//! and return. Served at `GET /openapi.json`, printed by `pactum openapi` and committed as
//! `docs/openapi.json`; `tests/it/openapi.rs` fails when the committed file drifts, when a route
//! is missing from the document (or the reverse), or when a real response breaks its schema.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Required, Response, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::governance::{approvals, audit, checks, halt, mandates, policies};
use super::{
    activation, agents, agreements, credentials, health, observability, receipts, settlement,
    webhooks,
};

/// The document, built from the code.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Pactum API",
        description = "Non-custodial escrow and settlement relayer for usage agreements between \
            AI agents (USDC on Base). Every error answers `{\"error\": {\"code\", \"message\", \
            \"details\"}}`; every write accepts `Idempotency-Key`. Agent operations take an agent \
            API key and owner operations the owner credential, both as `Authorization: Bearer`.",
    ),
    paths(
        health::health,
        observability::healthz,
        observability::readyz,
        observability::metrics,
        openapi_json,
        agents::create,
        agents::list,
        agents::get,
        agents::revoke,
        agents::regenerate_key,
        agents::regenerate_key_at_seed_path,
        agents::registration::register,
        agents::registration::claim,
        credentials::mint,
        webhooks::create,
        webhooks::list,
        webhooks::get,
        webhooks::update,
        webhooks::delete,
        webhooks::rotate_secret,
        webhooks::list_deliveries,
        webhooks::delivery,
        webhooks::replay,
        receipts::list,
        receipts::verify,
        agreements::propose,
        agreements::get,
        agreements::list,
        agreements::accept,
        agreements::reject,
        activation::package,
        activation::activate,
        activation::escrow_status::escrow_status,
        settlement::usage::record_usage,
        settlement::usage::usage,
        settlement::usage::submit_voucher,
        settlement::options::options,
        initiate_close_calldata,
        claim_instructions,
        withdraw_instructions,
        settlement::sponsored::sponsored_action,
        settlement::actions::list_actions,
        settlement::actions::get_action,
        settlement::actions::events,
        checks::create,
        checks::get,
        policies::get,
        policies::put,
        policies::post,
        policies::version,
        approvals::list_for_agent,
        approvals::approve,
        approvals::reject,
        approvals::list_all,
        approvals::get,
        approvals::decide_by_id,
        halt::circuit_break,
        mandates::create,
        mandates::list,
        mandates::get,
        mandates::update,
        mandates::revoke,
        audit::list,
        audit::violations,
        crate::api::spend_guard::estimate::estimate,
        crate::api::spend_guard::estimate::authorize,
        crate::api::spend_guard::reservations::create,
        crate::api::spend_guard::reservations::list,
        crate::api::spend_guard::reservations::get,
        crate::api::spend_guard::reservations::capture,
        crate::api::spend_guard::reservations::release,
        crate::api::spend_guard::leases::create,
        crate::api::spend_guard::leases::list,
        crate::api::spend_guard::leases::release,
        crate::api::spend_guard::summary::summary,
        super::wallets::register,
        super::wallets::list,
        super::wallets::get,
        super::wallets::balance,
        super::wallets::fund,
        super::wallets::activate,
        super::payments::create,
        super::payments::list,
        super::payments::get,
        super::payments::authorize,
        super::risk::check,
        super::intents::validate,
        super::intents::post_event,
        super::intents::status,
        super::reconciliation::reconciliation,
        super::console::config,
        super::console::agreements::list,
        super::console::agreements::timeline,
        super::console::relayer::overview,
        super::console::stats::stats,
        super::go_no_go::start,
        super::go_no_go::latest,
        super::go_no_go::get,
    ),
    components(schemas(super::error::ErrorBody, agents::ListedStatus)),
    modifiers(&BearerAuth, &Refine),
    tags(
        (name = "service", description = "Health and this document."),
        (name = "agents", description = "Agents and their API keys (owner credential); agents registering themselves on a test deployment, and their claim."),
        (name = "agreements", description = "Propose, read, list, accept and reject."),
        (name = "activation", description = "The package the buyer signs, and activation."),
        (name = "escrow", description = "Escrow status as the chain watcher confirmed it."),
        (name = "usage", description = "Recorded usage and the buyer's vouchers."),
        (name = "settlement", description = "Direct and sponsored settlement actions."),
        (name = "webhooks", description = "Webhook endpoints and deliveries (owner credential)."),
        (name = "receipts", description = "Signed receipts of settlement events, and their check."),
        (name = "governance", description = "Owner policies, spend checks, approvals, mandates, the agent halt and the audit log."),
        (name = "reconciliation", description = "The store against the chain (owner credential)."),
        (name = "console", description = "Owner and operator views behind the operator console (owner credential; the relayer view answers only to the operator)."),
        (name = "go-no-go", description = "The signed go/no-go evidence packet of the deployment (the operator only)."),
        (name = "spend-guard", description = "Estimates, authorizations, reservations (holds on budgets), budget leases to child agents and the usage summary."),
        (name = "payments", description = "Governed payments: a USDC transfer from the agent's own wallet under its policy, budgets and mandate, signed by the wallet and relayed by Pactum."),
        (name = "wallets", description = "Agents' own wallets (non-custodial): registration with an optional proof of control, balances, demo funding on test chains."),
        (name = "risk", description = "Screening one address against the denylist and the sanctions oracle."),
        (name = "intents", description = "Transfers an agent validates before paying them from its own wallet, verified on-chain by the watcher."),
    )
)]
struct ApiDoc;

/// Adds the `bearerAuth` scheme the operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "An agent API key for agent operations; the owner credential for `/v1/agents`.",
            ))
            .build();
        components.add_security_scheme("bearerAuth", SecurityScheme::Http(scheme));
    }
}

/// The idempotency header every write takes, as [`Refine`] adds it where an operation does not
/// declare its own (`record-usage` declares it required).
const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// What the idempotency header does, for the writes that do not say more.
const IDEMPOTENCY_KEY_TEXT: &str =
    "Makes a retry safe: the same key and body replay the first answer";

/// Errors any operation may answer: the rate limiter and the request time limit sit in front
/// of every route.
const EVERYWHERE: [(&str, &str); 2] = [
    ("429", "Rate limited: too many requests for this credential; retry after `Retry-After`"),
    ("503", "The request timed out (or a dependency is unavailable); retry"),
];

/// Errors of an operation that requires a credential.
const AUTHENTICATED: [(&str, &str); 1] = [("401", "Missing or unknown credential")];

/// Errors of an authenticated operation whose path names a resource (`{agent_id}`,
/// `{agreement_id}`, …): another account's resource answers the same as a missing one.
const NAMED_RESOURCE: [(&str, &str); 1] = [("404", "No such resource of the caller")];

/// Errors of a write: the JSON extractor (400, 413, 415, 422), the idempotency layer (400 for a
/// bad key, 409 while the same key is in flight, 422 for a key reused with another body) and
/// the state machine (409).
const WRITE: [(&str, &str); 5] = [
    ("400", "Malformed JSON, or a bad `Idempotency-Key`"),
    ("409", "The current state does not allow it, or a concurrent duplicate"),
    ("413", "Body over the size limit"),
    ("415", "Body not `application/json`"),
    ("422", "Invalid fields, or an `Idempotency-Key` reused with another body"),
];

/// Errors of a read that takes query parameters.
const QUERY: [(&str, &str); 1] = [("422", "Invalid query parameters")];

/// A response with the one error body.
fn error_response(description: &str) -> RefOr<Response> {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("Error"))).build();
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content("application/json", content)
            .build(),
    )
}

/// Adds what the operations have in common, from facts of each, so that a `#[utoipa::path]`
/// names only its success responses and the errors particular to it (403, a 409 with its own
/// meaning, a 503 where the chain or screening is read, …). A status an annotation declares
/// keeps the annotation's description. The rules, in order:
///
/// - every operation: 429 and 503 ([`EVERYWHERE`]);
/// - with `security`: 401 ([`AUTHENTICATED`]), and 404 when the path has a `{parameter}`
///   ([`NAMED_RESOURCE`]);
/// - a write (not `GET`, or with a request body): the optional `Idempotency-Key` header unless
///   declared, and 400, 409, 413, 415, 422 ([`WRITE`]);
/// - a `GET` with query parameters: 422 ([`QUERY`]).
///
/// It also tightens what the annotations cannot say: the `Idempotency-Key` header's form (1–255
/// visible ASCII characters, never `null`), and an optional body (`Option<T>`) as a body that
/// may be left out rather than a JSON `null`, which the API refuses.
struct Refine;

impl Modify for Refine {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let key_schema = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(255))
            .pattern(Some("^[!-~]+$"))
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            let names_resource = path.contains('{');
            let reads = item.get.iter_mut().map(|operation| (false, operation));
            let writes = [&mut item.put, &mut item.post, &mut item.patch, &mut item.delete]
                .into_iter()
                .flatten()
                .map(|operation| (true, operation));
            for (write, operation) in reads.chain(writes) {
                let write = write || operation.request_body.is_some();
                add_common(operation, write, names_resource);
                for parameter in operation.parameters.iter_mut().flatten() {
                    if parameter.name == IDEMPOTENCY_KEY {
                        parameter.schema = Some(RefOr::T(Schema::Object(key_schema.clone())));
                    } else if let Some(schema) = parameter_schema(parameter) {
                        parameter.schema = Some(RefOr::T(Schema::Object(schema)));
                    }
                }
                if let Some(body) = &mut operation.request_body {
                    allow_absent_body(body);
                }
            }
        }
    }
}

/// The id prefix of each path parameter the API names (see `src/agreement/ids.rs`); an id
/// that does not match is answered 404 like an unknown one.
const PATH_ID_PREFIXES: [(&str, &str); 8] = [
    ("agent_id", "agt_"),
    ("agreement_id", "ua_"),
    ("action_id", "sa_"),
    ("receipt_id", "rcpt_"),
    ("webhook_id", "whk_"),
    ("delivery_id", "msg_"),
    ("event_id", "evt_"),
    ("wallet_id", "wal_"),
];

/// The exact schema of a page size or of an id in the path, which the annotations leave as a
/// bare integer or string; `None` for any other parameter.
fn parameter_schema(
    parameter: &utoipa::openapi::path::Parameter,
) -> Option<utoipa::openapi::Object> {
    match parameter.parameter_in {
        ParameterIn::Query if parameter.name == "limit" => Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(100))
                .description(Some("Page size, 1 to 100 (default 50)"))
                .build(),
        ),
        ParameterIn::Path => {
            let (_, prefix) = PATH_ID_PREFIXES.iter().find(|(name, _)| *name == parameter.name)?;
            Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(format!("^{prefix}[0-9A-Za-z_]+$")))
                    .build(),
            )
        }
        _ => None,
    }
}

/// Adds the statuses and the `Idempotency-Key` header that the rules of [`Refine`] give
/// `operation`, keeping any the annotation declares.
fn add_common(operation: &mut Operation, write: bool, names_resource: bool) {
    let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_query =
        operation.parameters.iter().flatten().any(|p| matches!(p.parameter_in, ParameterIn::Query));
    let mut errors: Vec<(&str, &str)> = EVERYWHERE.to_vec();
    if secured {
        errors.extend(AUTHENTICATED);
        if names_resource {
            errors.extend(NAMED_RESOURCE);
        }
    }
    if write {
        errors.extend(WRITE);
        let parameters = operation.parameters.get_or_insert_with(Vec::new);
        if !parameters.iter().any(|p| p.name == IDEMPOTENCY_KEY) {
            parameters.push(
                ParameterBuilder::new()
                    .name(IDEMPOTENCY_KEY)
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .description(Some(IDEMPOTENCY_KEY_TEXT))
                    .build(),
            );
        }
    } else if has_query {
        errors.extend(QUERY);
    }
    for (status, description) in errors {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| error_response(description));
    }
}

/// Turns an optional body (`Option<T>`, which utoipa writes as `oneOf: [null, T]`) into a body
/// of `T` that may be left out.
fn allow_absent_body(body: &mut RequestBody) {
    for content in body.content.values_mut() {
        let inner = content.schema.as_ref().and_then(|schema| {
            let value = serde_json::to_value(schema).ok()?;
            let variants = value.get("oneOf")?.as_array()?.clone();
            let [first, second] = variants.as_slice() else { return None };
            let (null, other) =
                if first["type"] == "null" { (first, second) } else { (second, first) };
            (null["type"] == "null").then(|| serde_json::from_value(other.clone()).ok())?
        });
        if let Some(inner) = inner {
            content.schema = Some(inner);
            body.required = Some(Required::False);
        }
    }
}

/// The OpenAPI document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document as pretty JSON with a final newline: what `GET /openapi.json` answers and
/// `docs/openapi.json` holds.
pub fn to_json() -> String {
    static JSON: LazyLock<String> = LazyLock::new(|| {
        let mut json = document().to_pretty_json().unwrap_or_default();
        json.push('\n');
        json
    });
    JSON.clone()
}

/// The OpenAPI 3.1 document of this API (this document).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "service",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object)),
)]
pub async fn openapi_json() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], to_json())
}

// The direct-path routes are closures made by `settlement::direct::direct_handler(action)`, which a
// `#[utoipa::path]` cannot annotate; these functions carry their documentation instead. The
// three answer alike, so one macro writes their annotations.

/// A doc-only function `$name` (its operation id) documenting the direct path `$path`; the
/// doc comment becomes the operation's summary and description.
macro_rules! direct_path {
    ($(#[doc = $doc:tt])* $name:ident = $path:tt) => {
        $(#[doc = $doc])*
        #[utoipa::path(
            get,
            path = $path,
            tag = "settlement",
            params(("agreement_id" = String, Path, description = "The agreement")),
            security(("bearerAuth" = [])),
            responses(
                (status = 200, description = "The transaction to send", body = settlement::view::DirectInstructions),
                (status = 403, description = "Not this party's action", body = super::error::ErrorBody),
                (status = 404, description = "No such agreement of the caller", body = super::error::ErrorBody),
                (status = 409, description = "Not possible now (status, simulation reverted)", body = super::error::ErrorBody),
                (status = 503, description = "Chain unavailable or timed out", body = super::error::ErrorBody),
            ),
        )]
        #[allow(dead_code)]
        fn $name() {}
    };
}

direct_path! {
    /// The direct path of a close: unsigned `initiateClose` calldata for the caller's wallet.
    ///
    /// A seller's close carries the buyer's best voucher and settles at once.
    initiate_close_calldata = "/usage-agreements/{agreement_id}/initiate-close-calldata"
}

direct_path! {
    /// The direct path of the seller's claim: unsigned `sellerClaim` calldata.
    claim_instructions = "/usage-agreements/{agreement_id}/claim-instructions"
}

direct_path! {
    /// The direct path of the buyer's withdrawal: unsigned `buyerWithdraw` calldata.
    withdraw_instructions = "/usage-agreements/{agreement_id}/withdraw-instructions"
}
