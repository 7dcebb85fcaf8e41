//! GBNF grammars on llama.cpp that no grammar can turn into a crash.
//!
//! llama.cpp's grammar sampler throws a C++ exception when a grammar reaches a dead end (nothing may follow
//! what was accepted), and aborts outright when asked to accept a token the grammar forbids; a C++ exception
//! that reaches Rust aborts the process. So grammars are never driven through `llama_sampler_sample`:
//! [`GuardedGrammar`] calls the grammar through a small C++ shim (`cpp/grammar_shim.cpp`) that catches every
//! exception, removes the forbidden tokens itself, lets the request's sampling chain choose among the allowed
//! ones only, and reports a dead end (no token allowed) as `None`, so the answer ends normally. A grammar
//! that failed once is never used again (llama.cpp may have left its state half-updated).
//!
//! Grammars from clients are also bounded before llama.cpp parses them ([`check_shape`]): its parser and its
//! stack expansion recurse once per nesting level and per rule reference.

use std::ffi::{CString, c_char, c_int};
use std::ptr::NonNull;

use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;
use llama_cpp_2::token::data::LlamaTokenData;
use llama_cpp_2::token::data_array::LlamaTokenDataArray;
use llama_cpp_2::vocab::LlamaVocab;
use llama_cpp_sys_2::{llama_sampler, llama_token, llama_token_data, llama_token_data_array, llama_vocab};

#[allow(unsafe_code)]
unsafe extern "C" {
    fn nexent_grammar_init(
        vocab: *const llama_vocab,
        grammar: *const c_char,
        root: *const c_char,
    ) -> *mut llama_sampler;
    fn nexent_sampler_apply(sampler: *mut llama_sampler, candidates: *mut llama_token_data_array) -> c_int;
    fn nexent_sampler_accept(sampler: *mut llama_sampler, token: llama_token) -> c_int;
}

/// The longest grammar accepted, in bytes (the tools' grammars of a large agent stay far below).
pub const MAX_GRAMMAR_BYTES: usize = 64 * 1024;
/// The deepest nesting of parentheses: llama.cpp's parser recurses once per level.
pub const MAX_GRAMMAR_NESTING: usize = 64;
/// The most rules: llama.cpp expands a chain of rule references recursively.
pub const MAX_GRAMMAR_RULES: usize = 2048;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum GrammarError {
    #[error("the grammar is longer than {MAX_GRAMMAR_BYTES} bytes")]
    TooLong,
    #[error("the grammar nests parentheses deeper than {MAX_GRAMMAR_NESTING} levels")]
    TooDeep,
    #[error("the grammar has more than {MAX_GRAMMAR_RULES} rules")]
    TooManyRules,
    #[error("the grammar contains a NUL character")]
    Nul,
    #[error(
        "the grammar does not parse, uses an undefined rule, is left-recursive or has no `{0}` rule (GBNF, as llama.cpp reads it)"
    )]
    Rejected(String),
}

/// A grammar sampler owned here (never handed to llama-cpp-2's `LlamaSampler`, whose `sample` could throw).
pub struct GuardedGrammar {
    raw: NonNull<llama_sampler>,
    /// llama.cpp threw inside this grammar: its stacks may be empty, and using it again would abort.
    broken: bool,
}

// SAFETY: the sampler is used by one thread at a time (`&mut self`); llama.cpp keeps no thread affinity.
#[allow(unsafe_code)]
unsafe impl Send for GuardedGrammar {}

impl GuardedGrammar {
    /// Parses `grammar` for `model`'s vocabulary, starting at the rule `root`.
    pub fn new(model: &LlamaModel, grammar: &str, root: &str) -> Result<Self, GrammarError> {
        check_shape(grammar)?;
        let grammar = CString::new(grammar).map_err(|_| GrammarError::Nul)?;
        let root_rule = CString::new(root).map_err(|_| GrammarError::Nul)?;
        #[allow(unsafe_code)]
        // SAFETY: the vocabulary outlives this call (borrowed from `model`); the strings are NUL-terminated.
        let raw = unsafe { nexent_grammar_init(vocab_ptr(model.vocab()), grammar.as_ptr(), root_rule.as_ptr()) };
        NonNull::new(raw).map(|raw| Self { raw, broken: false }).ok_or_else(|| GrammarError::Rejected(root.to_owned()))
    }

    /// The next token from the logits at `index`: the grammar removes what it forbids, `chain` (the
    /// request's sampling, ending in greedy or a random draw) picks among what is left, and the grammar
    /// accepts the pick. `None` when the grammar allows no token at all (a dead end) or llama.cpp failed.
    pub fn sample(&mut self, context: &LlamaContext<'_>, index: i32, chain: &mut LlamaSampler) -> Option<LlamaToken> {
        if self.broken {
            return None;
        }
        let mut candidates: Vec<llama_token_data> = context
            .get_logits_ith(index)
            .iter()
            .enumerate()
            .map(|(id, &logit)| llama_token_data { id: id as llama_token, logit, p: 0.0 })
            .collect();
        let (data, size) = (candidates.as_mut_ptr(), candidates.len());
        let mut array = llama_token_data_array { data, size, selected: -1, sorted: false };
        #[allow(unsafe_code)]
        // SAFETY: `array` points at `candidates`, alive and unaliased for the call.
        let applied = unsafe { nexent_sampler_apply(self.raw.as_ptr(), &mut array) };
        // The grammar sampler only lowers logits in place; anything else means the array is not ours any more.
        if applied != 0 || array.data != data || array.size != size {
            return self.fail("applying the grammar failed");
        }
        let allowed: Vec<LlamaTokenData> = candidates
            .iter()
            .filter(|candidate| candidate.logit > f32::NEG_INFINITY)
            .map(|candidate| LlamaTokenData::new(LlamaToken(candidate.id), candidate.logit, 0.0))
            .collect();
        if allowed.is_empty() {
            return None;
        }
        let mut choice = LlamaTokenDataArray::new(allowed, false);
        choice.apply_sampler(chain);
        let token = choice.selected_token()?;
        #[allow(unsafe_code)]
        // SAFETY: `self.raw` is a live grammar sampler; the token was allowed by it.
        let accepted = unsafe { nexent_sampler_accept(self.raw.as_ptr(), token.0) };
        if accepted != 0 {
            return self.fail("the grammar refused the token it allowed");
        }
        chain.accept(token);
        Some(token)
    }

    fn fail(&mut self, what: &str) -> Option<LlamaToken> {
        tracing::warn!(what, "llama.cpp's grammar failed; the answer ends here");
        self.broken = true;
        None
    }
}

impl Drop for GuardedGrammar {
    fn drop(&mut self) {
        #[allow(unsafe_code)]
        // SAFETY: created by `llama_sampler_init_grammar`, freed once; freeing does not throw.
        unsafe {
            llama_cpp_sys_2::llama_sampler_free(self.raw.as_ptr());
        }
    }
}

/// The `llama_vocab` behind `vocab`. llama-cpp-2 keeps the pointer crate-private; `LlamaVocab` is
/// `#[repr(transparent)]` over it (a non-null pointer beside a zero-sized marker), and `transmute` refuses
/// to compile if the two ever differ in size.
fn vocab_ptr(vocab: LlamaVocab<'_>) -> *const llama_vocab {
    #[allow(unsafe_code)]
    // SAFETY: same layout (see above); the result is only used while the model is borrowed.
    let raw = unsafe { std::mem::transmute::<LlamaVocab<'_>, NonNull<llama_vocab>>(vocab) };
    raw.as_ptr().cast_const()
}

/// Refuses grammars too large or too deep for llama.cpp's recursive parser, before it sees them.
pub fn check_shape(grammar: &str) -> Result<(), GrammarError> {
    if grammar.len() > MAX_GRAMMAR_BYTES {
        return Err(GrammarError::TooLong);
    }
    if grammar.contains('\0') {
        return Err(GrammarError::Nul);
    }
    if grammar.matches("::=").count() > MAX_GRAMMAR_RULES {
        return Err(GrammarError::TooManyRules);
    }
    // Parentheses count only outside literals, character classes and comments.
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut chars = grammar.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '[' => {
                let close = if c == '"' { '"' } else { ']' };
                while let Some(inner) = chars.next() {
                    if inner == '\\' {
                        chars.next();
                    } else if inner == close {
                        break;
                    }
                }
            }
            '#' => {
                for inner in chars.by_ref() {
                    if inner == '\n' {
                        break;
                    }
                }
            }
            '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_GRAMMAR_NESTING {
        return Err(GrammarError::TooDeep);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_beyond_the_parser_s_recursion_are_refused() {
        assert_eq!(check_shape("root ::= \"a\" [^\\x00-\\U003FFFFF]"), Ok(()));
        let deep = format!("root ::= {}\"a\"{}", "(".repeat(65), ")".repeat(65));
        assert_eq!(check_shape(&deep), Err(GrammarError::TooDeep));
        let quoted = format!("root ::= \"{}\" [(((] # {}\n", "(".repeat(100), "(".repeat(100));
        assert_eq!(check_shape(&quoted), Ok(()), "parentheses in literals, classes and comments do not nest");
        assert_eq!(check_shape(&"a".repeat(MAX_GRAMMAR_BYTES + 1)), Err(GrammarError::TooLong));
        assert_eq!(check_shape(&"r ::= \"a\"\n".repeat(MAX_GRAMMAR_RULES + 1)), Err(GrammarError::TooManyRules));
        assert_eq!(check_shape("root ::= \"\0\""), Err(GrammarError::Nul));
    }
}
