//! Secrets from files (`--password-file` and the like), so they never show
//! on a command line where `ps` would print them.

use std::path::Path;

/// Compares secrets in time that does not depend on where they differ (as
/// Redis does), so response times do not leak them byte by byte.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The secret in `path`: its first line, without the line ending (as
/// `redis-cli --pass`-style tooling and Kubernetes secret mounts write it).
/// `flag` names the option in errors, so they say which file to fix.
pub fn read_file(flag: &str, path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        anyhow::anyhow!(
            "{flag} {}: cannot read it ({e}); create it with the secret on its first line (mode 0600)",
            path.display()
        )
    })?;
    parse(&text).ok_or_else(|| {
        anyhow::anyhow!(
            "{flag} {}: the file is empty; put the secret on its first line",
            path.display()
        )
    })
}

/// The first line of `text` without its line ending; `None` when blank.
pub fn parse(text: &str) -> Option<String> {
    let line = text.lines().next()?.trim_end_matches('\r');
    (!line.trim().is_empty()).then(|| line.to_string())
}

/// The secret given inline (`--password`) or in a file (`--password-file`);
/// clap keeps both from being given at once.
pub fn inline_or_file(
    flag: &str,
    inline: Option<&str>,
    file: Option<&Path>,
) -> anyhow::Result<Option<String>> {
    match (inline, file) {
        (Some(s), _) => Ok(Some(s.to_string())),
        (None, Some(p)) => read_file(flag, p).map(Some),
        (None, None) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_line_only() {
        assert_eq!(parse("s3cret\n").as_deref(), Some("s3cret"));
        assert_eq!(parse("s3cret\r\nignored\n").as_deref(), Some("s3cret"));
        assert_eq!(parse("with space").as_deref(), Some("with space"));
        assert_eq!(parse(""), None);
        assert_eq!(parse("\n"), None);
        assert_eq!(parse("  \nx\n"), None);
    }

    #[test]
    fn missing_and_empty_files_name_the_file() {
        let dir = std::env::temp_dir().join(format!("redis-ha-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let missing = dir.join("missing");
        let e = read_file("--password-file", &missing)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--password-file") && e.contains("missing"),
            "{e}"
        );
        assert!(e.contains("cannot read"), "{e}");
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let e = read_file("--password-file", &empty)
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty") && e.contains("first line"), "{e}");
        let good = dir.join("good");
        std::fs::write(&good, "pw\n").unwrap();
        assert_eq!(read_file("--password-file", &good).unwrap(), "pw");
        assert_eq!(
            inline_or_file("--password-file", None, Some(&good))
                .unwrap()
                .as_deref(),
            Some("pw")
        );
        assert_eq!(inline_or_file("--password-file", None, None).unwrap(), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
