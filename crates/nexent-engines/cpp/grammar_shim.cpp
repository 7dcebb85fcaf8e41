// Calls into llama.cpp's grammar sampler that may throw, with every C++ exception caught here.
//
// llama.cpp throws std::runtime_error when a grammar reaches a dead end (no character may follow) and on
// parse errors; an exception that unwinds into Rust aborts the whole process ("Rust cannot catch foreign
// exceptions"). Each function returns a status instead, and the Rust side never uses a grammar again after
// a failure (its state may be half-updated).

#include <exception>

#include "llama.h"

extern "C" {

// NULL when the grammar does not parse (llama.cpp logs why), refers to an undefined rule, is left
// recursive, or anything in llama.cpp threw.
struct llama_sampler * nexent_grammar_init(const struct llama_vocab * vocab, const char * grammar,
                                           const char * root) {
    try {
        return llama_sampler_init_grammar(vocab, grammar, root);
    } catch (...) {
        return nullptr;
    }
}

// 0 when applied; 1 when llama.cpp threw.
int nexent_sampler_apply(struct llama_sampler * sampler, llama_token_data_array * candidates) {
    try {
        llama_sampler_apply(sampler, candidates);
        return 0;
    } catch (...) {
        return 1;
    }
}

// 0 when accepted; 1 when llama.cpp threw (the grammar cannot continue after this token).
int nexent_sampler_accept(struct llama_sampler * sampler, llama_token token) {
    try {
        llama_sampler_accept(sampler, token);
        return 0;
    } catch (...) {
        return 1;
    }
}

}  // extern "C"
