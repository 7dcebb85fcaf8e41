//! Merging a keyword result list and a vector result list into one ranking (pure; no index access).
//!
//! [`Fusion::WeightedMax`] is Nexent's hybrid formula (nexent-api.md §3.3): each list is divided by its
//! own maximum score, then `weight_accurate * accurate + (1 - weight_accurate) * semantic`, a document
//! missing from a list counting 0 there. [`Fusion::ReciprocalRank`] is RRF: `Σ weight / (k + rank)`,
//! which ignores score scales entirely. [`Fusion::WeightedMinMax`] stretches each list to [0, 1] before
//! the weighted sum. All report the normalised per-list scores as details.

use std::collections::HashMap;

/// How hybrid search combines its two lists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Max-normalised weighted sum (Nexent's default).
    WeightedMax,
    /// Min-max-normalised weighted sum ("relative score fusion"): each list is stretched to [0, 1].
    WeightedMinMax,
    /// Reciprocal-rank fusion with the given `k` (60 is the usual choice).
    ReciprocalRank { k: f32 },
}

/// One hit of one list: a document key and its raw score, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredKey {
    pub key: String,
    pub score: f32,
}

/// A fused hit: the overall score and each list's normalised score (0 when absent from that list).
#[derive(Debug, Clone, PartialEq)]
pub struct FusedHit {
    pub key: String,
    pub score: f32,
    pub accurate: f32,
    pub semantic: f32,
}

/// Fuses two ranked lists; returns at most `limit` hits, best first, ties broken by key for stability.
pub fn fuse(
    accurate: &[ScoredKey],
    semantic: &[ScoredKey],
    weight_accurate: f32,
    fusion: Fusion,
    limit: usize,
) -> Vec<FusedHit> {
    let max_of = |list: &[ScoredKey]| list.iter().map(|hit| hit.score).fold(0.0f32, f32::max);
    let min_of = |list: &[ScoredKey]| list.iter().map(|hit| hit.score).fold(f32::INFINITY, f32::min);
    let (floor_accurate, floor_semantic) = match fusion {
        Fusion::WeightedMinMax => (min_of(accurate), min_of(semantic)),
        _ => (0.0, 0.0),
    };
    let max_accurate = max_of(accurate) - floor_accurate;
    let max_semantic = max_of(semantic) - floor_semantic;
    let normalise = |score: f32, floor: f32, max: f32| {
        if max > 0.0 {
            (score - floor) / max
        } else if floor > 0.0 {
            1.0
        } else {
            0.0
        }
    };

    let mut merged: HashMap<&str, FusedHit> = HashMap::new();
    for (rank, hit) in accurate.iter().enumerate() {
        let entry = merged.entry(&hit.key).or_insert_with(|| empty_hit(&hit.key));
        entry.accurate = normalise(hit.score, floor_accurate, max_accurate);
        if let Fusion::ReciprocalRank { k } = fusion {
            entry.score += weight_accurate / (k + rank as f32 + 1.0);
        }
    }
    for (rank, hit) in semantic.iter().enumerate() {
        let entry = merged.entry(&hit.key).or_insert_with(|| empty_hit(&hit.key));
        entry.semantic = normalise(hit.score, floor_semantic, max_semantic);
        if let Fusion::ReciprocalRank { k } = fusion {
            entry.score += (1.0 - weight_accurate) / (k + rank as f32 + 1.0);
        }
    }
    let mut hits: Vec<FusedHit> = merged.into_values().collect();
    if matches!(fusion, Fusion::WeightedMax | Fusion::WeightedMinMax) {
        for hit in &mut hits {
            hit.score = weight_accurate * hit.accurate + (1.0 - weight_accurate) * hit.semantic;
        }
    }
    hits.sort_by(|left, right| right.score.total_cmp(&left.score).then_with(|| left.key.cmp(&right.key)));
    hits.truncate(limit);
    hits
}

fn empty_hit(key: &str) -> FusedHit {
    FusedHit { key: key.to_owned(), score: 0.0, accurate: 0.0, semantic: 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(pairs: &[(&str, f32)]) -> Vec<ScoredKey> {
        pairs.iter().map(|(key, score)| ScoredKey { key: (*key).to_owned(), score: *score }).collect()
    }

    #[test]
    fn weighted_max_follows_nexents_formula() {
        let accurate = list(&[("a", 10.0), ("b", 5.0)]);
        let semantic = list(&[("b", 0.9), ("c", 0.45)]);
        let hits = fuse(&accurate, &semantic, 0.3, Fusion::WeightedMax, 10);
        let by_key: HashMap<_, _> = hits.iter().map(|hit| (hit.key.as_str(), hit)).collect();
        assert!((by_key["a"].score - 0.3).abs() < 1e-6);
        assert!((by_key["b"].score - (0.3 * 0.5 + 0.7 * 1.0)).abs() < 1e-6);
        assert!((by_key["c"].score - 0.7 * 0.5).abs() < 1e-6);
        assert_eq!(hits[0].key, "b");
        assert_eq!((by_key["b"].accurate, by_key["b"].semantic), (0.5, 1.0));
    }

    #[test]
    fn weights_at_the_ends_reproduce_each_list() {
        let accurate = list(&[("a", 3.0), ("b", 2.0)]);
        let semantic = list(&[("b", 0.9), ("a", 0.1)]);
        let keyword_only: Vec<_> =
            fuse(&accurate, &semantic, 1.0, Fusion::WeightedMax, 2).into_iter().map(|hit| hit.key).collect();
        assert_eq!(keyword_only, ["a", "b"]);
        let vector_only: Vec<_> =
            fuse(&accurate, &semantic, 0.0, Fusion::WeightedMax, 2).into_iter().map(|hit| hit.key).collect();
        assert_eq!(vector_only, ["b", "a"]);
    }

    #[test]
    fn rrf_rewards_documents_found_by_both_lists() {
        let accurate = list(&[("a", 100.0), ("both", 1.0)]);
        let semantic = list(&[("c", 0.99), ("both", 0.98)]);
        let hits = fuse(&accurate, &semantic, 0.5, Fusion::ReciprocalRank { k: 60.0 }, 3);
        assert_eq!(hits[0].key, "both");
        assert_eq!(hits.len(), 3);
    }

    #[test]
    fn min_max_stretches_each_list_to_the_unit_range() {
        let accurate = list(&[("a", 10.0), ("b", 6.0), ("c", 2.0)]);
        let semantic = list(&[("c", 0.8), ("a", 0.7)]);
        let hits = fuse(&accurate, &semantic, 0.5, Fusion::WeightedMinMax, 3);
        let by_key: HashMap<_, _> = hits.iter().map(|hit| (hit.key.as_str(), hit)).collect();
        assert_eq!((by_key["a"].accurate, by_key["a"].semantic), (1.0, 0.0));
        assert_eq!((by_key["b"].accurate, by_key["c"].accurate), (0.5, 0.0));
        assert_eq!(by_key["c"].semantic, 1.0);
    }

    #[test]
    fn empty_lists_give_no_hits_and_no_nan() {
        assert!(fuse(&[], &[], 0.3, Fusion::WeightedMax, 5).is_empty());
        let hits = fuse(&list(&[("a", 0.0)]), &[], 0.3, Fusion::WeightedMax, 5);
        assert_eq!(hits[0].score, 0.0);
    }
}
