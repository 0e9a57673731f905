//! The operator console: one HTML page, one script and one stylesheet, embedded in the binary
//! and served by `pactum serve` at `GET /console`. Nothing is fetched from anywhere else, so it
//! works offline; the page talks only to this server's API with the owner credential the
//! operator types in. See `docs/console.md`.

mod settings;

pub use settings::ConsoleSettings;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::ApiPath;

/// The page.
const INDEX_HTML: &str = include_str!("assets/index.html");
/// Its script (an ES module).
const APP_JS: &str = include_str!("assets/app.js");
/// Its stylesheet.
const APP_CSS: &str = include_str!("assets/app.css");

/// Only this server's own script, styles and API; no inline script, no frames, no plugins.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The console's routes: the page and its assets, which take no credential (the page asks for
/// one and sends it with each API call).
pub fn routes() -> Router<AppState> {
    Router::new().route("/console", get(page)).route("/console/assets/{file}", get(asset))
}

/// `GET /console`: the console page. Not in the OpenAPI document, which describes the JSON API.
pub async fn page() -> Response {
    serve(INDEX_HTML, "text/html; charset=utf-8", "no-cache")
}

/// `GET /console/assets/{file}`: the console's script and stylesheet.
pub async fn asset(ApiPath(file): ApiPath) -> Response {
    // `no-cache` revalidates each load, so an upgraded binary's assets are never mixed with an
    // older page; they are small and served from memory.
    match file.as_str() {
        "app.js" => serve(APP_JS, "text/javascript; charset=utf-8", "no-cache"),
        "app.css" => serve(APP_CSS, "text/css; charset=utf-8", "no-cache"),
        _ => ApiError::not_found("asset").into_response(),
    }
}

/// `body` with its content type, cache policy and the console's security headers.
fn serve(body: &'static str, content_type: &'static str, cache: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers
        .insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}
