//! Checks of a model file before it is loaded: that it is there, that a file named in
//! `models/manifest.toml` has the size the manifest gives (a truncated download, a disk that filled up
//! while it was written), and that a GGUF file starts like one. A failed check makes the engine
//! "unavailable" with a reason that says what to do, instead of a loader's bare error or, for a file
//! that changes under a mapping, a crash.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

/// The manifest the binary was built with: model file name (under the models folder) → (size, fetch
/// group id).
fn manifest_sizes() -> &'static HashMap<String, (u64, String)> {
    static SIZES: OnceLock<HashMap<String, (u64, String)>> = OnceLock::new();
    SIZES.get_or_init(|| {
        let text = include_str!("../../../models/manifest.toml");
        let mut sizes = HashMap::new();
        let Ok(manifest) = text.parse::<toml::Table>() else { return sizes };
        for model in manifest.get("model").and_then(toml::Value::as_array).into_iter().flatten() {
            let id = model.get("id").and_then(toml::Value::as_str).unwrap_or_default();
            for file in model.get("file").and_then(toml::Value::as_array).into_iter().flatten() {
                let name = file.get("name").and_then(toml::Value::as_str);
                let size = file.get("size").and_then(toml::Value::as_integer).and_then(|size| u64::try_from(size).ok());
                if let (Some(name), Some(size)) = (name, size) {
                    sizes.insert(name.to_owned(), (size, id.to_owned()));
                }
            }
        }
        sizes
    })
}

/// Whether `path` can be handed to its loader; the reason when it cannot.
pub fn check(path: &Path, models_dir: &Path) -> Result<(), String> {
    let metadata = std::fs::metadata(path).map_err(|_| format!("the model file {} is missing", path.display()))?;
    if !metadata.is_file() {
        return Err(format!("{} is not a file", path.display()));
    }
    // Only files in the models folder are the manifest's: a file chosen elsewhere with --chat-model may be
    // another revision under the same name, and `nexent models fetch` would not repair it there anyway.
    let known = path
        .strip_prefix(models_dir)
        .ok()
        .and_then(|relative| manifest_sizes().get(relative.to_string_lossy().as_ref()));
    if let Some((size, id)) = known
        && metadata.len() != *size
    {
        return Err(format!(
            "the model file {} is {} bytes, but {size} are expected: it is incomplete or damaged; fetch it again \
             with `nexent models fetch {id}`",
            path.display(),
            metadata.len()
        ));
    }
    if path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("gguf")) {
        let mut magic = [0u8; 4];
        let read = std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut magic));
        if read.is_err() || &magic != b"GGUF" {
            return Err(format!("{} is not a GGUF file (it does not start with GGUF)", path.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    #[test]
    fn the_manifest_is_read_at_build_time() {
        let known = manifest_sizes().get("SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(matches!(known, Some((size, id)) if *size > 1_000_000 && id == "smollm2-135m"), "{known:?}");
    }

    #[test]
    fn a_truncated_known_file_is_refused_with_what_to_fetch() -> TestResult {
        let models = tempfile::tempdir()?;
        let path = models.path().join("SmolLM2-135M-Instruct.Q4_1.gguf");
        std::fs::write(&path, b"GGUF and then nothing")?;
        let reason = check(&path, models.path()).err().unwrap_or_default();
        assert!(reason.contains("incomplete or damaged"), "{reason}");
        assert!(reason.contains("nexent models fetch smollm2-135m"), "{reason}");
        Ok(())
    }

    #[test]
    fn a_missing_file_or_one_that_is_not_gguf_is_refused_and_a_plausible_one_passes() -> TestResult {
        let models = tempfile::tempdir()?;
        let missing = check(&models.path().join("gone.gguf"), models.path()).err().unwrap_or_default();
        assert!(missing.contains("missing"), "{missing}");
        let html = models.path().join("mine.gguf");
        std::fs::write(&html, b"<html>not a model</html>")?;
        assert!(check(&html, models.path()).err().unwrap_or_default().contains("not a GGUF file"));
        let elsewhere = tempfile::tempdir()?;
        let copy = elsewhere.path().join("SmolLM2-135M-Instruct.Q4_1.gguf");
        std::fs::write(&copy, b"GGUF another revision")?;
        assert_eq!(check(&copy, models.path()), Ok(()), "outside the models folder, a name is not the manifest's");
        let mine = models.path().join("other.gguf");
        std::fs::write(&mine, b"GGUF\x03\x00\x00\x00")?;
        assert_eq!(check(&mine, models.path()), Ok(()), "unknown files are left to llama.cpp's own checks");
        Ok(())
    }
}
