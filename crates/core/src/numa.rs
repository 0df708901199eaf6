//! NUMA nodes of a map's segments. The node of each base page comes from
//! the OS (Linux: `move_pages(2)` with no target nodes); this splits the
//! map's address segments where the node changes, so each piece has one
//! node or none ("unknown": the kernel would not say). The map itself and
//! the wire format carry no node: this is computed next to them.

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
    pub offset: u64,
    pub address: u64,
    pub length: u64,
    pub node: Node,
}

/// Splits the address segments of `map` where the node changes.
/// `nodes[i]` is the node of the base page at buffer offset `i * base`;
/// pages past the end of `nodes` are unknown.
pub fn split_by_node(map: &PaMap, base: u64, nodes: &[Node]) -> Vec<NodeSegment> {
    let mut out: Vec<NodeSegment> = Vec::new();
    let node_at = |offset: u64| {
        usize::try_from(offset / base)
            .ok()
            .and_then(|i| nodes.get(i).copied())
            .unwrap_or(Node(None))
    };
    for seg in map.segments() {
        let Some(address) = seg.address() else {
            continue;
        };
        let mut start = seg.offset;
        let mut node = node_at(start);
        let mut off = start;
        while off < seg.end() {
            // Step to the next base page boundary.
            let next = (off / base + 1).saturating_mul(base).min(seg.end());
            let n = node_at(off);
            if n != node {
                out.push(NodeSegment {
                    offset: start,
                    address: address + (start - seg.offset),
                    length: off - start,
                    node,
                });
                start = off;
                node = n;
            }
            off = next;
        }
        out.push(NodeSegment {
            offset: start,
            address: address + (start - seg.offset),
            length: seg.end() - start,
            node,
        });
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

    #[test]
    fn segments_split_where_the_node_changes() {
        let mut m = PaMap::new(
            AddressKind::Physical,
            PageSize::new(4096).unwrap(),
            5 * 4096,
        );
        m.push(3 * 4096, Target::Address(0x10000)).unwrap();
        m.push(4096, Target::NotPresent).unwrap();
        m.push(4096, Target::Address(0x90000)).unwrap();
        let nodes = [
            Node(Some(0)),
            Node(Some(1)),
            Node(Some(1)),
            Node(None),
            Node(None),
        ];
        let s = split_by_node(&m, 4096, &nodes);
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
    fn a_huge_page_map_on_one_node_is_unchanged() {
        let mut m = PaMap::new(
            AddressKind::Physical,
            PageSize::new(2 << 20).unwrap(),
            4 << 20,
        );
        m.push(4 << 20, Target::Address(0x4000_0000)).unwrap();
        let nodes = vec![Node(Some(0)); 1024];
        let s = split_by_node(&m, 4096, &nodes);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].length, 4 << 20);
    }
}
