//! The roles the helper plays: one per kind of client a test needs in
//! another process, each named for what it does.

/// A client the `service-client` program plays, named by its argument.
/// Every role reads the service's socket path from
/// [`SOCKET`](crate::env::SOCKET).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Connects and handshakes, then prepares each file listed in
    /// [`FILES`](crate::env::FILES) through an fd it opened read-only
    /// (`read:<path>`) or as a path only (`path:<path>`). Says
    /// `RESULT handshake <rule>`, then `RESULT <read|path> <outcome>` for
    /// each file (`CLOSED` when the connection ended); or, if it cannot
    /// connect, `RESULT connect <error>`.
    PrepareFiles,
    /// Connects [`CONNS`](crate::env::CONNS) times, hanging up each time;
    /// says `CONNECTED <n>` with how many connects succeeded.
    ConnectMany,
    /// Binds and listens at the socket path as if it were the service;
    /// says `READY`, then `RECEIVED ...` for each of two connections.
    Impostor,
    /// Says `uid <uid>`, resolves a surface of [`SIZE`](crate::env::SIZE)
    /// bytes (8 MiB if unset) through the service and reports it:
    /// `connected`, `VA <va> LEN <len> VERIFIED <bool>`, one
    /// `SEG <offset> <length> <address>` per segment, `READY`; then holds
    /// it until the parent says so. Says `ERR <kind> <error>` instead if
    /// refused.
    Probe,
    /// Connects, says `SENDING`, resolves a surface of
    /// [`SIZE`](crate::env::SIZE) bytes through the service, says
    /// `READY <verified>` and holds it until the parent says so (or kills
    /// it).
    PrepareAndHold,
    /// Opens [`CONNS`](crate::env::CONNS) raw connections
    /// (`CONN <i> <answer>`), prepares [`PAGES`](crate::env::PAGES) pages
    /// on the first (`PREPARE <answer>`), tries one page more on the last
    /// (`EXTRA_PREPARE <answer>`) and one connection more
    /// (`EXTRA_CONN <answer>`), says `HOLDING` and holds it all until the
    /// parent says so. An answer is what [`crate::request::answer`] says.
    HoldConnections,
    /// Goes through the protocol up to the step named by
    /// [`STEP`](crate::env::STEP) (`connect`, `handshake`, `prepare`,
    /// `holding`, `segments`, `checksum`), says `AT <step>` and waits
    /// there to be killed.
    StopAtStep,
}

impl Role {
    /// Every role, in the order the usage line lists them.
    pub const ALL: [Role; 7] = [
        Role::PrepareFiles,
        Role::ConnectMany,
        Role::Impostor,
        Role::Probe,
        Role::PrepareAndHold,
        Role::HoldConnections,
        Role::StopAtStep,
    ];

    /// The role's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Role::PrepareFiles => "prepare-files",
            Role::ConnectMany => "connect-many",
            Role::Impostor => "impostor",
            Role::Probe => "probe",
            Role::PrepareAndHold => "prepare-and-hold",
            Role::HoldConnections => "hold-connections",
            Role::StopAtStep => "stop-at-step",
        }
    }

    /// The role named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }
}

/// The program's usage line.
pub fn usage() -> String {
    let names: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
    format!(
        "usage: service-client <role>, where <role> is one of: {}",
        names.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_is_found_by_its_name_and_listed_in_the_usage() {
        for role in Role::ALL {
            assert_eq!(Role::from_name(role.name()), Some(role));
            assert!(usage().contains(role.name()), "{}", usage());
        }
        assert_eq!(Role::from_name("probe-and-hold"), None);
    }
}
