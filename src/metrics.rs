//! Process-wide counters, latency summaries and gauges for the Prometheus `/metrics` endpoint,
//! and [`render`], which writes them in the text exposition format (version 0.0.4).
//!
//! The relayer, the chain watcher and the RPC layer record into one registry per process (as
//! Prometheus clients do with their default registry); the API renders it, together with
//! gauges read from the store at scrape time. Recording is a short mutex hold on a small map.

use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex};

/// A counter or summary series: metric name and its label pairs.
pub type Series = (&'static str, Vec<(&'static str, String)>);

/// Counts, sums and last readings, keyed by series.
#[derive(Debug, Default)]
pub struct Registry {
    counters: Mutex<BTreeMap<Series, u64>>,
    /// Per series: number of observations and their sum in seconds.
    summaries: Mutex<BTreeMap<Series, (u64, f64)>>,
    /// Values set by periodic checks (signer balances), kept until set again.
    gauges: Mutex<BTreeMap<Series, f64>>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

/// The process's registry.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

impl Registry {
    /// Adds `by` to the counter `name{labels}`.
    pub fn count(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        let key = (name, labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect());
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *counters.entry(key).or_default() += by;
    }

    /// Records one observation of `seconds` in the summary `name{labels}`.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64) {
        let key = (name, labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect());
        let mut summaries = self.summaries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = summaries.entry(key).or_default();
        entry.0 += 1;
        entry.1 += seconds;
    }

    /// The counter `name{labels}` now (0 if never counted).
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        let key = (name, labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect());
        self.counters.lock().unwrap_or_else(|e| e.into_inner()).get(&key).copied().unwrap_or(0)
    }

    /// Every counter series and its value, in name order.
    pub fn counters(&self) -> Vec<(Series, u64)> {
        let counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        counters.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Every summary series with its count and sum, in name order.
    pub fn summaries(&self) -> Vec<(Series, (u64, f64))> {
        let summaries = self.summaries.lock().unwrap_or_else(|e| e.into_inner());
        summaries.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

impl Registry {
    /// Sets the gauge `name{labels}` to `value`.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let key = (name, labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect());
        self.gauges.lock().unwrap_or_else(|e| e.into_inner()).insert(key, value);
    }

    /// The gauge `name{labels}`; `None` if it was never set.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Option<f64> {
        let key = (name, labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect());
        self.gauges.lock().unwrap_or_else(|e| e.into_inner()).get(&key).copied()
    }

    /// Every gauge series and its value, in name order.
    pub fn gauges(&self) -> Vec<(Series, f64)> {
        let gauges = self.gauges.lock().unwrap_or_else(|e| e.into_inner());
        gauges.iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// The whole registry in the text exposition format, with `extra` gauges (read elsewhere,
    /// e.g. from the store at scrape time) alongside the registry's own.
    pub fn render(&self, extra: &[(Series, f64)]) -> String {
        let mut gauges = self.gauges();
        gauges.extend_from_slice(extra);
        render(&self.counters(), &self.summaries(), &gauges)
    }
}

/// A transaction attempt was signed and saved (`kind`: `new` or `replacement`).
pub fn attempt(kind: &str) {
    registry().count("pactum_relayer_attempts_total", &[("kind", kind)], 1);
}

/// A chain reorganisation was detected at or below the confirmation depth.
pub fn reorg() {
    registry().count("pactum_chain_reorgs_total", &[], 1);
}

/// A job waited `seconds` between being queued and being taken by a worker.
pub fn queue_pickup(seconds: f64) {
    registry().observe("pactum_relayer_queue_pickup_seconds", &[], seconds);
}

/// One JSON-RPC call to `endpoint` (a label, never a URL with credentials) took `seconds`.
pub fn rpc_call(endpoint: &str, method: &str, seconds: f64, ok: bool) {
    let registry = registry();
    registry.count("pactum_rpc_requests_total", &[("endpoint", endpoint), ("method", method)], 1);
    registry.observe("pactum_rpc_request_seconds", &[("endpoint", endpoint)], seconds);
    if !ok {
        registry.count("pactum_rpc_errors_total", &[("endpoint", endpoint), ("method", method)], 1);
    }
}

/// The kind of a metric family, as its `# TYPE` line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Summary,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        }
    }
}

/// One line of a family: the sample's name suffix (`_count`, `_sum`, or none), labels, value.
type Line<'a> = (&'static str, &'a [(&'static str, String)], String);

/// Writes counters, summaries and gauges in the Prometheus text exposition format 0.0.4: one
/// `# HELP` and one `# TYPE` line per family, families in name order, label values escaped.
/// Counters are named with a `_total` suffix (added if missing); a summary has `_count` and
/// `_sum` samples. A name given under two kinds is rendered under the first kind seen
/// (counters, then summaries, then gauges), so the output stays parseable.
pub fn render(
    counters: &[(Series, u64)],
    summaries: &[(Series, (u64, f64))],
    gauges: &[(Series, f64)],
) -> String {
    let mut families: BTreeMap<String, (Kind, Vec<Line<'_>>)> = BTreeMap::new();
    for ((name, labels), value) in counters {
        let name =
            if name.ends_with("_total") { (*name).to_owned() } else { format!("{name}_total") };
        let family = families.entry(name).or_insert((Kind::Counter, Vec::new()));
        if family.0 == Kind::Counter {
            family.1.push(("", labels, value.to_string()));
        }
    }
    for ((name, labels), (count, sum)) in summaries {
        let family = families.entry((*name).to_owned()).or_insert((Kind::Summary, Vec::new()));
        if family.0 == Kind::Summary {
            family.1.push(("_count", labels, count.to_string()));
            family.1.push(("_sum", labels, number(*sum)));
        }
    }
    for ((name, labels), value) in gauges {
        let family = families.entry((*name).to_owned()).or_insert((Kind::Gauge, Vec::new()));
        if family.0 == Kind::Gauge {
            family.1.push(("", labels, number(*value)));
        }
    }
    let mut out = String::new();
    for (name, (kind, lines)) in &families {
        out.push_str(&format!("# HELP {name} {}\n", escape_help(help(name))));
        out.push_str(&format!("# TYPE {name} {}\n", kind.as_str()));
        for (suffix, labels, value) in lines {
            out.push_str(name);
            out.push_str(suffix);
            if !labels.is_empty() {
                let pairs: Vec<String> =
                    labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape_label(v))).collect();
                out.push('{');
                out.push_str(&pairs.join(","));
                out.push('}');
            }
            out.push(' ');
            out.push_str(value);
            out.push('\n');
        }
    }
    out
}

/// A sample value as the format writes it (`+Inf`, `-Inf`, `NaN` for the special values).
fn number(value: f64) -> String {
    if value.is_nan() {
        "NaN".into()
    } else if value.is_infinite() {
        if value > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else {
        value.to_string()
    }
}

/// A label value with `\`, `"` and line feeds escaped.
fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Help text with `\` and line feeds escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// What each family measures, for its `# HELP` line.
fn help(name: &str) -> &'static str {
    match name {
        "pactum_relayer_attempts_total" => "Transaction attempts signed and saved, by kind.",
        "pactum_chain_reorgs_total" => "Chain reorganisations the watcher detected.",
        "pactum_relayer_queue_pickup_seconds" => {
            "Seconds between a job being queued and a worker taking it."
        }
        "pactum_rpc_requests_total" => "JSON-RPC calls made, by endpoint and method.",
        "pactum_rpc_errors_total" => "JSON-RPC calls that failed, by endpoint and method.",
        "pactum_rpc_breaker_opened_total" => "Times an RPC endpoint's circuit breaker opened.",
        "pactum_relayer_dropped_rebroadcasts_total" => {
            "Transactions the node dropped that the relayer sent again."
        }
        "pactum_rpc_request_seconds" => "JSON-RPC call latency in seconds, by endpoint.",
        "pactum_relayer_jobs" => "Relayer jobs by status.",
        "pactum_relayer_job_attempts" => "Relayer transaction attempts by status.",
        "pactum_outbox_undispatched" => "Outbox events not yet dispatched to webhooks.",
        "pactum_webhook_deliveries" => "Webhook deliveries by status.",
        "pactum_chain_watcher_lag_blocks" => {
            "Blocks between the newest head the watcher saw and the last block it read."
        }
        "pactum_chain_head_age_seconds" => {
            "Seconds since the timestamp of the newest head the watcher saw."
        }
        "pactum_store_up" => "1 if the store answered the scrape's queries, else 0.",
        "pactum_relayer_signer_balance_wei" => "Relayer signer ETH balance in wei, last check.",
        "pactum_relayer_signer_low_balance" => {
            "1 if the signer's balance is below the configured minimum, else 0."
        }
        _ => "A Pactum metric.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_labels() {
        let registry = Registry::default();
        registry.count("c", &[("kind", "new")], 1);
        registry.count("c", &[("kind", "new")], 2);
        registry.count("c", &[("kind", "replacement")], 1);
        assert_eq!(registry.counter("c", &[("kind", "new")]), 3);
        assert_eq!(registry.counter("c", &[("kind", "replacement")]), 1);
        registry.observe("s", &[], 0.5);
        registry.observe("s", &[], 1.5);
        assert_eq!(registry.summaries(), vec![(("s", vec![]), (2, 2.0))]);
    }

    fn series(name: &'static str, labels: &[(&'static str, &str)]) -> Series {
        (name, labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect())
    }

    #[test]
    fn renders_each_kind_with_one_help_and_type_per_family() {
        let counters = vec![
            (series("pactum_relayer_attempts_total", &[("kind", "new")]), 3),
            (series("pactum_relayer_attempts_total", &[("kind", "replacement")]), 1),
            (series("pactum_chain_reorgs", &[]), 2),
        ];
        let summaries = vec![(series("pactum_relayer_queue_pickup_seconds", &[]), (2, 0.5))];
        let gauges = vec![
            (series("pactum_relayer_jobs", &[("status", "queued")]), 4.0),
            (series("pactum_relayer_jobs", &[("status", "confirmed")]), 1.0),
        ];
        let text = render(&counters, &summaries, &gauges);
        assert_eq!(
            text,
            "# HELP pactum_chain_reorgs_total Chain reorganisations the watcher detected.\n\
             # TYPE pactum_chain_reorgs_total counter\n\
             pactum_chain_reorgs_total 2\n\
             # HELP pactum_relayer_attempts_total Transaction attempts signed and saved, by kind.\n\
             # TYPE pactum_relayer_attempts_total counter\n\
             pactum_relayer_attempts_total{kind=\"new\"} 3\n\
             pactum_relayer_attempts_total{kind=\"replacement\"} 1\n\
             # HELP pactum_relayer_jobs Relayer jobs by status.\n\
             # TYPE pactum_relayer_jobs gauge\n\
             pactum_relayer_jobs{status=\"queued\"} 4\n\
             pactum_relayer_jobs{status=\"confirmed\"} 1\n\
             # HELP pactum_relayer_queue_pickup_seconds Seconds between a job being queued and a worker taking it.\n\
             # TYPE pactum_relayer_queue_pickup_seconds summary\n\
             pactum_relayer_queue_pickup_seconds_count 2\n\
             pactum_relayer_queue_pickup_seconds_sum 0.5\n"
        );
    }

    #[test]
    fn escapes_label_values() {
        let gauges = vec![(series("g", &[("a", "back\\slash \"quoted\"\nline"), ("b", "x")]), 1.5)];
        let text = render(&[], &[], &gauges);
        assert!(
            text.ends_with("g{a=\"back\\\\slash \\\"quoted\\\"\\nline\",b=\"x\"} 1.5\n"),
            "{text}"
        );
        assert_eq!(text.lines().count(), 3, "a line feed in a value must not break the line");
    }

    #[test]
    fn one_family_per_name_across_kinds() {
        let text = render(
            &[(series("dup_total", &[]), 1)],
            &[],
            &[(series("dup_total", &[]), 9.0), (series("big", &[]), 1e22)],
        );
        assert_eq!(text.matches("# TYPE dup_total").count(), 1);
        assert!(text.contains("dup_total 1\n") && !text.contains("dup_total 9"), "{text}");
        // Large values (wei balances) are written in full, never in Rust's debug exponent form.
        assert!(text.contains("big 10000000000000000000000\n"), "{text}");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(f64::NAN), "NaN");
    }

    #[test]
    fn gauges_are_kept_until_set_again() {
        let registry = Registry::default();
        registry.set("pactum_relayer_signer_low_balance", &[("signer", "0xab")], 1.0);
        registry.set("pactum_relayer_signer_low_balance", &[("signer", "0xab")], 0.0);
        assert_eq!(
            registry.gauge("pactum_relayer_signer_low_balance", &[("signer", "0xab")]),
            Some(0.0)
        );
        let text = registry.render(&[(series("pactum_store_up", &[]), 1.0)]);
        assert!(text.contains("pactum_relayer_signer_low_balance{signer=\"0xab\"} 0\n"), "{text}");
        assert!(text.contains("# TYPE pactum_store_up gauge\npactum_store_up 1\n"), "{text}");
    }
}
