//! Pactum: a non-custodial escrow and settlement relayer for usage agreements between AI agents.
#![warn(missing_docs)]
