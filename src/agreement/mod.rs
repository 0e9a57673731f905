//! Usage agreements as the service sees them: identifiers, the status state machine and the
//! on-chain terms an accepted agreement fixes. Pure: nothing here does I/O.

pub mod ids;
pub mod status;
pub mod terms;
