-- Pactum's first schema: accounts and agents, usage agreements, idempotent responses, the relayer
-- queue with every transaction attempt, and the chain watcher's cursor and escrow events.
--
-- Portable between SQLite and Postgres: TEXT and BIGINT only, times as unix seconds, token
-- amounts as decimal strings (they exceed 64 bits), JSON documents as TEXT.

CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    owner_key_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);

CREATE TABLE agents (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    name TEXT NOT NULL,
    description TEXT,
    capabilities TEXT NOT NULL,
    api_key_hash TEXT NOT NULL UNIQUE,
    api_key_hint TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX agents_by_account ON agents (account_id, created_at);

CREATE TABLE usage_agreements (
    id TEXT PRIMARY KEY,
    buyer_agent_id TEXT NOT NULL REFERENCES agents (id),
    seller_agent_id TEXT NOT NULL REFERENCES agents (id),
    service_id TEXT NOT NULL,
    quantity BIGINT NOT NULL,
    unit TEXT NOT NULL,
    price_per_unit_cents BIGINT NOT NULL,
    payment_method TEXT NOT NULL,
    settlement_model TEXT NOT NULL,
    activation_version TEXT NOT NULL,
    buyer_wallet_address TEXT NOT NULL,
    seller_wallet_address TEXT,
    status TEXT NOT NULL,
    activation_status TEXT NOT NULL,
    activation_error TEXT,
    activation_tx_hash TEXT,
    rejection_reason TEXT,
    -- The on-chain terms, fixed at acceptance.
    terms TEXT,
    agreement_key TEXT UNIQUE,
    infra_fee_status TEXT NOT NULL,
    activate_by BIGINT,
    -- The buyer's signed activation, kept with the agreement.
    activation_signatures TEXT,
    screening TEXT,
    -- The escrow as last seen on-chain.
    escrow_status TEXT,
    escrow_claimed_units BIGINT,
    escrow_block_number BIGINT,
    escrow_block_hash TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX agreements_by_buyer ON usage_agreements (buyer_agent_id, created_at, id);
CREATE INDEX agreements_by_seller ON usage_agreements (seller_agent_id, created_at, id);

CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    status_code BIGINT NOT NULL,
    response_body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, idempotency_key)
);

CREATE TABLE relayer_jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    agreement_id TEXT REFERENCES usage_agreements (id),
    to_address TEXT NOT NULL,
    calldata TEXT NOT NULL,
    status TEXT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX relayer_jobs_by_status ON relayer_jobs (status, created_at);

CREATE TABLE relayer_signers (
    address TEXT PRIMARY KEY,
    next_nonce BIGINT NOT NULL
);

CREATE TABLE relayer_attempts (
    tx_hash TEXT PRIMARY KEY,
    job_id TEXT NOT NULL REFERENCES relayer_jobs (id),
    signer TEXT NOT NULL,
    nonce BIGINT NOT NULL,
    raw_tx TEXT NOT NULL,
    gas_limit BIGINT NOT NULL,
    max_fee_per_gas TEXT NOT NULL,
    max_priority_fee_per_gas TEXT NOT NULL,
    status TEXT NOT NULL,
    block_number BIGINT,
    block_hash TEXT,
    succeeded BIGINT,
    created_at BIGINT NOT NULL,
    broadcast_at BIGINT
);

CREATE INDEX relayer_attempts_by_status ON relayer_attempts (status);
CREATE INDEX relayer_attempts_by_job ON relayer_attempts (job_id);

CREATE TABLE chain_cursor (
    id TEXT PRIMARY KEY,
    block_number BIGINT NOT NULL,
    block_hash TEXT NOT NULL,
    head_number BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE escrow_events (
    block_hash TEXT NOT NULL,
    log_index BIGINT NOT NULL,
    block_number BIGINT NOT NULL,
    tx_hash TEXT NOT NULL,
    agreement_key TEXT NOT NULL,
    event TEXT NOT NULL,
    data TEXT NOT NULL,
    applied BIGINT NOT NULL,
    PRIMARY KEY (block_hash, log_index)
);

CREATE INDEX escrow_events_by_key ON escrow_events (agreement_key, block_number);
