//! Proves that `dext/include/unimem_wire.h` and `unimem_core::wire` describe
//! the same bytes: compiles a small C++ program against the header with the
//! system compiler, has it print the size of every wire struct, the offset
//! and size of every field and the value of every constant, and compares
//! each line with the same numbers taken from the Rust definitions.
//!
//! The field lists below are checked for completeness twice over: the sum
//! of the listed field sizes must equal the struct size on the Rust side,
//! and the C++ program prints `sizeof` of the C struct, so a field present
//! on one side only changes a number that is compared.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use core::mem::offset_of;
use unimem_core::addr::AddressKind;
use unimem_core::checksum;
use unimem_core::iokit::IoReturn;
use unimem_core::wire;

struct Field {
    name: &'static str,
    offset: usize,
    size: usize,
}

struct Struct {
    c_name: &'static str,
    size: usize,
    fields: Vec<Field>,
}

fn field_size<T, F, C: for<'a> Fn(&'a T) -> &'a F>(_project: C) -> usize {
    size_of::<F>()
}

macro_rules! layouts {
    ($($rs:ident => $c:literal { $($f:ident),+ $(,)? })+) => {
        vec![$(Struct {
            c_name: $c,
            size: size_of::<wire::$rs>(),
            fields: vec![$(Field {
                name: stringify!($f),
                offset: offset_of!(wire::$rs, $f),
                size: field_size(|s: &wire::$rs| &s.$f),
            }),+],
        }),+]
    };
}

fn rust_layouts() -> Vec<Struct> {
    layouts! {
        Header => "unimem_header" { magic, version, selector, status, detail }
        HandshakeRequest => "unimem_handshake_request" {
            header, min_version, max_version, reserved0, reserved1
        }
        HandshakeReply => "unimem_handshake_reply" {
            header, version, reserved0, address_kind, page_size, max_segments_per_reply,
            reserved1, max_prepare_bytes, server_version
        }
        PrepareRequest => "unimem_prepare_request" {
            header, offset, length, client_va, surface_id, options
        }
        SegmentsRequest => "unimem_segments_request" { header, handle, continuation }
        CompleteRequest => "unimem_complete_request" { header, handle, reserved }
        ChecksumRequest => "unimem_checksum_request" { header, handle, offset, length, reserved }
        WireSegment => "unimem_wire_segment" { address, length }
        SegmentsReply => "unimem_segments_reply" {
            header, handle, total_length, start, next, page_size, address_kind, count, segments
        }
        CompleteReply => "unimem_complete_reply" { header, handle, released_bytes }
        ChecksumReply => "unimem_checksum_reply" {
            header, handle, offset, length, checksum, algorithm, reserved
        }
    }
}

/// `kIOReturnNotPermitted` → `UNIMEM_IO_RETURN_NOT_PERMITTED`.
fn io_return_c_name(apple: &str) -> String {
    let camel = apple
        .strip_prefix("kIOReturn")
        .expect("IoReturn names start with kIOReturn");
    let chars: Vec<char> = camel.chars().collect();
    let mut out = String::from("UNIMEM_IO_RETURN_");
    for (i, &ch) in chars.iter().enumerate() {
        // A word starts at an upper-case letter after a lower-case one, or
        // at the last capital of an acronym ("IPCError" → IPC_ERROR).
        let prev_lower = i > 0 && chars[i - 1].is_ascii_lowercase();
        let acronym_end = i > 0
            && chars[i - 1].is_ascii_uppercase()
            && chars.get(i + 1).is_some_and(|c| c.is_ascii_lowercase());
        if ch.is_ascii_uppercase() && (prev_lower || acronym_end) {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

fn rust_constants() -> Vec<(String, u64)> {
    let mut c: Vec<(String, u64)> = vec![
        ("UNIMEM_MAGIC".into(), wire::MAGIC.into()),
        ("UNIMEM_VERSION".into(), wire::VERSION.into()),
        ("UNIMEM_MAX_MESSAGE".into(), wire::MAX_MESSAGE as u64),
        (
            "UNIMEM_SEGMENTS_PER_REPLY".into(),
            wire::SEGMENTS_PER_REPLY as u64,
        ),
        (
            "UNIMEM_SERVER_VERSION_LEN".into(),
            wire::SERVER_VERSION_LEN as u64,
        ),
        (
            "UNIMEM_SELECTOR_HANDSHAKE".into(),
            wire::selector::HANDSHAKE.into(),
        ),
        (
            "UNIMEM_SELECTOR_PREPARE".into(),
            wire::selector::PREPARE.into(),
        ),
        (
            "UNIMEM_SELECTOR_SEGMENTS".into(),
            wire::selector::SEGMENTS.into(),
        ),
        (
            "UNIMEM_SELECTOR_COMPLETE".into(),
            wire::selector::COMPLETE.into(),
        ),
        (
            "UNIMEM_SELECTOR_CHECKSUM".into(),
            wire::selector::CHECKSUM.into(),
        ),
        ("UNIMEM_SELECTOR_COUNT".into(), wire::selector::COUNT.into()),
        (
            "UNIMEM_ADDRESS_KIND_PHYSICAL".into(),
            AddressKind::Physical.to_wire().into(),
        ),
        (
            "UNIMEM_ADDRESS_KIND_IOVA".into(),
            AddressKind::Iova.to_wire().into(),
        ),
        (
            "UNIMEM_ADDRESS_KIND_DMA_UNRESOLVED".into(),
            AddressKind::DmaUnresolved.to_wire().into(),
        ),
        (
            "UNIMEM_CHECKSUM_FNV1A64_WORDS".into(),
            checksum::ALGORITHM_FNV1A64_WORDS.into(),
        ),
        ("UNIMEM_FNV_OFFSET_BASIS".into(), checksum::FNV_OFFSET_BASIS),
        ("UNIMEM_FNV_PRIME".into(), checksum::FNV_PRIME),
    ];
    // Every IOReturn the Rust side names, found by scanning the code space,
    // so a constant added to iokit.rs must also be added to the header.
    let mut codes = 0;
    for bits in (0..=0xFFFu32).map(|c| 0xE000_0000 | c).chain([0]) {
        let code = IoReturn::from_bits(bits);
        if let Some(name) = code.name() {
            c.push((io_return_c_name(name), bits.into()));
            codes += 1;
        }
    }
    assert!(
        codes >= 20,
        "expected the IOReturn table, found {codes} names"
    );
    // Every refusal rule, so a rule added on the Rust side must also be
    // added to the header with the same number.
    c.push(("UNIMEM_RULE_BASE".into(), wire::RULE_BASE.into()));
    for &rule in wire::Rule::ALL {
        c.push((
            format!("UNIMEM_RULE_{}", screaming(rule.name())),
            (rule.detail() - wire::RULE_BASE).into(),
        ));
    }
    assert!(wire::Rule::ALL.len() >= 29, "expected every refusal rule");
    c
}

/// `NotShrinkSealed` → `NOT_SHRINK_SEALED`.
fn screaming(camel: &str) -> String {
    let mut out = String::new();
    for (i, ch) in camel.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_uppercase());
    }
    out
}

fn expected_lines() -> Vec<String> {
    let mut lines = Vec::new();
    for s in rust_layouts() {
        let covered: usize = s.fields.iter().map(|f| f.size).sum();
        assert_eq!(
            covered, s.size,
            "{}: the listed fields cover {covered} of {} bytes: a field is missing from this test",
            s.c_name, s.size
        );
        lines.push(format!("struct {} {}", s.c_name, s.size));
        for f in &s.fields {
            lines.push(format!(
                "field {}.{} {} {}",
                s.c_name, f.name, f.offset, f.size
            ));
        }
    }
    for (name, value) in rust_constants() {
        lines.push(format!("const {name} {value}"));
    }
    lines
}

fn program() -> String {
    let mut p = String::from(
        "#include \"unimem_wire.h\"\n#include <cstdio>\n\
         #define S(t) std::printf(\"struct %s %zu\\n\", #t, sizeof(t));\n\
         #define F(t, f) std::printf(\"field %s.%s %zu %zu\\n\", #t, #f, offsetof(t, f), sizeof(((t *)0)->f));\n\
         #define C(n) std::printf(\"const %s %llu\\n\", #n, (unsigned long long)(n));\n\
         int main() {\n",
    );
    for s in rust_layouts() {
        writeln!(p, "  S({})", s.c_name).unwrap();
        for f in &s.fields {
            writeln!(p, "  F({}, {})", s.c_name, f.name).unwrap();
        }
    }
    for (name, _) in rust_constants() {
        writeln!(p, "  C({name})").unwrap();
    }
    p.push_str("  return 0;\n}\n");
    p
}

fn compiler() -> String {
    if let Ok(cxx) = std::env::var("CXX") {
        if !cxx.is_empty() {
            return cxx;
        }
    }
    for candidate in ["c++", "g++", "clang++"] {
        let found = Command::new(candidate)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if found {
            return candidate.to_string();
        }
    }
    panic!(
        "no C++ compiler found (tried $CXX, c++, g++, clang++): this test compiles \
         dext/include/unimem_wire.h to prove it matches the Rust wire format; \
         install one (Debian: apt-get install g++)"
    );
}

fn header_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../dext/include")
}

#[test]
fn c_header_matches_rust_wire_format() {
    let include = header_dir();
    assert!(
        include.join("unimem_wire.h").is_file(),
        "missing {}",
        include.display()
    );
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_header");
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("layout.cpp");
    let exe = dir.join("layout");
    std::fs::write(&src, program()).unwrap();

    let cxx = compiler();
    let out = Command::new(&cxx)
        .args(["-std=c++17", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(&include)
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .output()
        .unwrap_or_else(|e| panic!("could not run {cxx}: {e}"));
    assert!(
        out.status.success(),
        "{cxx} failed to compile the header check:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let run = Command::new(&exe).output().expect("run the layout program");
    assert!(run.status.success(), "layout program failed");
    let got: Vec<String> = String::from_utf8(run.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let want = expected_lines();

    // "kind name" identifies a line; the numbers after it are compared.
    let key = |l: &str| -> String { l.split(' ').take(2).collect::<Vec<_>>().join(" ") };
    let got_map: BTreeMap<String, &str> = got.iter().map(|l| (key(l), l.as_str())).collect();
    let mut mismatches = Vec::new();
    for w in &want {
        if !got.contains(w) {
            let c_side = got_map.get(&key(w)).copied().unwrap_or("<missing>");
            mismatches.push(format!("rust: {w}\n   c: {c_side}"));
        }
    }
    assert!(
        mismatches.is_empty(),
        "C header and Rust wire format disagree:\n{}",
        mismatches.join("\n")
    );
    assert_eq!(got.len(), want.len(), "line counts differ");
    // Every struct, field and constant was compared: the count is the
    // proof that nothing was skipped.
    assert!(want.len() > 90, "only {} lines compared", want.len());
}

#[test]
fn io_return_names_convert() {
    assert_eq!(
        io_return_c_name("kIOReturnNotPermitted"),
        "UNIMEM_IO_RETURN_NOT_PERMITTED"
    );
    assert_eq!(
        io_return_c_name("kIOReturnIPCError"),
        "UNIMEM_IO_RETURN_IPC_ERROR"
    );
    assert_eq!(
        io_return_c_name("kIOReturnVMError"),
        "UNIMEM_IO_RETURN_VM_ERROR"
    );
    assert_eq!(
        io_return_c_name("kIOReturnSuccess"),
        "UNIMEM_IO_RETURN_SUCCESS"
    );
}
