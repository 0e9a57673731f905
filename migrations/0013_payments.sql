-- Governed payments: one-shot USDC transfers from an agent's own wallet, under its policy,
-- budgets and mandate. Pactum builds the EIP-3009 `TransferWithAuthorization` the wallet signs,
-- holds the amount on the agent's budgets (a reservation of source `payment`, or the
-- reservation the payment names), relays the signed authorization and confirms it from the
-- token's `AuthorizationUsed` and `Transfer` logs.

CREATE TABLE payments (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    agent_id TEXT NOT NULL REFERENCES agents (id),
    -- The agent's wallet the transfer is authorized from (checksummed `0x…`).
    from_address TEXT NOT NULL,
    -- The payee's address (checksummed), and its agent when the payee was named by agent id.
    to_address TEXT NOT NULL,
    to_agent_id TEXT,
    amount_cents BIGINT NOT NULL,
    -- The token amount in base units, as a decimal string.
    amount_units TEXT NOT NULL,
    currency TEXT NOT NULL,
    -- awaiting_signature | pending_approval | queued | submitted | confirmed | failed | expired
    -- | blocked
    status TEXT NOT NULL,
    -- The authorization's nonce (`0x…` 32 bytes): the payment key, unique.
    payment_key TEXT NOT NULL,
    valid_after BIGINT NOT NULL,
    valid_before BIGINT NOT NULL,
    -- The hold on the agent's budgets (`rsv_…`), its own or the reservation it was made under.
    reservation_id TEXT,
    mandate_id TEXT,
    approval_id TEXT,
    check_id TEXT,
    memo TEXT,
    -- JSON object, or NULL.
    metadata TEXT,
    -- The wallet's signature (`0x…`), once authorized.
    signature TEXT,
    -- The relayer job that carries it, once authorized.
    job_id TEXT,
    -- The transaction that moved it, and where it was mined.
    tx_hash TEXT,
    block_number BIGINT,
    block_hash TEXT,
    log_index BIGINT,
    -- Why it failed, was blocked or expired.
    error TEXT,
    -- The signed receipt of a confirmed payment.
    receipt_id TEXT,
    receipt_issued_at BIGINT,
    receipt_signer TEXT,
    receipt_signature TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX payments_by_key ON payments (payment_key);
CREATE UNIQUE INDEX payments_by_receipt ON payments (receipt_id);
CREATE INDEX payments_by_account ON payments (account_id, created_at, id);
CREATE INDEX payments_by_agent ON payments (agent_id, created_at, id);
CREATE INDEX payments_by_job ON payments (job_id);
CREATE INDEX payments_open ON payments (status, valid_before);
