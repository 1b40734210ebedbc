//! Who a uid is on this machine (through NSS, so LDAP/SSSD users work): login name, primary
//! group and the names of all their groups.
//!
//! Must never: take a name or a group from the caller; only from the uid the kernel reported.

use std::ffi::CString;

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

/// Looks a uid up.
pub fn lookup(uid: u32) -> anyhow::Result<Caller> {
    let user = User::from_uid(Uid::from_raw(uid))
        .context("cannot read the user database")?
        .with_context(|| {
            format!("uid {uid} has no user entry; refusing to act for an unknown user")
        })?;
    let name = CString::new(user.name.as_bytes()).context("a user name with a NUL byte")?;
    let gids = getgrouplist(&name, user.gid).context("cannot read the group database")?;
    let mut groups = Vec::new();
    for gid in gids {
        if let Ok(Some(g)) = Group::from_gid(gid) {
            if !groups.contains(&g.name) {
                groups.push(g.name);
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

#[cfg(test)]
mod tests {
    #[test]
    fn root_is_found_with_its_groups() {
        let root = super::lookup(0).unwrap();
        assert_eq!(root.name, "root");
        assert!(root.groups.contains(&"root".to_string()));
        assert!(super::lookup(4_000_000_000).is_err());
    }
}
