//! Process-wide counters, latency histograms and gauges for the Prometheus `/metrics` endpoint,
//! kept in a `prometheus-client` registry and written in the text exposition format 0.0.4.
//!
//! The relayer, the chain watcher, the RPC layer and the API record into one registry per
//! process (as Prometheus clients do with their default registry); the API renders it, together
//! with gauges read from the store at scrape time. Callers name a metric by a string and pass
//! its labels as pairs, so a new metric needs no declaration here: each name's family is
//! registered the first time it is recorded. Latencies are histograms with fixed buckets, so a
//! quantile (`histogram_quantile(0.99, …)`) can be computed across instances.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, RwLock};

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;

/// A series: metric name and its label pairs.
pub type Series = (&'static str, Vec<(&'static str, String)>);

/// The content type of what [`Registry::render`] writes.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Label pairs of one series.
type Labels = Vec<(&'static str, String)>;
type Counters = Family<Labels, Counter>;
type Histograms = Family<Labels, Histogram, fn() -> Histogram>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;

/// Upper bounds (seconds) of the buckets of a request latency: HTTP requests and JSON-RPC calls
/// (Prometheus's default buckets, and the request and RPC timeouts above them).
const LATENCY_BUCKETS: [f64; 13] =
    [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Upper bounds (seconds) of the buckets of a job's wait in the queue (whole seconds: the queue
/// time is stored in seconds).
const QUEUE_BUCKETS: [f64; 11] =
    [0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

fn queue_histogram() -> Histogram {
    Histogram::new(QUEUE_BUCKETS)
}

/// Every metric family of the process, by name.
#[derive(Debug, Default)]
pub struct Registry {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// What is encoded: every family below that was registered.
    families: prometheus_client::registry::Registry,
    /// Names as exposed (a counter's with `_total`), so two kinds never share a name.
    exposed: HashSet<String>,
    /// Counter families with the label sets counted so far (the family cannot list them).
    counters: HashMap<&'static str, (Counters, BTreeSet<Labels>)>,
    histograms: HashMap<&'static str, Histograms>,
    gauges: HashMap<&'static str, Gauges>,
}

impl Inner {
    /// Registers `metric` under `name` unless that name is already exposed (then the metric is
    /// kept but not rendered, so the output stays parseable).
    fn register(
        &mut self,
        name: &str,
        exposed: String,
        metric: impl prometheus_client::registry::Metric,
    ) {
        if self.exposed.insert(exposed) {
            self.families.register(name, help(name), metric);
        }
    }
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(Registry::default);

/// The process's registry.
pub fn registry() -> &'static Registry {
    &REGISTRY
}

fn owned(labels: &[(&'static str, &str)]) -> Labels {
    labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

impl Registry {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A poisoned lock only means a panic mid-registration; the maps are still usable.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `by` to the counter `name{labels}` (`name` with its `_total` suffix, which the
    /// family is exposed with in any case).
    pub fn count(&self, name: &'static str, labels: &[(&'static str, &str)], by: u64) {
        let labels = owned(labels);
        let known = self
            .read()
            .counters
            .get(name)
            .map(|(family, seen)| (family.clone(), seen.contains(&labels)));
        let family = match known {
            Some((family, true)) => family,
            _ => {
                let mut inner = self.write();
                if !inner.counters.contains_key(name) {
                    let family = Counters::default();
                    let base = name.strip_suffix("_total").unwrap_or(name);
                    inner.register(base, format!("{base}_total"), family.clone());
                    inner.counters.insert(name, (family, BTreeSet::new()));
                }
                let (family, seen) = inner.counters.get_mut(name).expect("inserted above");
                seen.insert(labels.clone());
                family.clone()
            }
        };
        family.get_or_create(&labels).inc_by(by);
    }

    /// Records one observation of `seconds` in the histogram `name{labels}`.
    pub fn observe(&self, name: &'static str, labels: &[(&'static str, &str)], seconds: f64) {
        let known = self.read().histograms.get(name).cloned();
        let family = known.unwrap_or_else(|| {
            let mut inner = self.write();
            if let Some(family) = inner.histograms.get(name) {
                return family.clone();
            }
            let buckets: fn() -> Histogram = match name {
                "pactum_relayer_queue_pickup_seconds" => queue_histogram,
                _ => latency_histogram,
            };
            let family = Histograms::new_with_constructor(buckets);
            inner.register(name, name.to_owned(), family.clone());
            inner.histograms.insert(name, family.clone());
            family
        });
        family.get_or_create(&owned(labels)).observe(seconds);
    }

    /// The counter `name{labels}` now (0 if never counted).
    pub fn counter(&self, name: &'static str, labels: &[(&'static str, &str)]) -> u64 {
        let inner = self.read();
        let Some((family, _)) = inner.counters.get(name) else { return 0 };
        family.get(&owned(labels)).map_or(0, |counter| counter.get())
    }

    /// Every counter series and its value, in name order.
    pub fn counters(&self) -> Vec<(Series, u64)> {
        let inner = self.read();
        let mut all = Vec::new();
        for (name, (family, seen)) in &inner.counters {
            for labels in seen {
                let value = family.get(labels).map_or(0, |counter| counter.get());
                all.push(((*name, labels.clone()), value));
            }
        }
        all.sort();
        all
    }

    /// Sets the gauge `name{labels}` to `value`.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        let known = self.read().gauges.get(name).cloned();
        let family = known.unwrap_or_else(|| {
            let mut inner = self.write();
            if let Some(family) = inner.gauges.get(name) {
                return family.clone();
            }
            let family = Gauges::default();
            inner.register(name, name.to_owned(), family.clone());
            inner.gauges.insert(name, family.clone());
            family
        });
        family.get_or_create(&owned(labels)).set(value);
    }

    /// The gauge `name{labels}`; `None` if it was never set.
    pub fn gauge(&self, name: &'static str, labels: &[(&'static str, &str)]) -> Option<f64> {
        let inner = self.read();
        inner.gauges.get(name)?.get(&owned(labels)).map(|gauge| gauge.get())
    }

    /// The whole registry in the Prometheus text format 0.0.4, with `extra` gauges (read
    /// elsewhere, e.g. from the store at scrape time) after the registry's own. An extra family
    /// whose values are all whole numbers (counts) is written as integers. An extra name the
    /// registry already exposes is left out, so each family appears once.
    pub fn render(&self, extra: &[(Series, f64)]) -> String {
        let inner = self.read();
        let mut scrape = prometheus_client::registry::Registry::default();
        let mut names: Vec<&'static str> = Vec::new();
        for ((name, _), _) in extra {
            if !names.contains(name) && !inner.exposed.contains(*name) {
                names.push(name);
            }
        }
        for name in names {
            let samples = extra.iter().filter(|((n, _), _)| *n == name);
            let whole = samples.clone().all(|(_, v)| v.fract() == 0.0 && v.abs() < 9.0e15);
            if whole {
                let family = Family::<Labels, Gauge>::default();
                for ((_, labels), value) in samples {
                    family.get_or_create(labels).set(*value as i64);
                }
                scrape.register(name, help(name), family);
            } else {
                let family = Gauges::default();
                for ((_, labels), value) in samples {
                    family.get_or_create(labels).set(*value);
                }
                scrape.register(name, help(name), family);
            }
        }
        let mut text = String::new();
        // Writing into a `String` cannot fail.
        let _ = prometheus_text::encode(&mut text, &inner.families);
        let _ = prometheus_text::encode(&mut text, &scrape);
        text
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

/// The worker leased `count` jobs by `path`: `handed` (by id, as this process's API handed
/// them over) or `polled` (found scanning the store).
pub fn jobs_leased(path: &'static str, count: usize) {
    registry().count("pactum_relayer_jobs_leased_total", &[("path", path)], count as u64);
}

tokio::task_local! {
    /// The route template of the HTTP request whose handler is running, so an RPC call made
    /// while serving it is counted against that route.
    static ROUTE: String;
}

/// Runs `serving` (an HTTP request's handling) as serving `route`: every JSON-RPC call it makes
/// is also counted in `pactum_rpc_requests_by_route_total`.
pub async fn serving<F: std::future::Future>(route: String, serving: F) -> F::Output {
    ROUTE.scope(route, serving).await
}

/// The read model answered a read of `view` from `source` (`memory` or `store`).
pub fn read_model_read(view: &str, source: &str) {
    registry().count("pactum_read_model_reads_total", &[("view", view), ("source", source)], 1);
}

/// One JSON-RPC call to `endpoint` (a label, never a URL with credentials) took `seconds`.
pub fn rpc_call(endpoint: &str, method: &str, seconds: f64, ok: bool) {
    let registry = registry();
    registry.count("pactum_rpc_requests_total", &[("endpoint", endpoint), ("method", method)], 1);
    let _ = ROUTE.try_with(|route| {
        let labels = [("route", route.as_str()), ("method", method)];
        registry.count("pactum_rpc_requests_by_route_total", &labels, 1);
    });
    registry.observe("pactum_rpc_request_seconds", &[("endpoint", endpoint)], seconds);
    if !ok {
        registry.count("pactum_rpc_errors_total", &[("endpoint", endpoint), ("method", method)], 1);
    }
}

/// One HTTP request to `route` (the matched route template, never the path itself, so ids do
/// not make a series each) was answered `status` after `seconds`.
pub fn http_request(method: &str, route: &str, status: u16, seconds: f64) {
    let status = status.to_string();
    let labels = [("method", method), ("route", route), ("status", status.as_str())];
    registry().observe("pactum_http_request_seconds", &labels, seconds);
}

/// What each family measures, for its `# HELP` line (the library adds the full stop).
fn help(name: &str) -> &'static str {
    match name {
        "pactum_relayer_attempts" => "Transaction attempts signed and saved, by kind",
        "pactum_chain_reorgs" => "Chain reorganisations the watcher detected",
        "pactum_relayer_queue_pickup_seconds" => {
            "Seconds between a job being queued and a worker taking it"
        }
        "pactum_rpc_requests" => "JSON-RPC calls made, by endpoint and method",
        "pactum_read_model_reads" => {
            "Reads of the API's read model, by view and where they were answered from"
        }
        "pactum_rpc_requests_by_route" => {
            "JSON-RPC calls made while serving an HTTP request, by route and method"
        }
        "pactum_rpc_errors" => "JSON-RPC calls that failed, by endpoint and method",
        "pactum_rpc_breaker_opened" => "Times an RPC endpoint's circuit breaker opened",
        "pactum_relayer_dropped_rebroadcasts" => {
            "Transactions the node dropped that the relayer sent again"
        }
        "pactum_relayer_nonce_fills" => "Nonce gaps the relayer used up with a no-op self-send",
        "pactum_relayer_jobs_leased" => {
            "Jobs the relayer leased, by path: handed over by this process's API or polled"
        }
        "pactum_rpc_request_seconds" => "JSON-RPC call latency in seconds, by endpoint",
        "pactum_http_request_seconds" => {
            "HTTP request latency in seconds, by method, route and status"
        }
        "pactum_relayer_jobs" => "Relayer jobs by status",
        "pactum_relayer_job_attempts" => "Relayer transaction attempts by status",
        "pactum_outbox_undispatched" => "Outbox events not yet dispatched to webhooks",
        "pactum_webhook_deliveries" => "Webhook deliveries by status",
        "pactum_chain_watcher_lag_blocks" => {
            "Blocks between the newest head the watcher saw and the last block it read"
        }
        "pactum_chain_head_age_seconds" => {
            "Seconds since the timestamp of the newest head the watcher saw"
        }
        "pactum_store_up" => "1 if the store answered the scrape's queries, else 0",
        "pactum_relayer_signer_balance_wei" => "Relayer signer ETH balance in wei, last check",
        "pactum_relayer_signer_low_balance" => {
            "1 if the signer's balance is below the configured minimum, else 0"
        }
        _ => "A Pactum metric",
    }
}

#[cfg(test)]
mod tests;
