//! `service-client <role>`: a client of the resolver service in a process
//! of its own. The service's integration tests run it, often as another
//! user, and read what it says on stdout; `unimem_service_tests::role`
//! describes each role, the variables it reads and the lines it says.

#[cfg(target_os = "linux")]
mod roles;

use std::process::ExitCode;

/// Exit status of a command line without a known role.
const USAGE_ERROR: u8 = 2;

#[cfg(target_os = "linux")]
fn main() -> ExitCode {
    use unimem_service_tests::role::{usage, Role};
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = match args.as_slice() {
        [name] => Role::from_name(name).ok_or_else(|| format!("unknown role '{name}'")),
        [] => Err("no role given".to_string()),
        _ => Err(format!("one role expected, got {}", args.join(" "))),
    };
    match role {
        Ok(role) => {
            roles::play(role);
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("service-client: {why}\n{}", usage());
            ExitCode::from(USAGE_ERROR)
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn main() -> ExitCode {
    eprintln!("service-client: the resolver service and its tests are Linux only");
    ExitCode::from(USAGE_ERROR)
}
