//! The event types Pactum writes to its outbox, which webhook endpoints subscribe to.

pub use crate::store::outbox::EventType;

/// Whether `name` is an event type Pactum emits.
pub fn is_known(name: &str) -> bool {
    EventType::parse(name).is_some()
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

    #[test]
    fn knows_the_outbox_types() {
        assert!(is_known("settlement.claimed"));
        assert!(!is_known("agreement.*"));
        assert!(!is_known(""));
    }
}
