//! `pactum openapi`: prints the OpenAPI 3.1 document of the API, the same one `GET /openapi.json`
//! serves. `cargo run -q -- openapi > docs/openapi.json` regenerates the committed copy.

use std::io::Write;

/// Arguments of `pactum openapi` (none).
#[derive(Debug, clap::Args)]
pub(crate) struct OpenapiArgs {}

/// Writes the document to standard output.
pub(crate) fn run(_: &OpenapiArgs) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(pactum::api::openapi::to_json().as_bytes())?;
    stdout.flush()?;
    Ok(())
}
