//! Compiles the small C++ shim (`cpp/grammar_shim.cpp`) that calls llama.cpp's grammar sampler inside
//! try/catch, so no C++ exception can unwind into Rust. It includes the `llama.h` that llama-cpp-sys-2
//! installed with its build (found through the `DEP_LLAMA_*` metadata that crate's build script emits), so
//! the shim always sees the same declarations as the library it links against.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=cpp/grammar_shim.cpp");
    let include = llama_include_dir();
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("cpp/grammar_shim.cpp")
        .include(&include)
        .warnings(true)
        .compile("nexent_grammar_shim");
}

/// `<out>/include` of llama-cpp-sys-2's CMake install; it reports `<out>/lib{,64}/cmake` as `ggml_cmake_dir`.
fn llama_include_dir() -> PathBuf {
    let cmake_dir = std::env::var_os("DEP_LLAMA_GGML_CMAKE_DIR")
        .map(PathBuf::from)
        .expect("llama-cpp-sys-2 did not report DEP_LLAMA_GGML_CMAKE_DIR (where it installed llama.cpp)");
    let include = cmake_dir.join("../../include");
    assert!(include.join("llama.h").is_file(), "no llama.h in {}", include.display());
    include
}
