//! Every JSON answer the suites receive through [`super::service::Harness::call`] is checked
//! against the OpenAPI document the server serves (generated from the handlers' types): the
//! operation's schema for that status, with unknown properties refused where the schema says
//! so. An error status the operation does not list is held to the one error shape.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The served document.
static DOC: LazyLock<Value> =
    LazyLock::new(|| serde_json::to_value(pactum::api::openapi::document()).unwrap());

/// Compiled validators by schema (as JSON text), compiled once per binary.
static VALIDATORS: LazyLock<Mutex<HashMap<String, jsonschema::Validator>>> =
    LazyLock::new(Default::default);

/// The documented path template `path` (without its query) is an instance of: the one whose
/// literal segments match most, so `…/webhooks/deliveries` beats `…/webhooks/{webhook_id}`.
fn template(path: &str) -> Option<String> {
    let segments: Vec<&str> = path.split('?').next()?.split('/').collect();
    let paths = DOC["paths"].as_object()?;
    paths
        .keys()
        .filter_map(|template| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                return None;
            }
            let mut literal = 0;
            for (part, segment) in parts.iter().zip(&segments) {
                if part.starts_with('{') {
                    continue;
                }
                if part != segment {
                    return None;
                }
                literal += 1;
            }
            Some((literal, template))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, template)| template.clone())
}

/// Panics unless `body`, answered with `status` to `method path`, fits the document.
#[track_caller]
pub fn assert_conforms(method: &Method, path: &str, status: StatusCode, body: &Value) {
    let error_shape = json!({ "$ref": "#/components/schemas/Error" });
    let operation = template(path)
        .map(|t| DOC["paths"][t.as_str()][method.as_str().to_lowercase()].clone())
        .filter(Value::is_object);
    let documented = operation
        .as_ref()
        .map(|op| op["responses"][status.as_str()]["content"]["application/json"]["schema"].clone())
        .filter(|schema| !schema.is_null());
    let schema = match documented {
        Some(schema) => schema,
        None if !status.is_success() => error_shape,
        None => panic!("{method} {path} → {status}: not documented; body {body}"),
    };
    let key = schema.to_string();
    let mut validators = VALIDATORS.lock().unwrap_or_else(|e| e.into_inner());
    let validator = validators.entry(key).or_insert_with(|| {
        let mut root = schema.clone();
        root["components"] = DOC["components"].clone();
        jsonschema::draft202012::new(&root).expect("the documented schema compiles")
    });
    let errors: Vec<String> =
        validator.iter_errors(body).map(|e| format!("{e} at {}", e.instance_path)).collect();
    assert!(
        errors.is_empty(),
        "{method} {path} → {status}: the answer breaks its documented schema: {errors:#?}\n{body:#}"
    );
}
