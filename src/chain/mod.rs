//! The chain side of Pactum: finding and running the local toolchain.

pub mod toolchain;
