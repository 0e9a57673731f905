-- Webhooks: the endpoints of agents, one delivery per (endpoint, outbox event) created in the
-- transaction that marks the event dispatched, and every attempt of each delivery.

CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES agents (id),
    url TEXT NOT NULL,
    description TEXT,
    -- JSON array of event types; empty: every type.
    event_types TEXT NOT NULL,
    -- active | paused | disabled | deleted
    status TEXT NOT NULL,
    status_reason TEXT,
    -- `whsec_…`: kept as is because every delivery is signed with it (HMAC needs the key).
    secret TEXT NOT NULL,
    -- The secret before the last rotation, still signing until `previous_secret_until`.
    previous_secret TEXT,
    previous_secret_until BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX webhook_endpoints_by_agent ON webhook_endpoints (agent_id, status, created_at, id);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id),
    agent_id TEXT NOT NULL,
    event_id TEXT NOT NULL REFERENCES outbox_events (id),
    event_type TEXT NOT NULL,
    -- The exact body posted on every attempt.
    payload TEXT NOT NULL,
    -- pending | succeeded | failed
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    -- Attempts since creation or the last replay: the step of the retry schedule.
    round_attempts BIGINT NOT NULL,
    -- Unix milliseconds; NULL once finished.
    next_attempt_at_ms BIGINT,
    -- The claim of the instance sending it (lapses at `locked_until_ms`).
    locked_until_ms BIGINT,
    lock_token TEXT,
    last_status_code BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    completed_at BIGINT,
    UNIQUE (endpoint_id, event_id)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at_ms);
CREATE INDEX webhook_deliveries_by_agent ON webhook_deliveries (agent_id, created_at, id);
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, status);

CREATE TABLE webhook_attempts (
    delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id),
    attempt BIGINT NOT NULL,
    status_code BIGINT,
    error TEXT,
    latency_ms BIGINT NOT NULL,
    -- The first KiB of the response body.
    response_body TEXT,
    attempted_at_ms BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
