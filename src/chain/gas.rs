//! Gas limits: the node's estimate plus headroom, the one rule the relayer and the direct path's
//! unsigned transactions share.

use alloy::primitives::{Address, Bytes};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::transports::TransportError;

use crate::agreement::settlement::{Action, Party};

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

/// Gas a batch of sponsored seller claims may need per claim when every claim pays: the
/// checks, the state word, the events and the token's transfers (measured at ≈ 29,000 a claim
/// on Circle's USDC, docs/gas.md) plus a new balance slot for a payee the token has not seen
/// (22,100), rounded up.
pub const BATCH_GAS_PER_CLAIM: u64 = 60_000;

/// The least gas limit a batch of `claims` sponsored claims with `calldata_len` bytes of
/// calldata is sent with: the base cost, the calldata at its non-zero byte price, and
/// [`BATCH_GAS_PER_CLAIM`] for each claim. An estimate can be far lower: a claim the contract
/// would skip at the estimate's state (its escrow reorganised out for a moment) costs almost
/// nothing there, and the same claim paying in the mined block would run the batch out of gas.
/// Gas not used is not paid.
pub fn batch_gas_floor(claims: usize, calldata_len: usize) -> u64 {
    gas_floor(claims, calldata_len, BATCH_GAS_PER_CLAIM)
}

/// Gas a settlement batch carries for each sponsored close or withdraw in it: the most
/// expensive of them (the seller's close with its final voucher, which settles and pays both
/// parties: [`DIRECT_GAS_SELLER_CLOSE`] and a second new balance word) plus the
/// authorization's signature check and the batch's delegatecall and copying, with room.
pub const SETTLEMENT_BATCH_GAS_PER_CALL: u64 = 160_000;

/// 21,000, 16 per byte of `calldata_len`, and `per_item` for each of `items`, saturating.
pub fn gas_floor(items: usize, calldata_len: usize, per_item: u64) -> u64 {
    let items = u64::try_from(items).unwrap_or(u64::MAX);
    let calldata = u64::try_from(calldata_len).unwrap_or(u64::MAX).saturating_mul(16);
    21_000u64.saturating_add(calldata).saturating_add(items.saturating_mul(per_item))
}

/// The gas limit of a direct-path transaction (`party` taking `action` from its own wallet),
/// from the measured costs instead of an estimate, so the settlement options make no RPC call:
/// the receipt gas on contract v3 over USDC-priced storage (docs/gas.md), with a payee the token
/// has never paid (a new balance word) and [`GAS_HEADROOM_PERCENT`] on top. When the contract
/// checks the voucher by ERC-1271 (`erc1271_voucher`), the wallet's call may use up to the
/// escrow's cap on it. `tests/it/gas_on_anvil.rs` holds each entry above the node's estimate.
pub fn direct_gas_limit(action: Action, party: Party, erc1271_voucher: bool) -> u64 {
    let measured = match (action, party) {
        (Action::InitiateClose, Party::Buyer) => DIRECT_GAS_BUYER_CLOSE,
        (Action::InitiateClose, Party::Seller) => DIRECT_GAS_SELLER_CLOSE,
        (Action::SellerClaim, _) => DIRECT_GAS_SELLER_CLAIM,
        (Action::BuyerWithdraw, _) => DIRECT_GAS_BUYER_WITHDRAW,
    };
    let voucher = if erc1271_voucher { ERC1271_CHECK_GAS } else { 0 };
    with_headroom(measured + voucher)
}

/// `initiateClose` by the buyer: a state word and an event (34,828 measured).
pub const DIRECT_GAS_BUYER_CLOSE: u64 = 40_000;
/// `initiateClose` by the seller with the buyer's final voucher: it settles at once, paying the
/// seller (71,690 measured to a seller holding USDC; a new balance word more for one that does
/// not).
pub const DIRECT_GAS_SELLER_CLOSE: u64 = 92_000;
/// `sellerClaim` with a voucher (66,714 measured to a seller holding USDC; 22,100 more for a new
/// balance word).
pub const DIRECT_GAS_SELLER_CLAIM: u64 = 90_000;
/// `buyerWithdraw` (62,777 measured to a buyer holding USDC; 22,100 more for a new balance word).
pub const DIRECT_GAS_BUYER_WITHDRAW: u64 = 86_000;
/// What a voucher checked by ERC-1271 may add: the escrow's cap on the wallet's call
/// (`SignatureVerifier.ERC1271_GAS_LIMIT`, 100,000) and the call itself.
pub const ERC1271_CHECK_GAS: u64 = 110_000;

/// `gas` plus [`GAS_HEADROOM_PERCENT`], saturating.
fn with_headroom(gas: u64) -> u64 {
    gas.saturating_mul(100 + GAS_HEADROOM_PERCENT) / 100
}

#[cfg(test)]
mod tests {
    use super::{BATCH_GAS_PER_CLAIM, batch_gas_floor, with_headroom};

    #[test]
    fn a_batch_floor_pays_every_claim_and_its_calldata() {
        assert_eq!(batch_gas_floor(0, 0), 21_000);
        assert_eq!(batch_gas_floor(20, 10_000), 21_000 + 160_000 + 20 * BATCH_GAS_PER_CLAIM);
        // Above what 20 paying claims cost on Circle's USDC with new payees (docs/gas.md).
        assert!(batch_gas_floor(20, 10_000) > 580_385 + 20 * 22_100);
        assert_eq!(batch_gas_floor(usize::MAX, usize::MAX), u64::MAX);
    }

    #[test]
    fn headroom_is_a_quarter_and_saturates() {
        assert_eq!(with_headroom(100_000), 125_000);
        assert_eq!(with_headroom(u64::MAX), u64::MAX / 100);
    }
}
