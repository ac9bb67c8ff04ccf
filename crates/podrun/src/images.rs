//! The images the pods run, made here since none can be pulled: the
//! Debian bases (scripts/pod-images.sh, once per machine) and the redis-ha
//! image, built from the repository's Dockerfile around a host-built binary
//! (`--build-arg BINARY=host`), tagged by the binary's content so a build
//! is reused until the binary changes.

use crate::podman;
use anyhow::{bail, Context};
use redis_ha_topology::Engine;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root (for the Dockerfile and scripts/).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The stand-in for the engine's official image (`--redis-image`).
pub fn server_image(engine: Engine) -> &'static str {
    match engine {
        Engine::Redis => "localhost/redis-ha-pods/redis:7.2",
        Engine::Valkey => "localhost/redis-ha-pods/valkey:8",
    }
}

/// The minbase Debian image the Dockerfile's runtime stage starts FROM.
pub const BASE_IMAGE: &str = "docker.io/library/debian:bookworm-slim";

/// Builds the Debian bases if this machine has not yet (a minute or two
/// the first time; nothing after).
pub fn ensure_bases() -> anyhow::Result<()> {
    let script = repo_root().join("scripts/pod-images.sh");
    let out = Command::new(&script)
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The redis-ha image for `binary`: built from the Dockerfile unless an
/// image of this very binary exists. Returns its name.
pub fn redis_ha_image(binary: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    let tag = format!("localhost/redis-ha-pods/redis-ha:{:016x}", h.finish());
    if podman::call(&["image", "exists", &tag]).is_ok() {
        return Ok(tag);
    }
    let ctx = tempfile::tempdir()?;
    std::fs::write(ctx.path().join("redis-ha"), &bytes)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        ctx.path().join("redis-ha"),
        std::fs::Permissions::from_mode(0o755),
    )?;
    let dockerfile = repo_root().join("Dockerfile");
    let ctx_dir = ctx.path().display().to_string();
    podman::call(&[
        "build",
        "-q",
        "--build-arg",
        "BINARY=host",
        "-f",
        &dockerfile.display().to_string(),
        "-t",
        &tag,
        &ctx_dir,
    ])
    .context("building the redis-ha image from the Dockerfile")?;
    prune_old_builds();
    Ok(tag)
}

/// Removes builds of other binaries older than a day (each is a few hundred
/// MB); one still in use is refused by podman and stays.
fn prune_old_builds() {
    let old = podman::call(&[
        "images",
        "-q",
        "--filter",
        "reference=localhost/redis-ha-pods/redis-ha",
        "--filter",
        "until=24h",
    ]);
    for id in old.unwrap_or_default().split_whitespace() {
        let _ = podman::call(&["rmi", id]);
    }
}
