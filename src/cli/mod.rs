//! The subcommands of the `pactum` binary: their arguments and the I/O around the library, with
//! `anyhow` errors for the terminal.

pub(crate) mod dev;
pub(crate) mod go_no_go;
pub(crate) mod openapi;
pub(crate) mod reconcile;
pub(crate) mod serve;
pub(crate) mod sign;
