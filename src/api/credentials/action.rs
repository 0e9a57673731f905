//! The agent writes an execution token can make, and the one table mapping write routes to
//! them.

use crate::vocab::string_enum;

string_enum!(
    /// The agent write an execution token allows (`TokenAction` in the API document).
    TokenAction {
        /// `POST /usage-agreements`; the audience is the seller agent's id.
        Propose = "propose",
        /// `PUT …/accept`.
        Accept = "accept",
        /// `PUT …/reject`.
        Reject = "reject",
        /// `POST …/activate-escrow`.
        ActivateEscrow = "activate_escrow",
        /// `POST …/record-usage`.
        RecordUsage = "record_usage",
        /// `POST …/usage-vouchers`.
        SubmitVoucher = "submit_voucher",
        /// `POST …/sponsored-actions/{action}` (any of the three).
        SponsoredAction = "sponsored_action",
        /// `POST /v1/spend-guard/reservations`; the audience is the reservation's counterparty.
        Reserve = "reserve",
        /// `POST /v1/payments`; the audience is the payee (`to`: an address or an agent id).
        Payment = "payment",
    }
);

/// The name the credentials code uses for [`TokenAction`].
pub type Action = TokenAction;

/// Each agent write route (method and route template) and the action a token needs for it:
/// the one table that maps routes to actions. Any route not listed refuses execution tokens.
pub const WRITES: &[(&str, &str, Action)] = &[
    ("POST", "/usage-agreements", Action::Propose),
    ("PUT", "/usage-agreements/{agreement_id}/accept", Action::Accept),
    ("PUT", "/usage-agreements/{agreement_id}/reject", Action::Reject),
    ("POST", "/usage-agreements/{agreement_id}/activate-escrow", Action::ActivateEscrow),
    ("POST", "/usage-agreements/{agreement_id}/record-usage", Action::RecordUsage),
    ("POST", "/usage-agreements/{agreement_id}/usage-vouchers", Action::SubmitVoucher),
    (
        "POST",
        "/usage-agreements/{agreement_id}/sponsored-actions/{action}",
        Action::SponsoredAction,
    ),
    ("POST", "/v1/spend-guard/reservations", Action::Reserve),
    ("POST", "/v1/payments", Action::Payment),
];

impl Action {
    /// The action of the write route `route` (a route template) taken with `method`.
    pub fn of_route(method: &str, route: &str) -> Option<Action> {
        WRITES.iter().find(|(m, r, _)| *m == method && *r == route).map(|(_, _, action)| *action)
    }

    /// The field of the request body that names the audience, for the actions whose route has
    /// no agreement in its path: the seller of a proposal, the counterparty of a reservation.
    /// `None`: the audience is the path's `{agreement_id}`.
    pub fn body_audience(self) -> Option<&'static str> {
        match self {
            Action::Propose => Some("seller_agent_id"),
            Action::Reserve => Some("counterparty"),
            Action::Payment => Some("to"),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_has_one_route_and_round_trips() {
        for &action in Action::ALL {
            assert_eq!(Action::parse(action.as_str()), Some(action));
            assert_eq!(WRITES.iter().filter(|(_, _, a)| *a == action).count(), 1, "{action:?}");
        }
        assert_eq!(
            Action::of_route("PUT", "/usage-agreements/{agreement_id}/accept"),
            Some(Action::Accept)
        );
        assert_eq!(Action::of_route("GET", "/usage-agreements/{agreement_id}"), None);
        assert_eq!(Action::of_route("POST", "/usage-agreements/{agreement_id}/accept"), None);
        assert_eq!(Action::of_route("POST", "/v1/spend-guard/reservations"), Some(Action::Reserve));
        assert_eq!(Action::Reserve.body_audience(), Some("counterparty"));
        assert_eq!(Action::Propose.body_audience(), Some("seller_agent_id"));
        assert_eq!(Action::Accept.body_audience(), None);
    }
}
