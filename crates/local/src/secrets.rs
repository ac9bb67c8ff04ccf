//! Secrets of a local topology on disk: `up --acl` generates each user's
//! password into `STATE/secrets/USER.password`, and files that hold secrets
//! (those, the rendered configs, topology.json) are written mode 0600, in
//! node dirs of mode 0700: Redis and Sentinel rewrite their configs
//! (CONFIG REWRITE, failovers) as 0644, the dir keeps them private.

use redis_ha_topology::acl::{AclPasswords, User};
use redis_ha_topology::Spec;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Writes `text` to `path`, readable by its owner only (also when the file
/// existed with wider rights).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(text.as_bytes())
}

/// Makes `dir` accessible to its owner only.
pub fn make_private(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// A random password: 32 hex digits from the kernel's generator.
pub fn random_password() -> std::io::Result<String> {
    let mut b = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// Where a user's password file is.
pub fn password_file(state_dir: &Path, user: &str) -> PathBuf {
    state_dir.join("secrets").join(format!("{user}.password"))
}

/// `--acl`: random passwords for `default` (unless one was given) and each
/// role's user, set in `spec`.
pub fn generate_acl(spec: &mut Spec) -> std::io::Result<()> {
    if spec.password.is_none() {
        spec.password = Some(random_password()?);
    }
    spec.acl = Some(AclPasswords {
        sentinel: random_password()?,
        replica: random_password()?,
        proxy: random_password()?,
    });
    Ok(())
}

/// Writes each password of `spec` to its file under `state_dir/secrets`.
pub fn write_password_files(state_dir: &Path, spec: &Spec) -> std::io::Result<()> {
    let Some(acl) = &spec.acl else {
        return Ok(());
    };
    let dir = state_dir.join("secrets");
    std::fs::create_dir_all(&dir)?;
    if let Some(pw) = &spec.password {
        write_private(&password_file(state_dir, "default"), &format!("{pw}\n"))?;
    }
    for u in User::ALL {
        let text = format!("{}\n", u.password(acl));
        write_private(&password_file(state_dir, u.name()), &text)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn generated_files_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let mut spec = Spec::default();
        generate_acl(&mut spec).unwrap();
        let acl = spec.acl.clone().unwrap();
        assert_eq!(acl.proxy.len(), 32);
        assert_ne!(acl.proxy, acl.sentinel);
        write_password_files(dir.path(), &spec).unwrap();
        for u in ["default", "sentinel", "replica", "proxy"] {
            let p = password_file(dir.path(), u);
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", p.display());
        }
        let proxy = std::fs::read_to_string(password_file(dir.path(), "proxy")).unwrap();
        assert_eq!(proxy, format!("{}\n", acl.proxy));
    }
}
