//! Approximate nearest neighbours for large knowledge bases: an HNSW graph (`hnsw_rs`) over the rows of
//! the [`super::vectors::VectorMatrix`], keyed by `vec_id`. The matrix stays the source of truth: deleted
//! vectors are filtered out during the graph walk, and the graph is rebuilt once too many are dead.
//! Small indices never get a graph: below [`ANN_MIN_VECTORS`] an exact scan is both faster and exact.

use hnsw_rs::prelude::{Distance, Hnsw};

use super::vectors::dot;

/// Below this many vectors search stays exact.
pub const ANN_MIN_VECTORS: usize = 20_000;
const MAX_CONNECTIONS: usize = 16;
const MAX_LAYERS: usize = 16;
const EF_CONSTRUCTION: usize = 128;
const EF_SEARCH_MIN: usize = 64;

/// Cosine distance of unit vectors, clamped so rounding never makes it negative.
#[derive(Debug, Default, Clone, Copy)]
pub struct UnitCosine;

impl Distance<f32> for UnitCosine {
    fn eval(&self, left: &[f32], right: &[f32]) -> f32 {
        (1.0 - dot(left, right)).max(0.0)
    }
}

pub struct AnnGraph {
    graph: Hnsw<'static, f32, UnitCosine>,
    /// Vectors inserted into the graph (live or since deleted).
    inserted: usize,
}

impl AnnGraph {
    /// Builds a graph over `rows` using every core (rayon).
    pub fn build(rows: &[(u64, Vec<f32>)]) -> Self {
        let graph = Hnsw::new(MAX_CONNECTIONS, rows.len().max(1024), MAX_LAYERS, EF_CONSTRUCTION, UnitCosine);
        let batch: Vec<(&Vec<f32>, usize)> = rows.iter().map(|(vec_id, vector)| (vector, *vec_id as usize)).collect();
        graph.parallel_insert(&batch);
        Self { graph, inserted: rows.len() }
    }

    pub fn insert(&mut self, vec_id: u64, vector: &[f32]) {
        self.graph.insert((vector, vec_id as usize));
        self.inserted += 1;
    }

    pub fn inserted(&self) -> usize {
        self.inserted
    }

    /// The `limit` nearest live vectors as `(vec_id, cosine similarity)`, best first.
    pub fn search(&self, query: &[f32], limit: usize, is_live: &dyn Fn(u64) -> bool) -> Vec<(u64, f32)> {
        let filter = |id: &usize| is_live(*id as u64);
        // The candidate list: at least EF_SEARCH_MIN, and a little wider than what is asked for.
        let ef = (limit + limit / 2).clamp(EF_SEARCH_MIN, 4096);
        self.graph
            .search_filter(query, limit, ef, Some(&filter))
            .into_iter()
            .map(|neighbour| (neighbour.d_id as u64, 1.0 - neighbour.distance))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic pseudo-random unit vectors (xorshift), enough structure for a recall check.
    fn vectors(count: usize, dimension: usize, seed: u64) -> Vec<(u64, Vec<f32>)> {
        let mut state = seed;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 2000) as f32 / 1000.0 - 1.0
        };
        (0..count as u64)
            .map(|vec_id| {
                let mut vector: Vec<f32> = (0..dimension).map(|_| next()).collect();
                crate::knowledge::embedder::normalise(&mut vector);
                (vec_id, vector)
            })
            .collect()
    }

    #[test]
    fn finds_the_exact_neighbours_nearly_always_and_respects_the_filter() {
        let rows = vectors(3000, 32, 7);
        let graph = AnnGraph::build(&rows);
        let queries = vectors(50, 32, 99);
        let mut found = 0;
        for (_, query) in &queries {
            let mut exact: Vec<(u64, f32)> = rows.iter().map(|(id, vector)| (*id, dot(query, vector))).collect();
            exact.sort_by(|a, b| b.1.total_cmp(&a.1));
            let truth: Vec<u64> = exact.iter().take(10).map(|(id, _)| *id).collect();
            let approximate = graph.search(query, 10, &|_| true);
            found += approximate.iter().filter(|(id, _)| truth.contains(id)).count();
        }
        let recall = found as f64 / (queries.len() * 10) as f64;
        assert!(recall > 0.9, "recall@10 {recall}");
        let even_only = graph.search(&queries[0].1, 10, &|id| id % 2 == 0);
        assert_eq!(even_only.len(), 10);
        assert!(even_only.iter().all(|(id, _)| id % 2 == 0));
    }
}
