-- Credentials: agents are revoked (never deleted) and have their keys rotated; owners mint
-- short-lived execution tokens that stand in for one agent's API key on one write.

-- When an agent was revoked (NULL while active) and when it last changed (NULL: never since
-- creation).
ALTER TABLE agents ADD COLUMN revoked_at BIGINT;
ALTER TABLE agents ADD COLUMN updated_at BIGINT;

CREATE INDEX agents_by_account_status ON agents (account_id, status, created_at, id);

-- An execution token, stored only as the SHA-256 of the token. `action` names the one write it
-- may make, `audience` the resource it may make it on (an agreement id; the seller agent id for
-- `propose`). It is single-use: the first request binds it (`used_at`) together with that
-- request's `Idempotency-Key`, so only a retry carrying the same key may present it again.
CREATE TABLE execution_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    agent_id TEXT NOT NULL REFERENCES agents (id),
    action TEXT NOT NULL,
    audience TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    used_idempotency_key TEXT,
    created_at BIGINT NOT NULL
);

CREATE INDEX execution_tokens_by_agent ON execution_tokens (agent_id, created_at);
