//! The event types Pactum writes to its outbox, which webhook endpoints subscribe to.

/// Every event type, in lifecycle order. An endpoint subscribes to some of them, or to all
/// (an empty `event_types`).
pub const EVENT_TYPES: &[&str] = &[
    "agreement.proposed",
    "agreement.accepted",
    "agreement.rejected",
    "agreement.cancelled",
    "agreement.expired",
    "activation.queued",
    "activation.submitted",
    "activation.confirmed",
    "activation.failed",
    "usage.recorded",
    "usage.voucher_accepted",
    "settlement_action.queued",
    "settlement_action.submitted",
    "settlement_action.confirmed",
    "settlement_action.failed",
    "settlement.close_initiated",
    "settlement.claimed",
    "settlement.withdrawn",
    "agreement.settled",
    "agreement.reorged",
    "relayer.job_failed",
];

/// Whether `name` is an event type Pactum emits.
pub fn is_known(name: &str) -> bool {
    EVENT_TYPES.contains(&name)
}

/// Whether an endpoint subscribed to `subscribed` (empty: all) receives `event_type`.
pub fn subscribes(subscribed: &[String], event_type: &str) -> bool {
    subscribed.is_empty() || subscribed.iter().any(|s| s == event_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_subscription_takes_everything() {
        assert!(subscribes(&[], "agreement.accepted"));
        let some = vec!["agreement.accepted".to_owned()];
        assert!(subscribes(&some, "agreement.accepted"));
        assert!(!subscribes(&some, "agreement.proposed"));
    }

    /// Every event type a source file writes to the outbox by name can be subscribed to.
    #[test]
    fn every_type_written_to_the_outbox_is_listed() {
        let mut files = vec![std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/src"))];
        let mut written = Vec::new();
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let source = std::fs::read_to_string(&path).unwrap();
            for call in source.split("outbox::record(").skip(1) {
                let call = &call[..call.find(';').unwrap_or(call.len())];
                let literal = call.split('"').nth(1).filter(|s| {
                    s.contains('.')
                        && s.bytes().all(|b| b.is_ascii_lowercase() || b"._".contains(&b))
                });
                written.extend(literal.map(str::to_owned));
            }
        }
        assert!(written.len() >= 10, "found the outbox writes: {written:?}");
        for event_type in written {
            assert!(is_known(&event_type), "{event_type} is written but not in EVENT_TYPES");
        }
    }

    #[test]
    fn knows_the_outbox_types() {
        assert!(is_known("settlement.claimed"));
        assert!(!is_known("agreement.*"));
        assert!(!is_known(""));
    }
}
