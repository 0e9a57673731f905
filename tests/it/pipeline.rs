//! The relayer's pipeline against a real anvil behind a proxy that counts and stamps what
//! reaches the node: jobs the API commits are handed to the relayer and leased by id (not
//! found by the store poll), and new transactions take their fees from the head the watcher
//! already read, with the tip read at most once every ten heads instead of per transaction.

use alloy::primitives::B256;
use reqwest::{Method, StatusCode};

use crate::support::DevChain;
use crate::support::faulty_rpc::FaultyRpc;
use crate::support::service::Harness;
use crate::support::settlement::{action_final, options, record, sign_voucher, sponsored_body};

/// The `pactum_relayer_jobs_leased_total` count of `path` on `/metrics`.
async fn leased(h: &Harness, path: &str) -> u64 {
    let text =
        h.http.get(format!("{}/metrics", h.base)).send().await.unwrap().text().await.unwrap();
    let prefix = format!("pactum_relayer_jobs_leased_total{{path=\"{path}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |n| n.parse::<f64>().unwrap() as u64)
}

#[tokio::test]
async fn handed_claims_are_leased_by_id_and_their_fees_come_from_the_head() {
    let chain = DevChain::start().await;
    let proxy = FaultyRpc::start(&chain.anvil.endpoint()).await;
    let url = proxy.url.clone();
    let h = Harness::start_on(chain, |_, config| {
        config.rpc_url = url;
        // The store poll runs at start and then not within the test: every job the relayer
        // takes after that, it takes as the API handed it over.
        config.relayer_poll_interval_ms = Some(600_000);
        // Each claim its own transaction.
        config.relayer_batch_max = 1;
    })
    .await;
    let (buyer, seller) = h.parties().await;
    let mut agreements = Vec::new();
    for n in 0..3 {
        let id = h.active(&buyer, &seller).await;
        record(&h, &seller, &id, 10 + n, &format!("usage-{n}")).await;
        sign_voucher(&h, &buyer, &id).await;
        agreements.push(id);
    }
    let fee_reads = |p: &FaultyRpc| p.counts().get("eth_feeHistory").copied().unwrap_or(0);
    let (reads_before, handed_before) = (fee_reads(&proxy), leased(&h, "handed").await);

    // Three claims, one after another, each its own transaction.
    let mut queued = Vec::new();
    for id in &agreements {
        let offered = options(&h, &seller, id, "seller_claim").await;
        let sponsored = &offered["paths"]["sponsored"];
        let body = sponsored_body(&h.chain.seller, sponsored);
        let submit_to = sponsored["submit_to"].as_str().unwrap();
        let (status, action) =
            h.call(Method::POST, submit_to, Some(&seller.key), Some(&body)).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{action}");
        queued.push((id, action["id"].as_str().unwrap().to_owned()));
    }
    let mut hashes = Vec::new();
    for (id, action) in &queued {
        let done = action_final(&h, &seller.key, id, action).await;
        assert_eq!(done["status"], "confirmed", "{done}");
        hashes.push(done["tx_hash"].as_str().unwrap().parse::<B256>().unwrap());
    }

    let distinct: std::collections::BTreeSet<_> = hashes.iter().collect();
    assert_eq!(distinct.len(), 3, "each claim went out in its own transaction: {hashes:?}");
    let sent = proxy.broadcasts();
    assert!(hashes.iter().all(|hash| sent.contains_key(hash)), "every claim reached the node");
    assert_eq!(
        leased(&h, "handed").await - handed_before,
        3,
        "the claims were leased as the API handed them over"
    );
    // Per-transaction fee reads would be three; the head gives the base fee and the tip is
    // read at most once in ten heads (the three were mined in three blocks, automine).
    let reads = fee_reads(&proxy) - reads_before;
    assert!(reads <= 1, "{reads} eth_feeHistory calls for three transactions");
}
