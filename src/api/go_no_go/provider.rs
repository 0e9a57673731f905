//! The provider section: every configured RPC endpoint probed directly (chain id, head,
//! latency) beside its breaker, and its head against the watcher's last block.

use crate::api::AppState;
use crate::gonogo::evidence::{self, EndpointProbe, ProviderEvidence};
use crate::gonogo::{Section, SectionReport};
use crate::store::chain;

/// Gathers the provider section.
pub(super) async fn gather(state: &AppState) -> SectionReport {
    let watcher_block =
        chain::cursor(state.store.reader()).await.ok().flatten().map(|c| c.block_number);
    let endpoints = state
        .chain
        .rpc
        .probe()
        .await
        .into_iter()
        .map(|probe| {
            let chain_id = probe.chain_id.as_ref().ok().copied();
            let head = probe.head.as_ref().ok().copied();
            let error = probe.chain_id.as_ref().err().or(probe.head.as_ref().err()).cloned();
            EndpointProbe {
                label: probe.label,
                chain_id,
                chain_id_matches: chain_id == Some(state.chain.chain_id) && !probe.wrong_chain,
                head,
                lag_blocks: head.zip(watcher_block).map(|(h, w)| h.saturating_sub(w)),
                latency_ms: u64::try_from(probe.latency.as_millis()).unwrap_or(u64::MAX),
                breaker: probe.breaker.as_str().to_owned(),
                error,
            }
        })
        .collect();
    let evidence = ProviderEvidence {
        chain_id: state.chain.chain_id,
        watcher_block,
        max_lag_blocks: state.ready_max_lag_blocks,
        endpoints,
    };
    let (verdict, summary) = evidence::judge_provider(&evidence);
    SectionReport::new(Section::Provider, verdict, summary, &evidence)
}
