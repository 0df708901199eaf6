//! `unimem info`: what this machine offers for resolving addresses.

use crate::output;
use clap::Args;
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use unimem::resolve::service::server_info;
use unimem::system::{self, HugePool};
use unimem::{pagemap, Result};
use unimem_core::size::human;

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Print one JSON document on stdout.
    #[arg(long)]
    pub json: bool,
    /// The resolver service's socket to check.
    #[arg(long, default_value = unimem::service::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// The uid the resolver service must run as (its credentials are
    /// checked before anything is sent).
    #[arg(long, value_name = "UID", default_value_t = 0)]
    pub service_uid: u32,
}

#[derive(Serialize)]
struct Info {
    kernel: String,
    page_size: u64,
    /// `true`, `false`, or `null` when the check itself failed.
    pfns_visible: Option<bool>,
    pfn_check_error: Option<String>,
    default_huge_page_size: Option<u64>,
    huge_pools: Vec<HugePool>,
    thp: Option<String>,
    shmem_thp: Option<String>,
    service: ServiceJson,
}

#[derive(Serialize)]
struct ServiceJson {
    socket: String,
    reachable: bool,
    version: Option<String>,
    protocol: Option<u16>,
    error: Option<String>,
}

pub fn run(args: &InfoArgs) -> Result<ExitCode> {
    let (pfns_visible, pfn_check_error) = match pagemap::can_see_pfns() {
        Ok(v) => (Some(v), None),
        Err(e) => (None, Some(e.to_string())),
    };
    let info = Info {
        kernel: system::kernel_release(),
        page_size: system::page_size().bytes(),
        pfns_visible,
        pfn_check_error,
        default_huge_page_size: system::default_huge_page_size(),
        huge_pools: system::huge_pools()?,
        thp: system::thp_mode(system::THP_ENABLED),
        shmem_thp: system::thp_mode(system::THP_SHMEM_ENABLED),
        service: match server_info(&args.socket, args.service_uid) {
            Ok(s) => ServiceJson {
                socket: args.socket.display().to_string(),
                reachable: true,
                version: Some(s.server_version()),
                protocol: Some(s.version.get()),
                error: None,
            },
            Err(e) => ServiceJson {
                socket: args.socket.display().to_string(),
                reachable: false,
                version: None,
                protocol: None,
                error: Some(e.to_string()),
            },
        },
    };
    output::document(args.json, &info, render)?;
    Ok(ExitCode::SUCCESS)
}

fn render(i: &Info) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Kernel:            {}", i.kernel);
    let _ = writeln!(out, "Page size:         {} bytes", i.page_size);
    let pfn = match (i.pfns_visible, &i.pfn_check_error) {
        (Some(true), _) => {
            "visible (this process may read physical addresses directly)".to_string()
        }
        (Some(false), _) => "hidden (needs CAP_SYS_ADMIN; use the resolver service)".to_string(),
        (None, Some(e)) => format!("unknown ({e})"),
        (None, None) => "unknown".to_string(),
    };
    let _ = writeln!(out, "PFNs in pagemap:   {pfn}");
    match i.default_huge_page_size {
        Some(s) => {
            let _ = writeln!(out, "Huge page size:    {}", human(s));
        }
        None => {
            let _ = writeln!(out, "Huge page size:    none (no hugetlb)");
        }
    }
    for p in &i.huge_pools {
        let _ = writeln!(
            out,
            "Huge page pool:    {:>8}: {} total, {} free, {} reserved",
            human(p.page_size),
            p.total,
            p.free,
            p.reserved
        );
    }
    let _ = writeln!(
        out,
        "THP:               {}",
        i.thp.as_deref().unwrap_or("not available")
    );
    let _ = writeln!(
        out,
        "shmem THP:         {}",
        i.shmem_thp.as_deref().unwrap_or("not available")
    );
    let svc = &i.service;
    match (&svc.version, &svc.error) {
        (Some(v), _) => {
            let _ = writeln!(
                out,
                "Resolver service:  reachable at {} ({v}, protocol {})",
                svc.socket,
                svc.protocol.unwrap_or(0)
            );
        }
        (None, e) => {
            let _ = writeln!(
                out,
                "Resolver service:  not reachable at {} ({})",
                svc.socket,
                e.as_deref().unwrap_or("unknown error")
            );
        }
    }
    out
}
