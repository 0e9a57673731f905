-- The hashes of the blocks the chain watcher read most recently (a window of a few hundred,
-- pruned as it moves). When the chain's hash at a height no longer matches, the highest block
-- that still matches is where the old and the new chain part: everything recorded above it is
-- rolled back and read again from the canonical chain.

CREATE TABLE chain_blocks (
    block_number BIGINT PRIMARY KEY,
    block_hash TEXT NOT NULL
);
