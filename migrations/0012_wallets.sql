-- Agents' own wallets (non-custodial: Pactum stores the address, never a key). An address is
-- registered once per account; an agent has at most one primary wallet (the EVM address set by
-- `POST /activate`).

CREATE TABLE wallets (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts (id),
    agent_id TEXT NOT NULL REFERENCES agents (id),
    -- Checksummed `0x…` address; `address_key` is its lower-case form, for uniqueness.
    address TEXT NOT NULL,
    address_key TEXT NOT NULL,
    label TEXT,
    -- 1 for the agent's primary wallet.
    is_primary BIGINT NOT NULL DEFAULT 0,
    -- none | ecdsa | erc1271: how the wallet proved control (a signed WalletOwnership).
    ownership_proof TEXT NOT NULL,
    -- The signed message's `issuedAt` (unix seconds); NULL without a proof.
    ownership_issued_at BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX wallets_address_per_account ON wallets (account_id, address_key);
CREATE UNIQUE INDEX wallets_one_primary_per_agent ON wallets (agent_id) WHERE is_primary = 1;
CREATE INDEX wallets_by_account ON wallets (account_id, created_at, id);
CREATE INDEX wallets_by_agent ON wallets (agent_id, created_at, id);
