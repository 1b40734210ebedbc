//! Who a uid is on this machine (through NSS, so LDAP/SSSD users work): login name, primary
//! group and the names of all their groups.
//!
//! Must never: take a name or a group from the caller; only from the uid the kernel reported.

use std::collections::HashMap;
use std::ffi::CString;
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::unistd::{getgrouplist, Group, Uid, User};

/// The requester as the system knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<String>,
}

/// Group names by gid, kept for a minute: resolving each gid through NSS (with systemd's userdb
/// and LDAP behind it) on every request is the slowest part of a decision. Membership itself is
/// read fresh every time, so removing someone from a group takes effect at once.
#[derive(Debug, Default)]
pub struct GroupNames(HashMap<u32, (String, Instant)>);

const GROUP_NAME_TTL: Duration = Duration::from_secs(60);

impl GroupNames {
    fn name(&mut self, gid: nix::unistd::Gid) -> Option<String> {
        if let Some((name, at)) = self.0.get(&gid.as_raw()) {
            if at.elapsed() < GROUP_NAME_TTL {
                return Some(name.clone());
            }
        }
        let name = Group::from_gid(gid).ok().flatten()?.name;
        self.0.insert(gid.as_raw(), (name.clone(), Instant::now()));
        Some(name)
    }
}

/// The human logins of this machine's own user database (`/etc/passwd`): uids from 1000 to
/// 60000 (login.defs' UID_MIN and UID_MAX), which the server shows the helpdesk behind a
/// challenge's uid. Directory users (LDAP, SSSD) are not listed; the server learns them from
/// their requests.
pub fn human_logins(passwd: &str) -> Vec<(u32, String)> {
    let mut users: Vec<(u32, String)> = passwd
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let uid: u32 = fields.nth(1)?.parse().ok()?;
            let plain = !name.is_empty()
                && name.len() <= elevate_proto::v1::MAX_NAME
                && !name.chars().any(|c| c.is_control() || c.is_whitespace());
            ((1000..=60000).contains(&uid) && plain).then(|| (uid, name.to_owned()))
        })
        .collect();
    users.sort();
    users.dedup_by_key(|u| u.0);
    users.truncate(elevate_proto::v1::MAX_DEVICE_USERS);
    users
}

/// Looks a uid up.
pub fn lookup(uid: u32, names: &mut GroupNames) -> anyhow::Result<Caller> {
    let user = User::from_uid(Uid::from_raw(uid))
        .context("cannot read the user database")?
        .with_context(|| {
            format!("uid {uid} has no user entry; refusing to act for an unknown user")
        })?;
    let name = CString::new(user.name.as_bytes()).context("a user name with a NUL byte")?;
    let gids = getgrouplist(&name, user.gid).context("cannot read the group database")?;
    let mut groups = Vec::new();
    for gid in gids {
        if let Some(name) = names.name(gid) {
            if !groups.contains(&name) {
                groups.push(name);
            }
        }
    }
    Ok(Caller {
        name: user.name,
        uid,
        gid: user.gid.as_raw(),
        groups,
    })
}

/// The uid of login `name`, if there is one.
pub fn uid_of(name: &str) -> Option<u32> {
    User::from_name(name).ok().flatten().map(|u| u.uid.as_raw())
}

/// The login name of `uid`, if there is one.
pub fn name_of(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
}

/// The name of group `gid`, if there is one.
pub fn group_name(gid: u32) -> Option<String> {
    Group::from_gid(nix::unistd::Gid::from_raw(gid))
        .ok()
        .flatten()
        .map(|g| g.name)
}

/// The gid of group `name`, if there is one.
pub fn gid_of(name: &str) -> Option<u32> {
    Group::from_name(name)
        .ok()
        .flatten()
        .map(|g| g.gid.as_raw())
}

#[cfg(test)]
mod tests {
    #[test]
    fn human_logins_are_the_uids_from_1000_to_60000_with_plain_names() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
            alice:x:1000:1000:Alice:/home/alice:/bin/bash\n\
            nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
            bob:x:1001:1001::/home/bob:/bin/sh\n\
            broken line\n\
            bad\u{7}name:x:1002:1002::/:/bin/sh\n\
            carol:x:notanumber:1:::\n";
        assert_eq!(
            super::human_logins(passwd),
            vec![(1000, "alice".to_string()), (1001, "bob".to_string())]
        );
    }

    #[test]
    fn root_is_found_with_its_groups() {
        let mut names = super::GroupNames::default();
        let root = super::lookup(0, &mut names).unwrap();
        assert_eq!(root.name, "root");
        assert!(root.groups.contains(&"root".to_string()));
        assert_eq!(
            super::lookup(0, &mut names).unwrap(),
            root,
            "cached names agree"
        );
        assert!(super::lookup(4_000_000_000, &mut names).is_err());
    }
}
