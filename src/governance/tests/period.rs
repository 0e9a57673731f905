//! `Policy::needs`: budget periods in local time (daylight saving, week and month edges),
//! velocity windows and the duplicate window.

use serde_json::json;

use super::super::Need;
use super::{NOON, instant, local, policy};

/// The `[from, to)` a single `period_budget` rule needs at `at`.
fn period_of(period: &str, zone: &str, at: i64) -> (i64, i64) {
    let policy = policy(json!([{"id": "b", "type": "period_budget", "period": period,
                                "max_cents": 100, "timezone": zone}]));
    match policy.needs(at).as_slice() {
        [Need::PeriodSpent { rule_id, from, to }] if rule_id == "b" => (*from, *to),
        other => panic!("unexpected needs {other:?}"),
    }
}

const HOUR: i64 = 3600;

#[test]
fn a_utc_day_is_midnight_to_midnight() {
    let day = (instant("2025-01-15T00:00:00Z"), instant("2025-01-16T00:00:00Z"));
    assert_eq!(period_of("day", "UTC", NOON), day);
    assert_eq!(period_of("day", "UTC", day.0), day, "midnight opens the day");
    assert_eq!(period_of("day", "UTC", day.1 - 1), day, "23:59:59 is still the day");
    assert_eq!(period_of("day", "UTC", day.1).0, day.1, "the next midnight opens the next day");
}

#[test]
fn new_york_days_around_daylight_saving_are_23_and_25_hours() {
    let zone = "America/New_York";
    let spring = period_of("day", zone, local("2025-03-09T12:00:00", zone));
    assert_eq!(spring, (instant("2025-03-09T05:00:00Z"), instant("2025-03-10T04:00:00Z")));
    assert_eq!(spring.1 - spring.0, 23 * HOUR);
    let autumn = period_of("day", zone, local("2025-11-02T12:00:00", zone));
    assert_eq!(autumn, (instant("2025-11-02T04:00:00Z"), instant("2025-11-03T05:00:00Z")));
    assert_eq!(autumn.1 - autumn.0, 25 * HOUR);
    // During the repeated hour, both 01:30s belong to the same day.
    assert_eq!(period_of("day", zone, instant("2025-11-02T05:30:00Z")), autumn);
    assert_eq!(period_of("day", zone, instant("2025-11-02T06:30:00Z")), autumn);

    let last = local("2025-03-09T23:59:59", zone);
    let next = local("2025-03-10T00:00:00", zone);
    assert_eq!(next - last, 1);
    assert_eq!(period_of("day", zone, last), spring);
    assert_eq!(period_of("day", zone, next), (next, instant("2025-03-11T04:00:00Z")));
}

#[test]
fn a_day_whose_midnight_is_skipped_starts_after_the_gap() {
    // Chile moved its clocks from 00:00 to 01:00 on 2024-09-08.
    let zone = "America/Santiago";
    let day = period_of("day", zone, local("2024-09-08T12:00:00", zone));
    assert_eq!(day, (instant("2024-09-08T04:00:00Z"), instant("2024-09-09T03:00:00Z")));
    assert_eq!(day.1 - day.0, 23 * HOUR);
    assert_eq!(period_of("day", zone, day.0 - 1).1, day.0, "the day before ends at the gap");
}

#[test]
fn weeks_run_monday_to_monday_in_local_time() {
    let zone = "Asia/Tokyo";
    let week = (local("2025-01-13T00:00:00", zone), local("2025-01-20T00:00:00", zone));
    assert_eq!(week.1 - week.0, 7 * 24 * HOUR);
    assert_eq!(period_of("week", zone, NOON), week, "a Wednesday");
    assert_eq!(period_of("week", zone, week.0), week, "Monday 00:00:00 opens the week");
    assert_eq!(period_of("week", zone, week.0 - 1).1, week.0, "Sunday 23:59:59 closes the last");
    assert_eq!(period_of("week", zone, week.1 - 1), week, "Sunday 23:59:59 is still the week");
    assert_eq!(period_of("week", zone, week.1).0, week.1);
    // Sunday 20:00 in UTC is Monday 05:00 in Tokyo: one instant, two weeks.
    let utc = period_of("week", "UTC", instant("2025-01-19T20:00:00Z"));
    assert_eq!(utc, (instant("2025-01-13T00:00:00Z"), instant("2025-01-20T00:00:00Z")));
    let tokyo = period_of("week", zone, instant("2025-01-19T20:00:00Z"));
    assert_eq!(tokyo.0, week.1, "Monday 05:00 in Tokyo is already the next week");

    let ny = "America/New_York";
    let dst_week = period_of("week", ny, local("2025-03-09T12:00:00", ny));
    assert_eq!(dst_week.0, local("2025-03-03T00:00:00", ny));
    assert_eq!(dst_week.1 - dst_week.0, 7 * 24 * HOUR - HOUR);
}

#[test]
fn months_run_from_the_first_in_local_time() {
    // 2025-01-31T15:30Z is still January in UTC but already 1 February in Tokyo.
    let at = instant("2025-01-31T15:30:00Z");
    let utc = period_of("month", "UTC", at);
    assert_eq!(utc, (instant("2025-01-01T00:00:00Z"), instant("2025-02-01T00:00:00Z")));
    let tokyo = period_of("month", "Asia/Tokyo", at);
    assert_eq!(tokyo, (instant("2025-01-31T15:00:00Z"), instant("2025-02-28T15:00:00Z")));
    // The edge itself, in Tokyo.
    let first = local("2025-02-01T00:00:00", "Asia/Tokyo");
    assert_eq!(period_of("month", "Asia/Tokyo", first), tokyo);
    assert_eq!(period_of("month", "Asia/Tokyo", first - 1).1, first);
    // December rolls into the next year; a leap February has 29 days.
    let december = period_of("month", "UTC", instant("2024-12-31T23:59:59Z"));
    assert_eq!(december, (instant("2024-12-01T00:00:00Z"), instant("2025-01-01T00:00:00Z")));
    let february = period_of("month", "UTC", instant("2024-02-29T12:00:00Z"));
    assert_eq!(february.1 - february.0, 29 * 24 * HOUR);
    // A month with a daylight-saving change is an hour short.
    let march = period_of("month", "America/New_York", instant("2025-03-15T12:00:00Z"));
    assert_eq!(march.1 - march.0, 31 * 24 * HOUR - HOUR);
}

#[test]
fn windows_reach_back_from_the_request() {
    let policy = policy(json!([
        {"id": "v1", "type": "velocity", "max_actions": 3, "window_seconds": 60},
        {"id": "b", "type": "period_budget", "period": "day", "max_cents": 1, "timezone": "UTC"},
        {"id": "v2", "type": "velocity", "max_actions": 3, "window_seconds": 86400},
        {"id": "x", "type": "per_tx_limit", "max_cents": 1},
    ]));
    let day = (instant("2025-01-15T00:00:00Z"), instant("2025-01-16T00:00:00Z"));
    assert_eq!(
        policy.needs(NOON),
        vec![
            Need::RecentActions { rule_id: "v1".into(), since: NOON - 60 },
            Need::PeriodSpent { rule_id: "b".into(), from: day.0, to: day.1 },
            Need::RecentActions { rule_id: "v2".into(), since: NOON - 86400 },
        ]
    );
    let mut guarded = policy.clone();
    guarded.duplicate_window_seconds = 300;
    let needs = guarded.needs(NOON);
    assert_eq!(needs[0], Need::Duplicate { since: NOON - 300 });
    assert_eq!(needs.len(), 4);
    assert!(super::policy(json!([])).needs(NOON).is_empty());
}

#[test]
fn extreme_instants_do_not_panic() {
    for at in [i64::MIN, i64::MAX, 0, -1] {
        for period in ["day", "week", "month"] {
            let (from, to) = period_of(period, "Pacific/Kiritimati", at);
            assert!(from < to, "{period} at {at}: {from} {to}");
        }
    }
}
