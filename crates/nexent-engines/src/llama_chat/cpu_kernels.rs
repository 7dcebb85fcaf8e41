//! llama.cpp's CPU kernels, chosen for the CPU the binary runs on.
//!
//! llama.cpp is built with ggml's CPU backend as run-time modules, one per x86-64 level
//! (`libggml-cpu-x64.so` for any x86-64 up to `libggml-cpu-sapphirerapids.so` for AMX; llama-cpp-2's
//! `dynamic-backends`, which is ggml's `GGML_BACKEND_DL` with `GGML_CPU_ALL_VARIANTS`). ggml scores every
//! module in a folder against the CPU's features and keeps the best, so one package runs on an x86-64
//! without AVX2 and uses AVX-512 where there is one.
//!
//! The folder is, in order: `NEXENT_GGML_BACKENDS` (a knob for tests and for a user who wants to pin a
//! variant: a folder holding the modules to choose from), the executable's own folder (a build tree, and
//! the layout the package installs beside `/usr/lib/nexent-local`), `../lib/nexent-local` from the
//! executable, and last the folder the build wrote them to.

use std::ffi::CString;
use std::path::{Path, PathBuf};

/// Where the CPU modules are looked for, first match wins (see the module doc).
pub const BACKENDS_ENV: &str = "NEXENT_GGML_BACKENDS";

/// The folder holding `libggml-cpu-*.so` for this process.
pub fn backends_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os(BACKENDS_ENV).filter(|value| !value.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let executable_dir = std::env::current_exe().ok().and_then(|path| path.parent().map(Path::to_path_buf));
    let mut candidates = Vec::new();
    if let Some(dir) = &executable_dir {
        candidates.push(dir.clone());
        candidates.push(dir.join("../lib/nexent-local"));
        // Test and bench binaries live in `target/<profile>/deps`, the modules one level up.
        candidates.push(dir.join(".."));
    }
    if let Some(dir) = llama_cpp_sys_2::BACKENDS_DIR {
        candidates.push(PathBuf::from(dir));
    }
    candidates.into_iter().find(|dir| !cpu_modules(dir).is_empty())
}

/// The CPU modules in `dir`, by file name.
pub fn cpu_modules(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("libggml-cpu-") && name.ends_with(".so"))
        .collect();
    names.sort();
    names
}

/// Loads the best CPU module of [`backends_dir`] into ggml's registry and returns its variant name
/// (`icelake`, `haswell`, `x64`, ...). Must run before the llama.cpp backend is initialised.
#[allow(unsafe_code)]
pub fn load() -> Result<String, String> {
    let dir = backends_dir().ok_or_else(|| {
        format!("no llama.cpp CPU kernels (libggml-cpu-*.so) beside the executable; set {BACKENDS_ENV} to their folder")
    })?;
    let path = CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("the kernels' folder {} has a NUL in its name", dir.display()))?;
    // SAFETY: a NUL-terminated path that outlives the call; ggml only reads it.
    unsafe { llama_cpp_sys_2::ggml_backend_load_all_from_path(path.as_ptr()) };
    // ggml opens every module to score it and keeps only the best one mapped.
    loaded_variant().ok_or_else(|| {
        format!(
            "none of the llama.cpp CPU kernels in {} runs on this CPU (found: {})",
            dir.display(),
            cpu_modules(&dir).join(", ")
        )
    })
}

/// The CPU module mapped into this process, from `/proc/self/maps`.
pub fn loaded_variant() -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines().filter_map(|line| line.rsplit('/').next()).find_map(variant_of)
}

/// `libggml-cpu-haswell.so` → `haswell`.
fn variant_of(file_name: &str) -> Option<String> {
    file_name.strip_prefix("libggml-cpu-")?.strip_suffix(".so").map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_are_named_by_their_file() {
        assert_eq!(variant_of("libggml-cpu-icelake.so").as_deref(), Some("icelake"));
        assert_eq!(variant_of("libggml-cpu-x64.so").as_deref(), Some("x64"));
        assert_eq!(variant_of("libggml-base.so"), None);
        assert_eq!(variant_of("libggml-cpu-x64.so.bak"), None);
    }

    #[test]
    fn a_folder_without_modules_is_passed_over() {
        let empty = std::env::temp_dir().join(format!("nexent-no-kernels-{}", std::process::id()));
        std::fs::create_dir_all(&empty).expect("dir");
        assert!(cpu_modules(&empty).is_empty());
        std::fs::write(empty.join("libggml-cpu-x64.so"), b"").expect("file");
        assert_eq!(cpu_modules(&empty), ["libggml-cpu-x64.so"]);
        std::fs::remove_dir_all(&empty).expect("cleanup");
    }
}
