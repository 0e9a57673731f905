//! The go/no-go settings of `pactum serve`: support contacts, where logs go, whether the canary
//! may run on a live chain, and how often readiness is recorded.

/// Go/no-go settings.
#[derive(Debug, Clone, clap::Args)]
pub struct GoNoGoSettings {
    /// Who to call about this deployment, comma-separated (e-mail, pager, URL). The support
    /// section of the go/no-go packet is `no_go` without one.
    #[arg(
        long = "support-contact",
        env = "PACTUM_SUPPORT_CONTACT",
        value_delimiter = ',',
        help_heading = "Go/no-go"
    )]
    pub support_contacts: Vec<String>,

    /// Where this deployment's logs can be read (a log service URL, a path); reported in the
    /// support section. Unset: "stderr of the pactum process".
    #[arg(long = "support-logs", env = "PACTUM_SUPPORT_LOGS", help_heading = "Go/no-go")]
    pub support_logs: Option<String>,

    /// Let the go/no-go canary activate and settle a real agreement on a live chain (Base
    /// mainnet or a `live` deployment), moving real funds the canary buyer must already hold.
    #[arg(
        long = "go-no-go-allow-live-canary",
        env = "PACTUM_GO_NO_GO_ALLOW_LIVE_CANARY",
        help_heading = "Go/no-go"
    )]
    pub allow_live_canary: bool,

    /// Seconds between the readiness samples the service records for the hosted-health
    /// section.
    #[arg(
        long = "readiness-record-secs",
        env = "PACTUM_READINESS_RECORD_SECS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u64).range(1..),
        help_heading = "Go/no-go"
    )]
    pub readiness_record_secs: u64,
}

impl Default for GoNoGoSettings {
    fn default() -> Self {
        Self {
            support_contacts: Vec::new(),
            support_logs: None,
            allow_live_canary: false,
            readiness_record_secs: 30,
        }
    }
}
