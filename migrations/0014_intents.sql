-- Intents (seed 004): a transfer an agent validated before paying from its own wallet, held on
-- its budgets (a reservation with source `intent` whose subject is the intent), and the
-- transaction it says paid it, as the chain watcher found it.

CREATE TABLE intents (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    agent_id TEXT NOT NULL REFERENCES agents (id),
    -- validated | broadcast | confirmed | mismatched | failed | expired
    status TEXT NOT NULL,
    -- transfer
    action TEXT NOT NULL,
    -- Checksummed recipient and token addresses.
    to_address TEXT NOT NULL,
    token TEXT NOT NULL,
    chain_id BIGINT NOT NULL,
    amount_cents BIGINT NOT NULL,
    -- JSON object, or NULL.
    metadata TEXT,
    -- The hold (`rsv_…`) and the decision (`chk_…`) that let it through.
    reservation_id TEXT NOT NULL,
    check_id TEXT NOT NULL,
    ttl_seconds BIGINT NOT NULL,
    -- Lower-case `0x…` hash the agent posted; a hash pays one intent only.
    tx_hash TEXT,
    -- Where the watcher found it mined (NULL until then, and again after a reorganisation),
    -- and its verdict on it there: matched | reverted | no_transfer | wrong_sender |
    -- wrong_recipient | wrong_amount.
    block_number BIGINT,
    block_hash TEXT,
    verdict TEXT,
    -- 1 once the watcher asked the node for the receipt of the posted hash; from then on it is
    -- found in the blocks the watcher reads.
    looked_up BIGINT NOT NULL DEFAULT 0,
    -- When it expires unless a transaction is found mined (validated: the TTL from
    -- validation; broadcast: the TTL again from the posting).
    expires_at BIGINT NOT NULL,
    broadcast_at BIGINT,
    resolved_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX intents_tx_hash ON intents (tx_hash);
CREATE INDEX intents_by_agent ON intents (agent_id, created_at, id);
CREATE INDEX intents_due ON intents (status, expires_at);
CREATE INDEX intents_mined ON intents (status, block_number);
