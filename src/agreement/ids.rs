//! Identifiers and secrets: prefixed, random, and never confused with one another.

use std::fmt;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// `bytes` random bytes from the operating system's generator, as lowercase hex.
fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    alloy::primitives::hex::encode(buf)
}

/// A value that grows with time and strictly within this process: the Unix time in
/// milliseconds shifted left 16 bits, or one more than the last value issued when the clock has
/// not moved on (65,536 ids a millisecond before it runs ahead of the clock, harmlessly).
fn time_order() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        << 16;
    let previous = LAST
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |last| Some(now.max(last + 1)))
        .unwrap_or(0);
    now.max(previous + 1)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            /// The prefix every new id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A fresh id: `prefix`, a time-ordered value as 16 hex digits (see `time_order`),
            /// then 48 random bits. Ids sort in creation order (strictly, within a process), so
            /// lists ordered by id are stable even for rows created in the same millisecond.
            pub fn generate() -> Self {
                Self(format!("{}{:016x}{}", $prefix, time_order(), random_hex(6)))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }
    };
}

id_type!(
    /// An account: the owner of agents, holding the owner credential.
    AccountId,
    "acct_"
);
id_type!(
    /// An agent: a buyer or a seller, authenticating with its API key.
    AgentId,
    "agt_"
);
id_type!(
    /// A go/no-go run (docs/go-no-go.md).
    GoNoGoRunId,
    "gng_"
);
id_type!(
    /// A recorded readiness sample.
    ReadinessSampleId,
    "rdy_"
);
id_type!(
    /// A usage agreement.
    AgreementId,
    "ua_"
);
id_type!(
    /// A relayer job.
    JobId,
    "job_"
);
id_type!(
    /// A sponsored settlement action: a party's signed authorization relayed by Pactum.
    SettlementActionId,
    "sa_"
);
id_type!(
    /// A usage record of the seller.
    UsageRecordId,
    "ur_"
);
id_type!(
    /// An outbox event: one status change, ready to be delivered as a webhook.
    EventId,
    "evt_"
);
id_type!(
    /// An execution token's public id (the token itself, `xt_<environment>_…`, is secret).
    ExecutionTokenId,
    "xtok_"
);
id_type!(
    /// A signed receipt of a confirmed on-chain movement of funds.
    ReceiptId,
    "rcpt_"
);
id_type!(
    /// An agent's spending policy (the same id for every version).
    PolicyId,
    "pol_"
);
id_type!(
    /// A spend check (`POST /v1/checks`).
    CheckId,
    "chk_"
);
id_type!(
    /// An approval an owner decides.
    ApprovalId,
    "apr_"
);
id_type!(
    /// A row of the append-only audit log.
    AuditId,
    "aud_"
);
id_type!(
    /// A spend-guard reservation: a hold on an agent's budgets.
    ReservationId,
    "rsv_"
);
id_type!(
    /// One change of a reservation.
    ReservationEventId,
    "rsve_"
);
id_type!(
    /// A budget lease from a parent agent to a child.
    BudgetLeaseId,
    "bls_"

);
id_type!(
    /// A mandate: an owner's standing grant to one agent to spend within bounds.
    MandateId,
    "mdt_"
);
id_type!(
    /// An agent's own wallet, registered by address (Pactum never holds its key).
    WalletId,
    "wal_"
);
id_type!(
    /// A governed payment: a one-shot USDC transfer from an agent's wallet.
    PaymentId,
    "pay_"
);
id_type!(
    /// A transfer an agent validated before paying it from its own wallet (`POST /validate`).
    IntentId,
    "int_"
);

/// Which kind of deployment keys belong to; the prefix tells a test key from a live one at a
/// glance, so a test key pasted into production fails loudly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    /// Test networks and local chains.
    Test,
    /// Base mainnet.
    Live,
}

impl Environment {
    /// `test` or `live`.
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Test => "test",
            Environment::Live => "live",
        }
    }
}

/// A secret credential, shown once at creation and stored only as its hash.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey(String);

impl SecretKey {
    /// A fresh key `<kind>_<environment>_<64 hex>` (256 bits), e.g. `pk_test_…` for agents.
    pub fn generate(kind: &str, environment: Environment) -> Self {
        Self(format!("{kind}_{}_{}", environment.as_str(), random_hex(32)))
    }

    /// Wraps a key presented by a client or read from configuration.
    pub fn from_presented(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The kind and environment its prefix names (`pk_test_…` → `("pk", Test)`); `None` for
    /// a value that is not shaped like a key Pactum issues.
    pub fn prefix(&self) -> Option<(&str, Environment)> {
        let mut parts = self.0.splitn(3, '_');
        let kind = parts.next()?;
        let environment = match parts.next()? {
            "test" => Environment::Test,
            "live" => Environment::Live,
            _ => return None,
        };
        parts.next()?;
        Some((kind, environment))
    }

    /// The key itself, for the one response that reveals it.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// The SHA-256 of the key as hex: what the store keeps. Keys are 256-bit random, so a fast
    /// hash is enough (there is nothing to brute-force) and lookups stay one index probe.
    pub fn hash(&self) -> String {
        alloy::primitives::hex::encode(Sha256::digest(self.0.as_bytes()))
    }

    /// The first characters and the last four, safe to show in listings and logs.
    pub fn hint(&self) -> String {
        let prefix_end = self.0.rfind('_').map_or(0, |i| i + 1);
        let tail = &self.0[self.0.len().saturating_sub(4)..];
        format!("{}…{tail}", &self.0[..prefix_end])
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.hint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_prefix_and_differ() {
        let a = AgreementId::generate();
        assert!(a.as_str().starts_with("ua_"));
        assert_eq!(a.as_str().len(), 3 + 16 + 12);
        // Creation order is id order, within a millisecond too.
        let ids: Vec<_> = (0..1_000).map(|_| AgreementId::generate()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids[0] > a);
    }

    #[test]
    fn secret_keys_hash_stably_and_never_print_themselves() {
        let key = SecretKey::generate("pk", Environment::Test);
        assert!(key.reveal().starts_with("pk_test_"));
        assert_eq!(key.reveal().len(), "pk_test_".len() + 64);
        assert_eq!(key.hash(), SecretKey::from_presented(key.reveal()).hash());
        assert_eq!(key.hash().len(), 64);
        let debug = format!("{key:?}");
        assert!(!debug.contains(&key.reveal()[8..]), "{debug}");
        assert!(key.hint().starts_with("pk_test_…"));
        assert_eq!(key.prefix(), Some(("pk", Environment::Test)));
        assert_eq!(
            SecretKey::from_presented("xt_live_00").prefix(),
            Some(("xt", Environment::Live))
        );
        assert_eq!(SecretKey::from_presented("pk_prod_00").prefix(), None);
        assert_eq!(SecretKey::from_presented("garbage").prefix(), None);
    }
}
