//! Settings of the operator console: the chain explorer it links to and when a relayer
//! transaction counts as stuck.

/// Operator console settings of `pactum serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsoleSettings {
    /// The chain explorer the console links transactions and addresses to, e.g.
    /// `https://basescan.org` (`/tx/<hash>` and `/address/<address>` are appended). Empty: no
    /// links.
    #[arg(
        long = "explorer-url",
        env = "PACTUM_EXPLORER_URL",
        default_value = "",
        help_heading = "Console"
    )]
    pub explorer_url: String,

    /// Seconds a broadcast relayer transaction may wait for a block before the console shows it
    /// as stuck.
    #[arg(
        long = "console-stuck-after-secs",
        env = "PACTUM_CONSOLE_STUCK_AFTER_SECS",
        default_value_t = 120,
        help_heading = "Console"
    )]
    pub stuck_after_secs: u64,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self { explorer_url: String::new(), stuck_after_secs: 120 }
    }
}

impl ConsoleSettings {
    /// The explorer's base URL without a trailing slash; `None` when none is configured.
    pub fn explorer(&self) -> Option<&str> {
        let url = self.explorer_url.trim().trim_end_matches('/');
        (!url.is_empty()).then_some(url)
    }
}
