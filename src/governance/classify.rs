//! A deterministic keyword classifier: `reason_text` to an action type, with a confidence.

use super::{ActionType, Confidence};

/// The action type `reason_text` describes and how sure the match is; `(Spend, Low)` when no
/// keyword matches.
pub fn classify(reason_text: &str) -> (ActionType, Confidence) {
    let _ = reason_text;
    todo!("classifier")
}
