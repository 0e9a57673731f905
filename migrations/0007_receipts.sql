-- Signed receipts: one per confirmed on-chain movement of an agreement's funds (activation, seller
-- claim, buyer withdraw), written by the chain watcher in the transaction that applies the event.
-- (tx_hash, log_index) is unique, so an event applied again never makes a second receipt.
-- Amounts are decimal strings of token base units; the signature is hex of 65 bytes.

CREATE TABLE receipts (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    agreement_id TEXT NOT NULL REFERENCES usage_agreements (id),
    agreement_key TEXT NOT NULL,
    buyer_agent_id TEXT NOT NULL,
    seller_agent_id TEXT NOT NULL,
    buyer_wallet TEXT NOT NULL,
    seller_wallet TEXT NOT NULL,
    amount TEXT NOT NULL,
    infra_fee TEXT NOT NULL,
    token TEXT NOT NULL,
    escrow_contract TEXT NOT NULL,
    chain_id BIGINT NOT NULL,
    tx_hash TEXT NOT NULL,
    block_number BIGINT NOT NULL,
    block_hash TEXT NOT NULL,
    log_index BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    signer TEXT NOT NULL,
    signature TEXT NOT NULL,
    UNIQUE (tx_hash, log_index)
);

CREATE INDEX receipts_by_buyer ON receipts (buyer_agent_id, id);
CREATE INDEX receipts_by_seller ON receipts (seller_agent_id, id);
