//! Gas limits: the node's estimate plus headroom, the one rule the relayer and the direct path's
//! unsigned transactions share.

use alloy::primitives::{Address, Bytes};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::transports::TransportError;

/// Gas limit headroom over the estimate, in percent: the state can move between the estimate
/// and the block that mines the transaction.
pub const GAS_HEADROOM_PERCENT: u64 = 25;

/// `eth_estimateGas` of `data` sent from `from` to `to`, plus [`GAS_HEADROOM_PERCENT`]. The
/// node's error (a revert, or the node unreachable) is returned as it came, for the caller to
/// classify.
pub async fn estimate_gas_with_headroom<P: Provider>(
    provider: &P,
    from: Address,
    to: Address,
    data: &Bytes,
) -> Result<u64, TransportError> {
    let call = TransactionRequest::default().from(from).to(to).input(data.clone().into());
    let gas = provider.estimate_gas(call).await?;
    Ok(with_headroom(gas))
}

/// `gas` plus [`GAS_HEADROOM_PERCENT`], saturating.
fn with_headroom(gas: u64) -> u64 {
    gas.saturating_mul(100 + GAS_HEADROOM_PERCENT) / 100
}

#[cfg(test)]
mod tests {
    use super::with_headroom;

    #[test]
    fn headroom_is_a_quarter_and_saturates() {
        assert_eq!(with_headroom(100_000), 125_000);
        assert_eq!(with_headroom(u64::MAX), u64::MAX / 100);
    }
}
