//! Compiles the small C++ shim (`cpp/grammar_shim.cpp`) that calls llama.cpp's grammar sampler inside
//! try/catch, so no C++ exception can unwind into Rust. It includes the `llama.h` that llama-cpp-sys-2
//! installed with its build (found through the `DEP_LLAMA_*` metadata that crate's build script emits), so
//! the shim always sees the same declarations as the library it links against.

use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=cpp/grammar_shim.cpp");
    stage_runtime_libraries();
    let include = llama_include_dir();
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("cpp/grammar_shim.cpp")
        .include(&include)
        .warnings(true)
        .compile("nexent_grammar_shim");
    compile_e5();
}

/// The public functions of `e5.h`; each variant's copies are renamed `nexent_e5_<variant>_<name>`.
const E5_FUNCTIONS: &[&str] = &[
    "e5_load",
    "e5_load_mem",
    "e5_free",
    "e5_token_count",
    "e5_dim",
    "e5_embed",
    "e5_embed_batch",
    "e5_load_sae",
    "e5_sparse_dim",
    "e5_embed_sparse",
];

fn compile_e5() {
    println!("cargo::rustc-check-cfg=cfg(nexent_e5_missing)");
    println!("cargo:rerun-if-env-changed=NEXENT_E5_SOURCE_DIR");
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let models_dir = manifest_dir.join("../../models/files");
    let source_dir = std::env::var_os("NEXENT_E5_SOURCE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| models_dir.join("multilingual-e5-small"));
    let source = source_dir.join("e5.c");
    // Watching the folder (while it does not exist, the script runs on every build) notices a fetch.
    println!("cargo:rerun-if-changed={}", source_dir.display());
    if !source.is_file() || !source_dir.join("e5.h").is_file() {
        println!(
            "cargo:warning=no e5.c in {}: the multilingual embedding model will be unavailable \
             (run `python3 models/fetch.py embedding`, then build again)",
            source_dir.display()
        );
        println!("cargo:rustc-cfg=nexent_e5_missing");
        return;
    }
    println!("cargo:rerun-if-changed={}", source.display());
    for (variant, flags) in [("avx2", &["-mavx2", "-mfma", "-mf16c"][..]), ("generic", &[][..])] {
        let mut build = cc::Build::new();
        build.file(&source).include(&source_dir).opt_level(3).flag("-fopenmp").warnings(false);
        for flag in flags {
            build.flag(flag);
        }
        for function in E5_FUNCTIONS {
            build.define(function, Some(format!("nexent_e5_{variant}_{function}").as_str()));
        }
        build.compile(&format!("nexent_e5_{variant}"));
    }
    // OpenMP's runtime, which e5.c parallelises with (GCC's libgomp).
    println!("cargo:rustc-link-lib=gomp");
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

/// Puts llama.cpp's shared libraries (under their sonames, `libllama.so.0`, ...) and its CPU kernel modules
/// (`libggml-cpu-*.so`) in `target/<profile>/`, where the executables built there find them (their rpath
/// is `$ORIGIN`; test executables in `deps/` look one level up). llama-cpp-sys-2 leaves them in its own
/// build folder only (it links the unversioned names there, which point at files it does not link), and
/// the package (`make bundle`) takes them from here.
fn stage_runtime_libraries() {
    let cmake_dir = PathBuf::from(std::env::var_os("DEP_LLAMA_GGML_CMAKE_DIR").expect("DEP_LLAMA_GGML_CMAKE_DIR"));
    let lib_dir = cmake_dir.join("..");
    let backends_dir = std::env::var_os("DEP_LLAMA_BACKENDS_DIR")
        .map(PathBuf::from)
        .expect("llama-cpp-sys-2 did not report DEP_LLAMA_BACKENDS_DIR (is its dynamic-backends feature on?)");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    // OUT_DIR is `<target>/<profile>/build/<package>-<hash>/out`.
    let profile_dir = out_dir.ancestors().nth(3).expect("OUT_DIR is deep enough").to_path_buf();
    let mut staged = 0;
    for (dir, wanted) in [(&lib_dir, is_soname as fn(&str) -> bool), (&backends_dir, is_cpu_module)] {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()));
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !wanted(&name) {
                continue;
            }
            let source = std::fs::canonicalize(entry.path()).expect("a library file");
            // llama-cpp-sys-2 also links `libllama.so` -> `libllama.so.0` into `deps/` and `examples/`, and
            // its next build in this target dir (another feature set) fails on such a link left dangling
            // (it checks `exists()`, which follows the link, then cannot create it): give them their target.
            let folders: &[&str] = if wanted(&name) && is_soname(&name) { &["", "deps", "examples"] } else { &[""] };
            for folder in folders {
                let folder = profile_dir.join(folder);
                if !folder.is_dir() {
                    continue;
                }
                let target = folder.join(&name);
                let _ = std::fs::remove_file(&target);
                if std::fs::hard_link(&source, &target).is_err() {
                    std::fs::copy(&source, &target).unwrap_or_else(|error| {
                        panic!("cannot copy {} to {}: {error}", source.display(), target.display())
                    });
                }
            }
            println!("cargo:rerun-if-changed={}", source.display());
            staged += 1;
        }
    }
    assert!(
        staged > 4,
        "found only {staged} llama.cpp libraries in {} and {}",
        lib_dir.display(),
        backends_dir.display()
    );
}

/// `libllama.so.0`: the name the dynamic linker looks for (not `libllama.so`, not `libllama.so.0.6.0`).
fn is_soname(name: &str) -> bool {
    name.starts_with("lib")
        && name
            .split_once(".so.")
            .is_some_and(|(_, version)| !version.is_empty() && version.chars().all(|c| c.is_ascii_digit()))
}

fn is_cpu_module(name: &str) -> bool {
    name.starts_with("libggml-cpu-") && name.ends_with(".so")
}
