//! Agent self-registration, the rules without I/O: which deployments take registrations, how
//! long a claim code stays claimable, and the claim URL a registration answers with.
//!
//! An agent that registers itself (`POST /agents/register`, no credential) starts `unclaimed`:
//! its key authenticates, but it can spend nothing until an owner claims it with the one-time
//! claim code (`POST /agents/claim`). The store keeps it in [`crate::store::registrations`]; the
//! API is [`crate::api::agents::registration`].

use crate::agreement::ids::Environment;
use crate::wallets::TEST_CHAIN_IDS;

/// The placeholder of [`RegistrationSettings::claim_url`] that the claim code replaces.
pub const CLAIM_CODE_PLACEHOLDER: &str = "{claim_code}";

/// Self-registration settings of `pactum serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct RegistrationSettings {
    /// Seconds a self-registered agent's claim code stays claimable (at least 60).
    #[arg(
        long = "claim-code-ttl-secs",
        env = "PACTUM_CLAIM_CODE_TTL_SECS",
        default_value_t = 86_400,
        value_parser = clap::value_parser!(u64).range(60..),
        help_heading = "Self-registration"
    )]
    pub claim_code_ttl_secs: u64,

    /// The page where an owner claims a self-registered agent, with `{claim_code}` where the
    /// code goes (e.g. `https://console.example.com/claim?code={claim_code}`). Unset: the
    /// registration's `claim_url` is null and the owner calls `POST /agents/claim` directly.
    #[arg(long = "claim-url", env = "PACTUM_CLAIM_URL", help_heading = "Self-registration")]
    pub claim_url: Option<String>,
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        Self { claim_code_ttl_secs: 86_400, claim_url: None }
    }
}

impl RegistrationSettings {
    /// When a claim code issued at `now` (unix seconds) stops being claimable.
    pub fn expires_at(&self, now: i64) -> i64 {
        now.saturating_add(i64::try_from(self.claim_code_ttl_secs).unwrap_or(i64::MAX))
    }

    /// The claim URL for `claim_code`: the configured page with the code in place of
    /// [`CLAIM_CODE_PLACEHOLDER`]; `None` when no page is configured.
    pub fn claim_url(&self, claim_code: &str) -> Option<String> {
        self.claim_url.as_ref().map(|page| page.replace(CLAIM_CODE_PLACEHOLDER, claim_code))
    }
}

/// Whether a deployment takes self-registrations: only a test deployment (`pk_test_` keys) on a
/// local or test chain, the same deployments demo funding runs on. A live deployment, or a test
/// deployment pointed at a chain with real money, refuses them: an agent there is created by its
/// owner.
pub fn registration_open(environment: Environment, chain_id: u64) -> bool {
    environment == Environment::Test && TEST_CHAIN_IDS.contains(&chain_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_test_deployment_on_a_test_chain_takes_registrations() {
        assert!(registration_open(Environment::Test, 31_337));
        assert!(registration_open(Environment::Test, 84_532));
        assert!(!registration_open(Environment::Live, 31_337));
        assert!(!registration_open(Environment::Test, 8_453));
        assert!(!registration_open(Environment::Live, 8_453));
    }

    #[test]
    fn the_claim_url_carries_the_code_and_the_code_expires_after_the_ttl() {
        let mut settings = RegistrationSettings::default();
        assert_eq!(settings.claim_url("claim_test_ab"), None);
        settings.claim_url = Some("https://console.example/claim?code={claim_code}".into());
        assert_eq!(
            settings.claim_url("claim_test_ab").as_deref(),
            Some("https://console.example/claim?code=claim_test_ab")
        );
        assert_eq!(settings.expires_at(1_000), 1_000 + 86_400);
        settings.claim_code_ttl_secs = u64::MAX;
        assert_eq!(settings.expires_at(1_000), i64::MAX);
    }
}
