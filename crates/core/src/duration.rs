//! Human durations in policy text and on the command line: `90s`, `15m`, `2h`, `1h30m`, `7d`.
//!
//! Must never: accept a negative or zero duration where a length of time is meant.

use jiff::SignedDuration;

/// Parses `1h30m`, `15m`, `45s`, `2d` (units d, h, m, s; at least one; no sign).
pub fn parse(text: &str) -> Result<SignedDuration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration; write it like `15m`, `2h` or `1h30m`".into());
    }
    let mut total: i64 = 0;
    let mut number = String::new();
    let mut saw_unit = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit: i64 = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            ' ' if number.is_empty() => continue,
            _ => {
                return Err(format!(
                    "`{t}` is not a duration; use a number followed by d, h, m or s, like `1h30m`"
                ))
            }
        };
        let n: i64 = number
            .parse()
            .map_err(|_| format!("`{t}` is not a duration; a unit needs a number before it"))?;
        number.clear();
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("`{t}` is too long"))?;
        saw_unit = true;
    }
    if !number.is_empty() || !saw_unit {
        return Err(format!(
            "`{t}` has no unit; write `{t}m` for minutes or `{t}h` for hours"
        ));
    }
    if total == 0 {
        return Err(format!(
            "`{t}` is zero; a duration must be longer than that"
        ));
    }
    Ok(SignedDuration::from_secs(total))
}

/// Formats a duration the way `parse` reads it (`1h30m`).
pub fn format(d: SignedDuration) -> String {
    let mut secs = d.as_secs().max(0);
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, len) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if secs >= len {
            out.push_str(&format!("{}{unit}", secs / len));
            secs %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, expect: Result<i64, &str>) {
        match (parse(input), expect) {
            (Ok(d), Ok(secs)) => assert_eq!(d.as_secs(), secs, "{input}"),
            (Err(e), Err(part)) => assert!(e.contains(part), "{input}: {e}"),
            (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn durations() {
        check("15m", Ok(900));
        check("2h", Ok(7200));
        check("1h30m", Ok(5400));
        check("1h 30m", Ok(5400));
        check("2d", Ok(172_800));
        check("45s", Ok(45));
        check("", Err("empty"));
        check("15", Err("no unit"));
        check("1x", Err("not a duration"));
        check("-5m", Err("not a duration"));
        check("0m", Err("zero"));
        check("h", Err("needs a number"));
        check("99999999999999999d", Err("too long"));
    }

    #[test]
    fn format_round_trips() {
        for s in ["15m", "2h", "1h30m", "2d", "45s", "1d2h3m4s"] {
            assert_eq!(format(parse(s).unwrap()), s);
        }
    }
}
