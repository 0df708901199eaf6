//! NUMA nodes of a map's segments. The node of each base page comes from
//! the OS (Linux: `move_pages(2)` with no target nodes); this splits the
//! map's address segments where the node changes, so each piece has one
//! node or none ("unknown": the kernel would not say). The map itself and
//! the wire format carry no node: this is computed next to them.

use crate::addr::SegmentAddr;
use crate::map::PaMap;
use serde::{Serialize, Serializer};

/// A node number, or unknown where the kernel refused to tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Node(pub Option<u32>);

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(n) => s.serialize_u32(n),
            None => s.serialize_str("unknown"),
        }
    }
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("unknown"),
        }
    }
}

/// A piece of an address segment on one node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NodeSegment {
    /// Byte offset of its first byte from the start of the buffer.
    pub offset: u64,
    /// Address of its first byte, of the map's kind (physical or IOVA).
    pub address: u64,
    /// Length in bytes.
    pub length: u64,
    /// The node every byte of it is on, or unknown.
    pub node: Node,
}

/// A run of the buffer whose base pages are all on one node (or all
/// unknown): what the OS reports, coalesced, so it grows with the number
/// of node changes rather than with pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRun {
    /// Byte offset of its first byte from the start of the buffer.
    pub offset: u64,
    /// Length in bytes: a whole number of base pages, except that the
    /// buffer's last run may end mid-page where the buffer does.
    pub length: u64,
    /// The node of every base page in it, or unknown.
    pub node: Node,
}

/// Appends `length` bytes on `node` to `runs`, extending the last run
/// when it continues it.
pub fn push_run(runs: &mut Vec<NodeRun>, length: u64, node: Node) {
    let offset = runs.last().map_or(0, |r| r.offset + r.length);
    match runs.last_mut() {
        Some(last) if last.node == node => last.length += length,
        _ => runs.push(NodeRun {
            offset,
            length,
            node,
        }),
    }
}

/// Splits the address segments of `map` where the node changes. Bytes no
/// run covers are unknown.
pub fn split_by_node(map: &PaMap, runs: &[NodeRun]) -> Vec<NodeSegment> {
    let mut out: Vec<NodeSegment> = Vec::new();
    let mut r = 0;
    for seg in map.segments() {
        let Some(address) = seg.address().map(SegmentAddr::get) else {
            continue;
        };
        let mut at = seg.offset;
        while at < seg.end() {
            while r < runs.len() && runs[r].offset + runs[r].length <= at {
                r += 1;
            }
            let (node, until) = match runs.get(r) {
                Some(run) if run.offset <= at => (run.node, run.offset + run.length),
                Some(run) => (Node(None), run.offset),
                None => (Node(None), u64::MAX),
            };
            let end = until.min(seg.end());
            let piece = NodeSegment {
                offset: at,
                address: address + (at - seg.offset),
                length: end - at,
                node,
            };
            match out.last_mut() {
                Some(last)
                    if last.node == node
                        && last.offset + last.length == at
                        && last.address + last.length == piece.address =>
                {
                    last.length += piece.length
                }
                _ => out.push(piece),
            }
            at = end;
        }
    }
    out
}

/// Bytes and pieces per node, in node order (unknown last).
pub fn per_node(segments: &[NodeSegment]) -> Vec<(Node, u64, usize)> {
    let mut by: std::collections::BTreeMap<(bool, Node), (u64, usize)> = Default::default();
    for s in segments {
        let e = by.entry((s.node.0.is_none(), s.node)).or_default();
        e.0 += s.length;
        e.1 += 1;
    }
    by.into_iter().map(|((_, n), (b, c))| (n, b, c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{AddressKind, PageSize};
    use crate::map::Target;

    fn runs_of(pages: &[Node]) -> Vec<NodeRun> {
        let mut runs = Vec::new();
        for &n in pages {
            push_run(&mut runs, 4096, n);
        }
        runs
    }

    #[test]
    fn segments_split_where_the_node_changes() {
        let mut m = PaMap::new(
            AddressKind::Physical,
            PageSize::new(4096).unwrap(),
            5 * 4096,
        );
        m.push(3 * 4096, Target::phys(0x10000)).unwrap();
        m.push(4096, Target::NotPresent).unwrap();
        m.push(4096, Target::phys(0x90000)).unwrap();
        let runs = runs_of(&[
            Node(Some(0)),
            Node(Some(1)),
            Node(Some(1)),
            Node(None),
            Node(None),
        ]);
        assert_eq!(runs.len(), 3);
        let s = split_by_node(&m, &runs);
        assert_eq!(
            s,
            vec![
                NodeSegment {
                    offset: 0,
                    address: 0x10000,
                    length: 4096,
                    node: Node(Some(0))
                },
                NodeSegment {
                    offset: 4096,
                    address: 0x11000,
                    length: 8192,
                    node: Node(Some(1))
                },
                NodeSegment {
                    offset: 4 * 4096,
                    address: 0x90000,
                    length: 4096,
                    node: Node(None)
                },
            ]
        );
        assert_eq!(
            per_node(&s),
            vec![
                (Node(Some(0)), 4096, 1),
                (Node(Some(1)), 8192, 1),
                (Node(None), 4096, 1)
            ]
        );
        assert_eq!(serde_json::to_string(&Node(None)).unwrap(), "\"unknown\"");
        assert_eq!(serde_json::to_string(&Node(Some(2))).unwrap(), "2");
    }

    #[test]
    fn one_node_leaves_segments_as_they_are_and_missing_runs_are_unknown() {
        let mut m = PaMap::new(
            AddressKind::Physical,
            PageSize::new(2 << 20).unwrap(),
            6 << 20,
        );
        m.push(4 << 20, Target::phys(0x4000_0000)).unwrap();
        m.push(2 << 20, Target::phys(0x1000_0000)).unwrap();
        let runs = vec![NodeRun {
            offset: 0,
            length: 6 << 20,
            node: Node(Some(0)),
        }];
        let s = split_by_node(&m, &runs);
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].length, s[1].length), (4 << 20, 2 << 20));
        // Runs that stop early: the rest is unknown, never guessed.
        let short = vec![NodeRun {
            offset: 0,
            length: 1 << 20,
            node: Node(Some(0)),
        }];
        let s = split_by_node(&m, &short);
        assert_eq!(s.len(), 3);
        assert_eq!(
            s[1],
            NodeSegment {
                offset: 1 << 20,
                address: 0x4010_0000,
                length: 3 << 20,
                node: Node(None)
            }
        );
    }
}
