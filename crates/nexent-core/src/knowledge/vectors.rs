//! The in-memory vector matrix of one knowledge base: unit vectors keyed by the chunk's `vec_id`, with
//! exact (brute-force) cosine search. Tantivy's stored `embedding` field is the source of truth; this
//! matrix is rebuilt from it when an index opens and kept in step by the writer after each commit.
//! Deleted rows are tombstoned and compacted away once a quarter of the matrix is dead.

use std::collections::{BinaryHeap, HashMap};

/// One nearest neighbour: the chunk's `vec_id` and its cosine similarity to the query.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VectorHit {
    pub vec_id: u64,
    pub similarity: f32,
}

#[derive(Debug, Clone)]
pub struct VectorMatrix {
    dimension: usize,
    vec_ids: Vec<u64>,
    alive: Vec<bool>,
    data: Vec<f32>,
    row_of: HashMap<u64, usize>,
    dead_rows: usize,
}

impl VectorMatrix {
    pub fn new(dimension: usize) -> Self {
        Self {
            dimension,
            vec_ids: Vec::new(),
            alive: Vec::new(),
            data: Vec::new(),
            row_of: HashMap::new(),
            dead_rows: 0,
        }
    }

    pub fn dimension(&self) -> usize {
        self.dimension
    }

    pub fn len(&self) -> usize {
        self.vec_ids.len() - self.dead_rows
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains(&self, vec_id: u64) -> bool {
        self.row_of.contains_key(&vec_id)
    }

    /// A copy of every live row, for building a graph off the lock.
    pub fn live_rows(&self) -> Vec<(u64, Vec<f32>)> {
        self.vec_ids
            .iter()
            .enumerate()
            .filter(|(row, _)| self.alive[*row])
            .map(|(row, vec_id)| (*vec_id, self.data[row * self.dimension..(row + 1) * self.dimension].to_vec()))
            .collect()
    }

    /// Adds (or replaces) a vector. The caller guarantees the dimension (checked at the API boundary).
    pub fn insert(&mut self, vec_id: u64, vector: &[f32]) {
        debug_assert_eq!(vector.len(), self.dimension);
        self.remove(vec_id);
        self.row_of.insert(vec_id, self.vec_ids.len());
        self.vec_ids.push(vec_id);
        self.alive.push(true);
        self.data.extend_from_slice(vector);
    }

    pub fn remove(&mut self, vec_id: u64) {
        if let Some(row) = self.row_of.remove(&vec_id) {
            self.alive[row] = false;
            self.dead_rows += 1;
            if self.dead_rows * 4 > self.vec_ids.len() {
                self.compact();
            }
        }
    }

    fn compact(&mut self) {
        let mut next = VectorMatrix::new(self.dimension);
        for (row, vec_id) in self.vec_ids.iter().enumerate() {
            if self.alive[row] {
                next.insert(*vec_id, &self.data[row * self.dimension..(row + 1) * self.dimension]);
            }
        }
        *self = next;
    }

    /// The `limit` most similar live vectors, best first.
    pub fn search(&self, query: &[f32], limit: usize) -> Vec<VectorHit> {
        if limit == 0 || query.len() != self.dimension {
            return Vec::new();
        }
        // A min-heap of the best `limit` seen so far (scores as ordered integers for a total order).
        let mut best: BinaryHeap<std::cmp::Reverse<(OrderedScore, usize)>> = BinaryHeap::with_capacity(limit + 1);
        for (row, chunk) in self.data.chunks_exact(self.dimension).enumerate() {
            if !self.alive[row] {
                continue;
            }
            let score = OrderedScore(dot(query, chunk));
            if best.len() < limit {
                best.push(std::cmp::Reverse((score, row)));
            } else if best.peek().is_some_and(|worst| score > worst.0.0) {
                best.pop();
                best.push(std::cmp::Reverse((score, row)));
            }
        }
        let mut hits: Vec<VectorHit> = best
            .into_iter()
            .map(|std::cmp::Reverse((score, row))| VectorHit { vec_id: self.vec_ids[row], similarity: score.0 })
            .collect();
        hits.sort_by(|left, right| right.similarity.total_cmp(&left.similarity).then(left.vec_id.cmp(&right.vec_id)));
        hits
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct OrderedScore(f32);

impl Eq for OrderedScore {}

impl PartialOrd for OrderedScore {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderedScore {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Dot product. Every search and graph step computes thousands of these, so on x86-64 CPUs with AVX2 and
/// FMA (checked once at run time; the binary itself targets baseline x86-64) a copy compiled for them runs.
pub fn dot(left: &[f32], right: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU was just checked to have the features `dot_avx2` is compiled for.
        #[allow(unsafe_code)]
        return unsafe { dot_avx2(left, right) };
    }
    dot_lanes(left, right)
}

/// Eight independent lanes, which the compiler turns into SIMD registers; `$step` adds one product to a
/// lane. A macro rather than a function taking a closure: the closure would be compiled without the
/// caller's target features, and `mul_add` there becomes a call into libm for every element.
macro_rules! dot_in_lanes {
    ($left:expr, $right:expr, |$a:ident, $b:ident, $sum:ident| $step:expr) => {{
        let mut lanes = [0.0f32; 8];
        let left_chunks = $left.chunks_exact(8);
        let right_chunks = $right.chunks_exact(8);
        let tail: f32 = left_chunks.remainder().iter().zip(right_chunks.remainder()).map(|(a, b)| a * b).sum();
        for (a, b) in left_chunks.zip(right_chunks) {
            for lane in 0..8 {
                let ($a, $b, $sum) = (a[lane], b[lane], lanes[lane]);
                lanes[lane] = $step;
            }
        }
        lanes.iter().sum::<f32>() + tail
    }};
}

/// The eight lanes with fused multiply-adds, compiled for AVX2 + FMA (one 256-bit register).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn dot_avx2(left: &[f32], right: &[f32]) -> f32 {
    dot_in_lanes!(left, right, |a, b, sum| a.mul_add(b, sum))
}

/// The portable path: two SSE registers. (No `mul_add` here: without FMA hardware it is a library call.)
fn dot_lanes(left: &[f32], right: &[f32]) -> f32 {
    dot_in_lanes!(left, right, |a, b, sum| sum + a * b)
}

/// Vectors travel in Tantivy's stored field as little-endian f32 bytes.
pub fn vector_to_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|value| value.to_le_bytes()).collect()
}

pub fn vector_from_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|chunk| f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(values: &[f32]) -> Vec<f32> {
        let mut vector = values.to_vec();
        crate::knowledge::embedder::normalise(&mut vector);
        vector
    }

    #[test]
    fn finds_the_nearest_vectors_in_order() {
        let mut matrix = VectorMatrix::new(3);
        matrix.insert(1, &unit(&[1.0, 0.0, 0.0]));
        matrix.insert(2, &unit(&[0.0, 1.0, 0.0]));
        matrix.insert(3, &unit(&[1.0, 1.0, 0.0]));
        let hits = matrix.search(&unit(&[1.0, 0.2, 0.0]), 2);
        assert_eq!(hits.iter().map(|hit| hit.vec_id).collect::<Vec<_>>(), [1, 3]);
        assert!(hits[0].similarity > hits[1].similarity);
    }

    #[test]
    fn removed_vectors_are_never_returned_and_compaction_keeps_the_rest() {
        let mut matrix = VectorMatrix::new(2);
        for id in 0..10u64 {
            matrix.insert(id, &unit(&[1.0, id as f32]));
        }
        for id in 0..6u64 {
            matrix.remove(id);
        }
        assert_eq!(matrix.len(), 4);
        let ids: Vec<u64> = matrix.search(&unit(&[1.0, 5.0]), 10).iter().map(|hit| hit.vec_id).collect();
        assert_eq!(ids.len(), 4);
        assert!(ids.iter().all(|id| *id >= 6));
    }

    #[test]
    fn dot_matches_the_naive_sum_for_odd_lengths() {
        let left: Vec<f32> = (0..19).map(|value| value as f32 * 0.5).collect();
        let right: Vec<f32> = (0..19).map(|value| 1.0 - value as f32 * 0.1).collect();
        let naive: f32 = left.iter().zip(&right).map(|(a, b)| a * b).sum();
        assert!((dot(&left, &right) - naive).abs() < 1e-4);
        assert!((dot_lanes(&left, &right) - naive).abs() < 1e-4, "the portable path too");
        assert_eq!(vector_from_bytes(&vector_to_bytes(&left)), left);
    }
}
