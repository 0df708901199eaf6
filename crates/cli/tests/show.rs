//! What unimem shows besides the table: the SVG picture of a real probe
//! (rendered to pixels), progress bars on a terminal only, shell
//! completions and the manual page.

mod common;

use common::*;
use expectrl::Session;
use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::{Options, Tree};
use std::io::Read;
use std::process::Command;
use std::time::Duration;
use unimem_core::svg::{PLOT_W, PLOT_X, ZOOM_STRIP};

/// Runs `unimem args` with stdin, stdout and stderr on a pseudo-terminal,
/// returning everything it wrote there.
fn on_a_terminal(args: &[&str]) -> String {
    let mut cmd = Command::new(bin());
    cmd.args(args);
    let mut session = Session::spawn(cmd).expect("spawn unimem on a pseudo-terminal");
    // Reading the terminal ends with EOF or, on Linux, EIO once the child
    // has exited and closed its side.
    let mut seen = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match session.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

const BAR: &str = "] 256.00 MiB/256.00 MiB";

#[test]
fn a_large_probe_shows_progress_bars_on_a_terminal() {
    require_root();
    let text = on_a_terminal(&["probe", "--size", "256M", "--via", "direct"]);
    assert!(text.contains("[+] Data integrity OK"), "{text}");
    for phase in ["fill [", "verify ["] {
        assert!(text.contains(phase), "no {phase:?} bar in: {text}");
    }
    // The spinners of creating and resolving: name and size, on a line of
    // their own.
    for spinner in ["  create ", "  resolve "] {
        assert!(
            text.split(['\r', '\n'])
                .any(|l| l.contains(spinner) && l.contains("256 MiB")),
            "no {spinner:?} spinner in: {text}"
        );
    }
    assert!(text.contains(BAR), "the bar ends at the full size: {text}");
    assert!(text.contains("ETA"), "{text}");
}

#[test]
fn no_progress_bars_on_a_pipe_with_json_quiet_or_small_surfaces() {
    require_root();
    let piped = unimem(&["probe", "--size", "256M", "--via", "direct"]);
    assert_eq!(piped.status.code(), Some(0), "{}", stderr(&piped));
    let err = stderr(&piped);
    assert!(err.contains("[*] Writing test pattern"), "{err}");
    assert!(!err.contains("ETA") && !err.contains('\x1b'), "{err}");

    let json = on_a_terminal(&["probe", "--size", "256M", "--via", "direct", "--json"]);
    assert!(json.contains("\"verification\""), "{json}");
    assert!(!json.contains("ETA") && !json.contains(BAR), "{json}");

    let quiet = on_a_terminal(&["probe", "--size", "256M", "--via", "direct", "--quiet"]);
    assert!(quiet.contains("[+] Data integrity OK"), "{quiet}");
    assert!(
        !quiet.contains("ETA") && !quiet.contains("[*] Writing"),
        "{quiet}"
    );

    let small = on_a_terminal(&["probe", "--size", "255M", "--via", "direct"]);
    assert!(small.contains("[*] Writing test pattern"), "{small}");
    assert!(!small.contains("ETA"), "{small}");
}

/// Painted columns are saturated colours; empty strip spans are grey.
fn painted(p: &Pixmap, x: u32, y: u32) -> bool {
    let c = p.pixel(x, y).unwrap();
    let (r, g, b) = (c.red(), c.green(), c.blue());
    r.max(g).max(b) - r.min(g).min(b) > 60
}

#[test]
fn the_picture_of_a_real_probe_paints_its_segments_and_nothing_else() {
    require_root();
    let dir = std::env::temp_dir().join(format!("unimem-svg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("probe.svg");
    let out = unimem(&[
        "probe",
        "--size",
        "4M",
        "--via",
        "direct",
        "--json",
        "--svg",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("Picture of the map written to"));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let segments = segments_of(&json);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        text.contains("physical addresses"),
        "title names the address kind"
    );
    assert!(
        text.contains(&format!("{} segment", segments.len())),
        "title counts the segments"
    );
    assert!(
        text.contains("System RAM ("),
        "root reads RAM ranges from /proc/iomem"
    );

    let tree = Tree::from_str(&text, &Options::default()).unwrap();
    let size = tree.size().to_int_size();
    let mut pixmap = Pixmap::new(size.width(), size.height()).unwrap();
    resvg::render(&tree, Transform::default(), &mut pixmap.as_mut());

    // The zoom strip spans the lowest to the highest address.
    let lo = segments.iter().map(|s| s.0).min().unwrap();
    let hi = segments.iter().map(|s| s.0 + s.1).max().unwrap();
    let pos = |a: u64| (a - lo) as f64 / (hi - lo) as f64 * PLOT_W as f64;
    let y = (ZOOM_STRIP.y + ZOOM_STRIP.h / 2.0) as u32;
    let mut covered = vec![false; PLOT_W];
    for &(a, len) in &segments {
        let (x0, x1) = (pos(a), pos(a + len));
        let first = (x0.floor() as usize).min(PLOT_W - 1);
        let last = (x1.ceil() as usize).clamp(first + 1, PLOT_W);
        covered[first..last].iter_mut().for_each(|c| *c = true);
        let x = PLOT_X as u32 + first as u32;
        assert!(
            painted(&pixmap, x, y),
            "segment {a:#x}+{len:#x} not painted at x={x}"
        );
    }
    let empty: Vec<usize> = (0..PLOT_W).filter(|i| !covered[*i]).collect();
    for i in &empty {
        let x = PLOT_X as u32 + *i as u32;
        assert!(
            !painted(&pixmap, x, y),
            "column {i} is painted but no segment lies there"
        );
    }
    eprintln!(
        "{} segments, {} of {PLOT_W} columns empty",
        segments.len(),
        empty.len()
    );
}

#[test]
fn completions_name_every_subcommand() {
    for shell in ["bash", "zsh", "fish"] {
        let out = unimem(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let script = stdout(&out);
        for sub in ["probe", "map", "info", "serve", "completions", "man"] {
            assert!(script.contains(sub), "{shell} completions lack {sub}");
        }
        assert!(script.contains("svg"), "{shell} completions lack --svg");
    }
    let bad = unimem(&["completions", "tcsh"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn the_manual_page_is_roff_with_every_subcommand() {
    let out = unimem(&["man"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let page = stdout(&out);
    assert!(
        page.starts_with(".TH unimem 1"),
        "{}",
        &page[..80.min(page.len())]
    );
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH \"UNIMEM PROBE\"",
        ".SH \"UNIMEM MAP\"",
    ] {
        assert!(page.contains(section), "no {section}");
    }
    assert!(page.contains("\\-\\-svg"), "options are listed");
    // Every line is text or a roff request/escape, never a stray control
    // character.
    assert!(page.lines().all(|l| !l.contains('\x1b')));
}

#[test]
fn an_unwritable_picture_fails_before_the_work_and_a_failed_map_leaves_no_file() {
    let out = unimem(&["probe", "--svg", "/nonexistent-unimem-dir/map.svg"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("cannot write the picture to '/nonexistent-unimem-dir/map.svg'"),
        "{err}"
    );
    assert!(!err.contains("[*] Creating"), "the probe ran first: {err}");

    let file = std::env::temp_dir().join(format!("unimem-failed-map-{}.svg", std::process::id()));
    let me = std::process::id().to_string();
    let out = unimem(&[
        "map",
        "--pid",
        &me,
        "--addr",
        "0x1000",
        "--len",
        "4K",
        "--svg",
        file.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!file.exists(), "an empty picture was left behind");
}
