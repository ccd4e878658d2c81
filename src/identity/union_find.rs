//! Union-find over node numbers: union by size, path halving.
//!
//! Invariant: `parent[n] == n` exactly for roots, and `size[r]` is the number of nodes in
//! root r's set (other entries of `size` are stale).

#[derive(Debug, Default)]
pub(crate) struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    /// No nodes yet, room for `nodes` without moving.
    pub fn with_capacity(nodes: usize) -> Self {
        UnionFind {
            parent: Vec::with_capacity(nodes),
            size: Vec::with_capacity(nodes),
        }
    }

    /// Adds a node in a set of its own; returns its number.
    pub fn push(&mut self) -> u32 {
        let node = self.parent.len() as u32;
        self.parent.push(node);
        self.size.push(1);
        node
    }

    pub fn find(&mut self, mut node: u32) -> u32 {
        while self.parent[node as usize] != node {
            let grandparent = self.parent[self.parent[node as usize] as usize];
            self.parent[node as usize] = grandparent;
            node = grandparent;
        }
        node
    }

    /// Puts `node` back in a set of its own. Only sound when every node of its set is
    /// reset too.
    pub fn reset(&mut self, node: u32) {
        self.parent[node as usize] = node;
        self.size[node as usize] = 1;
    }

    pub fn size(&self, root: u32) -> u32 {
        self.size[root as usize]
    }

    /// Joins the sets of roots `a` and `b` (different); returns (new root, absorbed root).
    pub fn union_roots(&mut self, a: u32, b: u32) -> (u32, u32) {
        let (big, small) = if self.size[a as usize] >= self.size[b as usize] {
            (a, b)
        } else {
            (b, a)
        };
        self.parent[small as usize] = big;
        self.size[big as usize] += self.size[small as usize];
        (big, small)
    }

    /// Joins the sets of `a` and `b`.
    pub fn union(&mut self, a: u32, b: u32) {
        let (a, b) = (self.find(a), self.find(b));
        if a != b {
            self.union_roots(a, b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unions_join_sets_and_count_sizes() {
        let mut sets = UnionFind::default();
        for _ in 0..6 {
            sets.push();
        }
        sets.union(0, 1);
        sets.union(2, 3);
        sets.union(1, 3);
        sets.union(3, 0);
        let root = sets.find(0);
        assert!((0..4).all(|n| sets.find(n) == root));
        assert_eq!(sets.size(root), 4);
        assert_ne!(sets.find(4), sets.find(5));
    }
}
