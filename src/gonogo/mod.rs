//! The go/no-go evidence packet (docs/go-no-go.md): seven sections, each `go` or `no_go` with
//! the evidence it was judged on, an overall verdict, and the receipt key's signature over the
//! packet's canonical JSON.
//!
//! Pure: the types, the verdict rules, canonical JSON, the HTML page and signing do no I/O.
//! Gathering the evidence (the service's own API, the chain, the store, webhook endpoints)
//! lives in `api::go_no_go`, beside the routes that start a run.

pub mod canonical;
pub mod evidence;
pub mod html;
pub mod settings;
pub mod signing;

use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub use settings::GoNoGoSettings;

/// The `format` of every packet this version writes.
pub const FORMAT: &str = "pactum.go-no-go/1";

/// One of the seven sections, in the order the packet lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = GoNoGoSection)]
pub enum Section {
    /// `/readyz` now and its recorded history.
    HostedHealth,
    /// A canary agreement activated and settled end to end through the service's own API.
    HostedActivation,
    /// Each RPC endpoint: chain id, head, lag, latency, breaker.
    Provider,
    /// A signed test delivery to each webhook endpoint of the operator's agents.
    Webhook,
    /// `pactum reconcile`, deployment-wide.
    Reconciliation,
    /// Support contacts, where logs go, the metrics endpoint.
    Support,
    /// Schema version, reversibility, binary version, a backup restored into a scratch store.
    Rollback,
}

impl Section {
    /// Every section, in packet order.
    pub const ALL: [Section; 7] = [
        Section::HostedHealth,
        Section::HostedActivation,
        Section::Provider,
        Section::Webhook,
        Section::Reconciliation,
        Section::Support,
        Section::Rollback,
    ];

    /// The wire name (`hosted_health`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Section::HostedHealth => "hosted_health",
            Section::HostedActivation => "hosted_activation",
            Section::Provider => "provider",
            Section::Webhook => "webhook",
            Section::Reconciliation => "reconciliation",
            Section::Support => "support",
            Section::Rollback => "rollback",
        }
    }

    /// The section named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Its heading on the HTML page.
    pub fn title(self) -> &'static str {
        match self {
            Section::HostedHealth => "Hosted health",
            Section::HostedActivation => "Hosted activation",
            Section::Provider => "Provider",
            Section::Webhook => "Webhook",
            Section::Reconciliation => "Reconciliation",
            Section::Support => "Support",
            Section::Rollback => "Rollback",
        }
    }
}

impl fmt::Display for Section {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A section's (or the packet's) verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = GoNoGoVerdict)]
pub enum Verdict {
    /// The evidence shows the concern is ready.
    Go,
    /// Something failed or is missing; the summary says what.
    NoGo,
}

impl Verdict {
    /// `go` or `no_go`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Go => "go",
            Verdict::NoGo => "no_go",
        }
    }

    /// The verdict named `name`, if any.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "go" => Some(Verdict::Go),
            "no_go" => Some(Verdict::NoGo),
            _ => None,
        }
    }

    /// `Go` when `ok`.
    pub fn of(ok: bool) -> Self {
        if ok { Verdict::Go } else { Verdict::NoGo }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One section of the packet: its verdict, a one-line summary and the evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GoNoGoSectionReport)]
pub struct SectionReport {
    /// Which section.
    pub section: Section,
    /// `go` or `no_go`.
    pub verdict: Verdict,
    /// One line: what was found, and on `no_go` why.
    pub summary: String,
    /// The evidence, a JSON object whose shape is the section's (docs/go-no-go.md).
    #[schema(value_type = Object)]
    pub evidence: serde_json::Value,
}

impl SectionReport {
    /// A section judged on `evidence` (any serializable evidence type of [`evidence`]).
    pub fn new(
        section: Section,
        verdict: Verdict,
        summary: impl Into<String>,
        evidence: &impl Serialize,
    ) -> Self {
        Self {
            section,
            verdict,
            summary: summary.into(),
            // The evidence types are plain structs of strings and numbers: they serialize.
            evidence: serde_json::to_value(evidence).unwrap_or_default(),
        }
    }
}

/// The deployment a packet is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GoNoGoDeployment)]
pub struct Deployment {
    /// The chain's id.
    pub chain_id: u64,
    /// The escrow contract, checksummed.
    pub escrow: String,
    /// `test` or `live`.
    pub environment: String,
    /// The binary's version (`CARGO_PKG_VERSION`).
    pub binary_version: String,
}

/// The receipt key's signature of a packet (docs/go-no-go.md, "Verifying a packet").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GoNoGoPacketSignature)]
pub struct PacketSignature {
    /// The receipt key's address.
    pub signer: String,
    /// keccak256 of the packet's canonical JSON without its `signature` member.
    pub packet_hash: String,
    /// The signed `GoNoGoPacket` as an `eth_signTypedData_v4` document.
    #[schema(value_type = Object)]
    pub typed_data: serde_json::Value,
    /// The 65-byte signature `r ‖ s ‖ v`, hex.
    pub signature: String,
}

/// A go/no-go packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GoNoGoPacket)]
pub struct Packet {
    /// Always [`FORMAT`].
    pub format: String,
    /// The run that produced it (`gng_…`).
    pub run_id: String,
    /// The deployment.
    pub deployment: Deployment,
    /// Unix seconds the run started.
    pub started_at: i64,
    /// Unix seconds the run finished.
    pub finished_at: i64,
    /// `go` only when every section is `go`.
    pub verdict: Verdict,
    /// The seven sections, in order.
    pub sections: Vec<SectionReport>,
    /// The receipt key's signature; `None` only before signing.
    #[schema(required = true)]
    pub signature: Option<PacketSignature>,
}

impl Packet {
    /// An unsigned packet of `sections`, its verdict the conjunction of theirs.
    pub fn new(
        run_id: String,
        deployment: Deployment,
        started_at: i64,
        finished_at: i64,
        sections: Vec<SectionReport>,
    ) -> Self {
        Self {
            format: FORMAT.to_owned(),
            run_id,
            deployment,
            started_at,
            finished_at,
            verdict: overall(&sections),
            sections,
            signature: None,
        }
    }

    /// The section `section`, if the packet has it.
    pub fn section(&self, section: Section) -> Option<&SectionReport> {
        self.sections.iter().find(|s| s.section == section)
    }
}

/// `go` when every section of the seven is present and `go`.
pub fn overall(sections: &[SectionReport]) -> Verdict {
    let all_present = Section::ALL.iter().all(|s| sections.iter().any(|r| r.section == *s));
    Verdict::of(all_present && sections.iter().all(|s| s.verdict == Verdict::Go))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(section: Section, verdict: Verdict) -> SectionReport {
        SectionReport::new(section, verdict, "s", &serde_json::json!({}))
    }

    #[test]
    fn names_round_trip_and_the_verdict_needs_every_section_go() {
        for section in Section::ALL {
            assert_eq!(Section::parse(section.as_str()), Some(section));
            let json = serde_json::to_value(section).unwrap();
            assert_eq!(json, section.as_str());
        }
        for verdict in [Verdict::Go, Verdict::NoGo] {
            assert_eq!(Verdict::parse(verdict.as_str()), Some(verdict));
            assert_eq!(serde_json::to_value(verdict).unwrap(), verdict.as_str());
        }
        let all_go: Vec<_> = Section::ALL.iter().map(|s| report(*s, Verdict::Go)).collect();
        assert_eq!(overall(&all_go), Verdict::Go);
        assert_eq!(overall(&all_go[1..]), Verdict::NoGo, "a missing section is no-go");
        let mut one_bad = all_go.clone();
        one_bad[2].verdict = Verdict::NoGo;
        assert_eq!(overall(&one_bad), Verdict::NoGo);
    }
}
