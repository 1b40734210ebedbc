//! Discovery's observations added up by rollup key before anything is written: on SQLite a
//! roll-up round adds up its pending batches here without holding the writer lock, then
//! writes the sums (see `rollups::write_sums`); PostgreSQL adds up one batch.
//!
//! Must never: count an observation twice or under another key than its own (its month and
//! day of the month, hour, login, host, program, origin, outcome, system).

use std::collections::{BTreeMap, HashMap};

use super::pending::Observed;
use super::rollups::{month_of, outcome_name, DAY_MS, HOUR_MS};
use super::Result;

/// A month's key with names by their place in `Sums::names`: (month, origin, login, host,
/// program, outcome, system).
pub(super) type MonthKey = (i64, i64, u32, u32, u32, i64, bool);
/// Runs, first and last milliseconds, and runs per day of the month.
pub(super) type MonthSums = (i64, i64, i64, [i32; 31]);

/// Observations added up by rollup key before anything is written (on SQLite outside the
/// writer lock, see `pending`): names by their place in `names`, runs per day of the month
/// and per hour of the day, everyone's runs per hour, and programs' binaries.
#[derive(Default)]
pub(super) struct Sums {
    pub(super) events: u64,
    pub(super) names: Vec<String>,
    index: HashMap<String, u32>,
    pub(super) months: HashMap<MonthKey, MonthSums>,
    /// People's runs that ran per (login, host, day, origin): runs per hour of the day.
    pub(super) login_days: HashMap<(u32, u32, i64, i64), [i32; 24]>,
    pub(super) totals: BTreeMap<(i64, i64, i64, bool), i64>,
    /// program → package, SHA-256, first and last milliseconds.
    pub(super) programs: HashMap<u32, (Option<String>, Option<String>, i64, i64)>,
}

impl Sums {
    fn name(&mut self, name: &str) -> u32 {
        if let Some(i) = self.index.get(name) {
            return *i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_owned());
        self.index.insert(name.to_owned(), i);
        i
    }

    /// Adds observations.
    pub(super) fn add<S: AsRef<str>>(&mut self, new: &[Observed<S>]) -> Result<()> {
        for Observed(_, ms, user, host, program, origin, outcome, system, package, sha256) in new {
            let (ms, origin, outcome, system) = (*ms, *origin, *outcome, *system);
            outcome_name(outcome)?;
            let (month, dom) = month_of(ms.div_euclid(DAY_MS));
            let (user, host) = (self.name(user.as_ref()), self.name(host.as_ref()));
            let program = self.name(program.as_ref());
            let m = self
                .months
                .entry((month, origin, user, host, program, outcome, system))
                .or_insert((0, ms, ms, [0; 31]));
            m.0 += 1;
            m.1 = m.1.min(ms);
            m.2 = m.2.max(ms);
            m.3[dom - 1] += 1;
            if !system && outcome == 0 {
                self.login_days
                    .entry((user, host, ms.div_euclid(DAY_MS), origin))
                    .or_insert([0; 24])[(ms.rem_euclid(DAY_MS) / HOUR_MS) as usize] += 1;
            }
            *self
                .totals
                .entry((ms.div_euclid(HOUR_MS), origin, outcome, system))
                .or_default() += 1;
            let p = self.programs.entry(program).or_insert((None, None, ms, ms));
            if package.is_some() && ms >= p.3 {
                p.0 = package.as_ref().map(|s| s.as_ref().to_owned());
            }
            if sha256.is_some() && ms >= p.3 {
                p.1 = sha256.as_ref().map(|s| s.as_ref().to_owned());
            }
            p.2 = p.2.min(ms);
            p.3 = p.3.max(ms);
            self.events += 1;
        }
        Ok(())
    }
}
