//! Reading an owner's policy document into a [`Policy`]: every field checked and normalized,
//! every refusal naming the rule (its id, or its index when it has no valid id) and the field.
//!
//! A `null` optional field (`description`, `action_types`, `duplicate_window_seconds`) counts as
//! absent; a `null` required parameter counts as missing.

use std::collections::BTreeSet;
use std::fmt::Display;

use serde_json::{Map, Value};

use super::policy::{DUPLICATE_GUARD_ID, Period, Policy, PolicyError, Rule, RuleKind};
use super::{ActionType, period};

/// Most rules in one policy.
pub(super) const MAX_RULES: usize = 100;
/// Most entries in one list parameter.
pub(super) const MAX_LIST: usize = 1000;
/// Longest list entry or description, in characters.
pub(super) const MAX_TEXT: usize = 256;
/// Longest rule id, in characters.
pub(super) const MAX_ID: usize = 64;
/// Largest amount a rule may name: ten trillion dollars.
pub(super) const MAX_CENTS: u64 = 1_000_000_000_000_000;
/// Longest velocity or duplicate window: 31 days.
pub(super) const MAX_WINDOW_SECONDS: u64 = 31 * 24 * 60 * 60;

const TOP_LEVEL_FIELDS: [&str; 3] = ["rules", "duplicate_window_seconds", "prices"];
const COMMON_FIELDS: [&str; 3] = ["id", "type", "description"];

/// Every rule type and the parameters it takes (besides `id`, `type` and `description`).
const RULE_TYPES: [(&str, &[&str]); 12] = [
    ("per_tx_limit", &["max_cents", "action_types"]),
    ("escalation_threshold", &["above_cents", "action_types"]),
    ("period_budget", &["period", "max_cents", "timezone"]),
    ("counterparty_allowlist", &["counterparties"]),
    ("counterparty_denylist", &["counterparties"]),
    ("blocked_categories", &["categories"]),
    ("allowed_categories", &["categories"]),
    ("geography_block", &["countries"]),
    ("schedule", &["timezone", "days", "start", "end"]),
    ("velocity", &["max_actions", "window_seconds"]),
    ("refund_age_limit", &["max_days"]),
    ("discount_cap", &["max_percent"]),
];

type Result<T> = std::result::Result<T, PolicyError>;

/// Parses a whole document (see [`Policy::parse`]).
pub(super) fn document(document: &Value) -> Result<Policy> {
    let Some(top) = document.as_object() else {
        return Err(top_error("rules", "the policy must be a JSON object with a `rules` list"));
    };
    if let Some(field) = top.keys().find(|key| !TOP_LEVEL_FIELDS.contains(&key.as_str())) {
        let field = shown(field);
        return Err(top_error(&field, format!("unknown field `{field}`")));
    }
    let Some(list) = top.get("rules").and_then(Value::as_array) else {
        return Err(top_error("rules", "`rules` must be a list of rules"));
    };
    if list.len() > MAX_RULES {
        return Err(top_error("rules", format!("a policy has at most {MAX_RULES} rules")));
    }
    let duplicate_window_seconds = match top.get("duplicate_window_seconds") {
        None | Some(Value::Null) => 0,
        Some(value) => match value.as_u64() {
            Some(seconds) if seconds <= MAX_WINDOW_SECONDS => seconds,
            _ => {
                return Err(top_error(
                    "duplicate_window_seconds",
                    format!(
                        "`duplicate_window_seconds` must be a whole number of seconds from 0 to \
                         {MAX_WINDOW_SECONDS}"
                    ),
                ));
            }
        },
    };
    let mut seen = BTreeSet::new();
    let rules = list
        .iter()
        .enumerate()
        .map(|(index, value)| rule(index, value, &mut seen))
        .collect::<Result<Vec<_>>>()?;
    let prices = prices(top.get("prices"))?;
    Ok(Policy { rules, duplicate_window_seconds, prices })
}

/// The optional price list: `{"tokens": {model: {input_per_million_cents,
/// output_per_million_cents}}, "tools": {tool: cents per call}}`.
fn prices(value: Option<&Value>) -> Result<super::policy::Prices> {
    let mut prices = super::policy::Prices::default();
    let Some(value) = value.filter(|v| !v.is_null()) else { return Ok(prices) };
    let refuse = |field: &str, message: &str| top_error(&format!("prices.{field}"), message);
    let Some(top) = value.as_object() else {
        return Err(top_error("prices", "`prices` must be an object with `tokens` and `tools`"));
    };
    for (key, entries) in top {
        let Some(entries) = entries.as_object().filter(|e| e.len() <= MAX_RULES) else {
            return Err(refuse(&shown(key), "must be an object of at most 100 entries"));
        };
        for (name, price) in entries {
            if name.is_empty() || name.chars().count() > MAX_TEXT {
                return Err(refuse(key, "names are 1 to 256 characters"));
            }
            match key.as_str() {
                "tokens" => {
                    let price: super::policy::TokenPrice = serde_json::from_value(price.clone())
                        .ok()
                        .filter(|p: &super::policy::TokenPrice| {
                            p.input_per_million_cents <= MAX_CENTS
                                && p.output_per_million_cents <= MAX_CENTS
                        })
                        .ok_or_else(|| {
                            refuse(
                                &format!("tokens.{}", shown(name)),
                                "must be `{input_per_million_cents, output_per_million_cents}` \
                                 in whole cents",
                            )
                        })?;
                    prices.tokens.insert(name.clone(), price);
                }
                "tools" => {
                    let cents = price.as_u64().filter(|c| *c <= MAX_CENTS).ok_or_else(|| {
                        refuse(&format!("tools.{}", shown(name)), "must be whole cents per call")
                    })?;
                    prices.tools.insert(name.clone(), cents);
                }
                other => return Err(refuse(&shown(other), "is not `tokens` or `tools`")),
            }
        }
    }
    Ok(prices)
}

fn top_error(field: &str, message: impl Display) -> PolicyError {
    PolicyError {
        rule_id: None,
        index: None,
        field: field.to_owned(),
        message: message.to_string(),
    }
}

/// An owner's string as quoted back in an error: at most 64 characters.
fn shown(text: &str) -> String {
    match text.char_indices().nth(64) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn valid_id(id: &str) -> bool {
    (1..=MAX_ID).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn rule(index: usize, value: &Value, seen: &mut BTreeSet<String>) -> Result<Rule> {
    let Some(map) = value.as_object() else {
        return Err(PolicyError {
            rule_id: None,
            index: Some(index),
            field: "rules".to_owned(),
            message: format!("rule at index {index}: must be a JSON object"),
        });
    };
    let mut fields = Fields { map, index, id: None, type_name: None };

    let id = match map.get("id") {
        None | Some(Value::Null) => return Err(fields.error("id", "`id` is required")),
        Some(Value::String(id)) if valid_id(id) => id.as_str(),
        Some(_) => {
            return Err(fields.error(
                "id",
                format!("`id` must be 1 to {MAX_ID} characters of A-Z, a-z, 0-9, `_`, `.` and `-`"),
            ));
        }
    };
    fields.id = Some(id);
    if id == DUPLICATE_GUARD_ID {
        return Err(fields.error("id", "`duplicate_guard` is reserved for the duplicate guard"));
    }
    if !seen.insert(id.to_owned()) {
        return Err(fields.error("id", "`id` is already used by an earlier rule"));
    }

    let type_name = fields.string("type")?;
    let Some(&(type_name, params)) = RULE_TYPES.iter().find(|(name, _)| *name == type_name) else {
        let known = RULE_TYPES.map(|(name, _)| name).join(", ");
        return Err(fields.error(
            "type",
            format!("unknown type `{}`; expected one of {known}", shown(type_name)),
        ));
    };
    fields.type_name = Some(type_name);
    let allowed = |key: &str| COMMON_FIELDS.contains(&key) || params.contains(&key);
    if let Some(field) = map.keys().find(|key| !allowed(key)) {
        let field = shown(field);
        return Err(fields.error(&field, format!("unknown field `{field}`")));
    }

    let description = match fields.optional("description") {
        None => None,
        Some(Value::String(text)) if text.chars().count() <= MAX_TEXT => Some(text.clone()),
        Some(_) => {
            let problem =
                format!("`description` must be a string of at most {MAX_TEXT} characters");
            return Err(fields.error("description", problem));
        }
    };
    let kind = fields.kind(type_name)?;
    Ok(Rule { id: id.to_owned(), description, kind })
}

/// One rule's fields, and who to name when one is wrong.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    index: usize,
    id: Option<&'a str>,
    type_name: Option<&'static str>,
}

impl<'a> Fields<'a> {
    fn error(&self, field: &str, problem: impl Display) -> PolicyError {
        let who = match (self.id, self.type_name) {
            (Some(id), Some(type_name)) => format!("rule `{id}` ({type_name})"),
            (Some(id), None) => format!("rule `{id}`"),
            (None, _) => format!("rule at index {}", self.index),
        };
        PolicyError {
            rule_id: self.id.map(str::to_owned),
            index: Some(self.index),
            field: field.to_owned(),
            message: format!("{who}: {problem}"),
        }
    }

    fn optional(&self, field: &str) -> Option<&'a Value> {
        self.map.get(field).filter(|value| !value.is_null())
    }

    fn required(&self, field: &str) -> Result<&'a Value> {
        self.optional(field).ok_or_else(|| self.error(field, format!("`{field}` is required")))
    }

    fn string(&self, field: &str) -> Result<&'a str> {
        self.required(field)?
            .as_str()
            .ok_or_else(|| self.error(field, format!("`{field}` must be a string")))
    }

    /// A whole number in `min..=max`; `unit` names what it counts in the error.
    fn whole(&self, field: &str, unit: &str, min: u64, max: u64) -> Result<u64> {
        let value = self.required(field)?;
        if value.as_i64().is_some_and(|n| n < 0) {
            return Err(self.error(field, format!("`{field}` must not be negative")));
        }
        let Some(number) = value.as_u64() else {
            return Err(self.error(field, format!("`{field}` must be a whole number of {unit}")));
        };
        if !(min..=max).contains(&number) {
            let problem = format!("`{field}` must be from {min} to {max} {unit}");
            return Err(self.error(field, problem));
        }
        Ok(number)
    }

    fn cents(&self, field: &str) -> Result<u64> {
        self.whole(field, "cents", 0, MAX_CENTS)
    }

    /// A list of 1 to [`MAX_LIST`] strings, each mapped by `entry` (which refuses with a
    /// description of what an entry must be).
    fn list<T>(
        &self,
        field: &str,
        mut entry: impl FnMut(&'a str) -> std::result::Result<T, String>,
    ) -> Result<Vec<T>> {
        let Some(items) = self.required(field)?.as_array() else {
            return Err(self.error(field, format!("`{field}` must be a list")));
        };
        if items.is_empty() || items.len() > MAX_LIST {
            let problem = format!("`{field}` must have 1 to {MAX_LIST} entries");
            return Err(self.error(field, problem));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let text = item.as_str().ok_or_else(|| "a string".to_owned());
                text.and_then(&mut entry)
                    .map_err(|what| self.error(field, format!("`{field}[{i}]` must be {what}")))
            })
            .collect()
    }

    /// Free text entries: non-empty, at most [`MAX_TEXT`] characters, trimmed when `trim`.
    fn texts(&self, field: &str, trim: bool) -> Result<Vec<String>> {
        self.list(field, |text| {
            let text = if trim { text.trim() } else { text };
            match text.chars().count() {
                1..=MAX_TEXT => Ok(text.to_owned()),
                _ => Err(format!("a non-empty string of at most {MAX_TEXT} characters")),
            }
        })
    }

    fn action_types(&self) -> Result<Option<Vec<ActionType>>> {
        if self.optional("action_types").is_none() {
            return Ok(None);
        }
        let types = self.list("action_types", |text| {
            ActionType::parse(text).ok_or_else(|| "one of refund, credit, discount, spend".into())
        })?;
        Ok(Some(types))
    }

    fn timezone(&self) -> Result<String> {
        let name = self.string("timezone")?;
        let Some(zone) = period::lookup(name) else {
            let problem = format!("`timezone` `{}` is not an IANA time zone", shown(name));
            return Err(self.error("timezone", problem));
        };
        Ok(zone.iana_name().unwrap_or(name).to_owned())
    }

    /// An `HH:MM` time no later than `latest` minutes after midnight.
    fn clock(&self, field: &str, latest: u32) -> Result<u32> {
        match period::clock_minutes(self.string(field)?) {
            Some(minutes) if minutes <= latest => Ok(minutes),
            _ => {
                let latest = format!("{:02}:{:02}", latest / 60, latest % 60);
                let problem = format!("`{field}` must be a time HH:MM from 00:00 to {latest}");
                Err(self.error(field, problem))
            }
        }
    }

    fn kind(&self, type_name: &str) -> Result<RuleKind> {
        Ok(match type_name {
            "per_tx_limit" => RuleKind::PerTxLimit {
                max_cents: self.cents("max_cents")?,
                action_types: self.action_types()?,
            },
            "escalation_threshold" => RuleKind::EscalationThreshold {
                above_cents: self.cents("above_cents")?,
                action_types: self.action_types()?,
            },
            "period_budget" => {
                let name = self.string("period")?;
                let Some(period) = Period::parse(name) else {
                    return Err(self.error("period", "`period` must be day, week or month"));
                };
                RuleKind::PeriodBudget {
                    period,
                    max_cents: self.cents("max_cents")?,
                    timezone: self.timezone()?,
                }
            }
            "counterparty_allowlist" => RuleKind::CounterpartyAllowlist {
                counterparties: self.texts("counterparties", false)?,
            },
            "counterparty_denylist" => RuleKind::CounterpartyDenylist {
                counterparties: self.texts("counterparties", false)?,
            },
            "blocked_categories" => {
                RuleKind::BlockedCategories { categories: self.texts("categories", true)? }
            }
            "allowed_categories" => {
                RuleKind::AllowedCategories { categories: self.texts("categories", true)? }
            }
            "geography_block" => RuleKind::GeographyBlock {
                countries: self.list("countries", |code| match code.as_bytes() {
                    [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                        Ok(code.to_ascii_uppercase())
                    }
                    _ => Err("a two-letter country code".into()),
                })?,
            },
            "schedule" => self.schedule()?,
            "velocity" => RuleKind::Velocity {
                max_actions: self.whole("max_actions", "actions", 1, u64::MAX)?,
                window_seconds: self.whole("window_seconds", "seconds", 1, MAX_WINDOW_SECONDS)?,
            },
            "refund_age_limit" => {
                RuleKind::RefundAgeLimit { max_days: self.whole("max_days", "days", 0, u64::MAX)? }
            }
            "discount_cap" => {
                let percent = self.required("max_percent")?.as_f64();
                let Some(max_percent) = percent.filter(|p| (0.0..=100.0).contains(p)) else {
                    let problem = "`max_percent` must be a number from 0 to 100";
                    return Err(self.error("max_percent", problem));
                };
                // `-0.0` is in range but would print as "-0"; store it as 0.
                RuleKind::DiscountCap { max_percent: max_percent + 0.0 }
            }
            // `rule` only calls with a name from RULE_TYPES.
            other => return Err(self.error("type", format!("unknown type `{}`", shown(other)))),
        })
    }

    fn schedule(&self) -> Result<RuleKind> {
        let timezone = self.timezone()?;
        let mut seen = Vec::new();
        let days = self.list("days", |name| {
            let weekday =
                period::weekday(name).ok_or("a day: mon, tue, wed, thu, fri, sat or sun")?;
            if seen.contains(&weekday) {
                return Err(format!("a day not listed before (`{}` repeats)", name.to_lowercase()));
            }
            seen.push(weekday);
            Ok(name.to_ascii_lowercase())
        })?;
        let start = self.clock("start", period::END_OF_DAY - 1)?;
        let end = self.clock("end", period::END_OF_DAY)?;
        if start >= end {
            return Err(self.error("end", "`end` must be later than `start`"));
        }
        Ok(RuleKind::Schedule {
            timezone,
            days,
            start: self.string("start")?.to_owned(),
            end: self.string("end")?.to_owned(),
        })
    }
}
