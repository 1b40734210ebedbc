//! Slowing password guessing down without locking anyone out. Failed sign-ins are counted per
//! account and source together (someone guessing from one place does not slow the account's
//! owner elsewhere), per source (one place trying many accounts), and per account (many places
//! trying one). Past a few free failures, each key waits a delay that doubles with every further
//! failure, up to a cap; a key is forgotten a quarter of an hour after its last failure.
//!
//! Must never: grow without bound (at most `MAX_TRACKED` keys), let parallel guesses past the
//! count (tries are counted before their password is checked), or keep anyone out for longer
//! than the cap of the keys they share with the guesser.

use std::collections::HashMap;
use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};

/// What a failure is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// This account from this source (`None`: the source is not known).
    Pair(String, Option<IpAddr>),
    Source(IpAddr),
    Account(String),
}

/// Free failures, then a doubling delay from one second up to the cap.
struct Rule {
    free: u32,
    cap: SignedDuration,
}

const PAIR: Rule = Rule {
    free: 5,
    cap: SignedDuration::from_secs(60),
};
const SOURCE: Rule = Rule {
    free: 20,
    cap: SignedDuration::from_secs(300),
};
const ACCOUNT: Rule = Rule {
    free: 50,
    cap: SignedDuration::from_secs(60),
};

/// Free failures of one account from one source before tries slow down.
pub const FREE_FAILURES: u32 = PAIR.free;
/// A key is forgotten this long after its last failure.
const FORGET_AFTER: SignedDuration = SignedDuration::from_mins(15);
/// Most keys kept; past it, forgotten keys go first, then the longest quiet.
pub const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last: Timestamp,
}

/// Failed sign-ins, per server process.
#[derive(Debug, Default)]
pub struct Failures(HashMap<Key, Entry>);

fn keys(name: &str, source: Option<IpAddr>) -> Vec<(Key, &'static Rule)> {
    let mut keys = vec![
        (Key::Pair(name.to_owned(), source), &PAIR),
        (Key::Account(name.to_owned()), &ACCOUNT),
    ];
    if let Some(ip) = source {
        keys.push((Key::Source(ip), &SOURCE));
    }
    keys
}

impl Rule {
    /// When the next try may come after `e`.
    fn not_before(&self, e: &Entry) -> Timestamp {
        if e.failures < self.free {
            return e.last;
        }
        let doublings = (e.failures - self.free).min(16);
        let delay = SignedDuration::from_secs(1i64 << doublings).min(self.cap);
        e.last.checked_add(delay).unwrap_or(e.last)
    }
}

impl Failures {
    /// When `name` may try again from `source`, if not now.
    pub fn wait_until(
        &mut self,
        name: &str,
        source: Option<IpAddr>,
        now: Timestamp,
    ) -> Option<Timestamp> {
        let mut until = None;
        for (key, rule) in keys(name, source) {
            let Some(entry) = self.0.get(&key).copied() else {
                continue;
            };
            if now.duration_since(entry.last) >= FORGET_AFTER {
                self.0.remove(&key);
                continue;
            }
            let at = rule.not_before(&entry);
            if at > now && until.is_none_or(|u| at > u) {
                until = Some(at);
            }
        }
        until
    }

    /// Counts a try before its password is checked, so parallel guesses count too.
    pub fn record(&mut self, name: &str, source: Option<IpAddr>, now: Timestamp) {
        for (key, _) in keys(name, source) {
            if !self.0.contains_key(&key) && self.0.len() >= MAX_TRACKED {
                self.make_room(now);
            }
            let entry = self.0.entry(key).or_insert(Entry {
                failures: 0,
                last: now,
            });
            entry.failures += 1;
            entry.last = now;
        }
    }

    /// The right password from `source`: that pair starts afresh (the source and the account
    /// keep their counts, which only a quiet quarter of an hour clears).
    pub fn succeeded(&mut self, name: &str, source: Option<IpAddr>) {
        self.0.remove(&Key::Pair(name.to_owned(), source));
    }

    fn make_room(&mut self, now: Timestamp) {
        self.0
            .retain(|_, e| now.duration_since(e.last) < FORGET_AFTER);
        if self.0.len() >= MAX_TRACKED {
            // Still full of recent failures: the quietest tenth goes at once (not one per new
            // key, which would cost a scan of the whole map for each).
            let mut lasts: Vec<Timestamp> = self.0.values().map(|e| e.last).collect();
            let (_, cut, _) = lasts.select_nth_unstable(MAX_TRACKED / 10);
            let cut = *cut;
            self.0.retain(|_, e| e.last > cut);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + secs).unwrap()
    }

    #[test]
    fn the_delay_doubles_past_the_free_failures_up_to_its_cap() {
        let mut f = Failures::default();
        let here = Some("192.0.2.1".parse().unwrap());
        for _ in 0..FREE_FAILURES - 1 {
            f.record("ann", here, at(0));
        }
        assert_eq!(f.wait_until("ann", here, at(0)), None);
        f.record("ann", here, at(0));
        assert_eq!(f.wait_until("ann", here, at(0)), Some(at(1)));
        f.record("ann", here, at(1));
        assert_eq!(f.wait_until("ann", here, at(1)), Some(at(3)));
        // The pair's delay stops doubling at a minute (an unknown source: no source key).
        for n in 0..20 {
            f.record("bob", None, at(100 + n));
        }
        assert_eq!(
            f.wait_until("bob", None, at(119)),
            Some(at(179)),
            "capped at a minute"
        );
        // Elsewhere, the owner is not slowed by this.
        let elsewhere = Some("198.51.100.7".parse().unwrap());
        assert_eq!(f.wait_until("ann", elsewhere, at(119)), None);
        // A quiet quarter of an hour forgets it all.
        assert_eq!(f.wait_until("ann", here, at(1 + 15 * 60)), None);
    }

    #[test]
    fn one_source_trying_many_accounts_is_slowed_too() {
        let mut f = Failures::default();
        let here = Some("192.0.2.9".parse().unwrap());
        for n in 0..SOURCE.free {
            f.record(&format!("user{n}"), here, at(0));
        }
        assert_eq!(f.wait_until("someone-else", here, at(0)), Some(at(1)));
        assert_eq!(f.wait_until("someone-else", None, at(0)), None);
    }

    #[test]
    fn the_map_stays_bounded() {
        let mut f = Failures::default();
        for n in 0..(MAX_TRACKED as u32 + 5_000) {
            let ip = IpAddr::from(n.to_be_bytes());
            f.record("ann", Some(ip), at(i64::from(n % 60)));
        }
        assert!(f.len() <= MAX_TRACKED, "{}", f.len());
    }
}
