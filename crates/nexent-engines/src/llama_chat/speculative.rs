//! Speculative decoding: cheap guesses of the next few tokens, checked by the chat model in one pass.
//!
//! On a CPU, generating one token reads every weight of the model once; checking a run of six guessed
//! tokens in one batch reads them once too, at a little more arithmetic. So when most guesses are right,
//! several tokens cost about one. The answer does not change: each token is still picked from the chat
//! model's own logits by the request's sampler (greedy, a draw, a grammar), and a guess only counts when
//! it is the token picked; the first wrong guess and everything after it are dropped from the KV cache.
//! (A batch's arithmetic differs from one token's in the last bits, which can tip a near tie.)
//!
//! Two sources of guesses, tried in order:
//! - **prompt lookup**: the last few tokens written are looked up earlier in the conversation, and what
//!   followed them there is the guess. Free, and right often in this product, whose answers quote the
//!   sources in the prompt (a RAG answer, a tool call repeating the question).
//! - **a draft model**: a smaller model of the same tokenizer (Qwen2.5-Coder 0.5B for the 1.5B) writes the
//!   guess greedily, stopping early when it is unsure. It reads the prompt too, which costs what reading it
//!   costs the small model; `bench/results/agent.md` measures whether that pays.

use std::path::{Path, PathBuf};

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::{KvTokens, PROMPT_BATCH};

/// Most tokens guessed at once (`--draft-tokens`, 0 turns guessing off).
pub const DEFAULT_DRAFT_TOKENS: usize = 6;
/// Most tokens a run may have; the batch the chat model checks holds one more.
pub const MAX_DRAFT_TOKENS: usize = 32;
/// Prompt lookup matches the last `MAX_LOOKUP_NGRAM` tokens, else fewer, down to `MIN_LOOKUP_NGRAM`.
const MIN_LOOKUP_NGRAM: usize = 2;
const MAX_LOOKUP_NGRAM: usize = 4;
/// The draft model stops guessing at a token it gives less than this probability.
const MIN_DRAFT_PROBABILITY: f32 = 0.6;
/// Vocabularies may differ by a few added tokens at the end (llama.cpp's own check allows 128).
const MAX_VOCAB_DIFFERENCE: i32 = 128;

/// How the chat model guesses ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeculationConfig {
    /// Most tokens guessed at once; 0 turns guessing off.
    pub draft_tokens: usize,
    /// Guess from the conversation itself (prompt lookup).
    pub prompt_lookup: bool,
    /// A smaller model of the same tokenizer that drafts when lookup finds nothing.
    pub draft_model: Option<PathBuf>,
}

impl Default for SpeculationConfig {
    fn default() -> Self {
        Self { draft_tokens: DEFAULT_DRAFT_TOKENS, prompt_lookup: true, draft_model: None }
    }
}

/// The tokens that followed the latest earlier occurrence of `history`'s last n tokens (n from
/// [`MAX_LOOKUP_NGRAM`] down to [`MIN_LOOKUP_NGRAM`]), at most `max` of them; empty when none occurs.
pub fn prompt_lookup<T: PartialEq + Copy>(history: &[T], max: usize) -> Vec<T> {
    if max == 0 {
        return Vec::new();
    }
    for n in (MIN_LOOKUP_NGRAM..=MAX_LOOKUP_NGRAM).rev() {
        if history.len() <= n {
            continue;
        }
        let tail = &history[history.len() - n..];
        // The most recent occurrence first: in an answer, the passage being quoted is the latest match.
        if let Some(start) = (0..history.len() - n).rev().find(|&start| history[start..start + n] == *tail) {
            let follows = start + n;
            return history[follows..(follows + max).min(history.len())].to_vec();
        }
    }
    Vec::new()
}

/// The guessing side of one engine: lookup, and the draft model with its own context when there is one.
pub struct Guesser<'d> {
    config: SpeculationConfig,
    draft: Option<DraftModel<'d>>,
    /// The chat model's vocabulary size: a guess past it is never checked.
    target_vocab: i32,
}

impl<'d> Guesser<'d> {
    pub fn new(config: SpeculationConfig, draft: Option<DraftModel<'d>>, target: &LlamaModel) -> Self {
        Self { config, draft, target_vocab: target.vocab().n_tokens() }
    }

    pub fn enabled(&self) -> bool {
        self.config.draft_tokens > 0
    }

    /// Up to `room` tokens guessed to follow `history` (the conversation so far, its last token included).
    pub fn guess(&mut self, history: &[LlamaToken], room: usize) -> Vec<LlamaToken> {
        let max = self.config.draft_tokens.min(MAX_DRAFT_TOKENS).min(room);
        if max == 0 {
            return Vec::new();
        }
        let mut guess = if self.config.prompt_lookup { prompt_lookup(history, max) } else { Vec::new() };
        if guess.is_empty()
            && let Some(draft) = self.draft.as_mut()
        {
            guess = draft.draft(history, max);
        }
        if let Some(invalid) = guess.iter().position(|token| token.0 < 0 || token.0 >= self.target_vocab) {
            guess.truncate(invalid);
        }
        guess
    }
}

/// A loaded draft model and its context. The model lives as long as the engine thread.
pub struct DraftModel<'d> {
    model: &'d LlamaModel,
    context: LlamaContext<'d>,
    cache: KvTokens,
    batch: LlamaBatch<'static>,
}

/// Loads a draft model file; the caller keeps the model alive while the [`DraftModel`] borrows it.
pub fn load_draft_model(backend: &LlamaBackend, path: &Path, target: &LlamaModel) -> Result<LlamaModel, String> {
    if !path.is_file() {
        return Err(format!("no draft model file {}", path.display()));
    }
    let model = LlamaModel::load_from_file(backend, path, &super::model_params())
        .map_err(|error| format!("cannot load the draft model {}: {error}", path.display()))?;
    compatible(target, &model).map_err(|reason| format!("{} cannot draft for this model: {reason}", path.display()))?;
    Ok(model)
}

impl<'d> DraftModel<'d> {
    pub fn new(model: &'d LlamaModel, context: LlamaContext<'d>) -> Self {
        Self { model, context, cache: KvTokens::default(), batch: LlamaBatch::new(PROMPT_BATCH, 1) }
    }

    /// Greedy tokens after `history`, at most `max`, stopping before a token the model is unsure of or
    /// after an end of generation. Empty when the context cannot take more.
    fn draft(&mut self, history: &[LlamaToken], max: usize) -> Vec<LlamaToken> {
        let window = self.context.n_ctx() as usize;
        if history.len() + max + 1 >= window {
            return Vec::new();
        }
        // Only what the draft context has not read yet is decoded: the tokens accepted since the last draft.
        let reused = self.cache.reuse(&mut self.context, history);
        let mut index = 0;
        for (start, piece) in
            history[reused..].chunks(PROMPT_BATCH).enumerate().map(|(n, piece)| (reused + n * PROMPT_BATCH, piece))
        {
            self.batch.clear();
            for (offset, token) in piece.iter().enumerate() {
                let position = start + offset;
                if self.batch.add(*token, position as i32, &[0], position + 1 == history.len()).is_err() {
                    return Vec::new();
                }
            }
            if !self.decode() {
                return Vec::new();
            }
            self.cache.tokens.extend_from_slice(piece);
            index = self.batch.n_tokens() - 1;
        }
        let vocab = self.model.vocab();
        let mut drafted = Vec::with_capacity(max);
        let mut position = history.len();
        loop {
            let (token, probability) = most_likely(self.context.get_logits_ith(index));
            if probability < MIN_DRAFT_PROBABILITY {
                break;
            }
            drafted.push(token);
            if drafted.len() >= max || vocab.is_eog(token) {
                break;
            }
            self.batch.clear();
            if self.batch.add(token, position as i32, &[0], true).is_err() || !self.decode() {
                break;
            }
            self.cache.tokens.push(token);
            position += 1;
            index = 0;
        }
        drafted
    }

    fn decode(&mut self) -> bool {
        match self.context.decode(&mut self.batch) {
            Ok(()) => true,
            Err(error) => {
                tracing::debug!(%error, "the draft model could not decode; no guess this time");
                self.cache.forget(&mut self.context);
                false
            }
        }
    }
}

/// The most likely token and its probability under a softmax of `logits`.
fn most_likely(logits: &[f32]) -> (LlamaToken, f32) {
    let (best, top) = logits.iter().copied().enumerate().fold((0, f32::NEG_INFINITY), |(best, top), (index, logit)| {
        if logit > top { (index, logit) } else { (best, top) }
    });
    let total: f32 = logits.iter().map(|logit| (logit - top).exp()).sum();
    let probability = if total.is_finite() && total > 0.0 { 1.0 / total } else { 0.0 };
    (LlamaToken(best as i32), probability)
}

/// Whether `draft` writes tokens `target` reads the same way: same tokenizer kind, same special tokens,
/// vocabularies of about one size, and the same text for a sample of token ids.
fn compatible(target: &LlamaModel, draft: &LlamaModel) -> Result<(), String> {
    let (target_vocab, draft_vocab) = (target.vocab(), draft.vocab());
    if target_vocab.vocab_type() != draft_vocab.vocab_type() {
        return Err("its tokenizer is of another kind".into());
    }
    if target_vocab.bos() != draft_vocab.bos() || target_vocab.eos() != draft_vocab.eos() {
        return Err("its start and end tokens differ".into());
    }
    let (target_size, draft_size) = (target_vocab.n_tokens(), draft_vocab.n_tokens());
    if (target_size - draft_size).abs() > MAX_VOCAB_DIFFERENCE {
        return Err(format!("its vocabulary has {draft_size} tokens, the model's {target_size}"));
    }
    for id in (0..target_size.min(draft_size)).step_by(97) {
        let token = LlamaToken(id);
        if target_vocab.text(token) != draft_vocab.text(token) {
            return Err(format!("token {id} reads differently"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_continues_the_latest_occurrence_of_the_longest_tail() {
        // No earlier "5 9 2 3" or "9 2 3"; "2 3" occurs at the start, followed by "4 5 9".
        let history = [1, 2, 3, 4, 5, 9, 2, 3];
        assert_eq!(prompt_lookup(&history, 3), vec![4, 5, 9]);
        // A longer tail wins over a more recent shorter one.
        let history = [7, 2, 3, 4, 8, 3, 4, 6, 7, 2, 3, 4];
        assert_eq!(prompt_lookup(&history, 2), vec![8, 3]);
    }

    #[test]
    fn lookup_stops_at_the_end_of_what_was_written_and_at_max() {
        let history = [1, 2, 3, 1, 2];
        assert_eq!(prompt_lookup(&history, 10), vec![3, 1, 2]);
        assert_eq!(prompt_lookup(&history, 1), vec![3]);
        assert!(prompt_lookup(&history, 0).is_empty());
    }

    #[test]
    fn lookup_finds_nothing_in_new_text() {
        assert!(prompt_lookup(&[1, 2, 3, 4, 5, 6], 4).is_empty());
        assert!(prompt_lookup::<i32>(&[], 4).is_empty());
        assert!(prompt_lookup(&[1, 1], 4).is_empty());
        // One repeated token is not enough of a tail.
        assert!(prompt_lookup(&[5, 1, 2, 5], 4).is_empty());
    }

    #[test]
    fn most_likely_gives_the_softmax_probability() {
        let (token, probability) = most_likely(&[0.0, 10.0, 0.0]);
        assert_eq!(token, LlamaToken(1));
        assert!(probability > 0.99 && probability <= 1.0, "{probability}");
        let (_, even) = most_likely(&[1.0, 1.0, 1.0, 1.0]);
        assert!((even - 0.25).abs() < 1e-6);
    }
}
