//! Frequency segments as the policy uses them (`who = { segment = "low" }`): who is in which,
//! measured over the 30 days to today with the policy's `[segments]` thresholds, and the
//! logins of a device that are those people's. Also the directory's answer to "whose is this
//! login on this host", which the reports share.
//!
//! Must never: give a segment to a login the directory does not tie to one person on that
//! device (names decide nothing), or to a device that did not ask for its own.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use elevate_core::discovery::{self as analytics, Segment, Thresholds, Usage};
use elevate_core::policy::SEGMENT_GROUP;
use jiff::Timestamp;

use super::people::{narrowest, narrowest_by};
use super::{App, ReportParams, Result};

/// Measured segments are used this long before they are measured again.
const FRESH_FOR: jiff::SignedDuration = jiff::SignedDuration::from_mins(10);

/// Segments measured at a time with some thresholds: person → segment.
pub(crate) type Measured = (Timestamp, Thresholds, Arc<HashMap<String, Segment>>);

/// One owner of a login: person, department, and the scope where the login is theirs.
pub(crate) type Owner = (Arc<str>, Option<Arc<str>>, String);

/// Who is behind a login on a host, from the directory.
pub(crate) struct People {
    /// login → its owners
    pub(crate) logins: HashMap<String, Vec<Owner>>,
    /// person → department and their logins
    pub(crate) people: HashMap<String, (Option<String>, Vec<String>)>,
    pub(crate) tags: HashMap<String, Vec<String>>,
}

impl People {
    /// (who, a person of the directory, department).
    /// A rollup row as core's analytics take it, its login resolved to a person.
    pub(crate) fn usage_of(&self, r: crate::store::UsageRow) -> Usage {
        let (who, person, department) = match self.owner(&r.user_name, &r.host) {
            Some((person, dep)) => (person.clone(), true, dep.clone()),
            None => (r.user_name.clone(), false, None),
        };
        Usage {
            who,
            person,
            department,
            login: r.user_name,
            host: r.host,
            program: r.program,
            outcome: r.outcome,
            system: r.system,
            runs: r.runs,
            days: r.days,
            first: r.first,
            last: r.last,
        }
    }

    pub(crate) fn resolve(&self, login: &str, host: &str) -> (Arc<str>, bool, Option<Arc<str>>) {
        match self.owner(login, host) {
            Some((person, dep)) => (person.clone(), true, dep.clone()),
            None => (login.into(), false, None),
        }
    }

    /// The one person (and their department) whose `login` is on `host`, if one is.
    fn owner(&self, login: &str, host: &str) -> Option<(&Arc<str>, &Option<Arc<str>>)> {
        let tags = self.tags.get(host).map_or(&[][..], Vec::as_slice);
        let owners = self.logins.get(login)?;
        match narrowest_by(owners, |o| o.2.as_str(), host, tags).as_slice() {
            [(person, dep, _)] => Some((person, dep)),
            _ => None,
        }
    }
}

impl App {
    /// The directory's logins and people, with every enrolled device's tags (for resolving
    /// logins on any host).
    pub(crate) async fn directory_people(&self) -> Result<People> {
        let mut directory = self.directory_logins().await?;
        directory.tags = self
            .store
            .devices()
            .await?
            .into_iter()
            .map(|d| (d.name, d.tags))
            .collect();
        Ok(directory)
    }

    /// The directory's logins and people, without devices' tags.
    async fn directory_logins(&self) -> Result<People> {
        let mut logins: HashMap<String, Vec<Owner>> = HashMap::new();
        let mut people = HashMap::new();
        for p in self.store.people().await? {
            for (login, scope) in &p.logins {
                logins.entry(login.clone()).or_default().push((
                    Arc::from(p.user_name.as_str()),
                    p.department.as_deref().map(Arc::from),
                    scope.clone(),
                ));
            }
            let own = p.logins.iter().map(|(l, _)| l.clone()).collect();
            people.insert(p.user_name.clone(), (p.department.clone(), own));
        }
        Ok(People {
            logins,
            people,
            tags: HashMap::new(),
        })
    }

    /// Every person of the directory who elevated in the 30 days to today, in a segment by the
    /// thresholds (people who did not are low); measured again after `FRESH_FOR`.
    async fn person_segments(
        &self,
        thresholds: Thresholds,
    ) -> Result<Arc<HashMap<String, Segment>>> {
        let now = self.now();
        let mut cache = self.segment_cache.lock().await;
        if let Some((at, t, measured)) = cache.as_ref() {
            if *t == thresholds && now.duration_since(*at) < FRESH_FOR {
                return Ok(measured.clone());
            }
        }
        let (since_day, until_day) = super::reports::period(&ReportParams::default(), now)?;
        let directory = self.directory_people().await?;
        let usage: Vec<Usage> = self
            .store
            .usage(since_day, until_day)
            .await?
            .into_iter()
            .map(|r| directory.usage_of(r))
            .filter(|u| u.person)
            .collect();
        let days = (until_day - since_day) as u64;
        let measured: HashMap<String, Segment> = analytics::segments(&usage, thresholds, days)
            .into_iter()
            .map(|s| (s.who, s.segment))
            .collect();
        let measured = Arc::new(measured);
        *cache = Some((now, thresholds, measured.clone()));
        Ok(measured)
    }

    /// The segment of each login on a device that the directory ties to one person there.
    pub(crate) async fn device_segments(
        &self,
        device: &str,
        tags: &[String],
        thresholds: Thresholds,
    ) -> Result<BTreeMap<String, String>> {
        let measured = self.person_segments(thresholds).await?;
        let mut directory = self.directory_logins().await?;
        directory.tags.insert(device.to_owned(), tags.to_vec());
        let mut out = BTreeMap::new();
        for login in directory.logins.keys() {
            let (who, person, _) = directory.resolve(login, device);
            if person {
                let segment = measured.get(&*who).copied().unwrap_or(Segment::Low);
                out.insert(login.clone(), segment.as_str().to_owned());
            }
        }
        Ok(out)
    }

    /// A request's groups as the policy sees them on the server: whatever segment the device
    /// claimed is dropped, and the server's own measure is added.
    pub(crate) async fn measured_groups(
        &self,
        policy: &elevate_core::Policy,
        subject: &mut elevate_core::Subject,
    ) -> Result<()> {
        subject.groups.retain(|g| !g.starts_with(SEGMENT_GROUP));
        if !policy.uses_segments() {
            return Ok(());
        }
        // Only the requester's login is looked up, as separation of duties does.
        let owners = self
            .store
            .directory()
            .await?
            .login_owners(&subject.user)
            .await?;
        if let [owner] = narrowest(owners, &subject.device, &subject.device_tags).as_slice() {
            let measured = self.person_segments(policy.segment_thresholds()).await?;
            let segment = measured
                .get(&owner.user_name)
                .copied()
                .unwrap_or(Segment::Low);
            subject
                .groups
                .push(format!("{SEGMENT_GROUP}{}", segment.as_str()));
        }
        Ok(())
    }
}
