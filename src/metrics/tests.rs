//! The registry's recording and its text output.

use super::*;

fn series(name: &'static str, labels: &[(&'static str, &str)]) -> Series {
    (name, owned(labels))
}

#[test]
fn counts_by_labels() {
    let registry = Registry::default();
    registry.count("c_total", &[("kind", "new")], 1);
    registry.count("c_total", &[("kind", "new")], 2);
    registry.count("c_total", &[("kind", "replacement")], 1);
    assert_eq!(registry.counter("c_total", &[("kind", "new")]), 3);
    assert_eq!(registry.counter("c_total", &[("kind", "replacement")]), 1);
    assert_eq!(registry.counter("c_total", &[("kind", "other")]), 0);
    assert_eq!(
        registry.counters(),
        vec![
            (series("c_total", &[("kind", "new")]), 3),
            (series("c_total", &[("kind", "replacement")]), 1),
        ]
    );
    registry.observe("s", &[], 0.5);
    registry.observe("s", &[], 1.5);
    let text = registry.render(&[]);
    assert!(text.contains("\ns_count 2\n") && text.contains("\ns_sum 2.0\n"), "{text}");
}

#[test]
fn renders_each_kind_with_one_help_and_type_per_family() {
    let registry = Registry::default();
    registry.count("pactum_relayer_attempts_total", &[("kind", "new")], 3);
    registry.count("pactum_chain_reorgs_total", &[], 2);
    registry.observe("pactum_relayer_queue_pickup_seconds", &[], 1.0);
    registry.observe("pactum_relayer_queue_pickup_seconds", &[], 40.0);
    let text = registry.render(&[(series("pactum_relayer_jobs", &[("status", "queued")]), 4.0)]);
    let expected = [
        "# HELP pactum_relayer_attempts_total Transaction attempts signed and saved, by kind.",
        "# TYPE pactum_relayer_attempts_total counter",
        "pactum_relayer_attempts_total{kind=\"new\"} 3",
        "# HELP pactum_chain_reorgs_total Chain reorganisations the watcher detected.",
        "# TYPE pactum_chain_reorgs_total counter",
        "pactum_chain_reorgs_total 2",
        "# HELP pactum_relayer_queue_pickup_seconds Seconds between a job being queued and a worker taking it.",
        "# TYPE pactum_relayer_queue_pickup_seconds histogram",
        "pactum_relayer_queue_pickup_seconds_bucket{le=\"0.5\"} 0",
        "pactum_relayer_queue_pickup_seconds_bucket{le=\"1\"} 1",
        "pactum_relayer_queue_pickup_seconds_bucket{le=\"2\"} 1",
        "pactum_relayer_queue_pickup_seconds_bucket{le=\"5\"} 1",
        "pactum_relayer_queue_pickup_seconds_bucket{le=\"10\"} 1",
        "pactum_relayer_queue_pickup_seconds_bucket{le=\"30\"} 1",
        "pactum_relayer_queue_pickup_seconds_bucket{le=\"60\"} 2",
        "pactum_relayer_queue_pickup_seconds_bucket{le=\"120\"} 2",
        "pactum_relayer_queue_pickup_seconds_bucket{le=\"300\"} 2",
        "pactum_relayer_queue_pickup_seconds_bucket{le=\"900\"} 2",
        "pactum_relayer_queue_pickup_seconds_bucket{le=\"3600\"} 2",
        "pactum_relayer_queue_pickup_seconds_bucket{le=\"+Inf\"} 2",
        "pactum_relayer_queue_pickup_seconds_sum 41.0",
        "pactum_relayer_queue_pickup_seconds_count 2",
        "# HELP pactum_relayer_jobs Relayer jobs by status.",
        "# TYPE pactum_relayer_jobs gauge",
        "pactum_relayer_jobs{status=\"queued\"} 4",
    ];
    assert_eq!(text, expected.join("\n") + "\n");
}

#[test]
fn escapes_label_values() {
    let registry = Registry::default();
    let text = registry
        .render(&[(series("g", &[("a", "back\\slash \"quoted\"\nline"), ("b", "x")]), 1.5)]);
    assert!(text.ends_with("g{a=\"back\\\\slash \\\"quoted\\\"\\nline\",b=\"x\"} 1.5\n"), "{text}");
    assert_eq!(text.lines().count(), 3, "a line feed in a value must not break the line");
}

#[test]
fn one_family_per_name_across_kinds() {
    let registry = Registry::default();
    registry.count("dup_total", &[], 1);
    let text = registry.render(&[(series("dup_total", &[]), 9.0), (series("big", &[]), 1e22)]);
    assert_eq!(text.matches("# TYPE dup_total").count(), 1);
    assert!(text.contains("dup_total 1\n") && !text.contains("dup_total 9"), "{text}");
    // Large values (wei balances) stay floats, which the format allows.
    let big = text.lines().find_map(|l| l.strip_prefix("big ")).unwrap();
    assert_eq!(big.parse::<f64>().unwrap(), 1e22, "{text}");
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
    assert_eq!(registry.gauge("pactum_relayer_signer_low_balance", &[("signer", "0xcd")]), None);
    let text = registry.render(&[(series("pactum_store_up", &[]), 1.0)]);
    assert!(text.contains("pactum_relayer_signer_low_balance{signer=\"0xab\"} 0.0\n"), "{text}");
    assert!(text.contains("# TYPE pactum_store_up gauge\npactum_store_up 1\n"), "{text}");
}

#[test]
fn request_latency_falls_in_cumulative_buckets() {
    let registry = Registry::default();
    for seconds in [0.003, 0.02, 0.02, 7.0] {
        registry.observe("pactum_http_request_seconds", &[("route", "/v1/agents")], seconds);
    }
    let text = registry.render(&[]);
    let bucket = |le: &str| {
        let line =
            format!("pactum_http_request_seconds_bucket{{route=\"/v1/agents\",le=\"{le}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(line.as_str()))
            .unwrap_or_else(|| panic!("{le}: {text}"))
    };
    assert_eq!(bucket("0.005"), "1");
    assert_eq!(bucket("0.025"), "3");
    assert_eq!(bucket("5"), "3");
    assert_eq!(bucket("10"), "4");
    assert_eq!(bucket("+Inf"), "4");
    assert!(text.contains("pactum_http_request_seconds_count{route=\"/v1/agents\"} 4\n"), "{text}");
}
