-- Agent self-registration (test deployments only): `POST /agents/register` creates an agent with
-- status `unclaimed`; an owner's `POST /agents/claim` with the one-time claim code moves it into
-- the owner's account and makes it `active`.
--
-- `agents.account_id` stays NOT NULL: an unclaimed agent lives in a holding account of its own,
-- created with it, whose `owner_key_hash` is `unclaimed:<agent id>`. That is never the SHA-256
-- hex digest of any credential, so no owner can open the account, and every table that names an
-- account keeps its constraint. The claim moves the agent (and the wallets it registered) into
-- the claimer's account and deletes the holding account.

-- The claim code of a self-registered agent, stored only as the SHA-256 of the code. A code is
-- single use: `claimed_at` and `claimed_by` are set once, by a conditional update, and a code
-- past `expires_at` can no longer be claimed.
CREATE TABLE agent_registrations (
    agent_id TEXT PRIMARY KEY REFERENCES agents (id),
    claim_code_hash TEXT NOT NULL UNIQUE,
    expires_at BIGINT NOT NULL,
    claimed_at BIGINT,
    claimed_by TEXT REFERENCES accounts (id),
    created_at BIGINT NOT NULL
);
