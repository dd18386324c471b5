//! Writing results: JSON on stdout, files written atomically.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

/// Prints `value` as one line of JSON on stdout (the `--json` contract).
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer(&mut stdout, value).context("writing JSON to stdout")?;
    stdout.write_all(b"\n").context("writing JSON to stdout")?;
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, so a
/// reader (or a crash) never sees a half-written file. Parent directories are created.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    let file_name = path
        .file_name()
        .with_context(|| format!("{} is not a file path", path.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        file_name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(err) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(err).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}
