//! Calendar arithmetic in a rule's time zone: the budget period around an instant, and the local
//! clock a schedule reads.
//!
//! Periods are cut at local midnight with zoned arithmetic, so a day is 23, 24 or 25 hours long
//! around a daylight-saving change. Zones come from the time zone database compiled into the
//! binary, never the host's, so every machine draws the same boundaries.

use jiff::civil::{Date, Weekday};
use jiff::tz::{TimeZone, TimeZoneDatabase};
use jiff::{Timestamp, ToSpan};

use super::policy::Period;

/// Day names as owners write them, Monday first.
pub(super) const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

/// Minutes in a day: the only `end` past 23:59 is `24:00`.
pub(super) const END_OF_DAY: u32 = 24 * 60;

/// Looks up an IANA zone name (any ASCII case) in the bundled database. `Etc/Unknown` is the
/// database's placeholder for "no zone", so it is refused too.
pub(super) fn lookup(name: &str) -> Option<TimeZone> {
    if name.eq_ignore_ascii_case("Etc/Unknown") {
        return None;
    }
    TimeZoneDatabase::bundled().get(name).ok()
}

/// The zone a rule names. Parsing refused every name that does not resolve, so UTC is only
/// reached by a policy built by hand with a bad name.
pub(super) fn zone(name: &str) -> TimeZone {
    lookup(name).unwrap_or(TimeZone::UTC)
}

/// `at` as an instant, clamped to the range the calendar covers (years -9999 to 9999).
fn instant(at: i64) -> Timestamp {
    let clamped = at.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    Timestamp::from_second(clamped).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The period containing `at`, as `[from, to)` in unix seconds: local midnight to the next local
/// midnight, Monday to Monday, or the 1st to the next 1st. A boundary past the calendar's range
/// saturates to it.
pub(super) fn bounds(period: Period, tz: &TimeZone, at: i64) -> (i64, i64) {
    let date = instant(at).to_zoned(tz.clone()).date();
    let (first, next) = match period {
        Period::Day => (Some(date), date.tomorrow().ok()),
        Period::Week => {
            let back = i64::from(date.weekday().to_monday_zero_offset());
            let monday = date.checked_sub(back.days()).ok();
            (monday, monday.and_then(|d| d.checked_add(7.days()).ok()))
        }
        Period::Month => {
            let first = date.first_of_month();
            (Some(first), first.checked_add(1.month()).ok())
        }
    };
    let from = first.and_then(|d| midnight(d, tz)).unwrap_or(Timestamp::MIN.as_second());
    let to = next.and_then(|d| midnight(d, tz)).unwrap_or(Timestamp::MAX.as_second());
    (from, to)
}

/// The first instant of `date` in `tz`. Where midnight is skipped by a daylight-saving change the
/// day starts at the end of the gap; where it happens twice, at the first.
fn midnight(date: Date, tz: &TimeZone) -> Option<i64> {
    let start = date.to_zoned(tz.clone()).ok()?.start_of_day().ok()?;
    Some(start.timestamp().as_second())
}

/// The local weekday and second of the day (0..86400) at `at` in `tz`.
pub(super) fn local_clock(tz: &TimeZone, at: i64) -> (Weekday, u32) {
    let local = instant(at).to_zoned(tz.clone());
    let second = u32::from(local.hour().unsigned_abs()) * 3600
        + u32::from(local.minute().unsigned_abs()) * 60
        + u32::from(local.second().unsigned_abs());
    (local.weekday(), second)
}

/// Parses `HH:MM` (exactly five characters) to minutes after midnight: `00:00` to `23:59`, and
/// `24:00` for the end of the day.
pub(super) fn clock_minutes(text: &str) -> Option<u32> {
    let &[h1, h2, b':', m1, m2] = text.as_bytes() else {
        return None;
    };
    let digit = |b: u8| b.is_ascii_digit().then(|| u32::from(b - b'0'));
    let hours = digit(h1)? * 10 + digit(h2)?;
    let minutes = digit(m1)? * 10 + digit(m2)?;
    let total = hours * 60 + minutes;
    (minutes < 60 && total <= END_OF_DAY).then_some(total)
}

/// The weekday an owner's day name (any case) stands for.
pub(super) fn weekday(name: &str) -> Option<Weekday> {
    DAYS.iter().find(|(day, _)| day.eq_ignore_ascii_case(name)).map(|&(_, weekday)| weekday)
}
