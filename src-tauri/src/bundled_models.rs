//! Model files that ship inside the installed package. `make bundle` puts the default models (chat,
//! embedding, speech both ways, and the ONNX Runtime library) under the package's resource folder
//! (`/usr/lib/Nexent Local/models` for the `.deb`); at start-up each one the data dir's `models/` lacks is
//! linked there, so an installed app answers from its first start and the user's models folder stays
//! writable (more GGUF files, `fetch.py stt-base`) without copying hundreds of megabytes.

use std::path::Path;

/// Links every bundled entry missing from `models_dir` (a link left by an older package whose target
/// is gone counts as missing). Returns the names linked.
pub fn link_missing(bundled: &Path, models_dir: &Path) -> std::io::Result<Vec<String>> {
    let entries = match std::fs::read_dir(bundled) {
        Ok(entries) => entries,
        // A development build or a package without models: nothing to link.
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    std::fs::create_dir_all(models_dir)?;
    let mut linked = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let target = models_dir.join(&name);
        if target.exists() {
            continue; // the user's own file (or a working link) wins
        }
        if target.symlink_metadata().is_ok() {
            std::fs::remove_file(&target)?; // a dangling link
        }
        std::os::unix::fs::symlink(entry.path(), &target)?;
        linked.push(name.to_string_lossy().into_owned());
    }
    linked.sort();
    Ok(linked)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_what_is_missing_keeps_the_users_files_and_replaces_dangling_links() -> std::io::Result<()> {
        let root = std::env::temp_dir().join(format!("nexent-bundled-models-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let (bundled, models) = (root.join("bundled"), root.join("data/models"));
        std::fs::create_dir_all(bundled.join("piper"))?;
        std::fs::write(bundled.join("piper/voice.onnx"), "voice")?;
        std::fs::write(bundled.join("chat.gguf"), "bundled chat")?;
        std::fs::write(bundled.join("embedder.onnx"), "embedder")?;
        std::fs::create_dir_all(&models)?;
        std::fs::write(models.join("chat.gguf"), "the user's chat")?;
        std::os::unix::fs::symlink(root.join("gone/embedder.onnx"), models.join("embedder.onnx"))?;

        assert_eq!(link_missing(&bundled, &models)?, ["embedder.onnx", "piper"]);
        assert_eq!(std::fs::read_to_string(models.join("chat.gguf"))?, "the user's chat");
        assert_eq!(std::fs::read_to_string(models.join("embedder.onnx"))?, "embedder");
        assert_eq!(std::fs::read_to_string(models.join("piper/voice.onnx"))?, "voice");
        // Idempotent; and a package without models links nothing.
        assert!(link_missing(&bundled, &models)?.is_empty());
        assert!(link_missing(&root.join("none"), &models)?.is_empty());
        std::fs::remove_dir_all(&root)?;
        Ok(())
    }
}
