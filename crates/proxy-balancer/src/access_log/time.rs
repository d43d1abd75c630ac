//! `%t` and `%{format}t`: civil time in UTC without a date crate.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const MONTHS_LONG: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const DAYS_LONG: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The `strftime` conversions `%{format}t` understands.
const CONVERSIONS: &[u8] = b"aAbBdDeFhHIjmMnpRsStTuwyYzZ%";

/// Which time a `%t` shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TimePoint {
    /// When the request was received (Apache's default, `begin:`).
    Begin,
    /// When the response ended (`end:`).
    End,
}

#[derive(Clone, Debug)]
pub(super) enum TimeKind {
    /// `[04/Dec/2026:11:25:36 +0000]`.
    Clf,
    Sec,
    Msec,
    Usec,
    MsecFrac,
    UsecFrac,
    Strftime(Box<[Part]>),
}

#[derive(Clone, Debug)]
pub(super) enum Part {
    Literal(Box<str>),
    Conversion(u8),
}

/// A `%t` or `%{format}t`.
#[derive(Clone, Debug)]
pub(super) struct TimeFormat {
    pub(super) at: TimePoint,
    pub(super) kind: TimeKind,
}

impl TimeFormat {
    pub(super) const fn clf() -> Self {
        Self {
            at: TimePoint::Begin,
            kind: TimeKind::Clf,
        }
    }

    /// The argument of `%{…}t`.
    pub(super) fn parse(arg: &str) -> Result<Self, &'static str> {
        let (at, rest) = if let Some(rest) = arg.strip_prefix("begin:") {
            (TimePoint::Begin, rest)
        } else if let Some(rest) = arg.strip_prefix("end:") {
            (TimePoint::End, rest)
        } else {
            (TimePoint::Begin, arg)
        };
        let kind = match rest {
            "sec" => TimeKind::Sec,
            "msec" => TimeKind::Msec,
            "usec" => TimeKind::Usec,
            "msec_frac" => TimeKind::MsecFrac,
            "usec_frac" => TimeKind::UsecFrac,
            "" => TimeKind::Clf,
            pattern => TimeKind::Strftime(strftime(pattern)?),
        };
        Ok(Self { at, kind })
    }

    pub(super) fn render(&self, out: &mut String, begin: SystemTime, end: SystemTime) {
        let time = match self.at {
            TimePoint::Begin => begin,
            TimePoint::End => end,
        };
        let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        let civil = Civil::from_secs(since.as_secs());
        match &self.kind {
            TimeKind::Clf => {
                // Digit by digit: what `write!` wrote, with a fraction of its instructions
                // (this runs for every logged request).
                out.push('[');
                push_two(out, civil.day);
                out.push('/');
                out.push_str(MONTHS[civil.month0()]);
                out.push('/');
                match u32::try_from(civil.year) {
                    Ok(year) if (1000..=9999).contains(&year) => {
                        push_two(out, year / 100);
                        push_two(out, year % 100);
                    }
                    _ => {
                        let _ = write!(out, "{}", civil.year);
                    }
                }
                out.push(':');
                push_two(out, civil.hour);
                out.push(':');
                push_two(out, civil.minute);
                out.push(':');
                push_two(out, civil.second);
                out.push_str(" +0000]");
            }
            TimeKind::Sec => {
                let _ = write!(out, "{}", since.as_secs());
            }
            TimeKind::Msec => {
                let _ = write!(out, "{}", since.as_millis());
            }
            TimeKind::Usec => {
                let _ = write!(out, "{}", since.as_micros());
            }
            TimeKind::MsecFrac => {
                let _ = write!(out, "{:03}", since.subsec_millis());
            }
            TimeKind::UsecFrac => {
                let _ = write!(out, "{:06}", since.subsec_micros());
            }
            TimeKind::Strftime(parts) => {
                for part in parts.iter() {
                    match part {
                        Part::Literal(text) => out.push_str(text),
                        Part::Conversion(c) => civil.conversion(out, *c, since.as_secs()),
                    }
                }
            }
        }
    }
}

/// `n` as `{:02}` writes it.
fn push_two(out: &mut String, n: u32) {
    if n < 100 {
        out.push(char::from_digit(n / 10, 10).unwrap_or('0'));
        out.push(char::from_digit(n % 10, 10).unwrap_or('0'));
    } else {
        let _ = write!(out, "{n:02}");
    }
}

fn strftime(pattern: &str) -> Result<Box<[Part]>, &'static str> {
    let mut parts = Vec::new();
    let mut literal = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            literal.push(c);
            continue;
        }
        let Some(conv) = chars.next() else {
            return Err("the time format ends with a lone %");
        };
        let byte = u8::try_from(conv).unwrap_or(0);
        if !CONVERSIONS.contains(&byte) || !conv.is_ascii() {
            return Err("a strftime conversion outside %a %A %b %B %d %D %e %F %h %H %I %j %m %M %n %p %R %s %S %t %T %u %w %y %Y %z %Z %%");
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(std::mem::take(&mut literal).into_boxed_str()));
        }
        parts.push(Part::Conversion(byte));
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(literal.into_boxed_str()));
    }
    Ok(parts.into_boxed_slice())
}

/// A UTC date and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Civil {
    pub(super) year: i64,
    /// 1 to 12.
    pub(super) month: u32,
    /// 1 to 31.
    pub(super) day: u32,
    pub(super) hour: u32,
    pub(super) minute: u32,
    pub(super) second: u32,
    /// 0 is Sunday.
    pub(super) weekday: u32,
    /// 1 to 366.
    pub(super) yearday: u32,
}

impl Civil {
    /// Seconds since the Unix epoch to a date (Howard Hinnant's `civil_from_days`).
    pub(super) fn from_secs(secs: u64) -> Self {
        // u64 seconds / 86400 fits in i64.
        let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
        let rem = secs % 86_400;
        let (year, month, day) = civil_from_days(days);
        let yearday = days - days_from_civil(year, 1, 1) + 1;
        Self {
            year,
            month,
            day,
            // All below 86400 / 3600 etc.: the casts cannot truncate.
            hour: (rem / 3600) as u32,
            minute: (rem / 60 % 60) as u32,
            second: (rem % 60) as u32,
            weekday: (days + 4).rem_euclid(7) as u32,
            yearday: yearday as u32,
        }
    }

    const fn month0(&self) -> usize {
        (self.month as usize).saturating_sub(1) % 12
    }

    fn conversion(&self, out: &mut String, c: u8, epoch: u64) {
        let _ = match c {
            b'a' => write!(out, "{}", DAYS[self.weekday as usize % 7]),
            b'A' => write!(out, "{}", DAYS_LONG[self.weekday as usize % 7]),
            b'b' | b'h' => write!(out, "{}", MONTHS[self.month0()]),
            b'B' => write!(out, "{}", MONTHS_LONG[self.month0()]),
            b'd' => write!(out, "{:02}", self.day),
            b'D' => write!(
                out,
                "{:02}/{:02}/{:02}",
                self.month,
                self.day,
                self.year.rem_euclid(100)
            ),
            b'e' => write!(out, "{:2}", self.day),
            b'F' => write!(out, "{}-{:02}-{:02}", self.year, self.month, self.day),
            b'H' => write!(out, "{:02}", self.hour),
            b'I' => write!(out, "{:02}", (self.hour + 11) % 12 + 1),
            b'j' => write!(out, "{:03}", self.yearday),
            b'm' => write!(out, "{:02}", self.month),
            b'M' => write!(out, "{:02}", self.minute),
            b'n' => writeln!(out),
            b'p' => write!(out, "{}", if self.hour < 12 { "AM" } else { "PM" }),
            b'R' => write!(out, "{:02}:{:02}", self.hour, self.minute),
            b's' => write!(out, "{epoch}"),
            b'S' => write!(out, "{:02}", self.second),
            b't' => write!(out, "\t"),
            b'T' => write!(
                out,
                "{:02}:{:02}:{:02}",
                self.hour, self.minute, self.second
            ),
            b'u' => write!(out, "{}", (self.weekday + 6) % 7 + 1),
            b'w' => write!(out, "{}", self.weekday),
            b'y' => write!(out, "{:02}", self.year.rem_euclid(100)),
            b'Y' => write!(out, "{}", self.year),
            b'z' => write!(out, "+0000"),
            b'Z' => write!(out, "UTC"),
            _ => write!(out, "%"),
        };
    }
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn dates_match_known_points() {
        // date -u -d @0, @951782400 (a leap day), @1796304336.
        assert_eq!(
            Civil::from_secs(0),
            Civil {
                year: 1970,
                month: 1,
                day: 1,
                hour: 0,
                minute: 0,
                second: 0,
                weekday: 4,
                yearday: 1
            }
        );
        let leap = Civil::from_secs(951_782_400);
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
        assert_eq!(leap.yearday, 60);
        let mut out = String::new();
        TimeFormat::clf().render(&mut out, at(1_796_383_536), at(0));
        assert_eq!(out, "[04/Dec/2026:11:25:36 +0000]");
        // Digits written by hand: every width, and a year past 9999.
        for (secs, line) in [
            (0, "[01/Jan/1970:00:00:00 +0000]"),
            (1_796_383_536 - 11 * 3600, "[04/Dec/2026:00:25:36 +0000]"),
            (971_567_999, "[14/Oct/2000:23:59:59 +0000]"),
            (253_402_300_800, "[01/Jan/10000:00:00:00 +0000]"),
        ] {
            let mut out = String::new();
            TimeFormat::clf().render(&mut out, at(secs), at(0));
            assert_eq!(out, line, "{secs}");
        }
        let mut two = String::new();
        for n in [0, 7, 10, 99, 100, 12345] {
            push_two(&mut two, n);
            two.push(' ');
        }
        assert_eq!(two, "00 07 10 99 100 12345 ");
    }

    #[test]
    fn every_day_round_trips() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn strftime_patterns() {
        let mut out = String::new();
        let format = TimeFormat::parse("end:%Y-%m-%dT%H:%M:%S%z %a %j %e %I%p %%").unwrap();
        assert_eq!(format.at, TimePoint::End);
        format.render(&mut out, at(0), at(1_796_383_536));
        assert_eq!(out, "2026-12-04T11:25:36+0000 Fri 338  4 11AM %");
        let mut out = String::new();
        TimeFormat::parse("msec_frac").unwrap().render(
            &mut out,
            at(0) + Duration::from_millis(7),
            at(0),
        );
        assert_eq!(out, "007");
        assert!(TimeFormat::parse("%c").is_err());
        assert!(TimeFormat::parse("%Y %").is_err());
    }
}
