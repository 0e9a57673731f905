//! What the watcher does for governed payments (see [`crate::payments`]): take from each block
//! read the token's `AuthorizationUsed` and `Transfer` logs of the wallets that have payments
//! which may still move, keep each spent authorization as an event of the block (so it is
//! confirmed at the confirmation depth and forgotten by a reorganisation like the escrow's
//! events), confirm or fail the payment of the nonce when it is deep enough, take a
//! confirmation back when a reorganisation removes it, and expire the payments that can no
//! longer move.

use alloy::primitives::{Address, B256};
use alloy::rpc::types::Log;
use serde_json::json;

use super::apply::Issuer;
use super::{Result, Watcher};
use crate::payments::{self as pure, PaymentStatus, SpentAuthorization, TokenLog};
use crate::receipts;
use crate::store::chain::EscrowEvent;
use crate::store::payments::{self as rows, Change};
use crate::store::{Conn, now};

/// The event name a spent authorization is kept under.
pub(super) const SPENT: &str = "AuthorizationUsed";

/// Seconds past a payment's `validBefore` during which its wallet is still watched: a transfer
/// mined just before the deadline may be read a little after it.
const WATCH_AFTER_DEADLINE_SECS: i64 = 3_600;

/// Every status a payment may be confirmed from: the chain is the truth, so a transfer that
/// happened confirms a payment marked failed or expired too.
const UNCONFIRMED: &[PaymentStatus] = &[
    PaymentStatus::AwaitingSignature,
    PaymentStatus::PendingApproval,
    PaymentStatus::Queued,
    PaymentStatus::Submitted,
    PaymentStatus::Failed,
    PaymentStatus::Expired,
    PaymentStatus::Blocked,
];

/// Payments still waiting: what expiry or a foreign spend may end.
const OPEN: &[PaymentStatus] = &[
    PaymentStatus::AwaitingSignature,
    PaymentStatus::PendingApproval,
    PaymentStatus::Queued,
    PaymentStatus::Submitted,
];

impl Watcher {
    /// The wallets of payments that may still move, whose spent authorizations each block read
    /// is searched for; `head_timestamp` is the chain's clock.
    pub(super) async fn watched_wallets(&self, head_timestamp: u64) -> Result<Vec<Address>> {
        let since = i64::try_from(head_timestamp).unwrap_or(i64::MAX) - WATCH_AFTER_DEADLINE_SECS;
        Ok(rows::watched_wallets(self.store.reader(), since).await?)
    }
}

/// The spent authorizations of `wallets` among `logs` (the token's `AuthorizationUsed` and
/// `Transfer` logs of block `number`, `hash`, in block order), as events to keep with the block.
pub(super) fn spent_authorizations(
    logs: &[Log],
    wallets: &[Address],
    number: u64,
    hash: B256,
) -> Vec<EscrowEvent> {
    let logs: Vec<TokenLog> = logs
        .iter()
        .filter_map(|log| {
            Some(TokenLog {
                log_index: log.log_index?,
                tx_hash: log.transaction_hash?,
                topics: log.topics().to_vec(),
                data: log.data().data.clone(),
            })
        })
        .collect();
    pure::spent_authorizations(&logs)
        .into_iter()
        .filter(|(_, _, spent)| wallets.contains(&spent.authorizer))
        .map(|(tx_hash, log_index, spent)| EscrowEvent {
            block_hash: hash,
            log_index,
            block_number: number,
            tx_hash,
            agreement_key: spent.nonce,
            event: SPENT.to_owned(),
            data: json!({
                "authorizer": spent.authorizer,
                "to": spent.transfer.map(|(to, _, _)| to),
                "value": spent.transfer.map(|(_, value, _)| value.to_string()),
                "transfer_log_index": spent.transfer.map(|(_, _, index)| index),
            }),
        })
        .collect()
}

/// The spent authorization a stored event records.
fn spent_of(event: &EscrowEvent) -> Option<SpentAuthorization> {
    let data = &event.data;
    let authorizer: Address = data["authorizer"].as_str()?.parse().ok()?;
    let transfer =
        match (data["to"].as_str(), data["value"].as_str(), data["transfer_log_index"].as_u64()) {
            (Some(to), Some(value), Some(index)) => {
                Some((to.parse().ok()?, value.parse().ok()?, index))
            }
            _ => None,
        };
    Some(SpentAuthorization { authorizer, nonce: event.agreement_key, transfer })
}

/// Applies a confirmed spent authorization to the payment of its nonce, if Pactum has one from
/// that wallet: the payment's own transfer confirms it (its hold captured, its receipt signed
/// and stored); any other spend of the nonce fails it (its hold released).
pub(super) async fn apply_spent(
    tx: &mut Conn,
    event: &EscrowEvent,
    issuer: &Issuer<'_>,
) -> Result<()> {
    let Some(spent) = spent_of(event) else { return Ok(()) };
    let Some(payment) = rows::by_key(tx, event.agreement_key).await? else { return Ok(()) };
    if payment.from != spent.authorizer || payment.status == PaymentStatus::Confirmed {
        return Ok(());
    }
    let at = now();
    match pure::judge(&spent, payment.to, payment.value()) {
        Ok(log_index) => {
            let change = Change {
                tx_hash: Some(event.tx_hash),
                mined: Some((event.block_number, event.block_hash, log_index)),
                ..Change::default()
            };
            let id = payment.id.as_str();
            let Some(mut confirmed) =
                rows::transition(tx, id, UNCONFIRMED, PaymentStatus::Confirmed, &change, at)
                    .await?
            else {
                return Ok(());
            };
            let receipt = crate::agreement::ids::ReceiptId::generate();
            confirmed.receipt = Some((receipt, at, issuer.key.address(), Default::default()));
            let unsigned = receipts::payment_receipt(&confirmed, issuer.deployment)
                .expect("a confirmed payment with its receipt fields has a receipt");
            let signed = issuer.key.sign(unsigned);
            let stored = (signed.id.clone(), signed.issued_at, signed.signer, signed.signature);
            rows::set_receipt(tx, id, &stored).await?;
            confirmed.receipt = Some(stored);
            rows::announce(tx, &confirmed, at).await?;
            tracing::info!(payment_id = %id, tx_hash = %event.tx_hash, "payment confirmed");
        }
        Err(why) => {
            let change = Change { error: Some(&why), ..Change::default() };
            let id = payment.id.as_str();
            if let Some(failed) =
                rows::transition(tx, id, OPEN, PaymentStatus::Failed, &change, at).await?
            {
                rows::announce(tx, &failed, at).await?;
                tracing::warn!(payment_id = %id, %why, "payment's authorization spent otherwise");
            }
        }
    }
    Ok(())
}

/// Takes back the confirmations of payments mined above `fork`: each waits for the chain
/// again (`submitted`), its hold held again and its receipt withdrawn, announced as
/// `payment.reorged`.
pub(super) async fn roll_back(tx: &mut Conn, fork: u64, at: i64) -> Result<usize> {
    let taken = rows::confirmed_above(tx, fork).await?;
    for payment in &taken {
        let id = payment.id.as_str();
        let from = [PaymentStatus::Confirmed];
        let Some(back) =
            rows::transition(tx, id, &from, PaymentStatus::Submitted, &Change::default(), at)
                .await?
        else {
            continue;
        };
        rows::withdraw_receipt(tx, id).await?;
        let mut data = rows::event_data(&back);
        data["fork_block_number"] = json!(fork);
        data["withdrawn_receipt_id"] = json!(payment.receipt.as_ref().map(|r| r.0.to_string()));
        let event = crate::store::outbox::EventType::PaymentReorged;
        crate::store::outbox::record_for_agent(tx, &back.agent_id, event, &data, at).await?;
    }
    Ok(taken.len())
}

/// Expires the open payments whose authorization stopped being valid before `chain_time` and
/// that nothing read so far spent: none of them can move any more. Their holds are released.
pub(super) async fn expire(tx: &mut Conn, chain_time: i64, at: i64) -> Result<usize> {
    let due = rows::due(tx, chain_time, 500).await?;
    let mut expired = 0;
    for payment in &due {
        let reason = "the authorization's valid_before passed before it moved";
        let change = Change { error: Some(reason), ..Change::default() };
        if let Some(ended) =
            rows::transition(tx, payment.id.as_str(), OPEN, PaymentStatus::Expired, &change, at)
                .await?
        {
            rows::announce(tx, &ended, at).await?;
            expired += 1;
        }
    }
    Ok(expired)
}
