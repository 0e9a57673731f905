//! The webhook dispatcher: a supervised background task that turns outbox events into
//! deliveries (one per subscribed endpoint of the agreement's buyer and seller agents, created
//! in the transaction that marks the event dispatched) and sends due deliveries, a bounded
//! number at a time.
//!
//! It never holds a store transaction across an HTTP request: a delivery is claimed (leased)
//! in one short transaction, sent, and its outcome recorded in another, under the claim's
//! token. A killed instance's claims lapse after [`WebhookSettings::lease`], and the delivery
//! is sent again with the same `webhook-id`: delivery is at least once.

use std::time::Duration;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::Instrument;

use super::address;
use super::events::subscribes;
use super::send::{self, Outcome, Signed};
use super::signature::{SigningSecret, signature_header};
use super::{WebhookSettings, new_id};
use crate::store::webhooks::{self as rows, AfterAttempt, Attempt, Delivery};
use crate::store::{Conn, Result, Store, agreements, now};

/// Most outbox events fanned out per transaction.
const FAN_OUT_BATCH: i64 = 100;

/// The dispatcher's configuration and handles.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    /// The store.
    pub store: Store,
    /// Timeouts, schedule, SSRF policy, concurrency.
    pub settings: WebhookSettings,
    /// How often it looks for new events and due deliveries.
    pub poll: Duration,
}

impl Dispatcher {
    /// Fans out and delivers until `stop` turns true. In-flight attempts are abandoned on
    /// stop; their claims lapse and they are sent again.
    pub async fn run(self, mut stop: watch::Receiver<bool>) -> Result<()> {
        let concurrency = self.settings.concurrency.max(1);
        let mut in_flight = JoinSet::new();
        loop {
            if *stop.borrow() {
                return Ok(());
            }
            self.fan_out().await?;
            let room = concurrency.saturating_sub(in_flight.len());
            if room > 0 {
                let token = alloy::primitives::hex::encode(rand::random::<[u8; 16]>());
                for delivery in self.claim(room, &token).await? {
                    let (this, token) = (self.clone(), token.clone());
                    let span = tracing::info_span!(
                        "webhook_delivery",
                        delivery_id = %delivery.id,
                        endpoint_id = %delivery.endpoint_id,
                        event_type = %delivery.event_type,
                    );
                    in_flight.spawn(
                        async move {
                            if let Err(error) = this.deliver(&delivery, &token).await {
                                tracing::warn!(%error, "webhook delivery not recorded; its claim will lapse");
                            }
                        }
                        .instrument(span),
                    );
                }
            }
            tokio::select! {
                changed = stop.changed() => if changed.is_err() || *stop.borrow() { return Ok(()) },
                _ = tokio::time::sleep(self.poll) => {}
                Some(joined) = in_flight.join_next(), if !in_flight.is_empty() => {
                    if let Err(error) = joined {
                        tracing::error!(%error, "webhook delivery task failed");
                    }
                }
            }
        }
    }

    /// Creates the deliveries of up to [`FAN_OUT_BATCH`] undispatched outbox events and marks
    /// them dispatched, in one transaction. Returns how many events it handled.
    pub async fn fan_out(&self) -> Result<usize> {
        // A read first, so an idle dispatcher takes no write lock.
        let mut reader = self.store.reader().acquire().await?;
        if rows::undispatched(&mut reader, 1).await?.is_empty() {
            return Ok(0);
        }
        drop(reader);
        let mut tx = self.store.begin().await?;
        let events = rows::undispatched(&mut tx, FAN_OUT_BATCH).await?;
        let (at, due) = (now(), now_ms() + millis(self.settings.retry_schedule.first()));
        let mut created = 0;
        for (event_id, agreement_id, event_type, data, created_at, agent_id) in &events {
            let event = OutboxRow { event_id, event_type, data, created_at: *created_at };
            let deliveries = match (agreement_id, agent_id) {
                (Some(agreement_id), _) => {
                    deliveries_for(&mut tx, &event, agreement_id, due, at).await?
                }
                (None, Some(agent_id)) => {
                    agent_deliveries(&mut tx, &event, agent_id, due, at).await?
                }
                (None, None) => Vec::new(),
            };
            for delivery in deliveries {
                created += usize::from(rows::insert_delivery(&mut tx, &delivery).await?);
            }
            rows::mark_dispatched(&mut tx, event_id, at).await?;
        }
        tx.commit().await?;
        if created > 0 {
            tracing::debug!(
                events = events.len(),
                deliveries = created,
                "webhook events fanned out"
            );
        }
        Ok(events.len())
    }

    /// Claims up to `room` due deliveries under `token`.
    async fn claim(&self, room: usize, token: &str) -> Result<Vec<Delivery>> {
        let limit = i64::try_from(room).unwrap_or(i64::MAX);
        let at = now_ms();
        let until = at + millis(self.settings.lease());
        let mut tx = self.store.begin().await?;
        let claimed = rows::claim_due(&mut tx, at, until, token, limit).await?;
        // Nothing claimed, nothing changed: no commit (any commit makes the read model stale).
        if claimed.is_empty() {
            tx.rollback().await?;
        } else {
            tx.commit().await?;
        }
        Ok(claimed)
    }

    /// Makes one attempt of a claimed delivery and records it.
    async fn deliver(&self, delivery: &Delivery, token: &str) -> Result<()> {
        let endpoint =
            rows::endpoint_with_secrets(self.store.reader(), &delivery.endpoint_id).await?;
        let Some((endpoint, secrets)) = endpoint.filter(|(e, _)| e.status == rows::ACTIVE) else {
            // Paused, disabled or deleted since the claim: leave it to the endpoint's state.
            let mut tx = self.store.begin().await?;
            rows::release(&mut tx, &delivery.id, token).await?;
            tx.commit().await?;
            return Ok(());
        };
        let started_ms = now_ms();
        let timestamp = now();
        let mut keys = vec![secrets.current.as_str()];
        if let (Some(previous), Some(until)) = (&secrets.previous, secrets.previous_until)
            && until > timestamp
        {
            keys.push(previous);
        }
        let keys: Vec<SigningSecret> =
            keys.into_iter().filter_map(|k| SigningSecret::parse(k).ok()).collect();
        let outcome = if keys.is_empty() {
            Outcome::refused("the endpoint's signing secret is unreadable".into())
        } else {
            let body = delivery.payload.as_bytes();
            let signed = Signed {
                id: delivery.id.clone(),
                timestamp,
                signature: signature_header(&keys, &delivery.id, timestamp, body),
            };
            let vetted = match address::parse(&endpoint.url) {
                Ok(url) => address::vet(&url, self.settings.allow_private_urls)
                    .await
                    .map(|addr| (url, addr)),
                Err(e) => Err(e),
            };
            match vetted {
                Ok((url, addr)) => {
                    send::post(&url, addr, &signed, body, self.settings.timeout()).await
                }
                Err(e) => Outcome::refused(format!("address_not_allowed: {e}")),
            }
        };
        self.record(delivery, token, &outcome, started_ms).await
    }

    /// Logs the attempt and moves the delivery on: succeeded, retried later, or failed (the
    /// schedule is used up, or a 410 disabled the endpoint).
    async fn record(
        &self,
        delivery: &Delivery,
        token: &str,
        outcome: &Outcome,
        started_ms: i64,
    ) -> Result<()> {
        let made = usize::try_from(delivery.round_attempts).unwrap_or(usize::MAX).saturating_add(1);
        let jitter = rand::random::<f64>() * 2.0 - 1.0;
        let retry = self.settings.retry_schedule.next_delay(made, jitter, outcome.retry_after);
        let error = match (&outcome.error, outcome.status) {
            (Some(error), _) => Some(error.clone()),
            (None, Some(status)) if !outcome.succeeded() => Some(format!("HTTP {status}")),
            _ => None,
        };
        let (status, next) = if outcome.succeeded() {
            (rows::SUCCEEDED, None)
        } else if outcome.gone() {
            (rows::FAILED, None)
        } else {
            match retry {
                Some(delay) => (rows::PENDING, Some(now_ms() + millis(delay))),
                None => (rows::FAILED, None),
            }
        };
        let after = AfterAttempt {
            status: status.to_owned(),
            next_attempt_at_ms: next,
            status_code: outcome.status.map(i64::from),
            error: error.clone(),
        };
        let attempt = Attempt {
            number: delivery.attempts + 1,
            status_code: outcome.status.map(i64::from),
            error,
            latency_ms: i64::try_from(outcome.latency_ms).unwrap_or(i64::MAX),
            response_body: outcome.body_prefix.clone(),
            attempted_at_ms: started_ms,
        };
        let at = now();
        let mut tx = self.store.begin().await?;
        if !rows::after_attempt(&mut tx, &delivery.id, token, &after, at).await? {
            tracing::warn!("webhook claim lapsed before the attempt was recorded; not recorded");
            return Ok(());
        }
        rows::insert_attempt(&mut tx, &delivery.id, &attempt).await?;
        if outcome.gone() {
            let reason = "the receiver answered 410 Gone";
            let failed =
                rows::retire_endpoint(&mut tx, &delivery.endpoint_id, rows::DISABLED, reason, at)
                    .await?;
            tracing::warn!(failed_deliveries = failed, "webhook endpoint disabled by 410 Gone");
        }
        tx.commit().await?;
        tracing::info!(
            attempt = attempt.number,
            status_code = outcome.status,
            error = attempt.error.as_deref(),
            latency_ms = outcome.latency_ms,
            outcome = status,
            "webhook attempt"
        );
        Ok(())
    }
}

/// An outbox event being fanned out.
struct OutboxRow<'a> {
    event_id: &'a str,
    event_type: &'a str,
    data: &'a str,
    created_at: i64,
}

/// The deliveries of one outbox event about an agreement: one per endpoint of the agreement's
/// buyer and seller agents that subscribes to the event's type, all with the same body.
async fn deliveries_for(
    conn: &mut Conn,
    event: &OutboxRow<'_>,
    agreement_id: &str,
    due_ms: i64,
    at: i64,
) -> Result<Vec<Delivery>> {
    let Some(agreement) = agreements::get_in(conn, agreement_id).await? else {
        return Ok(Vec::new());
    };
    let (buyer, seller) = (agreement.buyer_agent_id.as_str(), agreement.seller_agent_id.as_str());
    let mut fields = Map::new();
    fields.insert("agreement_id".into(), json!(agreement_id));
    fields.insert("status".into(), json!(agreement.status.as_str()));
    fields.insert("activation_status".into(), json!(agreement.activation_status.as_str()));
    fields.insert("buyer_agent_id".into(), json!(buyer));
    fields.insert("seller_agent_id".into(), json!(seller));
    deliveries_to(conn, event, &[buyer, seller], fields, due_ms, at).await
}

/// The deliveries of one outbox event about an agent (approvals, halts, policies): one per
/// endpoint of that agent that subscribes to the event's type.
async fn agent_deliveries(
    conn: &mut Conn,
    event: &OutboxRow<'_>,
    agent_id: &str,
    due_ms: i64,
    at: i64,
) -> Result<Vec<Delivery>> {
    let mut fields = Map::new();
    fields.insert("agent_id".into(), json!(agent_id));
    deliveries_to(conn, event, &[agent_id], fields, due_ms, at).await
}

/// One delivery of `event` per subscribing endpoint of `agents`, its `data` being `fields`
/// overlaid with the event's own fields.
async fn deliveries_to(
    conn: &mut Conn,
    event: &OutboxRow<'_>,
    agents: &[&str],
    mut fields: Map<String, Value>,
    due_ms: i64,
    at: i64,
) -> Result<Vec<Delivery>> {
    let endpoints = rows::subscribers(conn, agents).await?;
    let endpoints: Vec<_> =
        endpoints.into_iter().filter(|e| subscribes(&e.event_types, event.event_type)).collect();
    if endpoints.is_empty() {
        return Ok(Vec::new());
    }
    // The event's own fields win: a chain event's `status` is the one it produced.
    if let Ok(Value::Object(own)) = serde_json::from_str::<Value>(event.data) {
        fields.extend(own);
    }
    let payload = json!({
        "id": event.event_id,
        "type": event.event_type,
        "created_at": rfc3339(event.created_at),
        "data": Value::Object(fields),
    })
    .to_string();
    Ok(endpoints
        .into_iter()
        .map(|endpoint| Delivery {
            id: new_id("msg_"),
            endpoint_id: endpoint.id,
            agent_id: endpoint.agent_id,
            event_id: event.event_id.to_owned(),
            event_type: event.event_type.to_owned(),
            payload: payload.clone(),
            status: rows::PENDING.to_owned(),
            attempts: 0,
            round_attempts: 0,
            next_attempt_at_ms: Some(due_ms),
            last_status_code: None,
            last_error: None,
            created_at: at,
            updated_at: at,
            completed_at: None,
        })
        .collect())
}

/// Unix seconds as RFC 3339.
pub(crate) fn rfc3339(unix_seconds: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix_seconds)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// The current unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
