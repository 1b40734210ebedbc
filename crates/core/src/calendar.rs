//! Named calendars for policy rules: weekly windows in a time zone, minus dates off.
//!
//! A calendar answers one question — is this instant inside? — by reading the instant as wall-clock
//! time in the calendar's IANA time zone, so windows follow daylight saving time. Time zones come
//! from the tz database bundled into the binary.
//!
//! Must never: read the system clock or the system time zone, or touch the file system.

use std::fmt;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MINUTES_PER_DAY: u16 = 24 * 60;

/// A named set of weekly windows in one time zone, with dates that are never inside.
#[derive(Debug, Clone)]
pub struct Calendar {
    name: String,
    timezone: TimeZone,
    weekly: Vec<WeeklyWindow>,
    dates_off: Vec<DateRange>,
}

impl Calendar {
    /// A calendar with no windows yet (never inside). `timezone` is an IANA name such as
    /// `Europe/Berlin` or `UTC`.
    pub fn new(name: &str, timezone: &str) -> Result<Calendar, String> {
        let tz = TimeZone::get(timezone).map_err(|_| {
            format!(
                "unknown time zone \"{timezone}\"; use an IANA name like \"Europe/Berlin\", \
                 \"America/New_York\" or \"UTC\""
            )
        })?;
        Ok(Calendar {
            name: name.to_owned(),
            timezone: tz,
            weekly: Vec::new(),
            dates_off: Vec::new(),
        })
    }

    /// Adds a weekly window (see [`WeeklyWindow::parse`]).
    pub fn add_window(&mut self, window: WeeklyWindow) {
        self.weekly.push(window);
    }

    /// Adds local dates that are never inside the calendar.
    pub fn add_dates_off(&mut self, dates: DateRange) {
        self.dates_off.push(dates);
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn timezone(&self) -> &TimeZone {
        &self.timezone
    }

    /// True when `now`, read as wall-clock time in the calendar's time zone, falls in a weekly
    /// window and its local date is not a date off. A window that wraps past midnight
    /// (`sun 22:00-06:00`) belongs to the day it starts on, so Monday 03:00 is inside it.
    /// A date off wins over every window, including the tail of one that started the day before.
    pub fn contains(&self, now: Timestamp) -> bool {
        let local = now.to_zoned(self.timezone.clone());
        let date = local.date();
        if self.dates_off.iter().any(|off| off.contains(date)) {
            return false;
        }
        let day = weekday_index(local.weekday());
        let minute =
            u16::from(local.hour().unsigned_abs()) * 60 + u16::from(local.minute().unsigned_abs());
        self.weekly.iter().any(|w| w.contains(day, minute))
    }
}

/// One weekly window such as `mon-fri 08:00-18:00`: a set of days and a time span on each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyWindow {
    /// Monday is index 0.
    days: [bool; 7],
    /// Minutes after local midnight; `start` is inside, `end` is not.
    start: u16,
    end: u16,
}

impl WeeklyWindow {
    /// Parses `DAYS HH:MM-HH:MM`. Days are `mon`..`sun`, ranges `mon-fri` (may wrap: `fri-mon`)
    /// and lists `mon,wed,fri-sun`. `24:00` is allowed as an end. An end at or before the start
    /// wraps past midnight into the next day (`sun 22:00-06:00`; `mon 08:00-08:00` is 24 hours).
    pub fn parse(text: &str) -> Result<WeeklyWindow, String> {
        let example = "write it like \"mon-fri 08:00-18:00\" or \"sun 22:00-06:00\"";
        let mut parts = text.split_whitespace();
        let (Some(days), Some(times), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "\"{text}\" is not a weekly window: it needs days and a time span; {example}"
            ));
        };
        let days = parse_days(days)?;
        let Some((start, end)) = times.split_once('-') else {
            return Err(format!("\"{times}\" is not a time span; {example}"));
        };
        let start = parse_time(start, false)?;
        let end = parse_time(end, true)?;
        Ok(WeeklyWindow { days, start, end })
    }

    fn contains(&self, day: usize, minute: u16) -> bool {
        if self.start < self.end {
            self.days[day] && self.start <= minute && minute < self.end
        } else {
            let yesterday = (day + 6) % 7;
            (self.days[day] && minute >= self.start) || (self.days[yesterday] && minute < self.end)
        }
    }
}

impl fmt::Display for WeeklyWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<&str> = (0..7)
            .filter(|&d| self.days[d])
            .map(|d| DAY_NAMES[d])
            .collect();
        let (sh, sm, eh, em) = (
            self.start / 60,
            self.start % 60,
            self.end / 60,
            self.end % 60,
        );
        write!(f, "{} {sh:02}:{sm:02}-{eh:02}:{em:02}", days.join(","))
    }
}

/// Local dates, first to last inclusive: `2026-12-25` or `2026-12-24..2026-12-31`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateRange {
    first: Date,
    last: Date,
}

impl DateRange {
    pub fn parse(text: &str) -> Result<DateRange, String> {
        let (first, last) = match text.split_once("..") {
            Some((a, b)) => (parse_date(a)?, parse_date(b)?),
            None => {
                let d = parse_date(text)?;
                (d, d)
            }
        };
        if last < first {
            return Err(format!(
                "\"{text}\" ends before it starts; write the earlier date first"
            ));
        }
        Ok(DateRange { first, last })
    }

    fn contains(&self, date: Date) -> bool {
        self.first <= date && date <= self.last
    }
}

fn weekday_index(day: Weekday) -> usize {
    usize::from(day.to_monday_zero_offset().unsigned_abs())
}

fn parse_day(name: &str) -> Result<usize, String> {
    let lower = name.to_ascii_lowercase();
    DAY_NAMES.iter().position(|d| *d == lower).ok_or_else(|| {
        format!("unknown day \"{name}\"; write days as mon, tue, wed, thu, fri, sat, sun")
    })
}

fn parse_days(text: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for item in text.split(',') {
        match item.split_once('-') {
            Some((a, b)) => {
                let (first, last) = (parse_day(a)?, parse_day(b)?);
                let mut d = first;
                loop {
                    days[d] = true;
                    if d == last {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[parse_day(item)?] = true,
        }
    }
    Ok(days)
}

/// Parses `HH:MM` into minutes after midnight. `24:00` only when `is_end`.
fn parse_time(text: &str, is_end: bool) -> Result<u16, String> {
    let bad = || format!("\"{text}\" is not a time of day; write it as HH:MM, like 08:00 or 17:30");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || m.len() != 2 || !digits(m) {
        return Err(bad());
    }
    let (h, m): (u16, u16) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let minutes = h * 60 + m;
    if m >= 60 || minutes > MINUTES_PER_DAY || (minutes == MINUTES_PER_DAY && !is_end) {
        return Err(bad());
    }
    Ok(minutes)
}

fn parse_date(text: &str) -> Result<Date, String> {
    text.trim()
        .parse::<Date>()
        .map_err(|_| format!("\"{text}\" is not a date; write it as YYYY-MM-DD, like 2026-12-25"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expect: Result<&str, &str>) {
        match (WeeklyWindow::parse(input), expect) {
            (Ok(w), Ok(shown)) => assert_eq!(w.to_string(), shown, "{input}"),
            (Err(e), Err(part)) => assert!(e.contains(part), "{input}: {e}"),
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn weekly_windows() {
        check("mon-fri 08:00-18:00", Ok("mon,tue,wed,thu,fri 08:00-18:00"));
        check("sat 9:00-12:00", Ok("sat 09:00-12:00"));
        check("sun 22:00-06:00", Ok("sun 22:00-06:00"));
        check("fri-mon 00:00-24:00", Ok("mon,fri,sat,sun 00:00-24:00"));
        check("mon,wed 10:00-11:00", Ok("mon,wed 10:00-11:00"));
        check("MON 10:00-11:00", Ok("mon 10:00-11:00"));
        check("mon-fry 08:00-18:00", Err("unknown day \"fry\""));
        check("mon-fri", Err("needs days and a time span"));
        check("mon-fri 08:00 18:00", Err("needs days and a time span"));
        check("mon 0800-1800", Err("not a time of day"));
        check("mon 25:00-26:00", Err("not a time of day"));
        check("mon 08:60-09:00", Err("not a time of day"));
        check("mon 24:00-06:00", Err("not a time of day"));
        check("mon 08:00", Err("not a time span"));
    }

    #[test]
    fn date_ranges() {
        assert!(DateRange::parse("2026-12-25").is_ok());
        assert!(DateRange::parse("2026-12-24..2026-12-31").is_ok());
        let e = DateRange::parse("2026-12-31..2026-12-24").unwrap_err();
        assert!(e.contains("earlier date first"), "{e}");
        let e = DateRange::parse("25.12.2026").unwrap_err();
        assert!(e.contains("YYYY-MM-DD"), "{e}");
    }

    #[test]
    fn unknown_time_zone() {
        let e = Calendar::new("c", "Europe/Berln").unwrap_err();
        assert!(e.contains("IANA"), "{e}");
        assert!(Calendar::new("c", "Europe/Berlin").is_ok());
    }
}
