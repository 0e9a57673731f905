-- Settlement: usage recorded by the seller, the buyer's best signed voucher, the escrow as the
-- chain watcher derives it from events, sponsored settlement actions, and the outbox every
-- status change writes to in the transaction that makes it.

-- Usage the seller recorded, in all; the highest voucher the buyer signed and its signature.
ALTER TABLE usage_agreements ADD COLUMN usage_units BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_agreements ADD COLUMN voucher_units BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_agreements ADD COLUMN voucher_signature TEXT;
-- The escrow as of the last confirmed event: when withdraw opens after a buyer's close, and
-- whether the buyer took its part back.
ALTER TABLE usage_agreements ADD COLUMN escrow_closes_at BIGINT;
ALTER TABLE usage_agreements ADD COLUMN escrow_buyer_withdrawn BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage_agreements ADD COLUMN escrow_tx_hash TEXT;

-- The chain's clock at the newest head the watcher saw, so status can say "past expiry"
-- without an RPC call.
ALTER TABLE chain_cursor ADD COLUMN head_timestamp BIGINT NOT NULL DEFAULT 0;

-- Each usage record of the seller, as sent.
CREATE TABLE usage_records (
    id TEXT PRIMARY KEY,
    agreement_id TEXT NOT NULL REFERENCES usage_agreements (id),
    units BIGINT NOT NULL,
    cumulative_units BIGINT NOT NULL,
    description TEXT,
    created_at BIGINT NOT NULL
);

CREATE INDEX usage_records_by_agreement ON usage_records (agreement_id, created_at, id);

-- A party's signed settlement action, relayed by Pactum (the sponsored path).
CREATE TABLE settlement_actions (
    id TEXT PRIMARY KEY,
    agreement_id TEXT NOT NULL REFERENCES usage_agreements (id),
    action TEXT NOT NULL,
    party TEXT NOT NULL,
    signer TEXT NOT NULL,
    units BIGINT NOT NULL,
    amount TEXT NOT NULL,
    deadline BIGINT NOT NULL,
    -- The EIP-712 digest of the authorization: one relayed action per signed authorization.
    authorization_digest TEXT NOT NULL UNIQUE,
    authorization_signature TEXT NOT NULL,
    -- The job that carries it; a batch job once the relayer batched it with others.
    job_id TEXT NOT NULL REFERENCES relayer_jobs (id),
    status TEXT NOT NULL,
    tx_hash TEXT,
    block_number BIGINT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX settlement_actions_by_agreement ON settlement_actions (agreement_id, created_at, id);
CREATE INDEX settlement_actions_by_job ON settlement_actions (job_id);

-- Webhook-ready events, written in the transaction of the change they report.
CREATE TABLE outbox_events (
    id TEXT PRIMARY KEY,
    agreement_id TEXT,
    event_type TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    dispatched_at BIGINT
);

CREATE INDEX outbox_events_by_agreement ON outbox_events (agreement_id, created_at, id);
CREATE INDEX outbox_events_undispatched ON outbox_events (dispatched_at, created_at, id);

-- A confirmed settlement transaction's events, read to report each relayed action's outcome.
CREATE INDEX escrow_events_by_tx ON escrow_events (tx_hash, agreement_key);
