//! The OpenAPI document is the API: `docs/openapi.json` is what the code generates, every route
//! the router serves is documented and every documented operation is served, real responses of
//! a whole agreement's life validate against the schema documented for their status, and a
//! request that runs past the time limit still gets the one error shape.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use crate::support::service::{Harness, OWNER_KEY};
use crate::support::settlement::{options, record, sign_voucher, sponsor};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const REGENERATE: &str = "cargo run -q -- openapi > docs/openapi.json";

fn generated() -> Value {
    serde_json::from_str(&pactum::api::openapi::to_json()).expect("the document is JSON")
}

#[test]
fn the_committed_document_is_what_the_code_generates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/openapi.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == pactum::api::openapi::to_json(),
        "docs/openapi.json is stale (or missing): regenerate it with `{REGENERATE}`"
    );
    let doc = generated();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."), "{}", doc["openapi"]);
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(doc.get("servers").is_none(), "servers are left to the client");
    assert_eq!(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"], "bearer");
}

/// Every operation names its statuses with a schema, takes `Idempotency-Key` if it writes,
/// requires the bearer unless public, and answers errors with the one `Error` schema.
#[test]
fn every_operation_is_fully_described() {
    let doc = generated();
    let public =
        ["/health", "/healthz", "/readyz", "/metrics", "/openapi.json", "/agents/register"];
    for (path, method, op) in operations(&doc) {
        let name = format!("{} {path}", method.to_uppercase());
        assert!(op["operationId"].is_string(), "{name}: no operationId");
        assert!(op["summary"].is_string() || op["description"].is_string(), "{name}: no text");
        let responses = op["responses"].as_object().unwrap();
        assert!(responses.keys().any(|s| s.starts_with('2')), "{name}: no 2xx");
        for (status, response) in responses {
            let schema = &response["content"]["application/json"]["schema"];
            // `/metrics` answers the Prometheus text format.
            let text = &response["content"]["text/plain"]["schema"];
            let plain = path == "/metrics" && status.starts_with('2') && text.is_object();
            assert!(schema.is_object() || plain, "{name} {status}: no JSON schema");
            if !status.starts_with('2') {
                // The one error shape: `Error` itself, or (`POST /validate`'s refusals, which
                // carry the seed's fields beside it) a body whose required `error` is it.
                let carried = schema["$ref"]
                    .as_str()
                    .map(|r| {
                        &doc["components"]["schemas"][r.trim_start_matches("#/components/schemas/")]
                    })
                    .filter(|s| {
                        s["properties"]["error"]["$ref"] == "#/components/schemas/ErrorDetail"
                    })
                    .is_some_and(|s| {
                        s["required"].as_array().is_some_and(|r| r.contains(&json!("error")))
                    });
                assert!(
                    schema["$ref"] == "#/components/schemas/Error" || carried,
                    "{name} {status}: not the error shape"
                );
            }
        }
        if public.contains(&path.as_str()) {
            continue;
        }
        assert_eq!(op["security"], json!([{ "bearerAuth": [] }]), "{name}");
        assert!(responses.contains_key("401"), "{name}: no 401");
        if method != "get" {
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            assert!(
                params.iter().any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
                "{name}: no Idempotency-Key header"
            );
            if op.get("requestBody").is_some() {
                for status in ["413", "415", "422"] {
                    assert!(responses.contains_key(status), "{name}: no {status}");
                }
            }
        }
    }
}

/// `(path, method, operation)` of every documented operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if matches!(method.as_str(), "get" | "post" | "put" | "patch" | "delete") {
                all.push((path.clone(), method.clone(), op.clone()));
            }
        }
    }
    all
}

/// `(path, method)` of every `.route(path, method(handler)…)` in the crate's source, but for
/// `src/console/`: the operator console's HTML page and assets are not operations of the JSON
/// API the document describes (`docs/console.md` covers them).
fn routes_in_source() -> BTreeSet<(String, String)> {
    let mut found = BTreeSet::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path == src.join("console") {
            continue;
        }
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains(".nest(") && !text.contains(".nest_service("),
                "{}: nested routers are not covered by this scan; add their routes with `.route`",
                path.display()
            );
            scan_routes(&text, &mut found);
        }
    }
    found
}

fn scan_routes(text: &str, found: &mut BTreeSet<(String, String)>) {
    for (start, _) in text.match_indices(".route(") {
        let rest = text[start + ".route(".len()..].trim_start();
        let Some(rest) = rest.strip_prefix('"') else { continue };
        let path = &rest[..rest.find('"').unwrap()];
        // The rest of the call, up to its closing parenthesis.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .map(|(i, _)| i)
            .unwrap();
        let call = &rest[..end];
        for method in ["get", "post", "put", "patch", "delete"] {
            let token = format!("{method}(");
            let used = call.match_indices(&token).any(|(i, _)| {
                let before = call[..i].chars().last();
                !matches!(before, Some(c) if c.is_alphanumeric() || c == '_' || c == ':')
            });
            if used {
                found.insert((path.to_owned(), method.to_owned()));
            }
        }
    }
}

#[tokio::test]
async fn every_route_is_documented_and_every_operation_is_served() {
    let doc = generated();
    let documented: BTreeSet<(String, String)> =
        operations(&doc).into_iter().map(|(p, m, _)| (p, m)).collect();
    let routed = routes_in_source();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        undocumented.is_empty() && unrouted.is_empty(),
        "routes not in the document: {undocumented:?}\ndocumented but not routed: {unrouted:?}\n\
         annotate the handler with #[utoipa::path], list it in src/api/openapi.rs, then `{REGENERATE}`"
    );

    // The scan reads the source; the real server must agree: each documented operation is
    // answered by its handler (no credential: 401, or 200 for the public ones), and any other
    // method on a documented path is the router's 405.
    let h = Harness::start().await;
    // `/readyz` answers 503 until the watcher has read the chain once.
    h.poll_path("", "/readyz", |body| body["status"] == "ready").await;
    let paths: BTreeSet<&String> = documented.iter().map(|(p, _)| p).collect();
    for path in paths {
        let concrete = concrete(path);
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            let (status, body) = h.call(method.clone(), &concrete, None, None).await;
            let name = format!("{method} {concrete}");
            if documented.contains(&(path.clone(), method.as_str().to_lowercase())) {
                assert!(
                    status != StatusCode::METHOD_NOT_ALLOWED
                        && body["error"]["message"] != "route not found",
                    "{name}: documented but the router does not serve it: {status} {body}"
                );
                assert!(
                    status.is_success() || status == StatusCode::UNAUTHORIZED,
                    "{name}: {status} {body}"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{name}: undocumented method: {body}"
                );
                assert_eq!(body["error"]["code"], "method_not_allowed", "{name}");
            }
        }
    }

    let (status, served) = h.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(served, doc, "GET /openapi.json serves the generated document");
}

/// `path` with each `{param}` replaced by a value of the right form.
fn concrete(path: &str) -> String {
    path.replace("{action}", "seller-claim")
        .split('/')
        .map(|seg| if seg.starts_with('{') { "probe_0000".to_owned() } else { seg.to_owned() })
        .collect::<Vec<_>>()
        .join("/")
}

/// Validates real responses against the document.
struct Conformance {
    doc: Value,
    checked: BTreeSet<String>,
}

impl Conformance {
    fn new() -> Self {
        Conformance { doc: generated(), checked: BTreeSet::new() }
    }

    /// Asserts that `body`, answered with `status` by `method template`, validates against
    /// the schema the document gives for that status.
    #[track_caller]
    fn check(&mut self, method: &str, template: &str, (status, body): &(StatusCode, Value)) {
        let name = format!("{method} {template} → {status}");
        let op = &self.doc["paths"][template][method.to_lowercase()];
        assert!(op.is_object(), "{name}: no such operation in the document");
        let response = &op["responses"][status.as_str()];
        assert!(response.is_object(), "{name}: status not documented: {body}");
        let schema = &response["content"]["application/json"]["schema"];
        self.validate(&name, schema, body);
        self.checked.insert(format!("{method} {template} {}", status.as_u16()));
    }

    /// Asserts that `body` validates against `#/components/schemas/{name}`.
    #[track_caller]
    fn check_component(&self, name: &str, body: &Value) {
        let schema = json!({ "$ref": format!("#/components/schemas/{name}") });
        self.validate(name, &schema, body);
    }

    #[track_caller]
    fn validate(&self, name: &str, schema: &Value, body: &Value) {
        let mut root = schema.clone();
        root["components"] = self.doc["components"].clone();
        let validator = jsonschema::draft202012::new(&root)
            .unwrap_or_else(|e| panic!("{name}: the documented schema does not compile: {e}"));
        let errors: Vec<String> =
            validator.iter_errors(body).map(|e| format!("{} at {}", e, e.instance_path)).collect();
        assert!(errors.is_empty(), "{name}: the response breaks its schema: {errors:#?}\n{body:#}");
    }
}

#[tokio::test]
async fn real_responses_match_the_documented_schemas() {
    let h = Harness::start().await;
    let mut c = Conformance::new();
    let get = |path: String, key: String| {
        let h = &h;
        async move { h.call(Method::GET, &path, Some(&key), None).await }
    };

    c.check("GET", "/health", &h.call(Method::GET, "/health", None, None).await);

    // Agents.
    let created = h
        .call(Method::POST, "/v1/agents", Some(OWNER_KEY), Some(&json!({ "name": "buyer" })))
        .await;
    c.check("POST", "/v1/agents", &created);
    let buyer_id = created.1["id"].as_str().unwrap().to_owned();
    let buyer = crate::support::service::TestAgent {
        id: buyer_id.clone(),
        key: created.1["api_key"].as_str().unwrap().to_owned(),
    };
    let seller = h.agent("seller").await;
    let agent = get(format!("/v1/agents/{buyer_id}"), OWNER_KEY.to_owned()).await;
    c.check("GET", "/v1/agents/{agent_id}", &agent);

    // Errors of every kind validate against `Error`.
    let bad =
        h.call(Method::POST, "/v1/agents", Some(OWNER_KEY), Some(&json!({ "name": "" }))).await;
    assert_eq!(bad.0, StatusCode::UNPROCESSABLE_ENTITY);
    c.check("POST", "/v1/agents", &bad);
    let unauthorized = h.call(Method::GET, "/v1/agents/agt_x", None, None).await;
    c.check("GET", "/v1/agents/{agent_id}", &unauthorized);
    let missing = get("/usage-agreements/ua_000".into(), buyer.key.clone()).await;
    c.check("GET", "/usage-agreements/{agreement_id}", &missing);
    for (method, path) in [(Method::DELETE, "/health"), (Method::GET, "/no/such/route")] {
        let (status, body) = h.call(method, path, None, None).await;
        assert!(status.is_client_error(), "{path}: {status}");
        c.check_component("Error", &body);
    }

    // Propose, read, list, accept.
    let (buyer_wallet, seller_wallet) = (h.chain.buyer.address(), h.chain.seller.address());
    let proposed = h
        .call(
            Method::POST,
            "/usage-agreements",
            Some(&buyer.key),
            Some(&crate::support::service::propose_body(&seller.id, buyer_wallet)),
        )
        .await;
    c.check("POST", "/usage-agreements", &proposed);
    let id = proposed.1["id"].as_str().unwrap().to_owned();
    let agreement = |suffix: &str| format!("/usage-agreements/{id}{suffix}");
    c.check(
        "GET",
        "/usage-agreements/{agreement_id}",
        &get(agreement(""), buyer.key.clone()).await,
    );
    let early = get(agreement("/activation-package"), buyer.key.clone()).await;
    assert_eq!(early.0, StatusCode::CONFLICT);
    c.check("GET", "/usage-agreements/{agreement_id}/activation-package", &early);
    let list =
        get(format!("/usage-agreements/agents/{}/agreements?limit=1", buyer.id), buyer.key.clone())
            .await;
    c.check("GET", "/usage-agreements/agents/{agent_id}/agreements", &list);
    let wrong = h
        .call(
            Method::PUT,
            &agreement("/accept"),
            Some(&buyer.key),
            Some(&json!({ "seller_wallet_address": seller_wallet.to_string() })),
        )
        .await;
    assert_eq!(wrong.0, StatusCode::FORBIDDEN);
    c.check("PUT", "/usage-agreements/{agreement_id}/accept", &wrong);
    let accepted = h
        .call(
            Method::PUT,
            &agreement("/accept"),
            Some(&seller.key),
            Some(&json!({ "seller_wallet_address": seller_wallet.to_string() })),
        )
        .await;
    c.check("PUT", "/usage-agreements/{agreement_id}/accept", &accepted);
    let again = h.call(Method::PUT, &agreement("/reject"), Some(&seller.key), None).await;
    assert_eq!(again.0, StatusCode::CONFLICT);
    c.check("PUT", "/usage-agreements/{agreement_id}/reject", &again);

    // Activation.
    let package = get(agreement("/activation-package"), buyer.key.clone()).await;
    c.check("GET", "/usage-agreements/{agreement_id}/activation-package", &package);
    let signed = crate::support::service::sign_package(&h.chain.buyer, &package.1);
    let queued =
        h.call(Method::POST, &agreement("/activate-escrow"), Some(&buyer.key), Some(&signed)).await;
    c.check("POST", "/usage-agreements/{agreement_id}/activate-escrow", &queued);
    c.check(
        "GET",
        "/usage-agreements/{agreement_id}/escrow-status",
        &get(agreement("/escrow-status"), buyer.key.clone()).await,
    );
    h.wait_for(&buyer.key, &id, |a| a["status"] == "active").await;
    c.check(
        "GET",
        "/usage-agreements/{agreement_id}",
        &get(agreement(""), buyer.key.clone()).await,
    );
    c.check(
        "GET",
        "/usage-agreements/{agreement_id}/escrow-status",
        &get(agreement("/escrow-status"), seller.key.clone()).await,
    );

    // Usage and vouchers.
    let recorded = record(&h, &seller, &id, 40, "usage-1").await;
    c.check(
        "POST",
        "/usage-agreements/{agreement_id}/record-usage",
        &(StatusCode::CREATED, recorded),
    );
    c.check(
        "GET",
        "/usage-agreements/{agreement_id}/usage",
        &get(agreement("/usage"), buyer.key.clone()).await,
    );
    let kept = sign_voucher(&h, &buyer, &id).await;
    c.check("POST", "/usage-agreements/{agreement_id}/usage-vouchers", &(StatusCode::OK, kept));

    // Settlement: options possible and refused, the direct path, a sponsored claim.
    let claim = options(&h, &seller, &id, "seller_claim").await;
    c.check(
        "GET",
        "/usage-agreements/{agreement_id}/settlement-action-options",
        &(StatusCode::OK, claim),
    );
    let withdraw = options(&h, &buyer, &id, "buyer_withdraw").await;
    assert_eq!(withdraw["possible"], false, "{withdraw}");
    c.check(
        "GET",
        "/usage-agreements/{agreement_id}/settlement-action-options",
        &(StatusCode::OK, withdraw),
    );
    let bad_action =
        get(agreement("/settlement-action-options?action=nope"), buyer.key.clone()).await;
    c.check("GET", "/usage-agreements/{agreement_id}/settlement-action-options", &bad_action);
    for (suffix, template, key) in [
        ("/claim-instructions", "/usage-agreements/{agreement_id}/claim-instructions", &seller.key),
        (
            "/initiate-close-calldata",
            "/usage-agreements/{agreement_id}/initiate-close-calldata",
            &buyer.key,
        ),
        (
            "/withdraw-instructions",
            "/usage-agreements/{agreement_id}/withdraw-instructions",
            &buyer.key,
        ),
        ("/claim-instructions", "/usage-agreements/{agreement_id}/claim-instructions", &buyer.key),
    ] {
        c.check("GET", template, &get(agreement(suffix), key.clone()).await);
    }
    let (status, action) = sponsor(&h, &seller, &h.chain.seller, &id, "seller_claim").await;
    let template = "/usage-agreements/{agreement_id}/sponsored-actions/{action}";
    c.check("POST", template, &(status, action.clone()));
    let action_id = action["id"].as_str().unwrap();
    let done = crate::support::settlement::action_final(&h, &seller.key, &id, action_id).await;
    c.check(
        "GET",
        "/usage-agreements/{agreement_id}/settlement-actions/{action_id}",
        &(StatusCode::OK, done),
    );
    // The seller closes with the best voucher, which settles at once: the buyer may withdraw.
    let (status, close) = sponsor(&h, &seller, &h.chain.seller, &id, "initiate_close").await;
    c.check("POST", template, &(status, close.clone()));
    crate::support::settlement::action_final(&h, &seller.key, &id, close["id"].as_str().unwrap())
        .await;
    let withdraw = get(agreement("/withdraw-instructions"), buyer.key.clone()).await;
    assert_eq!(withdraw.0, StatusCode::OK, "{}", withdraw.1);
    c.check("GET", "/usage-agreements/{agreement_id}/withdraw-instructions", &withdraw);
    c.check(
        "GET",
        "/usage-agreements/{agreement_id}/settlement-actions",
        &get(agreement("/settlement-actions"), seller.key.clone()).await,
    );
    c.check(
        "GET",
        "/usage-agreements/{agreement_id}/events",
        &get(agreement("/events"), buyer.key.clone()).await,
    );
    c.check(
        "GET",
        "/usage-agreements/{agreement_id}/escrow-status",
        &get(agreement("/escrow-status"), buyer.key.clone()).await,
    );

    // A rejected agreement, for the reject body.
    let other = h.propose(&buyer, &seller, buyer_wallet).await;
    let path = format!("/usage-agreements/{}/reject", other["id"].as_str().unwrap());
    let rejected =
        h.call(Method::PUT, &path, Some(&seller.key), Some(&json!({ "reason": "busy" }))).await;
    c.check("PUT", "/usage-agreements/{agreement_id}/reject", &rejected);

    // Every agreement operation (and the health check) had a 2xx response validated.
    for (path, method, _) in operations(&generated()) {
        if path.starts_with("/usage-agreements") || path == "/health" {
            let prefix = format!("{} {path} 2", method.to_uppercase());
            assert!(
                c.checked.iter().any(|k| k.starts_with(&prefix)),
                "no 2xx of {prefix}xx validated"
            );
        }
    }
}

/// A request still running when `PACTUM_REQUEST_TIMEOUT_SECS` runs out (here: a client that
/// announces a body and never sends it) is answered 503 `timeout` in the one error shape.
/// The document refuses what the server refuses: statuses, kinds and actions are enums of their
/// exact strings, ids, addresses and amounts carry patterns, URLs a format, page sizes their
/// bounds, and every error code is listed.
#[test]
fn the_document_is_as_strict_as_the_server() {
    let doc = generated();
    let schemas = &doc["components"]["schemas"];
    let resolve = |schema: &Value| -> Value {
        match schema["$ref"].as_str() {
            Some(reference) => {
                schemas[reference.trim_start_matches("#/components/schemas/")].clone()
            }
            None => schema.clone(),
        }
    };
    let enum_of = |schema: &Value| -> Vec<String> {
        let schema = resolve(schema);
        let values = schema["enum"].as_array().unwrap_or_else(|| panic!("no enum in {schema}"));
        values.iter().map(|v| v.as_str().unwrap().to_owned()).collect()
    };
    let parameter = |path: &str, method: &str, name: &str| -> Value {
        let parameters = doc["paths"][path][method]["parameters"].as_array().unwrap();
        let found = parameters.iter().find(|p| p["name"] == name);
        found.unwrap_or_else(|| panic!("{method} {path} has no `{name}`"))["schema"].clone()
    };

    // Filters and actions.
    assert_eq!(enum_of(&parameter("/v1/agents", "get", "status")), ["active", "revoked"]);
    let options =
        parameter("/usage-agreements/{agreement_id}/settlement-action-options", "get", "action");
    assert_eq!(enum_of(&options), ["initiate_close", "seller_claim", "buyer_withdraw"]);
    let token = &schemas["MintToken"]["properties"]["action"];
    assert!(enum_of(token).contains(&"activate_escrow".to_owned()), "{token}");
    let agreement = &schemas["Agreement"]["properties"];
    assert!(enum_of(&agreement["status"]).contains(&"settled".to_owned()));

    // Ids, addresses and URLs.
    let id = parameter("/usage-agreements/{agreement_id}", "get", "agreement_id");
    assert_eq!(id["pattern"], "^ua_[0-9A-Za-z_]+$");
    let id = parameter("/v1/agents/{agent_id}", "get", "agent_id");
    assert_eq!(id["pattern"], "^agt_[0-9A-Za-z_]+$");
    let wallet = resolve(&agreement["buyer_wallet_address"]);
    assert_eq!(wallet["pattern"], "^0x[0-9a-fA-F]{40}$", "{wallet}");
    let url = &schemas["CreateWebhook"]["properties"]["url"];
    assert_eq!(url["format"], "uri", "{url}");

    // Page sizes.
    let limit = parameter("/usage-agreements/agents/{agent_id}/agreements", "get", "limit");
    assert_eq!((limit["minimum"].as_u64(), limit["maximum"].as_u64()), (Some(1), Some(100)));

    // Every error code, and no other.
    let codes = enum_of(&schemas["ErrorDetail"]["properties"]["code"]);
    assert!(codes.contains(&"wrong_party".to_owned()) && codes.contains(&"timeout".to_owned()));
    assert!(!codes.contains(&"idempotency_conflict".to_owned()), "emitted nowhere");
}

#[tokio::test]
async fn a_request_past_the_time_limit_answers_503_timeout() {
    let h = Harness::start_with(|config| config.request_timeout_secs = 1).await;
    let address = h.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/agents HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {OWNER_KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 64\r\n\r\n{{\"name\":"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = stream.read(&mut buf).await.unwrap();
            response.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&response);
            if n == 0 || text.contains("}}") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 10 s");
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(900), "answered before the limit: {elapsed:?}");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    let body: Value = serde_json::from_str(&text[text.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(body["error"]["code"], "timeout", "{body}");
    Conformance::new().check_component("Error", &body);

    // A request within the limit is untouched.
    let (status, _) = h.call(Method::GET, "/health", None, None).await;
    assert_eq!(status, StatusCode::OK);
}
