//! A deterministic keyword classifier: `reason_text` to an action type, with a confidence.
//!
//! The text is lower-cased and cut into words (runs of letters and digits; `%` is a word of its
//! own, everything else separates). Keywords are words or short phrases, each for one action
//! type and either *strong* (names the action outright: "refund", "store credit", "coupon",
//! "buy") or *weak* (suggests it: "return", "voucher", "sale", "order"). Reading left to right,
//! the longest keyword starting at each word wins and its words are consumed, so "credit card"
//! (a means of payment, matched to nothing) never counts as "credit".
//!
//! - exactly one type has a strong match: that type, `high` (weak matches of other types do
//!   not matter: "refund the order" is a refund);
//! - several types have strong matches: the first of them in the priority order refund, credit,
//!   discount, spend, `medium`;
//! - no strong match but some weak ones: the first weakly matched type in that order, `medium`;
//! - nothing matched: `spend`, `low`.
//!
//! Negation and context are not read ("not a refund" is a refund); callers that know the type
//! name it and skip the classifier.

use super::{ActionType, Confidence};

/// How much a keyword says about the action.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Strength {
    Strong,
    Weak,
}

use ActionType::{Credit, Discount, Refund, Spend};
use Strength::{Strong, Weak};

/// Ties between types go to the first in this order.
const PRIORITY: [ActionType; 4] = [Refund, Credit, Discount, Spend];

/// Every keyword (words separated by single spaces). `None` marks phrases that only stop their
/// words from matching on their own.
#[rustfmt::skip]
const KEYWORDS: &[(&str, Option<ActionType>, Strength)] = &[
    // Refunds.
    ("refund", Some(Refund), Strong), ("refunds", Some(Refund), Strong),
    ("refunded", Some(Refund), Strong), ("refunding", Some(Refund), Strong),
    ("reimburse", Some(Refund), Strong), ("reimburses", Some(Refund), Strong),
    ("reimbursed", Some(Refund), Strong), ("reimbursing", Some(Refund), Strong),
    ("reimbursement", Some(Refund), Strong), ("reimbursements", Some(Refund), Strong),
    ("chargeback", Some(Refund), Strong), ("chargebacks", Some(Refund), Strong),
    ("charge back", Some(Refund), Strong), ("money back", Some(Refund), Strong),
    ("return", Some(Refund), Weak), ("returns", Some(Refund), Weak),
    ("returned", Some(Refund), Weak), ("returning", Some(Refund), Weak),
    ("send back", Some(Refund), Weak), ("give back", Some(Refund), Weak),
    ("pay back", Some(Refund), Weak), ("reversal", Some(Refund), Weak),
    ("reverse", Some(Refund), Weak), ("reversed", Some(Refund), Weak),
    // Credits.
    ("credit", Some(Credit), Strong), ("credited", Some(Credit), Strong),
    ("crediting", Some(Credit), Strong), ("store credit", Some(Credit), Strong),
    ("account credit", Some(Credit), Strong), ("credit note", Some(Credit), Strong),
    ("credit memo", Some(Credit), Strong), ("goodwill", Some(Credit), Strong),
    ("credits", Some(Credit), Weak), ("compensate", Some(Credit), Weak),
    ("compensated", Some(Credit), Weak), ("compensation", Some(Credit), Weak),
    ("voucher", Some(Credit), Weak), ("vouchers", Some(Credit), Weak),
    ("gift card", Some(Credit), Weak), ("make good", Some(Credit), Weak),
    ("courtesy", Some(Credit), Weak),
    ("credit card", None, Weak), ("credit cards", None, Weak),
    ("debit card", None, Weak), ("debit cards", None, Weak),
    // Discounts.
    ("discount", Some(Discount), Strong), ("discounts", Some(Discount), Strong),
    ("discounted", Some(Discount), Strong), ("discounting", Some(Discount), Strong),
    ("coupon", Some(Discount), Strong), ("coupons", Some(Discount), Strong),
    ("promo", Some(Discount), Strong), ("promos", Some(Discount), Strong),
    ("promo code", Some(Discount), Strong), ("promotional", Some(Discount), Strong),
    ("markdown", Some(Discount), Strong), ("markdowns", Some(Discount), Strong),
    ("mark down", Some(Discount), Strong), ("% off", Some(Discount), Strong),
    ("percent off", Some(Discount), Strong), ("price reduction", Some(Discount), Strong),
    ("sale", Some(Discount), Weak), ("deal", Some(Discount), Weak),
    ("price match", Some(Discount), Weak), ("rebate", Some(Discount), Weak),
    ("rebates", Some(Discount), Weak), ("cheaper", Some(Discount), Weak),
    ("reduced price", Some(Discount), Weak),
    // Spending.
    ("buy", Some(Spend), Strong), ("buys", Some(Spend), Strong),
    ("buying", Some(Spend), Strong), ("bought", Some(Spend), Strong),
    ("pay", Some(Spend), Strong), ("pays", Some(Spend), Strong),
    ("paying", Some(Spend), Strong), ("subscribe", Some(Spend), Strong),
    ("subscribes", Some(Spend), Strong), ("subscribed", Some(Spend), Strong),
    ("subscribing", Some(Spend), Strong),
    ("purchase", Some(Spend), Weak), ("purchases", Some(Spend), Weak),
    ("purchased", Some(Spend), Weak), ("purchasing", Some(Spend), Weak),
    ("payment", Some(Spend), Weak), ("payments", Some(Spend), Weak),
    ("paid", Some(Spend), Weak), ("order", Some(Spend), Weak),
    ("orders", Some(Spend), Weak), ("ordered", Some(Spend), Weak),
    ("ordering", Some(Spend), Weak), ("invoice", Some(Spend), Weak),
    ("invoices", Some(Spend), Weak), ("invoiced", Some(Spend), Weak),
    ("subscription", Some(Spend), Weak), ("subscriptions", Some(Spend), Weak),
    ("checkout", Some(Spend), Weak), ("renew", Some(Spend), Weak),
    ("renewal", Some(Spend), Weak), ("upgrade", Some(Spend), Weak),
    ("hire", Some(Spend), Weak), ("rent", Some(Spend), Weak),
    ("booking", Some(Spend), Weak), ("fee", Some(Spend), Weak),
    ("fees", Some(Spend), Weak), ("top up", Some(Spend), Weak),
    ("deposit", Some(Spend), Weak), ("spend", Some(Spend), Weak),
    ("spending", Some(Spend), Weak),
];

/// The action type `reason_text` describes and how sure the match is; `(Spend, Low)` when no
/// keyword matches. See the module documentation for the rule.
pub fn classify(reason_text: &str) -> (ActionType, Confidence) {
    let words = words(reason_text);
    let mut strong = [false; 4];
    let mut weak = [false; 4];
    let mut i = 0;
    while i < words.len() {
        let Some((length, action, strength)) = longest_keyword(&words[i..]) else {
            i += 1;
            continue;
        };
        if let Some(slot) = action.and_then(|a| PRIORITY.iter().position(|&p| p == a)) {
            match strength {
                Strong => strong[slot] = true,
                Weak => weak[slot] = true,
            }
        }
        i += length;
    }
    let first = |found: &[bool; 4]| found.iter().position(|&hit| hit).map(|slot| PRIORITY[slot]);
    match strong.iter().filter(|&&hit| hit).count() {
        1 => (first(&strong).unwrap_or(Spend), Confidence::High),
        0 => match first(&weak) {
            Some(action) => (action, Confidence::Medium),
            None => (Spend, Confidence::Low),
        },
        _ => (first(&strong).unwrap_or(Spend), Confidence::Medium),
    }
}

/// Lower-cased runs of letters and digits, with each `%` a word of its own.
fn words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            current.push(c);
            continue;
        }
        if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        if c == '%' {
            words.push("%".to_owned());
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// The longest keyword `words` starts with: its length in words, type and strength.
fn longest_keyword(words: &[String]) -> Option<(usize, Option<ActionType>, Strength)> {
    KEYWORDS
        .iter()
        .filter_map(|&(phrase, action, strength)| {
            let length = phrase.split(' ').count();
            let matches = words.len() >= length
                && phrase.split(' ').zip(words).all(|(keyword, word)| keyword == word);
            matches.then_some((length, action, strength))
        })
        .max_by_key(|&(length, _, _)| length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_strong_type_is_high() {
        assert_eq!(classify("Refund the customer for order 1234"), (Refund, Confidence::High));
        assert_eq!(classify("Issue STORE CREDIT as goodwill"), (Credit, Confidence::High));
        assert_eq!(classify("Apply a 20% off coupon"), (Discount, Confidence::High));
        assert_eq!(classify("Buy 3 GPU hours"), (Spend, Confidence::High));
        assert_eq!(classify("chargeback on the invoice"), (Refund, Confidence::High));
        assert_eq!(classify("give them their money back"), (Refund, Confidence::High));
        assert_eq!(classify("pay the invoice by credit card"), (Spend, Confidence::High));
        assert_eq!(classify("refund to the credit card"), (Refund, Confidence::High));
        assert_eq!(classify("take 15 percent off"), (Discount, Confidence::High));
    }

    #[test]
    fn weak_matches_and_ties_are_medium() {
        assert_eq!(classify("the customer returned the item"), (Refund, Confidence::Medium));
        assert_eq!(classify("send a voucher"), (Credit, Confidence::Medium));
        assert_eq!(classify("price match the competitor"), (Discount, Confidence::Medium));
        assert_eq!(classify("renew the subscription"), (Spend, Confidence::Medium));
        // Strong matches of two types: the priority order decides.
        assert_eq!(classify("buy a coupon"), (Discount, Confidence::Medium));
        assert_eq!(classify("refund or credit, whichever"), (Refund, Confidence::Medium));
        // Weak matches of two types.
        assert_eq!(classify("return the order"), (Refund, Confidence::Medium));
    }

    #[test]
    fn nothing_matched_is_low_spend() {
        assert_eq!(classify(""), (Spend, Confidence::Low));
        assert_eq!(classify("hello there"), (Spend, Confidence::Low));
        // Keywords match whole words only.
        assert_eq!(classify("refundable? creditor, discountless"), (Spend, Confidence::Low));
        assert_eq!(classify("a credit card"), (Spend, Confidence::Low));
    }

    #[test]
    fn words_split_on_punctuation_and_keep_percent() {
        assert_eq!(words("Re-FUND, 20%off!"), ["re", "fund", "20", "%", "off"]);
        assert_eq!(classify("20%off"), (Discount, Confidence::High));
        assert_eq!(classify("charge-back"), (Refund, Confidence::High));
    }

    #[test]
    fn the_same_text_gives_the_same_answer() {
        let text = "Refund half, then apply a promo code and buy the upgrade";
        assert_eq!(classify(text), classify(text));
        assert_eq!(classify(text), (Refund, Confidence::Medium));
    }
}
