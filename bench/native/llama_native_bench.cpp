// The reference for `make bench-llm`: stock llama.cpp, built for this machine's CPU (GGML_NATIVE=ON) from
// the vendored source llama-cpp-sys-2 ships (which leaves out llama.cpp's own tools, llama-bench among
// them), measured the way llama-bench does: a prompt of N tokens decoded in 512-token batches, then G
// tokens generated one at a time (greedy), each phase timed, R repetitions on a cleared cache. Prints one
// JSON object with the average tokens/s of each phase.
//
//   llama-native-bench MODEL PROMPT_TOKENS GENERATED THREADS REPETITIONS
#include "llama.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

static void quiet(ggml_log_level, const char *, void *) {}

int main(int argc, char ** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s MODEL PROMPT_TOKENS GENERATED THREADS REPETITIONS\n", argv[0]);
        return 2;
    }
    const int n_prompt = std::atoi(argv[2]), n_gen = std::atoi(argv[3]);
    const int threads = std::atoi(argv[4]), repetitions = std::atoi(argv[5]);
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model * model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) {
        std::fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    llama_context_params params = llama_context_default_params();
    params.n_ctx = 2048;
    params.n_batch = 512;
    params.n_ubatch = 512;
    params.n_threads = threads;
    params.n_threads_batch = threads;
    llama_context * context = llama_init_from_model(model, params);
    const llama_vocab * vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    // llama-bench's prompt: random tokens (their values do not change the work).
    std::vector<llama_token> prompt(n_prompt);
    std::srand(42);
    for (auto & token : prompt) token = std::rand() % n_vocab;
    llama_sampler * greedy = llama_sampler_init_greedy();
    double prompt_rate = 0, generation_rate = 0;
    for (int run = 0; run <= repetitions; ++run) {  // run 0 warms up, as llama-bench's does
        llama_memory_clear(llama_get_memory(context), true);
        auto started = std::chrono::steady_clock::now();
        for (int offset = 0; offset < n_prompt; offset += 512) {
            int count = std::min(512, n_prompt - offset);
            if (llama_decode(context, llama_batch_get_one(prompt.data() + offset, count)) != 0) return 1;
        }
        double prompt_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        started = std::chrono::steady_clock::now();
        for (int index = 0; index < n_gen; ++index) {
            llama_token token = llama_sampler_sample(greedy, context, -1);
            if (llama_decode(context, llama_batch_get_one(&token, 1)) != 0) return 1;
        }
        double generation_seconds =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        if (run > 0) {
            prompt_rate += n_prompt / prompt_seconds / repetitions;
            generation_rate += n_gen / generation_seconds / repetitions;
        }
    }
    std::printf("{\"prompt_tokens_per_s\": %.2f, \"generation_tokens_per_s\": %.2f}\n", prompt_rate, generation_rate);
    llama_sampler_free(greedy);
    llama_free(context);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
