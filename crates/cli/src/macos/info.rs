//! `unimem info` on macOS: the page size, and whether the CybMemDriver
//! DEXT answers (its version, protocol and the kind of address it hands
//! out).

use crate::output;
use clap::Args;
use serde::Serialize;
use std::fmt::Write;
use std::process::ExitCode;
use unimem::apple::DEXT_NAME;
use unimem::resolve::dext::DextClient;
use unimem::surface::os_page_size;
use unimem::Result;
use unimem_core::size::human;

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct Info {
    page_size: u64,
    dext: DextJson,
}

#[derive(Serialize)]
struct DextJson {
    name: &'static str,
    reachable: bool,
    version: Option<String>,
    protocol: Option<u16>,
    address_kind: Option<&'static str>,
    page_size: Option<u64>,
    max_prepare_bytes: Option<u64>,
    error: Option<String>,
}

pub fn run(args: &InfoArgs) -> Result<ExitCode> {
    let page_size = os_page_size()?.bytes();
    let dext = match DextClient::open() {
        Ok(client) => {
            let s = client.server();
            DextJson {
                name: DEXT_NAME,
                reachable: true,
                version: Some(s.server_version()),
                protocol: Some(s.version.get()),
                address_kind: Some(client.address_kind().name()),
                page_size: Some(s.page_size.get()),
                max_prepare_bytes: Some(s.max_prepare_bytes.get()),
                error: None,
            }
        }
        Err(e) => DextJson {
            name: DEXT_NAME,
            reachable: false,
            version: None,
            protocol: None,
            address_kind: None,
            page_size: None,
            max_prepare_bytes: None,
            error: Some(e.to_string()),
        },
    };
    let info = Info { page_size, dext };
    output::document(args.json, &info, render)?;
    Ok(ExitCode::SUCCESS)
}

fn render(i: &Info) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Page size:         {} bytes", i.page_size);
    let d = &i.dext;
    match (&d.version, &d.error) {
        (Some(v), _) => {
            let _ = writeln!(
                out,
                "{} DEXT:   reachable ({v}, protocol {})",
                d.name,
                d.protocol.unwrap_or(0)
            );
            let _ = writeln!(
                out,
                "DEXT addresses:    {}",
                d.address_kind.unwrap_or("unknown")
            );
            if let Some(p) = d.page_size {
                let _ = writeln!(out, "DEXT page size:    {p} bytes");
            }
            if let Some(m) = d.max_prepare_bytes {
                let _ = writeln!(out, "DEXT max prepare:  {}", human(m));
            }
        }
        (None, e) => {
            let _ = writeln!(
                out,
                "{} DEXT:   not reachable ({})",
                d.name,
                e.as_deref().unwrap_or("unknown error")
            );
        }
    }
    out
}
