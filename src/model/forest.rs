//! A tree-ensemble evaluator for ONNX `TreeEnsembleClassifier` nodes.
//!
//! tract's own evaluator scans every stored leaf entry before the one it
//! needs on every tree visit, which makes real forests 10³–10⁴ times too slow.
//! Here every node is a flat record and each leaf points straight at its
//! range of (class, weight) entries, so one row costs one root-to-leaf walk
//! per tree.

use std::collections::HashMap;

/// Comparison of a branch node: go to the "true" child when it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Leq,
    Lt,
    Gte,
    Gt,
    Eq,
    Neq,
}

impl Mode {
    pub fn parse(s: &[u8]) -> Option<Option<Mode>> {
        Some(match s {
            b"BRANCH_LEQ" => Some(Mode::Leq),
            b"BRANCH_LT" => Some(Mode::Lt),
            b"BRANCH_GTE" => Some(Mode::Gte),
            b"BRANCH_GT" => Some(Mode::Gt),
            b"BRANCH_EQ" => Some(Mode::Eq),
            b"BRANCH_NEQ" => Some(Mode::Neq),
            b"LEAF" => None,
            _ => return None,
        })
    }

    #[inline]
    fn holds(self, x: f32, t: f32) -> bool {
        match self {
            Mode::Leq => x <= t,
            Mode::Lt => x < t,
            Mode::Gte => x >= t,
            Mode::Gt => x > t,
            Mode::Eq => x == t,
            Mode::Neq => x != t,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Node {
    Branch {
        feature: u32,
        threshold: f32,
        mode: Mode,
        if_true: u32,
        if_false: u32,
    },
    /// Range into `Forest::leaf_entries`.
    Leaf { start: u32, end: u32 },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ForestError {
    #[error("attribute `{attr}` has {got} entries, expected {want}")]
    Length {
        attr: &'static str,
        got: usize,
        want: usize,
    },
    #[error("node ({tree}, {node}) has unknown mode `{mode}`")]
    Mode { tree: i64, node: i64, mode: String },
    #[error("node ({tree}, {node}) points to child {child}, which does not exist")]
    Child { tree: i64, node: i64, child: i64 },
    #[error("leaf entry for node ({tree}, {node}) names no leaf of the forest")]
    LeafEntry { tree: i64, node: i64 },
    #[error("class id {class} is outside 0..{n_classes}")]
    Class { class: i64, n_classes: usize },
    #[error("node ({tree}, {node}) reads feature {feature}, which is negative")]
    Feature { tree: i64, node: i64, feature: i64 },
}

/// The attributes of a `TreeEnsembleClassifier` node that define the trees,
/// borrowed from wherever they were decoded (modes as text or bytes).
pub struct ForestSpec<'a, M: AsRef<[u8]> = &'a str> {
    pub n_classes: usize,
    pub nodes_treeids: &'a [i64],
    pub nodes_nodeids: &'a [i64],
    pub nodes_featureids: &'a [i64],
    pub nodes_values: &'a [f32],
    pub nodes_modes: &'a [M],
    pub nodes_truenodeids: &'a [i64],
    pub nodes_falsenodeids: &'a [i64],
    pub class_treeids: &'a [i64],
    pub class_nodeids: &'a [i64],
    pub class_ids: &'a [i64],
    pub class_weights: &'a [f32],
    pub base_values: Option<&'a [f32]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Forest {
    n_classes: usize,
    n_features: usize,
    roots: Vec<u32>,
    nodes: Vec<Node>,
    leaf_entries: Vec<(u32, f32)>,
    base: Vec<f32>,
}

impl Forest {
    pub fn build<M: AsRef<[u8]>>(spec: &ForestSpec<M>) -> Result<Forest, ForestError> {
        let n = spec.nodes_treeids.len();
        let check = |attr: &'static str, got: usize, want: usize| {
            if got == want {
                Ok(())
            } else {
                Err(ForestError::Length { attr, got, want })
            }
        };
        check("nodes_nodeids", spec.nodes_nodeids.len(), n)?;
        check("nodes_featureids", spec.nodes_featureids.len(), n)?;
        check("nodes_values", spec.nodes_values.len(), n)?;
        check("nodes_modes", spec.nodes_modes.len(), n)?;
        check("nodes_truenodeids", spec.nodes_truenodeids.len(), n)?;
        check("nodes_falsenodeids", spec.nodes_falsenodeids.len(), n)?;
        let m = spec.class_treeids.len();
        check("class_nodeids", spec.class_nodeids.len(), m)?;
        check("class_ids", spec.class_ids.len(), m)?;
        check("class_weights", spec.class_weights.len(), m)?;
        if let Some(b) = spec.base_values {
            check("base_values", b.len(), spec.n_classes)?;
        }

        // Where each (tree, node) id lives. Exporters write trees 0, 1, 2, …
        // one after another, each with node ids 0, 1, 2, … in order; that
        // layout is indexed directly, any other through a hash map.
        let mut starts: Vec<usize> = vec![];
        let mut dense = true;
        for i in 0..n {
            let tree = spec.nodes_treeids[i];
            if i == 0 || tree != spec.nodes_treeids[i - 1] {
                dense &= tree == starts.len() as i64;
                starts.push(i);
            }
            dense &= spec.nodes_nodeids[i] == (i - starts[starts.len() - 1]) as i64;
        }
        let sparse: HashMap<(i64, i64), u32> = if dense {
            HashMap::new()
        } else {
            (0..n)
                .map(|i| ((spec.nodes_treeids[i], spec.nodes_nodeids[i]), i as u32))
                .collect()
        };
        let locate = |tree: i64, node: i64| -> Option<u32> {
            if dense {
                let start = *starts.get(usize::try_from(tree).ok()?)?;
                let at = start + usize::try_from(node).ok()?;
                (at < n && spec.nodes_treeids[at] == tree).then_some(at as u32)
            } else {
                sparse.get(&(tree, node)).copied()
            }
        };
        // Group leaf entries by leaf, keeping their order within a leaf.
        let mut at_of = Vec::with_capacity(m);
        for j in 0..m {
            let (tree, node) = (spec.class_treeids[j], spec.class_nodeids[j]);
            at_of.push(locate(tree, node).ok_or(ForestError::LeafEntry { tree, node })?);
        }
        // Exporters write them leaf by leaf already; only other orders need
        // a sorted index.
        let sorted: Option<Vec<u32>> = if at_of.windows(2).all(|w| w[0] <= w[1]) {
            None
        } else {
            let mut order: Vec<u32> = (0..m as u32).collect();
            order.sort_by_key(|&j| (at_of[j as usize], j));
            Some(order)
        };
        let mut leaf_entries = Vec::with_capacity(m);
        let mut leaf_ranges: Vec<(u32, u32)> = vec![(0, 0); n];
        for k in 0..m {
            let j = sorted.as_ref().map_or(k, |o| o[k] as usize);
            let at = at_of[j] as usize;
            let class = spec.class_ids[j];
            if class < 0 || class as usize >= spec.n_classes {
                return Err(ForestError::Class {
                    class,
                    n_classes: spec.n_classes,
                });
            }
            let pos = leaf_entries.len() as u32;
            if leaf_ranges[at] == (0, 0) {
                leaf_ranges[at] = (pos, pos);
            }
            leaf_ranges[at].1 = pos + 1;
            leaf_entries.push((class as u32, spec.class_weights[j]));
        }

        let mut nodes = Vec::with_capacity(n);
        let mut roots = vec![];
        let mut n_features = 0;
        // Indexes eight parallel attribute arrays at once.
        #[allow(clippy::needless_range_loop)]
        for i in 0..n {
            let (tree, node) = (spec.nodes_treeids[i], spec.nodes_nodeids[i]);
            let text = spec.nodes_modes[i].as_ref();
            let mode = Mode::parse(text).ok_or_else(|| ForestError::Mode {
                tree,
                node,
                mode: String::from_utf8_lossy(text).into_owned(),
            })?;
            nodes.push(match mode {
                None => {
                    let (start, end) = leaf_ranges[i];
                    Node::Leaf { start, end }
                }
                Some(mode) => {
                    let child = |c: i64| {
                        locate(tree, c).ok_or(ForestError::Child {
                            tree,
                            node,
                            child: c,
                        })
                    };
                    let feature = spec.nodes_featureids[i];
                    if feature < 0 {
                        return Err(ForestError::Feature {
                            tree,
                            node,
                            feature,
                        });
                    }
                    n_features = n_features.max(feature as usize + 1);
                    Node::Branch {
                        feature: feature as u32,
                        threshold: spec.nodes_values[i],
                        mode,
                        if_true: child(spec.nodes_truenodeids[i])?,
                        if_false: child(spec.nodes_falsenodeids[i])?,
                    }
                }
            });
        }
        // A tree's root is its one node that no branch points to.
        let mut is_child = vec![false; n];
        for node in &nodes {
            if let Node::Branch {
                if_true, if_false, ..
            } = *node
            {
                is_child[if_true as usize] = true;
                is_child[if_false as usize] = true;
            }
        }
        roots.extend((0..n as u32).filter(|&i| !is_child[i as usize]));
        Ok(Forest {
            n_classes: spec.n_classes,
            n_features,
            roots,
            nodes,
            leaf_entries,
            base: spec
                .base_values
                .map_or_else(|| vec![0.0; spec.n_classes], <[f32]>::to_vec),
        })
    }

    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// The smallest input width that covers every feature the trees read.
    pub fn n_features(&self) -> usize {
        self.n_features
    }

    pub fn n_trees(&self) -> usize {
        self.roots.len()
    }

    pub fn n_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Sums every tree's leaf weights for one row into `out` (`n_classes`).
    pub fn predict_into(&self, row: &[f32], out: &mut [f32]) {
        out.copy_from_slice(&self.base);
        for &root in &self.roots {
            let mut at = root as usize;
            loop {
                match self.nodes[at] {
                    Node::Branch {
                        feature,
                        threshold,
                        mode,
                        if_true,
                        if_false,
                    } => {
                        at = if mode.holds(row[feature as usize], threshold) {
                            if_true
                        } else {
                            if_false
                        } as usize;
                    }
                    Node::Leaf { start, end } => {
                        for &(class, w) in &self.leaf_entries[start as usize..end as usize] {
                            out[class as usize] += w;
                        }
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two stumps on feature 0 and 1, three classes.
    fn stumps() -> Forest {
        Forest::build(&ForestSpec {
            n_classes: 3,
            nodes_treeids: &[0, 0, 0, 1, 1, 1],
            nodes_nodeids: &[0, 1, 2, 0, 1, 2],
            nodes_featureids: &[0, 0, 0, 1, 0, 0],
            nodes_values: &[0.5, 0.0, 0.0, -1.0, 0.0, 0.0],
            nodes_modes: &["BRANCH_LEQ", "LEAF", "LEAF", "BRANCH_LEQ", "LEAF", "LEAF"],
            nodes_truenodeids: &[1, 0, 0, 1, 0, 0],
            nodes_falsenodeids: &[2, 0, 0, 2, 0, 0],
            class_treeids: &[0, 0, 1, 1],
            class_nodeids: &[1, 2, 1, 2],
            class_ids: &[0, 1, 2, 2],
            class_weights: &[0.5, 0.25, 0.125, 0.0625],
            base_values: None,
        })
        .unwrap()
    }

    #[test]
    fn each_tree_adds_its_leaf_weights() {
        let f = stumps();
        assert_eq!((f.n_trees(), f.n_features(), f.n_classes()), (2, 2, 3));
        let mut out = [0.0; 3];
        f.predict_into(&[0.5, -2.0], &mut out);
        assert_eq!(out, [0.5, 0.0, 0.125]);
        f.predict_into(&[0.6, 0.0], &mut out);
        assert_eq!(out, [0.0, 0.25, 0.0625]);
    }

    #[test]
    fn node_ids_in_any_order_give_the_same_forest_output() {
        // The second stump listed leaves first, with ids out of order.
        let f = Forest::build(&ForestSpec {
            n_classes: 3,
            nodes_treeids: &[0, 0, 0, 1, 1, 1],
            nodes_nodeids: &[0, 1, 2, 2, 1, 0],
            nodes_featureids: &[0, 0, 0, 0, 0, 1],
            nodes_values: &[0.5, 0.0, 0.0, 0.0, 0.0, -1.0],
            nodes_modes: &["BRANCH_LEQ", "LEAF", "LEAF", "LEAF", "LEAF", "BRANCH_LEQ"],
            nodes_truenodeids: &[1, 0, 0, 0, 0, 1],
            nodes_falsenodeids: &[2, 0, 0, 0, 0, 2],
            class_treeids: &[1, 0, 1, 0],
            class_nodeids: &[2, 1, 1, 2],
            class_ids: &[2, 0, 2, 1],
            class_weights: &[0.0625, 0.5, 0.125, 0.25],
            base_values: None,
        })
        .unwrap();
        let reference = stumps();
        let (mut a, mut b) = ([0.0; 3], [0.0; 3]);
        for row in [[0.5, -2.0], [0.6, 0.0], [-3.0, 5.0]] {
            f.predict_into(&row, &mut a);
            reference.predict_into(&row, &mut b);
            assert_eq!(a, b, "row {row:?}");
        }
    }

    #[test]
    fn malformed_forests_are_refused_with_the_culprit() {
        let mut spec = ForestSpec {
            n_classes: 3,
            nodes_treeids: &[0, 0, 0],
            nodes_nodeids: &[0, 1, 2],
            nodes_featureids: &[0, 0, 0],
            nodes_values: &[0.5, 0.0, 0.0],
            nodes_modes: &["BRANCH_LEQ", "LEAF", "LEAF"],
            nodes_truenodeids: &[1, 0, 0],
            nodes_falsenodeids: &[7, 0, 0],
            class_treeids: &[0],
            class_nodeids: &[1],
            class_ids: &[0],
            class_weights: &[1.0],
            base_values: None,
        };
        assert_eq!(
            Forest::build(&spec).unwrap_err(),
            ForestError::Child {
                tree: 0,
                node: 0,
                child: 7
            }
        );
        spec.nodes_falsenodeids = &[2, 0, 0];
        spec.class_ids = &[5];
        assert_eq!(
            Forest::build(&spec).unwrap_err(),
            ForestError::Class {
                class: 5,
                n_classes: 3
            }
        );
        spec.class_ids = &[0];
        spec.nodes_modes = &["BRANCH_SOMETIMES", "LEAF", "LEAF"];
        assert!(Forest::build(&spec)
            .unwrap_err()
            .to_string()
            .contains("BRANCH_SOMETIMES"));
    }
}
