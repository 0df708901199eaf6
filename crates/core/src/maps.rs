//! Parsing of `/proc/PID/maps` lines:
//! `start-end perms offset dev inode [path]`, addresses in hex
//! (format from the kernel's `fs/proc/task_mmu.c`, `show_map_vma`).

/// One mapping (VMA) of a process, `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vma {
    /// First virtual address of the mapping; page-aligned.
    pub start: u64,
    /// One past the last virtual address; always greater than `start`.
    pub end: u64,
    /// The four permission letters as the kernel prints them, e.g. `rw-s`
    /// (`s` shared, `p` private).
    pub perms: String,
    /// Byte offset into the mapped file at which `start` maps; 0 for an
    /// anonymous mapping.
    pub offset: u64,
    /// The file path or pseudo-name (`[stack]`, `/memfd:x (deleted)`);
    /// empty for an anonymous mapping.
    pub path: String,
}

/// Parses one line; `None` if it is not a maps line.
pub fn parse_line(line: &str) -> Option<Vma> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?.to_string();
    let offset = u64::from_str_radix(fields.next()?, 16).ok()?;
    let _dev = fields.next()?;
    let _inode = fields.next()?;
    let path = fields.next().unwrap_or("").trim().to_string();
    let (s, e) = range.split_once('-')?;
    let start = u64::from_str_radix(s, 16).ok()?;
    let end = u64::from_str_radix(e, 16).ok()?;
    (start < end).then_some(Vma {
        start,
        end,
        perms,
        offset,
        path,
    })
}

/// Every mapping in `text`, in address order as the kernel lists them.
pub fn parse(text: &str) -> Vec<Vma> {
    text.lines().filter_map(parse_line).collect()
}

/// The pieces of `[start, end)`, in order: `(piece_start, piece_end, vma)`,
/// with `None` for pieces no mapping covers.
pub fn cover(vmas: &[Vma], start: u64, end: u64) -> Vec<(u64, u64, Option<&Vma>)> {
    let mut out = Vec::new();
    let mut at = start;
    for v in vmas.iter().filter(|v| v.end > start && v.start < end) {
        if v.start > at {
            out.push((at, v.start, None));
        }
        let s = v.start.max(at);
        let e = v.end.min(end);
        if e > s {
            out.push((s, e, Some(v)));
            at = e;
        }
    }
    if at < end {
        out.push((at, end, None));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a28000 r--p 00000000 fe:00 1234  /usr/bin/cat
7f12a0000000-7f12a0200000 rw-s 00000000 00:01 5678  /memfd:unimem (deleted)
7f12a0400000-7f12a0600000 rw-p 00000000 00:00 0 
7ffc1e9f0000-7ffc1ea11000 rw-p 00000000 00:00 0                          [stack]
";

    #[test]
    fn parses_lines() {
        let v = parse(MAPS);
        assert_eq!(v.len(), 4);
        assert_eq!(v[1].start, 0x7f12a0000000);
        assert_eq!(v[1].end, 0x7f12a0200000);
        assert_eq!(v[1].perms, "rw-s");
        assert_eq!(v[1].path, "/memfd:unimem (deleted)");
        assert_eq!(v[2].path, "");
        assert_eq!(v[3].path, "[stack]");
        assert!(parse_line("garbage").is_none());
        assert!(parse_line("2000-1000 rw-p 0 00:00 0").is_none());
    }

    #[test]
    fn cover_finds_holes() {
        let v = parse(MAPS);
        let pieces = cover(&v, 0x7f12a0100000, 0x7f12a0500000);
        let shape: Vec<_> = pieces
            .iter()
            .map(|(s, e, m)| (*s, *e, m.is_some()))
            .collect();
        assert_eq!(
            shape,
            [
                (0x7f12a0100000, 0x7f12a0200000, true),
                (0x7f12a0200000, 0x7f12a0400000, false),
                (0x7f12a0400000, 0x7f12a0500000, true),
            ]
        );
        assert_eq!(cover(&v, 0x1000, 0x2000), [(0x1000, 0x2000, None)]);
    }
}
