//! Governance under the owner credential: policies, approvals, mandates, the agent halt, the
//! audit log and violations; and `POST /v1/checks`, which agents (as themselves) and owners call. The
//! decisions themselves are made by [`crate::governance`] through [`super::spend_gate`].

pub mod approvals;
pub mod audit;
pub mod checks;
pub mod halt;
pub mod mandates;
pub mod policies;
