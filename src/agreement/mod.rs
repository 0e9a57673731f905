//! Usage agreements as the service sees them: identifiers, the status state machine, the
//! on-chain terms an accepted agreement fixes and the settlement rules. Pure: nothing here does
//! I/O.

pub mod ids;
pub mod settlement;
pub mod status;
pub mod terms;
