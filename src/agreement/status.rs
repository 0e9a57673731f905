//! The agreement state machine: `status` and `activation_status`, with the exact strings the API
//! returns, and the only transitions allowed between them.

use crate::vocab::string_enum;

pub use crate::vocab::UnknownStatus;

string_enum!(
    /// Where an agreement stands.
    AgreementStatus {
        /// The buyer proposed; the seller has not answered.
        Proposed = "proposed",
        /// The seller accepted; the terms are fixed and the buyer may activate.
        Accepted = "accepted",
        /// The seller declined.
        Rejected = "rejected",
        /// The buyer's signed activation is queued or on its way on-chain.
        Activating = "activating",
        /// The escrow is funded and confirmed.
        Active = "active",
        /// A party started the close window.
        Closing = "closing",
        /// The escrow paid out.
        Settled = "settled",
        /// Not activated before its activation deadline.
        Expired = "expired",
        /// Withdrawn by the buyer before activation.
        Cancelled = "cancelled",
        /// Activation failed on-chain; the reason is in `activation_error`.
        Failed = "failed",
    }
);

string_enum!(
    /// Where the on-chain activation stands.
    ActivationStatus {
        /// Nothing signed yet.
        NotStarted = "not_started",
        /// Signed and checked, but the buyer's policy escalated it: it waits for the owner's
        /// approval, with nothing queued.
        AwaitingApproval = "awaiting_approval",
        /// The owner rejected it (or the agent was revoked); nothing was sent.
        Rejected = "rejected",
        /// Its approval ran out of time; nothing was sent.
        Expired = "expired",
        /// The buyer's signatures are accepted and the job queued.
        Pending = "pending",
        /// The relayer picked the job up.
        Submitting = "submitting",
        /// Broadcast; `activation_tx_hash` is set.
        Submitted = "submitted",
        /// Mined and as deep as the configured confirmation depth.
        Confirmed = "confirmed",
        /// Refused on-chain or by simulation; see `activation_error`.
        Failed = "failed",
    }
);

string_enum!(
    /// `infra_fee.status`: where collecting the infra fee stands.
    InfraFeeStatus {
        /// The terms carry no fee.
        None = "none",
        /// The permit is signed (or awaited) and the fee not yet collected.
        Pending = "pending",
        /// The escrow moved the fee at activation.
        Collected = "collected",
        /// Activation failed, so no fee was taken.
        Failed = "failed",
    }
);

/// Something that happens to an agreement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The seller accepts.
    Accept,
    /// The seller rejects.
    Reject,
    /// The buyer cancels before activation.
    Cancel,
    /// The buyer's signed activation is queued.
    SubmitActivation,
    /// The activation is confirmed on-chain.
    Activated,
    /// The activation failed (simulation or on-chain revert).
    ActivationFailed,
    /// The activation deadline passed first.
    Expire,
    /// A party started the close window on-chain.
    CloseInitiated,
    /// The escrow paid out.
    Settled,
}

/// A transition the state machine does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an agreement in status `{from}` cannot {event:?}")]
pub struct IllegalTransition {
    /// The status the agreement is in.
    pub from: AgreementStatus,
    /// What was attempted.
    pub event: Event,
}

impl AgreementStatus {
    /// The status after `event`, or why it cannot happen.
    ///
    /// A failed activation may be submitted again (with fresh signatures, while the activation
    /// deadline allows), since nothing moved on-chain. Chain-derived events (`Activated`,
    /// `CloseInitiated`, `Settled`) are also accepted from earlier statuses, because the chain is
    /// the source of truth: an activation relayed by someone else still makes the agreement active.
    pub fn apply(self, event: Event) -> Result<AgreementStatus, IllegalTransition> {
        use AgreementStatus::*;
        let next = match (self, event) {
            (Proposed, Event::Accept) => Accepted,
            (Proposed, Event::Reject) => Rejected,
            (Proposed | Accepted | Failed, Event::Cancel) => Cancelled,
            (Accepted | Failed, Event::SubmitActivation) => Activating,
            (Accepted | Activating | Failed | Expired, Event::Activated) => Active,
            (Activating, Event::ActivationFailed) => Failed,
            (Accepted | Failed, Event::Expire) => Expired,
            (Active, Event::CloseInitiated) => Closing,
            (Active | Closing, Event::Settled) => Settled,
            (from, event) => return Err(IllegalTransition { from, event }),
        };
        Ok(next)
    }

    /// Whether nothing more can happen to the agreement.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            AgreementStatus::Rejected
                | AgreementStatus::Settled
                | AgreementStatus::Expired
                | AgreementStatus::Cancelled
        )
    }
}

#[cfg(test)]
mod tests {
    use super::AgreementStatus::*;
    use super::*;

    const ALL: [AgreementStatus; 10] = [
        Proposed, Accepted, Rejected, Activating, Active, Closing, Settled, Expired, Cancelled,
        Failed,
    ];

    #[test]
    fn the_happy_path_runs_in_order() {
        let mut status = Proposed;
        for event in
            [Event::Accept, Event::SubmitActivation, Event::Activated, Event::CloseInitiated]
        {
            status = status.apply(event).unwrap();
        }
        assert_eq!(status, Closing);
        assert_eq!(status.apply(Event::Settled), Ok(Settled));
    }

    #[test]
    fn only_a_proposal_can_be_accepted_or_rejected() {
        for from in ALL {
            let accept = from.apply(Event::Accept);
            let reject = from.apply(Event::Reject);
            if from == Proposed {
                assert_eq!((accept, reject), (Ok(Accepted), Ok(Rejected)));
            } else {
                assert_eq!(accept, Err(IllegalTransition { from, event: Event::Accept }));
                assert!(reject.is_err());
            }
        }
    }

    #[test]
    fn activation_is_submitted_once_unless_it_failed() {
        let allowed: Vec<_> =
            ALL.into_iter().filter(|s| s.apply(Event::SubmitActivation).is_ok()).collect();
        assert_eq!(allowed, [Accepted, Failed]);
    }

    #[test]
    fn terminal_statuses_accept_no_party_event() {
        for from in ALL.into_iter().filter(|s| s.is_terminal()) {
            for event in [Event::Accept, Event::Reject, Event::Cancel, Event::SubmitActivation] {
                assert!(from.apply(event).is_err(), "{from} {event:?}");
            }
        }
    }

    #[test]
    fn strings_round_trip() {
        for status in ALL {
            assert_eq!(status.as_str().parse(), Ok(status));
            assert_eq!(serde_json::to_value(status).unwrap(), status.as_str());
        }
        assert_eq!("not_started".parse(), Ok(ActivationStatus::NotStarted));
        assert!("activated".parse::<AgreementStatus>().is_err());
    }
}
