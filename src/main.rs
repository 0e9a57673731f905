//! The `pactum` binary.
fn main() {}
