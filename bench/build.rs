//! llama.cpp is linked as shared libraries (its CPU kernels are run-time modules, see
//! `nexent_engines::llama_chat::cpu_kernels`): the executable finds `libllama.so` and `libggml*.so` beside
//! itself (a build tree) or in the package's library folder.

fn main() {
    println!("cargo:rustc-link-arg-bins=-Wl,-rpath,$ORIGIN:$ORIGIN/../lib/nexent-local");
}
