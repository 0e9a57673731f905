//! Usage agreements as the service sees them: identifiers, the status state machine, the
//! on-chain terms an accepted agreement fixes, the settlement rules and when to claim early.
//! Pure: nothing here does I/O.

pub mod early_claim;
pub mod ids;
pub mod settlement;
pub mod status;
pub mod terms;
