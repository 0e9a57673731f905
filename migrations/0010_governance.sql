-- Governance: owner policies (every version kept), spend checks, approvals, the agent halt
-- (circuit breaker) and the audit log of every decision. The audit log is made append-only by
-- an engine-specific trigger (migrations_engine/), since SQLite and Postgres write triggers
-- differently.

ALTER TABLE agents ADD COLUMN halted BIGINT NOT NULL DEFAULT 0;
ALTER TABLE agents ADD COLUMN halt_reason TEXT;
ALTER TABLE agents ADD COLUMN halted_at BIGINT;
-- Bumped by every spending decision of the agent, first thing in its transaction: the row
-- lock (Postgres) or write lock (SQLite) it takes serialises an agent's decisions, so two
-- concurrent requests never count the same budget twice.
ALTER TABLE agents ADD COLUMN decision_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE policy_versions (
    agent_id TEXT NOT NULL REFERENCES agents (id),
    version BIGINT NOT NULL,
    -- `pol_…`: the same for every version of one agent's policy.
    policy_id TEXT NOT NULL,
    -- The validated document `{rules, duplicate_window_seconds}` as JSON.
    document TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (agent_id, version)
);

CREATE TABLE spend_checks (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    agent_id TEXT NOT NULL REFERENCES agents (id),
    -- The response as answered, JSON.
    response TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE approvals (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    agent_id TEXT NOT NULL REFERENCES agents (id),
    -- activation | check
    kind TEXT NOT NULL,
    -- The agreement (activation) or the check it approves.
    subject_id TEXT NOT NULL,
    -- pending | approved | rejected | expired
    status TEXT NOT NULL,
    action_type TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    currency TEXT NOT NULL,
    counterparty TEXT,
    reason_code TEXT NOT NULL,
    violated_rule_id TEXT,
    message TEXT NOT NULL,
    policy_version BIGINT,
    expires_at BIGINT NOT NULL,
    decided_at BIGINT,
    decision_reason TEXT,
    created_at BIGINT NOT NULL
);

CREATE INDEX approvals_by_agent ON approvals (agent_id, created_at, id);
CREATE INDEX approvals_by_account ON approvals (account_id, created_at, id);
CREATE INDEX approvals_due ON approvals (status, expires_at);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    agent_id TEXT,
    -- check | activation | approval | halt | policy
    kind TEXT NOT NULL,
    -- allow | block | escalate | approved | rejected | expired | halted | resumed | updated
    decision TEXT NOT NULL,
    -- owner | agent | system
    actor TEXT NOT NULL,
    -- The check, agreement, approval or policy the row is about.
    subject_id TEXT,
    action_type TEXT,
    amount_cents BIGINT,
    currency TEXT,
    counterparty TEXT,
    -- What the duplicate guard compares: kind, action type, amount, currency, counterparty.
    fingerprint TEXT,
    -- 1 when the row counts toward the duplicate guard (an action let through or escalated,
    -- not a blocked one); velocity counts the same rows in decision_counts.
    counted BIGINT NOT NULL,
    reason_code TEXT,
    violated_rule_id TEXT,
    policy_version BIGINT,
    -- JSON: message, violations and whatever else the decision carried.
    detail TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX audit_by_account ON audit_log (account_id, created_at, id);
CREATE INDEX audit_by_agent ON audit_log (agent_id, created_at, id);
-- The duplicate guard's lookup: agent, fingerprint, kind and counted, then the window.
CREATE INDEX audit_fingerprint ON audit_log (agent_id, fingerprint, kind, counted, created_at);

-- Decisions counted toward velocity (let through or escalated), per agent, kind and second: a
-- velocity rule sums the seconds of its window instead of counting audit rows, so what a
-- decision costs does not grow with how many the agent made.
CREATE TABLE decision_counts (
    agent_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    second BIGINT NOT NULL,
    n BIGINT NOT NULL,
    PRIMARY KEY (agent_id, kind, second)
);

-- What an activation commits of its buyer's budgets (deposit + fee, in cents) and when it was
-- queued; counted while the activation is queued, on its way or confirmed.
ALTER TABLE usage_agreements ADD COLUMN committed_cents BIGINT;
ALTER TABLE usage_agreements ADD COLUMN committed_at BIGINT;
CREATE INDEX agreements_committed ON usage_agreements (buyer_agent_id, committed_at);

-- Governance webhooks concern an agent rather than an agreement.
ALTER TABLE outbox_events ADD COLUMN agent_id TEXT;
