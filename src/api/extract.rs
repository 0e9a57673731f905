//! Extractors whose rejections speak the API's error shape: JSON bodies, query strings, path
//! ids and the `Idempotency-Key` header.
//!
//! A body or query that does not fit its type is refused with `details.field` naming the field
//! (its path, `payment_method.rail`, `capabilities[2]`) and a message of our own: the
//! deserializer's wording ("invalid type: string …, expected u64 at line 1 column 25") speaks
//! Rust, not the API.

use axum::body::{Body, Bytes};
use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::json;

use super::error::{ApiError, ErrorCode};

/// A JSON object body; malformed JSON, wrong types, missing fields, bodies that are not objects
/// and oversized bodies are answered with [`ApiError`]s instead of axum's plain-text rejections.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let body = read_body(Request::from_parts(parts.clone(), body), state).await?;
        parse_object(parts, body, state).await.map(ApiJson)
    }
}

/// A JSON object body the client may leave out: an empty (or blank) body reads as
/// `T::default()`; any other body is held to every rule of [`ApiJson`], content type included.
#[derive(Debug, Clone)]
pub struct OptionalApiJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalApiJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let body = read_body(Request::from_parts(parts.clone(), body), state).await?;
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalApiJson(T::default()));
        }
        parse_object(parts, body, state).await.map(OptionalApiJson)
    }
}

/// The whole body, within the router's body limit.
async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            payload_too_large()
        } else {
            ApiError::new(ErrorCode::InvalidBody, rejection.body_text())
        }
    })
}

/// `body`, already read, as `T`: axum checks the content type and the syntax on the request
/// rebuilt from its `parts`; the fields are then read here, so a refusal can name its field.
async fn parse_object<T, S>(parts: Parts, body: Bytes, state: &S) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    // serde also reads a struct from an array (`[]` is a valid `Reject`); our bodies are objects.
    let is_object = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
    let req = Request::from_parts(parts, Body::from(body.clone()));
    let axum::Json(IgnoredAny) =
        axum::Json::<IgnoredAny>::from_request(req, state).await.map_err(json_rejection)?;
    if !is_object {
        return Err(ApiError::new(
            ErrorCode::ValidationError,
            "the request body must be a JSON object",
        ));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(&body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            // What skipping the body does not check (a key that is not UTF-8, say).
            return ApiError::new(ErrorCode::MalformedJson, "the request body is not valid JSON");
        }
        field_error(&path, &inner.to_string())
    })
}

/// The value of a query string; an unknown or ill-typed parameter answers 422
/// `validation_error` naming it.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        let deserializer =
            serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(deserializer).map(ApiQuery).map_err(|error| {
            let path = error.path().to_string();
            field_error(&path, &error.into_inner().to_string())
        })
    }
}

/// 422 `validation_error` for the field at `path` (`.` for the whole value) that failed with
/// the deserializer's `message`, which is read for its kind and its field name only.
fn field_error(path: &str, message: &str) -> ApiError {
    let at = |name: &str| {
        if path.is_empty() || path == "." { name.to_owned() } else { format!("{path}.{name}") }
    };
    // `missing field `x``, `unknown field `x`, expected …`: the field is in backticks.
    let quoted = message.split('`').nth(1).filter(|name| !name.is_empty());
    let (field, text) = match quoted {
        Some(name) if message.starts_with("missing field") => {
            let field = at(name);
            let text = format!("`{field}` is required");
            (field, text)
        }
        // The path of an unknown field already ends with it.
        Some(name) if message.starts_with("unknown field") => {
            let field =
                if path.is_empty() || path == "." { name.to_owned() } else { path.to_owned() };
            let text = format!("`{field}` is not a field of this request");
            (field, text)
        }
        _ if path.is_empty() || path == "." => {
            ("body".to_owned(), "the request does not have the expected form".to_owned())
        }
        _ => (path.to_owned(), format!("`{path}` has the wrong type or an invalid value")),
    };
    ApiError::validation(&field, text)
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let detail = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => ApiError::new(ErrorCode::ValidationError, detail),
        JsonRejection::JsonSyntaxError(_) => ApiError::new(ErrorCode::MalformedJson, detail),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "expected `Content-Type: application/json`",
        ),
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => payload_too_large(),
        other => ApiError::new(ErrorCode::InvalidBody, other.body_text()),
    }
}

fn payload_too_large() -> ApiError {
    ApiError::new(ErrorCode::PayloadTooLarge, "the request body is larger than this server accepts")
}

/// A path id. One that does not decode (percent-encoded bytes that are not UTF-8) or holds
/// control characters can name nothing Pactum issued, so it answers 404 like any unknown id
/// (instead of axum's plain-text 400, or a database refusing a NUL byte).
#[derive(Debug, Clone)]
pub struct ApiPath(pub String);

impl<S> FromRequestParts<S> for ApiPath
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(value)) if !value.chars().any(char::is_control) => Ok(ApiPath(value)),
            Ok(_) | Err(PathRejection::FailedToDeserializePathParams(_)) => {
                Err(ApiError::not_found("resource"))
            }
            // The route and the handler disagree on the parameters: our bug, not the client's.
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// Two path parameters (a resource and one of its children); the same rules as [`ApiPath`].
#[derive(Debug, Clone)]
pub struct ApiPathPair(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for ApiPathPair {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<(String, String)>::from_request_parts(parts, state).await {
            Ok(Path((a, b))) if !a.chars().chain(b.chars()).any(char::is_control) => {
                Ok(ApiPathPair(a, b))
            }
            Ok(_) | Err(PathRejection::FailedToDeserializePathParams(_)) => {
                Err(ApiError::not_found("resource"))
            }
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// The `Idempotency-Key` header, if sent (1–255 visible ASCII characters).
#[derive(Debug, Clone, Default)]
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(IdempotencyKey(None));
        };
        let key =
            value.to_str().ok().and_then(|k| IdempotencyKey::parse(k).ok()).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidIdempotencyKey,
                    "`Idempotency-Key` must be 1 to 255 visible ASCII characters",
                )
                .with_details(json!({ "header": "Idempotency-Key" }))
            })?;
        Ok(IdempotencyKey(Some(key)))
    }
}

impl IdempotencyKey {
    /// A key given in a body field (`idempotency_key`): the header's rules, 400 otherwise.
    pub fn parse(key: &str) -> Result<String, ApiError> {
        if !key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()) {
            return Ok(key.to_owned());
        }
        Err(ApiError::new(
            ErrorCode::InvalidIdempotencyKey,
            "an idempotency key must be 1 to 255 visible ASCII characters",
        )
        .with_details(json!({ "field": "idempotency_key" })))
    }
}
