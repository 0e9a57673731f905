//! The three on-chain checks of a receipt: its transaction, its block and its log.

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::Log as PrimitiveLog;
use alloy::providers::Provider;
use alloy::sol_types::SolEvent;

use super::view::Check;
use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult};
use crate::escrow::bindings::UsageEscrow;
use crate::receipts::{Receipt, ReceiptKind};

/// The transaction, block and log checks against the chain the service follows; an RPC
/// failure is 503 rather than a false "invalid".
pub(super) async fn on_chain(
    state: &AppState,
    receipt: &Receipt,
) -> ApiResult<(Check, Check, Check)> {
    // A payment's log is the token's `Transfer`; every other receipt's, the escrow's event.
    let (emitter, expected_escrow) = match receipt.kind {
        ReceiptKind::Payment => (state.chain.token, alloy::primitives::Address::ZERO),
        _ => (state.chain.escrow, state.chain.escrow),
    };
    if receipt.chain_id != state.chain.chain_id || receipt.escrow != expected_escrow {
        let reason = "the receipt is for another chain or escrow than this service follows";
        return Ok((Check::fail(reason), Check::fail(reason), Check::fail(reason)));
    }
    let provider = &state.chain.provider;
    let found = provider
        .get_transaction_receipt(receipt.tx_hash)
        .await
        .map_err(ApiError::chain_unavailable)?;
    let Some(found) = found else {
        let reason = "the transaction is not on the chain";
        return Ok((Check::fail(reason), Check::fail(reason), Check::fail(reason)));
    };
    let transaction =
        if found.status() { Check::pass() } else { Check::fail("the transaction reverted") };
    let canonical = provider
        .get_block_by_number(BlockNumberOrTag::Number(receipt.block_number))
        .await
        .map_err(ApiError::chain_unavailable)?
        .map(|block| block.header.hash);
    let block = if found.block_number != Some(receipt.block_number)
        || found.block_hash != Some(receipt.block_hash)
    {
        Check::fail("the transaction is in another block than the receipt records")
    } else if canonical != Some(receipt.block_hash) {
        Check::fail("the recorded block is no longer canonical")
    } else {
        Check::pass()
    };
    let log = match found.inner.logs().iter().find(|l| l.log_index == Some(receipt.log_index)) {
        None => Check::fail("the transaction has no log at `log_index`"),
        Some(log) if log.address() != emitter => {
            Check::fail("the log at `log_index` is not the escrow's (a payment's: the token's)")
        }
        Some(log) if event_matches(&log.inner, receipt) => Check::pass(),
        Some(_) => Check::fail("the log at `log_index` is not this receipt's event and amount"),
    };
    Ok((transaction, block, log))
}

/// Whether `log` is the escrow event a receipt of its kind records, with its key and amounts.
fn event_matches(log: &PrimitiveLog, receipt: &Receipt) -> bool {
    let (amount, key) = (receipt.amount.base_units(), receipt.agreement_key);
    match receipt.kind {
        ReceiptKind::Activation => UsageEscrow::EscrowActivated::decode_log(log).is_ok_and(|e| {
            e.agreementKey == key
                && e.deposit == amount
                && e.infraFee == receipt.infra_fee.base_units()
                && e.buyer == receipt.buyer_wallet
                && e.seller == receipt.seller_wallet
        }),
        ReceiptKind::SellerClaim => UsageEscrow::UsageClaimed::decode_log(log)
            .is_ok_and(|e| e.agreementKey == key && e.amount == amount),
        ReceiptKind::BuyerWithdraw => UsageEscrow::BuyerWithdrawn::decode_log(log)
            .is_ok_and(|e| e.agreementKey == key && e.amount == amount),
        ReceiptKind::Payment => crate::payments::Transfer::decode_log(log).is_ok_and(|e| {
            e.from == receipt.buyer_wallet && e.to == receipt.seller_wallet && e.value == amount
        }),
    }
}
