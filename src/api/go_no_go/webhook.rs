//! The webhook section: a signed test message (Standard Webhooks, as every delivery is signed)
//! posted once to each active endpoint of the operator's agents, with the same address
//! vetting, timeout and client as real deliveries. Nothing is queued or retried: the answer is
//! the evidence.

use std::time::Duration;

use serde_json::json;

use crate::api::AppState;
use crate::gonogo::evidence::{self, WebhookEvidence, WebhookProbe};
use crate::gonogo::{Section, SectionReport};
use crate::store::agents::Account;
use crate::store::gonogo as rows;
use crate::store::webhooks as endpoints;
use crate::webhooks::signature::{SigningSecret, signature_header};
use crate::webhooks::{address, new_id, send};

/// The event type of the test message.
pub(super) const TEST_EVENT: &str = "go_no_go.test";

/// Gathers the webhook section.
pub(super) async fn gather(state: &AppState, account: &Account, run_id: &str) -> SectionReport {
    let ids = match rows::account_endpoint_ids(state.store.reader(), account.id.as_str()).await {
        Ok(ids) => ids,
        Err(error) => return failed(format!("the endpoints could not be read: {error}")),
    };
    let mut probes = Vec::with_capacity(ids.len());
    for id in ids {
        let found = endpoints::endpoint_with_secrets(state.store.reader(), &id).await;
        let Ok(Some((endpoint, secrets))) = found else {
            return failed(format!("endpoint {id} could not be read"));
        };
        probes.push(deliver(state, run_id, &endpoint, &secrets.current).await);
    }
    let evidence = WebhookEvidence { event_type: TEST_EVENT.to_owned(), endpoints: probes };
    let (verdict, summary) = evidence::judge_webhook(&evidence);
    SectionReport::new(Section::Webhook, verdict, summary, &evidence)
}

/// One signed test delivery to `endpoint`.
async fn deliver(
    state: &AppState,
    run_id: &str,
    endpoint: &endpoints::Endpoint,
    secret: &str,
) -> WebhookProbe {
    let message_id = new_id("msg_");
    let timestamp = crate::store::now();
    let body = json!({
        "type": TEST_EVENT,
        "timestamp": crate::time::rfc3339(timestamp),
        "data": { "run_id": run_id, "endpoint_id": endpoint.id, "agent_id": endpoint.agent_id },
    })
    .to_string();
    let url = address::parse(&endpoint.url);
    let origin = url
        .as_ref()
        .map_or_else(|_| "unparsable URL".to_owned(), |u| u.origin().ascii_serialization());
    let outcome = match (url, SigningSecret::parse(secret)) {
        (Ok(url), Ok(key)) => {
            let signed = send::Signed {
                id: message_id.clone(),
                timestamp,
                signature: signature_header(&[key], &message_id, timestamp, body.as_bytes()),
            };
            match address::vet(&url, state.webhooks.allow_private_urls).await {
                Ok(addr) => {
                    let timeout = state.webhooks.timeout().min(Duration::from_secs(15));
                    send::post(&url, addr, &signed, body.as_bytes(), timeout).await
                }
                Err(error) => send::Outcome::refused(format!("address_not_allowed: {error}")),
            }
        }
        (Err(error), _) => send::Outcome::refused(format!("address_not_allowed: {error}")),
        (_, Err(_)) => send::Outcome::refused("the endpoint's signing secret is unreadable".into()),
    };
    WebhookProbe {
        endpoint_id: endpoint.id.clone(),
        agent_id: endpoint.agent_id.clone(),
        origin,
        message_id,
        status: outcome.status,
        error: outcome.error.clone(),
        latency_ms: outcome.latency_ms,
        delivered: outcome.succeeded(),
    }
}

fn failed(reason: String) -> SectionReport {
    SectionReport::new(
        Section::Webhook,
        crate::gonogo::Verdict::NoGo,
        reason.clone(),
        &json!({ "error": reason }),
    )
}
