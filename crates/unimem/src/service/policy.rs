//! Who may use the service, decided from the peer's credentials.
//!
//! Admission is by the credentials the kernel attaches to the connection
//! (`SO_PEERCRED` for the uid and primary gid, `SO_PEERGROUPS` for the
//! supplementary groups), never by anything the client says. Root is always
//! admitted: root can read every pagemap itself, so refusing it protects
//! nothing. So is the uid the service runs as.
//!
//! The socket's own mode follows the policy, so the file system refuses
//! first where it can: root only → `0600`; exactly one group and no uids →
//! owned by that group, `0660`; anything else → `0666`, and the peer
//! credentials decide.

use crate::error::{Error, ErrorKind, Result};

/// Uids and gids the service admits besides root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// Users admitted by uid (`--allow-uid`).
    pub allow_uids: Vec<u32>,
    /// Groups whose members are admitted, by primary or supplementary gid
    /// (`--allow-gid`).
    pub allow_gids: Vec<u32>,
    /// Members of these groups are administrators, like root: admitted,
    /// free of the per-uid limits, and served from the connection slots
    /// kept for administrators.
    pub admin_gids: Vec<u32>,
}

/// The credentials of a connected client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// The client's pid when it connected (0 if the kernel could not tell).
    pub pid: i32,
    /// Its uid.
    pub uid: u32,
    /// Its primary gid.
    pub gid: u32,
    /// Supplementary groups (empty if the kernel could not tell).
    pub groups: Vec<u32>,
}

impl Policy {
    /// Whether `peer` is an administrator: root, the service's own uid, or
    /// a member of an `--admin-gid` group.
    pub fn is_admin(&self, peer: &Peer) -> bool {
        peer.uid == 0
            || peer.uid == rustix::process::geteuid().as_raw()
            || self.admin_gids.contains(&peer.gid)
            || peer.groups.iter().any(|g| self.admin_gids.contains(g))
    }

    /// Whether `peer` may use the service.
    pub fn admits(&self, peer: &Peer) -> bool {
        self.is_admin(peer)
            || self.allow_uids.contains(&peer.uid)
            || self.allow_gids.contains(&peer.gid)
            || peer.groups.iter().any(|g| self.allow_gids.contains(g))
    }

    /// The socket file's mode and, if the policy names exactly one group,
    /// the group to own it.
    pub fn socket_mode(&self) -> (u32, Option<u32>) {
        let mut gids = self.allow_gids.clone();
        gids.extend(
            self.admin_gids
                .iter()
                .filter(|g| !self.allow_gids.contains(g)),
        );
        match (self.allow_uids.as_slice(), gids.as_slice()) {
            ([], []) => (0o600, None),
            ([], [gid]) => (0o660, Some(*gid)),
            _ => (0o666, None),
        }
    }

    /// One line for the log: who is admitted.
    pub fn describe(&self) -> String {
        let mut parts = vec!["root".to_string()];
        parts.extend(
            self.admin_gids
                .iter()
                .map(|g| format!("gid {g} (administrators)")),
        );
        parts.extend(self.allow_uids.iter().map(|u| format!("uid {u}")));
        parts.extend(self.allow_gids.iter().map(|g| format!("gid {g}")));
        parts.join(", ")
    }
}

/// A group given as a number or a name, looked up through NSS (the system's
/// own `getgrnam`), so groups from LDAP, sssd or systemd-userdb resolve too.
pub fn lookup_group(spec: &str) -> Result<u32> {
    if let Ok(n) = spec.parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::Group::from_name(spec) {
        Ok(Some(g)) => Ok(g.gid.as_raw()),
        Ok(None) => Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "no group '{spec}' (looked up as `getent group {spec}` does); give a group \
                 name that exists or a numeric gid"
            ),
        )),
        Err(e) => Err(Error::io(
            format!("cannot look up group '{spec}'"),
            std::io::Error::from_raw_os_error(e as i32),
        )),
    }
}

/// A user given as a number or a name, looked up through NSS (the system's
/// own `getpwnam`).
pub fn lookup_user(spec: &str) -> Result<u32> {
    if let Ok(n) = spec.parse::<u32>() {
        return Ok(n);
    }
    match nix::unistd::User::from_name(spec) {
        Ok(Some(u)) => Ok(u.uid.as_raw()),
        Ok(None) => Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "no user '{spec}' (looked up as `getent passwd {spec}` does); give a user \
                 name that exists or a numeric uid"
            ),
        )),
        Err(e) => Err(Error::io(
            format!("cannot look up user '{spec}'"),
            std::io::Error::from_raw_os_error(e as i32),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_listed_ids_are_admitted() {
        let p = Policy {
            allow_uids: vec![1000],
            allow_gids: vec![44],
            admin_gids: vec![],
        };
        let peer = |uid, gid, groups: &[u32]| Peer {
            pid: 1,
            uid,
            gid,
            groups: groups.to_vec(),
        };
        assert!(p.admits(&peer(0, 0, &[])));
        assert!(p.admits(&peer(1000, 1000, &[])));
        assert!(p.admits(&peer(1001, 44, &[])));
        assert!(p.admits(&peer(1001, 1001, &[27, 44])));
        assert!(!p.admits(&peer(1001, 1001, &[27])));
    }

    #[test]
    fn socket_mode_follows_policy() {
        assert_eq!(Policy::default().socket_mode(), (0o600, None));
        let g = Policy {
            allow_uids: vec![],
            allow_gids: vec![44],
            admin_gids: vec![],
        };
        assert_eq!(g.socket_mode(), (0o660, Some(44)));
        let u = Policy {
            allow_uids: vec![1000],
            allow_gids: vec![],
            admin_gids: vec![],
        };
        assert_eq!(u.socket_mode(), (0o666, None));
    }

    /// Every name NSS lists (`getent`, an independent reader of the same
    /// databases) resolves to the id `getent` gives; numbers pass through;
    /// an unknown name is NotFound.
    #[test]
    fn names_resolve_as_getent_resolves_them() {
        fn entries(db: &str) -> Vec<(String, u32)> {
            let out = std::process::Command::new("getent")
                .arg(db)
                .output()
                .expect("getent runs (libc-bin)");
            assert!(out.status.success(), "getent {db} failed");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| {
                    let f: Vec<&str> = l.split(':').collect();
                    Some((f.first()?.to_string(), f.get(2)?.parse().ok()?))
                })
                .collect()
        }
        let groups = entries("group");
        let users = entries("passwd");
        assert!(groups.iter().any(|(n, _)| n == "root"), "{groups:?}");
        for (name, gid) in &groups {
            assert_eq!(lookup_group(name).unwrap(), *gid, "group {name}");
        }
        for (name, uid) in &users {
            assert_eq!(lookup_user(name).unwrap(), *uid, "user {name}");
        }
        assert_eq!(lookup_group("27").unwrap(), 27);
        assert_eq!(lookup_user("1234").unwrap(), 1234);
        let e = lookup_group("no-such-group-unimem").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("getent group"), "{e}");
        let e = lookup_user("no-such-user-unimem").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}
