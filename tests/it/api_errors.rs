//! "Malformed JSON, missing fields, wrong types and unknown ids get the one error shape, never a
//! 500": every route that takes a body or an id, driven over real HTTP with every way a request
//! can be wrong, answers `{"error": {"code", "message", "details"?}}` with a 4xx status, and a
//! refused write changes nothing.

use crate::support::router::{Api, Client};
use crate::support::service::{Harness, OWNER_KEY, TestAgent};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// An agreement id and an agent id that name nothing.
const UNKNOWN_AGREEMENT: &str = "ua_000000000000000000000000";
const UNKNOWN_AGENT: &str = "agt_000000000000000000000000";

/// Asserts that `body` has exactly the API's error shape and `status` is a client error (never
/// a 5xx); returns the error's code.
fn error_code<'a>(status: StatusCode, body: &'a Value, context: &str) -> &'a str {
    assert!(status.is_client_error(), "{context}: status {status}, body {body}");
    let outer = body.as_object().unwrap_or_else(|| panic!("{context}: not an object: {body}"));
    assert_eq!(outer.len(), 1, "{context}: more than `error` at the top: {body}");
    let error = outer
        .get("error")
        .and_then(Value::as_object)
        .unwrap_or_else(|| panic!("{context}: no `error` object: {body}"));
    for key in error.keys() {
        assert!(
            matches!(key.as_str(), "code" | "message" | "details"),
            "{context}: unexpected `error.{key}`: {body}"
        );
    }
    let code = error
        .get("code")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{context}: `error.code` is not a string: {body}"));
    assert!(
        !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
        "{context}: `error.code` is not a snake_case code: {body}"
    );
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{context}: `error.message` is not a string: {body}"));
    assert!(!message.is_empty(), "{context}: empty message: {body}");
    if let Some(details) = error.get("details") {
        assert!(details.is_object(), "{context}: `error.details` is not an object: {body}");
    }
    code
}

/// Asserts that `response` is the error `status` with `code`.
#[track_caller]
fn expect(response: &(StatusCode, Value), status: StatusCode, code: &str, context: &str) {
    let found = error_code(response.0, &response.1, context);
    assert_eq!((response.0, found), (status, code), "{context}: {}", response.1);
}

/// A request built by hand, for what [`Harness::call`] cannot send: no or another content type,
/// raw bytes, any `Authorization` value.
struct Raw<'a> {
    method: Method,
    path: String,
    authorization: Option<String>,
    content_type: Option<&'a str>,
    body: Vec<u8>,
    headers: Vec<(&'a str, Vec<u8>)>,
}

impl<'a> Raw<'a> {
    fn new(method: Method, path: impl Into<String>, key: Option<&str>) -> Self {
        Raw {
            method,
            path: path.into(),
            authorization: key.map(|key| format!("Bearer {key}")),
            content_type: None,
            body: Vec::new(),
            headers: Vec::new(),
        }
    }

    fn json(mut self, body: &Value) -> Self {
        self.body = serde_json::to_vec(body).unwrap();
        self.content_type = Some("application/json");
        self
    }

    fn bytes(mut self, content_type: Option<&'a str>, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = content_type;
        self.body = body.into();
        self
    }

    fn authorization(mut self, value: Option<&str>) -> Self {
        self.authorization = value.map(str::to_owned);
        self
    }

    /// Adds a header; `value` is raw bytes, so it may hold what a `&str` header cannot.
    fn header(mut self, name: &'a str, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// Sends the request; an answer that is not JSON comes back as a JSON string, which
    /// [`error_code`] then refuses.
    async fn send(self, h: &impl Client) -> (StatusCode, Value) {
        let mut headers = Vec::new();
        if let Some(value) = self.authorization {
            headers.push((AUTHORIZATION, HeaderValue::try_from(value).unwrap()));
        }
        if let Some(value) = self.content_type {
            headers.push((CONTENT_TYPE, HeaderValue::from_str(value).unwrap()));
        }
        for (name, value) in self.headers {
            let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
            headers.push((name, HeaderValue::from_bytes(&value).unwrap()));
        }
        let (status, content_type, text) =
            h.send_raw(self.method, &self.path, headers, self.body).await;
        let json_answer = content_type.is_some_and(|v| v.starts_with("application/json"));
        match serde_json::from_str(&text) {
            Ok(body) if json_answer => (status, body),
            _ => (status, Value::String(format!("not a JSON answer: {text}"))),
        }
    }
}

/// Who a route authenticates.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Caller {
    Owner,
    Buyer,
    Seller,
}

/// A route that takes a body, with a body it would accept, a field it requires and a field of
/// the wrong type.
struct BodyRoute {
    method: Method,
    path: String,
    caller: Caller,
    valid: Value,
    required: Option<&'static str>,
    wrong_type: (&'static str, Value),
}

struct World {
    h: Harness,
    buyer: TestAgent,
    seller: TestAgent,
    /// A proposal from `buyer` to `seller`.
    agreement: String,
}

impl World {
    async fn start() -> World {
        let h = Harness::start().await;
        let (buyer, seller) = h.parties().await;
        let agreement = h.propose(&buyer, &seller, h.chain.buyer.address()).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        World { h, buyer, seller, agreement }
    }

    fn key(&self, caller: Caller) -> &str {
        match caller {
            Caller::Owner => OWNER_KEY,
            Caller::Buyer => &self.buyer.key,
            Caller::Seller => &self.seller.key,
        }
    }

    fn propose_body(&self) -> Value {
        crate::support::service::propose_body(&self.seller.id, self.h.chain.buyer.address())
    }

    /// Every route that takes a JSON body, aimed at the proposal.
    fn body_routes(&self) -> Vec<BodyRoute> {
        let id = &self.agreement;
        vec![
            BodyRoute {
                method: Method::POST,
                path: "/v1/agents".into(),
                caller: Caller::Owner,
                valid: json!({ "name": "extra" }),
                required: Some("name"),
                wrong_type: ("capabilities", json!("usage")),
            },
            BodyRoute {
                method: Method::POST,
                path: "/usage-agreements".into(),
                caller: Caller::Buyer,
                valid: self.propose_body(),
                required: Some("seller_agent_id"),
                wrong_type: ("quantity", json!("100")),
            },
            BodyRoute {
                method: Method::PUT,
                path: format!("/usage-agreements/{id}/accept"),
                caller: Caller::Seller,
                valid: json!({
                    "seller_wallet_address": self.h.chain.seller.address().to_string()
                }),
                required: Some("seller_wallet_address"),
                wrong_type: ("seller_wallet_address", json!(42)),
            },
            BodyRoute {
                method: Method::PUT,
                path: format!("/usage-agreements/{id}/reject"),
                caller: Caller::Seller,
                valid: json!({ "reason": "busy" }),
                required: None,
                wrong_type: ("reason", json!(["busy"])),
            },
            BodyRoute {
                method: Method::POST,
                path: format!("/usage-agreements/{id}/activate-escrow"),
                caller: Caller::Buyer,
                valid: json!({ "activation_signature": "0x00", "funding_signature": "0x00" }),
                required: Some("funding_signature"),
                wrong_type: ("chain_id", json!("base")),
            },
            BodyRoute {
                method: Method::POST,
                path: format!("/usage-agreements/{id}/record-usage"),
                caller: Caller::Seller,
                valid: json!({ "units": 5 }),
                required: Some("units"),
                wrong_type: ("units", json!("5")),
            },
            BodyRoute {
                method: Method::POST,
                path: format!("/usage-agreements/{id}/usage-vouchers"),
                caller: Caller::Buyer,
                valid: json!({ "cumulative_units": 5, "signature": "0x00" }),
                required: Some("signature"),
                wrong_type: ("cumulative_units", json!(-5)),
            },
            BodyRoute {
                method: Method::POST,
                path: format!("/usage-agreements/{id}/sponsored-actions/seller-claim"),
                caller: Caller::Seller,
                valid: json!({ "deadline": 1, "authorization_signature": "0x00" }),
                required: Some("deadline"),
                wrong_type: ("units", json!("all")),
            },
        ]
    }

    /// Every route, with a body it would accept where it takes one.
    fn all_routes(&self) -> Vec<(Method, String, Caller, Option<Value>)> {
        let id = &self.agreement;
        let mut routes: Vec<_> = self
            .body_routes()
            .into_iter()
            .map(|r| (r.method, r.path, r.caller, Some(r.valid)))
            .collect();
        routes.extend([
            (Method::GET, format!("/v1/agents/{}", self.buyer.id), Caller::Owner, None),
            (Method::GET, format!("/usage-agreements/{id}"), Caller::Buyer, None),
            (
                Method::GET,
                format!("/usage-agreements/agents/{}/agreements", self.buyer.id),
                Caller::Buyer,
                None,
            ),
            (
                Method::GET,
                format!("/usage-agreements/{id}/activation-package"),
                Caller::Buyer,
                None,
            ),
            (Method::GET, format!("/usage-agreements/{id}/escrow-status"), Caller::Buyer, None),
        ]);
        for (suffix, caller) in [
            ("usage", Caller::Buyer),
            ("settlement-action-options?action=seller_claim", Caller::Seller),
            ("initiate-close-calldata", Caller::Buyer),
            ("claim-instructions", Caller::Seller),
            ("withdraw-instructions", Caller::Buyer),
            ("settlement-actions", Caller::Buyer),
            ("settlement-actions/sa_unknown", Caller::Buyer),
            ("events", Caller::Buyer),
        ] {
            routes.push((Method::GET, format!("/usage-agreements/{id}/{suffix}"), caller, None));
        }
        routes
    }

    /// Nothing a refused request could have changed did change: the proposal is untouched, it
    /// is still the buyer's only agreement, no agent was added and nothing was queued.
    async fn assert_untouched(&self, agents: i64) {
        let path = format!("/usage-agreements/{}", self.agreement);
        let (status, agreement) =
            self.h.call(Method::GET, &path, Some(&self.buyer.key), None).await;
        assert_eq!(status, StatusCode::OK, "{agreement}");
        assert_eq!(agreement["status"], "proposed", "{agreement}");
        assert_eq!(agreement["activation_status"], "not_started", "{agreement}");
        assert_eq!(agreement["seller_wallet_address"], Value::Null, "{agreement}");
        assert_eq!(agreement["rejection_reason"], Value::Null, "{agreement}");
        assert_eq!(agreement["terms"], Value::Null, "{agreement}");
        let path = format!("/usage-agreements/agents/{}/agreements", self.buyer.id);
        let (_, list) = self.h.call(Method::GET, &path, Some(&self.buyer.key), None).await;
        assert_eq!(list["agreements"].as_array().unwrap().len(), 1, "{list}");
        assert_eq!(self.agent_count().await, agents, "no agent created");
        assert_eq!(self.h.job_count().await, 0, "nothing queued");
    }

    async fn agent_count(&self) -> i64 {
        use sqlx::Row;
        let store = self.h.service.as_ref().unwrap().state().store.clone();
        sqlx::query("SELECT COUNT(*) AS n FROM agents")
            .fetch_one(store.reader())
            .await
            .unwrap()
            .get::<i64, _>("n")
    }
}

#[tokio::test]
async fn bad_bodies_get_the_error_shape_on_every_write_route() {
    let w = World::start().await;
    let agents = w.agent_count().await;
    for route in w.body_routes() {
        let key = w.key(route.caller);
        let context = |case: &str| format!("{} {}: {case}", route.method, route.path);
        let raw = || Raw::new(route.method.clone(), route.path.clone(), Some(key));

        let mut trailing = serde_json::to_vec(&route.valid).unwrap();
        trailing.extend_from_slice(b" x");
        for (case, body) in [
            ("truncated JSON", &b"{"[..]),
            ("a stray comma", b"{,}"),
            ("not JSON at all", b"name=extra"),
            ("a bare word", b"undefined"),
            ("invalid UTF-8", b"{\"\xff\xfe\": 1}"),
            ("a valid body and then garbage", &trailing),
        ] {
            let response = raw().bytes(Some("application/json"), body).send(&w.h).await;
            expect(&response, StatusCode::BAD_REQUEST, "malformed_json", &context(case));
        }

        if let Some(field) = route.required {
            let mut body = route.valid.clone();
            body.as_object_mut().unwrap().remove(field);
            let response = raw().json(&body).send(&w.h).await;
            expect(
                &response,
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_error",
                &context(field),
            );
        }

        let (field, value) = &route.wrong_type;
        let mut body = route.valid.clone();
        body[*field] = value.clone();
        let response = raw().json(&body).send(&w.h).await;
        let case = context(&format!("{field} of the wrong type"));
        expect(&response, StatusCode::UNPROCESSABLE_ENTITY, "validation_error", &case);

        let mut body = route.valid.clone();
        body["surprise"] = json!(true);
        let response = raw().json(&body).send(&w.h).await;
        let case = context("unknown field");
        expect(&response, StatusCode::UNPROCESSABLE_ENTITY, "validation_error", &case);

        for (case, body) in
            [("an array", json!([])), ("a string", json!("x")), ("null", json!(null))]
        {
            let response = raw().json(&body).send(&w.h).await;
            expect(&response, StatusCode::UNPROCESSABLE_ENTITY, "validation_error", &context(case));
        }

        let valid = serde_json::to_vec(&route.valid).unwrap();
        for content_type in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
            let response = raw().bytes(content_type, valid.clone()).send(&w.h).await;
            let case = context(&format!("content type {content_type:?}"));
            expect(&response, StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", &case);
        }

        // Over `max_body_bytes` (65,536) but otherwise well formed.
        let mut body = route.valid.clone();
        body["padding"] = json!("x".repeat(70_000));
        let response = raw().json(&body).send(&w.h).await;
        let case = context("body over the limit");
        expect(&response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", &case);

        for bad_key in [&b""[..], b"has space", &[b'k'; 256], b"caf\xe9", b"tab\there"] {
            let response = raw().json(&route.valid).header("Idempotency-Key", bad_key).send(&w.h);
            let case = context(&format!("Idempotency-Key {:?}", String::from_utf8_lossy(bad_key)));
            expect(&response.await, StatusCode::BAD_REQUEST, "invalid_idempotency_key", &case);
        }
    }
    w.assert_untouched(agents).await;
}

#[tokio::test]
async fn reject_takes_an_empty_body_and_holds_any_other_to_the_rules() {
    // `reject` alone may be sent without a body; a body it does get is JSON like any other.
    let w = World::start().await;
    let agents = w.agent_count().await;
    let path = format!("/usage-agreements/{}/reject", w.agreement);
    let raw = || Raw::new(Method::PUT, &path, Some(&w.seller.key));
    for (case, content_type, body, status, code) in [
        ("an array", Some("application/json"), "[]", 422, "validation_error"),
        ("a bare reason", Some("application/json"), "\"busy\"", 422, "validation_error"),
        ("a reason as text", Some("text/plain"), "busy", 415, "unsupported_media_type"),
        ("JSON without a type", None, r#"{"reason":"busy"}"#, 415, "unsupported_media_type"),
    ] {
        let response = raw().bytes(content_type, body).send(&w.h).await;
        expect(&response, StatusCode::from_u16(status).unwrap(), code, case);
    }
    let response = raw()
        .bytes(Some("application/json"), "  \n ")
        .header("Idempotency-Key", "has space")
        .send(&w.h)
        .await;
    expect(&response, StatusCode::BAD_REQUEST, "invalid_idempotency_key", "blank body, bad key");
    w.assert_untouched(agents).await;

    let (status, rejected) = w.h.call(Method::PUT, &path, Some(&w.seller.key), None).await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["rejection_reason"], Value::Null);
}

#[tokio::test]
async fn unknown_ids_answer_404_on_every_id_route() {
    let w = World::start().await;
    let agents = w.agent_count().await;
    let accept = json!({ "seller_wallet_address": w.h.chain.seller.address().to_string() });
    let activate = json!({ "activation_signature": "0x00", "funding_signature": "0x00" });
    let usage = json!({ "units": 5 });
    let voucher = json!({ "cumulative_units": 5, "signature": "0x00" });
    let sponsored = json!({ "deadline": 1, "authorization_signature": "0x00" });
    let id_routes = [
        (Method::GET, "", Caller::Buyer, None),
        (Method::PUT, "/accept", Caller::Seller, Some(&accept)),
        (Method::PUT, "/reject", Caller::Seller, Some(&json!({ "reason": "busy" }))),
        (Method::PUT, "/reject", Caller::Seller, None),
        (Method::GET, "/activation-package", Caller::Buyer, None),
        (Method::POST, "/activate-escrow", Caller::Buyer, Some(&activate)),
        (Method::GET, "/escrow-status", Caller::Buyer, None),
        (Method::POST, "/record-usage", Caller::Seller, Some(&usage)),
        (Method::GET, "/usage", Caller::Buyer, None),
        (Method::POST, "/usage-vouchers", Caller::Buyer, Some(&voucher)),
        (Method::GET, "/settlement-action-options?action=buyer_withdraw", Caller::Buyer, None),
        (Method::GET, "/initiate-close-calldata", Caller::Seller, None),
        (Method::GET, "/claim-instructions", Caller::Seller, None),
        (Method::GET, "/withdraw-instructions", Caller::Buyer, None),
        (Method::POST, "/sponsored-actions/buyer-withdraw", Caller::Buyer, Some(&sponsored)),
        (Method::GET, "/settlement-actions", Caller::Buyer, None),
        (Method::GET, "/settlement-actions/sa_unknown", Caller::Buyer, None),
        (Method::GET, "/events", Caller::Buyer, None),
    ];
    // Unknown, of another shape, absurdly long, with characters no id has, and not UTF-8 once
    // percent-decoded.
    let long = "ua_".to_owned() + &"f".repeat(2_000);
    for id in [
        UNKNOWN_AGREEMENT,
        "nope",
        long.as_str(),
        "ua_%00",
        "%20",
        "ua_%F0%9F%A6%80",
        "%FF",
        "ua_%C3%28",
    ] {
        for (method, suffix, caller, body) in &id_routes {
            let path = format!("/usage-agreements/{id}{suffix}");
            let mut request = Raw::new(method.clone(), &path, Some(w.key(*caller)));
            if let Some(body) = body {
                request = request.json(body);
            }
            let context = format!("{method} {}", &path[..path.len().min(80)]);
            expect(&request.send(&w.h).await, StatusCode::NOT_FOUND, "not_found", &context);
        }
    }
    for id in [UNKNOWN_AGENT, "nope", w.agreement.as_str(), "agt_%00", "%FF", "agt_%C3%28"] {
        let path = format!("/v1/agents/{id}");
        let response = w.h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
        expect(&response, StatusCode::NOT_FOUND, "not_found", &path);
        let path = format!("/usage-agreements/agents/{id}/agreements");
        let response = w.h.call(Method::GET, &path, Some(&w.buyer.key), None).await;
        expect(&response, StatusCode::NOT_FOUND, "not_found", &path);
    }
    // Another party's agent list, and an agent id in an agreement's place.
    let path = format!("/usage-agreements/agents/{}/agreements", w.seller.id);
    let response = w.h.call(Method::GET, &path, Some(&w.buyer.key), None).await;
    expect(&response, StatusCode::NOT_FOUND, "not_found", "the seller's list");
    let path = format!("/usage-agreements/{}", w.buyer.id);
    let response = w.h.call(Method::GET, &path, Some(&w.buyer.key), None).await;
    expect(&response, StatusCode::NOT_FOUND, "not_found", "an agent id as agreement id");
    w.assert_untouched(agents).await;
}

#[tokio::test]
async fn credentials_are_checked_on_every_route() {
    let w = World::start().await;
    let agents = w.agent_count().await;
    for (method, path, caller, body) in w.all_routes() {
        let request = || {
            let raw = Raw::new(method.clone(), &path, None);
            match &body {
                Some(body) => raw.json(body),
                None => raw,
            }
        };
        let context = |case: &str| format!("{method} {path}: {case}");
        for (case, header, code) in [
            ("no Authorization", None, "unauthorized"),
            ("a Basic credential", Some("Basic dXNlcjpwYXNz".to_owned()), "unauthorized"),
            ("Bearer and nothing", Some("Bearer".to_owned()), "unauthorized"),
            ("a garbage bearer", Some("Bearer pk_test_garbage".to_owned()), "invalid_credential"),
        ] {
            let response = request().authorization(header.as_deref()).send(&w.h).await;
            expect(&response, StatusCode::UNAUTHORIZED, code, &context(case));
        }
        // The other kind of credential: an agent key on an owner route (which does not exist
        // for agents: 404) and the owner credential on an agent route (401).
        let (wrong, status, code) = match caller {
            Caller::Owner => (
                vec![w.buyer.key.as_str(), w.seller.key.as_str()],
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            Caller::Buyer | Caller::Seller => {
                (vec![OWNER_KEY], StatusCode::UNAUTHORIZED, "invalid_credential")
            }
        };
        for key in wrong {
            let response = request().authorization(Some(&format!("Bearer {key}"))).send(&w.h).await;
            let case = context("the other kind of credential");
            expect(&response, status, code, &case);
        }
    }
    w.assert_untouched(agents).await;
}

#[tokio::test]
async fn unknown_routes_and_wrong_methods_answer_json() {
    let w = World::start().await;
    let agents = w.agent_count().await;
    let id = &w.agreement;
    for (method, path) in [
        (Method::GET, "/".to_owned()),
        (Method::GET, "/nope".to_owned()),
        (Method::POST, "/v1/nope".to_owned()),
        (Method::GET, "/v1/agents/a/b".to_owned()),
        (Method::GET, format!("/usage-agreements/{id}/nope")),
        (Method::PUT, format!("/usage-agreements/{id}/accept/again")),
        (Method::GET, "/usage-agreements/".to_owned()),
    ] {
        for key in [None, Some(w.buyer.key.as_str())] {
            let response = w.h.call(method.clone(), &path, key, None).await;
            expect(&response, StatusCode::NOT_FOUND, "not_found", &format!("{method} {path}"));
        }
    }
    for (method, path) in [
        (Method::DELETE, "/v1/agents".to_owned()),
        (Method::PUT, "/v1/agents".to_owned()),
        (Method::POST, format!("/v1/agents/{}", w.buyer.id)),
        (Method::GET, "/usage-agreements".to_owned()),
        (Method::PUT, "/usage-agreements".to_owned()),
        (Method::DELETE, format!("/usage-agreements/{id}")),
        (Method::PATCH, format!("/usage-agreements/{id}")),
        (Method::POST, format!("/usage-agreements/{id}/accept")),
        (Method::GET, format!("/usage-agreements/{id}/reject")),
        (Method::POST, format!("/usage-agreements/{id}/activation-package")),
        (Method::PUT, format!("/usage-agreements/{id}/activate-escrow")),
        (Method::DELETE, format!("/usage-agreements/{id}/escrow-status")),
        (Method::POST, format!("/usage-agreements/agents/{}/agreements", w.buyer.id)),
        (Method::POST, "/health".to_owned()),
    ] {
        for key in [None, Some(w.buyer.key.as_str())] {
            let response = w.h.call(method.clone(), &path, key, Some(&json!({}))).await;
            let context = format!("{method} {path}");
            expect(&response, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", &context);
        }
    }
    w.assert_untouched(agents).await;
}

#[tokio::test]
async fn bad_pagination_params_are_refused_with_422() {
    let w = World::start().await;
    let path = format!("/usage-agreements/agents/{}/agreements", w.buyer.id);
    for query in [
        "limit=0",
        "limit=101",
        "limit=-1",
        "limit=abc",
        "limit=1.5",
        "limit=99999999999",
        "limit=",
        "cursor=garbage",
        "cursor=abc.def",
        "cursor=.",
        "cursor=99999999999999999999.ua_x",
        "limit=3&limit=4",
        "limit=3&cursor=%FF",
    ] {
        let url = format!("{path}?{query}");
        let response = w.h.call(Method::GET, &url, Some(&w.buyer.key), None).await;
        expect(&response, StatusCode::UNPROCESSABLE_ENTITY, "validation_error", query);
    }
    // The edges of what is allowed.
    for query in ["limit=1", "limit=100", "cursor=0.", "limit=5&cursor=9999999999.ua_zzz"] {
        let (status, body) =
            w.h.call(Method::GET, &format!("{path}?{query}"), Some(&w.buyer.key), None).await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        assert!(body["agreements"].is_array(), "{query}: {body}");
    }
}

#[tokio::test]
async fn extreme_values_are_refused_or_handled_never_a_500() {
    let w = World::start().await;
    let propose = |body: Value| {
        let key = w.buyer.key.clone();
        let h = &w.h;
        async move { h.call(Method::POST, "/usage-agreements", Some(&key), Some(&body)).await }
    };
    for (field, value) in [
        ("quantity", json!(-1)),
        ("quantity", json!(1.5)),
        ("quantity", json!(1e30)),
        ("quantity", json!(u64::MAX as f64)),
        ("price_per_unit_cents", json!("10")),
        ("payment_method", json!("stablecoin")),
        ("payment_method", json!({ "rail": "stablecoin", "bank": "x" })),
        ("buyer_wallet_address", json!(null)),
    ] {
        let mut body = w.propose_body();
        body[field] = value.clone();
        let context = format!("{field} = {value}");
        expect(
            &propose(body).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_error",
            &context,
        );
    }
    for (field, value) in [
        ("quantity", json!(u64::MAX)),
        ("quantity", json!(1u64 << 63)),
        ("service_id", json!("")),
        ("service_id", json!("s".repeat(129))),
        ("unit", json!("   ")),
        ("seller_agent_id", json!("a".repeat(65))),
    ] {
        let mut body = w.propose_body();
        body[field] = value;
        let response = propose(body).await;
        let code = error_code(response.0, &response.1, field);
        assert_eq!((response.0, code), (StatusCode::UNPROCESSABLE_ENTITY, "validation_error"));
        assert_eq!(response.1["error"]["details"]["field"], field);
    }
    // Deep nesting is refused by the parser, not by a stack overflow.
    let deep = "[".repeat(10_000) + &"]".repeat(10_000);
    let response = Raw::new(Method::POST, "/usage-agreements", Some(&w.buyer.key))
        .bytes(Some("application/json"), deep)
        .send(&w.h)
        .await;
    let code = error_code(response.0, &response.1, "deep nesting");
    assert!(matches!(code, "malformed_json" | "validation_error"), "{response:?}");

    // The largest amounts the API takes go all the way to a package without overflowing.
    let mut body = w.propose_body();
    body["quantity"] = json!(i64::MAX);
    body["price_per_unit_cents"] = json!(i64::MAX);
    let (status, proposed) = propose(body).await;
    assert_eq!(status, StatusCode::CREATED, "{proposed}");
    assert_eq!(proposed["total_cents"], Value::Null, "the product does not fit in cents");
    let id = proposed["id"].as_str().unwrap();
    let accept = json!({ "seller_wallet_address": w.h.chain.seller.address().to_string() });
    let path = format!("/usage-agreements/{id}/accept");
    let (status, accepted) = w.h.call(Method::PUT, &path, Some(&w.seller.key), Some(&accept)).await;
    assert_eq!(status, StatusCode::OK, "{accepted}");
    let path = format!("/usage-agreements/{id}/activation-package");
    let (status, package) = w.h.call(Method::GET, &path, Some(&w.buyer.key), None).await;
    assert_eq!(status, StatusCode::OK, "{package}");
    let path = format!("/usage-agreements/{id}/escrow-status");
    let (status, escrow) = w.h.call(Method::GET, &path, Some(&w.buyer.key), None).await;
    assert_eq!(status, StatusCode::OK, "{escrow}");
}

#[tokio::test]
async fn the_configured_body_limit_is_the_one_applied() {
    // Above axum's own 2 MB default, to show no extractor falls back to it.
    let h = Api::start_with(|config| config.max_body_bytes = 3 << 20).await;
    let mut body = br#"{"name": "padded""#.to_vec();
    body.resize(body.len() + (5 << 19), b' ');
    body.push(b'}');
    let response = Raw::new(Method::POST, "/v1/agents", Some(OWNER_KEY))
        .bytes(Some("application/json"), body)
        .send(&h)
        .await;
    assert_eq!(response.0, StatusCode::CREATED, "{}", response.1);
    assert_eq!(response.1["name"], "padded");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive_and_nul_bytes_are_refused() {
    let w = World::start().await;
    let path = format!("/usage-agreements/{}", w.agreement);
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let header = format!("{scheme} {}", w.buyer.key);
        let response =
            Raw::new(Method::GET, &path, None).authorization(Some(&header)).send(&w.h).await;
        assert_eq!(response.0, StatusCode::OK, "{scheme}: {}", response.1);
    }
    let agents = w.agent_count().await;
    for body in [
        json!({ "name": "nul\u{0}name" }),
        json!({ "name": "agent", "description": "a\u{0}b" }),
        json!({ "name": "agent", "capabilities": ["x\u{0}"] }),
    ] {
        let response = w.h.call(Method::POST, "/v1/agents", Some(OWNER_KEY), Some(&body)).await;
        expect(&response, StatusCode::UNPROCESSABLE_ENTITY, "validation_error", &body.to_string());
    }
    let reject = format!("/usage-agreements/{}/reject", w.agreement);
    let body = json!({ "reason": "no\u{0}" });
    let response = w.h.call(Method::PUT, &reject, Some(&w.seller.key), Some(&body)).await;
    expect(&response, StatusCode::UNPROCESSABLE_ENTITY, "validation_error", "NUL in a reason");
    w.assert_untouched(agents).await;
}

#[tokio::test]
async fn public_routes_ignore_any_authorization() {
    let h = Harness::start().await;
    let token = format!("Bearer xt_test_{}", "ab".repeat(32));
    for path in ["/health", "/healthz", "/readyz", "/metrics", "/openapi.json"] {
        for authorization in [token.as_str(), "Bearer pk_test_unknown", "Basic Zm9vOmJhcg=="] {
            let response =
                Raw::new(Method::GET, path, None).authorization(Some(authorization)).send(&h).await;
            assert_ne!(response.0, StatusCode::UNAUTHORIZED, "{path} with {authorization}");
            if path != "/readyz" {
                assert_eq!(response.0, StatusCode::OK, "{path} with {authorization}");
            }
        }
    }
}

#[tokio::test]
async fn validation_errors_name_the_field_in_the_api_s_own_words() {
    let w = World::start().await;
    let agents = w.agent_count().await;
    let cases = [
        (json!({ "name": 5 }), "name"),
        (json!({ "name": "a", "capabilities": ["x", 3] }), "capabilities[1]"),
        (json!({ "name": "a", "description": [] }), "description"),
        (json!({ "description": "no name" }), "name"),
        (json!({ "name": "a", "surprise": true }), "surprise"),
    ];
    let plain = |response: &(StatusCode, Value)| {
        let message = response.1["error"]["message"].as_str().unwrap_or_default().to_owned();
        for serde_words in ["invalid type", "expected", "line 1", "column", "unknown variant"] {
            assert!(!message.contains(serde_words), "deserializer wording: {message}");
        }
    };
    for (body, field) in cases {
        let response = w.h.call(Method::POST, "/v1/agents", Some(OWNER_KEY), Some(&body)).await;
        expect(&response, StatusCode::UNPROCESSABLE_ENTITY, "validation_error", &body.to_string());
        assert_eq!(response.1["error"]["details"]["field"], field, "{body}: {}", response.1);
        plain(&response);
    }
    w.assert_untouched(agents).await;

    let mint = format!("/v1/agents/{}/execution-tokens", w.buyer.id);
    let body = json!({ "action": "accept", "audience": w.agreement, "ttl_seconds": "60" });
    let response = w.h.call(Method::POST, &mint, Some(OWNER_KEY), Some(&body)).await;
    expect(&response, StatusCode::UNPROCESSABLE_ENTITY, "validation_error", "ttl as a string");
    assert_eq!(response.1["error"]["details"]["field"], "ttl_seconds", "{}", response.1);
    plain(&response);

    for (query, field) in [("limit=abc", "limit"), ("limit=-1", "limit")] {
        let path = format!("/v1/agents?{query}");
        let response = w.h.call(Method::GET, &path, Some(OWNER_KEY), None).await;
        expect(&response, StatusCode::UNPROCESSABLE_ENTITY, "validation_error", query);
        assert_eq!(response.1["error"]["details"]["field"], field, "{query}: {}", response.1);
        plain(&response);
    }
}
