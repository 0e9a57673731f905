-- Spend guard: reservations (holds on an agent's budgets), their lifecycle events, budget
-- leases to child agents, and mandates. Every amount an agent commits — a reservation made
-- through the API, an activation's deposit plus fee, a lease carved out for a child — is one
-- row of `reservations`, and budgets sum `counted_cents` over those rows under the agent's
-- decision lock.

CREATE TABLE reservations (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    agent_id TEXT NOT NULL REFERENCES agents (id),
    -- api | activation | lease
    source TEXT NOT NULL,
    -- The agreement (activation) or the budget lease (lease) held for; NULL for api.
    subject_id TEXT,
    -- pending_approval | reserved | captured | released | expired | rejected
    status TEXT NOT NULL,
    -- What was held.
    amount_cents BIGINT NOT NULL,
    -- What was captured (NULL until captured).
    captured_cents BIGINT,
    -- What counts toward budgets, leases and mandates now: the amount while reserved, what was
    -- captured (less any credit) once captured, nothing otherwise.
    counted_cents BIGINT NOT NULL,
    action_type TEXT NOT NULL,
    currency TEXT NOT NULL,
    counterparty TEXT,
    category TEXT,
    -- JSON object, or NULL.
    metadata TEXT,
    mandate_id TEXT,
    lease_id TEXT,
    approval_id TEXT,
    -- The decision (`chk_…`) that let it through or escalated it.
    check_id TEXT,
    ttl_seconds BIGINT,
    -- When an unresolved hold is expired by the sweeper; NULL when it follows its subject.
    expires_at BIGINT,
    -- The time the hold counts at: budget periods are matched against it.
    counted_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Budgets sum counted cents per agent and period from this index alone.
CREATE INDEX reservations_counted ON reservations (agent_id, counted_at, counted_cents);
CREATE INDEX reservations_by_account ON reservations (account_id, created_at, id);
CREATE INDEX reservations_due ON reservations (status, expires_at);
CREATE INDEX reservations_by_subject ON reservations (subject_id);
CREATE INDEX reservations_by_lease ON reservations (lease_id, status);
CREATE INDEX reservations_by_mandate ON reservations (mandate_id, status);

-- Each change of a reservation, in order: its evidence.
CREATE TABLE reservation_events (
    id TEXT PRIMARY KEY,
    reservation_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    -- pending_approval | reserved | captured | released | expired | rejected | reheld | credited
    event TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    -- owner | agent | system
    actor TEXT NOT NULL,
    -- JSON object.
    detail TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX reservation_events_by_reservation ON reservation_events (reservation_id, created_at, id);
CREATE INDEX reservation_events_by_account ON reservation_events (account_id, created_at);

CREATE TABLE budget_leases (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    parent_agent_id TEXT NOT NULL REFERENCES agents (id),
    child_agent_id TEXT NOT NULL REFERENCES agents (id),
    amount_cents BIGINT NOT NULL,
    -- 1 for a lease from an agent that holds none, one more for each lease above it.
    depth BIGINT NOT NULL,
    -- active | released | expired
    status TEXT NOT NULL,
    -- The parent's reservation that carves the lease out of its budgets.
    hold_id TEXT NOT NULL,
    expires_at BIGINT,
    released_at BIGINT,
    release_reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A child spends under one active lease at a time.
CREATE UNIQUE INDEX budget_leases_one_active ON budget_leases (child_agent_id) WHERE status = 'active';
CREATE INDEX budget_leases_by_account ON budget_leases (account_id, created_at, id);
CREATE INDEX budget_leases_by_parent ON budget_leases (parent_agent_id, status);
CREATE INDEX budget_leases_due ON budget_leases (status, expires_at);

CREATE TABLE mandates (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    agent_id TEXT NOT NULL REFERENCES agents (id),
    -- active | revoked
    status TEXT NOT NULL,
    max_total_cents BIGINT NOT NULL,
    per_tx_max_cents BIGINT,
    valid_from BIGINT,
    valid_until BIGINT,
    -- JSON arrays; an empty array allows any.
    action_types TEXT NOT NULL,
    counterparties TEXT NOT NULL,
    categories TEXT NOT NULL,
    purpose TEXT,
    revoked_at BIGINT,
    revoke_reason TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX mandates_by_agent ON mandates (agent_id, created_at, id);
CREATE INDEX mandates_by_account ON mandates (account_id, created_at, id);

-- A token minted for a mandate spends only within it.
ALTER TABLE execution_tokens ADD COLUMN mandate_id TEXT;

-- What activations already committed becomes their holds.
INSERT INTO reservations (id, account_id, agent_id, source, subject_id, status, amount_cents,
    captured_cents, counted_cents, action_type, currency, counterparty, category, metadata,
    mandate_id, lease_id, approval_id, check_id, ttl_seconds, expires_at, counted_at,
    created_at, updated_at)
SELECT 'rsv_' || ua.id, ag.account_id, ua.buyer_agent_id, 'activation', ua.id,
    CASE WHEN ua.activation_status = 'confirmed' THEN 'captured'
         WHEN ua.activation_status IN ('pending', 'submitting', 'submitted') THEN 'reserved'
         ELSE 'released' END,
    ua.committed_cents,
    CASE WHEN ua.activation_status = 'confirmed' THEN ua.committed_cents ELSE NULL END,
    CASE WHEN ua.activation_status IN ('pending', 'submitting', 'submitted', 'confirmed')
         THEN ua.committed_cents ELSE 0 END,
    'spend', 'USDC', ua.seller_agent_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
    ua.committed_at, ua.committed_at, ua.committed_at
FROM usage_agreements ua JOIN agents ag ON ag.id = ua.buyer_agent_id
WHERE ua.committed_cents IS NOT NULL AND ua.committed_at IS NOT NULL;

-- What each agent's holds count, per quarter hour of `counted_at` (`bucket` = counted_at / 900):
-- a budget period starts at a local midnight, a whole number of quarter hours in every time
-- zone, so its count is a sum of at most a month of buckets however many holds the agent made.
-- Engine triggers (migrations_engine/) keep it in step with every insert and update of
-- `reservations`.
CREATE TABLE hold_buckets (
    agent_id TEXT NOT NULL,
    bucket BIGINT NOT NULL,
    cents BIGINT NOT NULL,
    PRIMARY KEY (agent_id, bucket)
);

INSERT INTO hold_buckets (agent_id, bucket, cents)
SELECT agent_id, counted_at / 900, SUM(counted_cents) FROM reservations
WHERE counted_cents <> 0 GROUP BY agent_id, counted_at / 900;

-- Budgets read holds now; the agreements' own commitment columns (0010) are no longer written
-- or read, and their index goes.
DROP INDEX agreements_committed;
