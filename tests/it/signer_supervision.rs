//! Every relayer task is supervised: a signer actor that dies (here made to panic through the
//! service's test-only fault hook) ends the worker's run, the supervisor's restart starts a
//! fresh actor, and the key relays again.

use std::time::Duration;

use crate::support::service::{Harness, without_infra_fee};

#[tokio::test]
async fn a_signer_actor_that_panics_is_restarted_and_its_key_relays_again() {
    // No infra fee: the fee permits of two pending activations of one buyer share its nonce.
    let h = Harness::start_with(without_infra_fee).await;
    let (buyer, seller) = h.parties().await;
    let relayer = h.chain.relayer.address();
    let faults = h.service.as_ref().unwrap().signer_faults().clone();
    faults.panic_next(relayer);

    // The first activation's submit is the actor's next request: it panics with it in hand.
    let first = h.queued(&buyer, &seller).await;
    for _ in 0..300 {
        if !faults.is_armed(relayer) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!faults.is_armed(relayer), "the actor never took a request");

    // An activation queued after the panic goes out through the same key and confirms; so does
    // the one the dead actor held.
    let second = h.queued(&buyer, &seller).await;
    let confirmed =
        |a: &serde_json::Value| a["status"] == "active" && a["activation_status"] == "confirmed";
    let after = h.wait_for(&buyer.key, &second, confirmed).await;
    assert!(after["activation_tx_hash"].is_string(), "{after}");
    h.wait_for(&buyer.key, &first, confirmed).await;
}
