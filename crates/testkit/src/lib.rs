//! Test support shared by the workspace's test suites: the one place a test
//! finds an external program (haproxy, chromium, kubectl...). Each program is
//! listed with the `scripts/install-deps.sh` option that installs it, so a
//! missing one fails under `CI=true` with the command that fixes it, and a
//! test (`tests/install_deps.rs`) keeps that script and the README in step
//! with the list.

pub mod chromium;

use std::path::PathBuf;

/// An external program some test calls, and what installs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Program {
    /// The command name looked up on `PATH` (or a Python module, see `kind`).
    pub name: &'static str,
    /// What it is looked up as.
    pub kind: Kind,
    /// The Debian package or PyPI distribution that provides it.
    pub package: &'static str,
    /// The `scripts/install-deps.sh` option that installs it.
    pub option: &'static str,
    /// The tests that need it, for the reader of a failure.
    pub used_by: &'static str,
}

/// How a program is found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An executable on `PATH`.
    Command,
    /// A module `python3 -c 'import NAME'` loads.
    PythonModule,
}

/// Every external program the tests call. `redis-server` and
/// `redis-sentinel` start every topology; the rest serve a few suites each.
pub const PROGRAMS: &[Program] = &[
    cmd(
        "redis-server",
        "redis-server",
        "",
        "every real-process test",
    ),
    cmd(
        "redis-sentinel",
        "redis-sentinel",
        "",
        "every real-process test",
    ),
    cmd("redis-cli", "redis-tools", "", "proxy compat"),
    cmd(
        "valkey-server",
        "valkey-server",
        "--test",
        "the Valkey matrix",
    ),
    cmd(
        "valkey-sentinel",
        "valkey-sentinel",
        "--test",
        "the Valkey matrix",
    ),
    cmd("haproxy", "haproxy", "--test", "drill --via haproxy"),
    cmd(
        "chromium",
        "chromium",
        "--test",
        "proxy admin and dashboard",
    ),
    cmd("ip", "iproute2", "--test", "drill --fault partition"),
    cmd(
        "kubectl",
        "kubernetes-client",
        "--test",
        "k8s manifests (kustomize)",
    ),
    cmd(
        "kubernetes-validate",
        "kubernetes-validate",
        "--test",
        "k8s manifests",
    ),
    cmd("checkov", "checkov", "--test", "k8s manifests"),
    cmd(
        "promtool",
        "prometheus",
        "--test",
        "alert rules and the real-Prometheus test",
    ),
    cmd(
        "prometheus",
        "prometheus",
        "--test",
        "the real-Prometheus test",
    ),
    cmd(
        "prometheus-redis-exporter",
        "prometheus-redis-exporter",
        "--test",
        "the real-Prometheus test (Redis nodes)",
    ),
    cmd(
        "podman",
        "podman",
        "--pods",
        "the pod tests (the rendered pods in containers)",
    ),
    cmd(
        "debootstrap",
        "debootstrap",
        "--pods",
        "the pod tests' base images (scripts/pod-images.sh)",
    ),
    Program {
        name: "redis",
        kind: Kind::PythonModule,
        package: "redis",
        option: "--test",
        used_by: "proxy compat (redis-py)",
    },
];

const fn cmd(
    name: &'static str,
    package: &'static str,
    option: &'static str,
    used_by: &'static str,
) -> Program {
    Program {
        name,
        kind: Kind::Command,
        package,
        option,
        used_by,
    }
}

impl Program {
    /// The command a user runs to get it.
    pub fn install_hint(&self) -> String {
        let opt = if self.option.is_empty() {
            String::new()
        } else {
            format!(" {}", self.option)
        };
        format!(
            "scripts/install-deps.sh{opt} installs it ({})",
            self.package
        )
    }

    /// Where it is, if installed.
    pub fn locate(&self) -> Option<PathBuf> {
        match self.kind {
            Kind::Command => on_path(self.name),
            Kind::PythonModule => python_module(self.name),
        }
    }
}

/// The entry for `name`; a test naming a program not in [`PROGRAMS`] is a
/// bug in the test (add it there, and to install-deps.sh).
pub fn lookup(name: &str) -> &'static Program {
    PROGRAMS
        .iter()
        .find(|p| p.name == name)
        .unwrap_or_else(|| panic!("{name} is not in redis_ha_testkit::PROGRAMS: add it there and to scripts/install-deps.sh"))
}

/// What to do when a program is missing, decided from `CI`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// Under `CI=true`: the test fails, naming the install step.
    Fail,
    /// Elsewhere: the test prints `SKIPPED` and why, and returns.
    Skip,
}

/// Pure: how a missing program is treated given the `CI` variable.
pub fn on_missing(ci: Option<&str>) -> Missing {
    match ci {
        Some("true") | Some("1") => Missing::Fail,
        _ => Missing::Skip,
    }
}

/// The program's path, or `None` after printing `SKIPPED: ...` (a panic
/// naming the install step under `CI=true`). Tests start with
/// `let Some(haproxy) = redis_ha_testkit::program("haproxy") else { return };`.
pub fn program(name: &str) -> Option<PathBuf> {
    let p = lookup(name);
    if let Some(path) = p.locate() {
        return Some(path);
    }
    let why = format!(
        "{} is not installed, needed by {}: {}",
        p.name,
        p.used_by,
        p.install_hint()
    );
    match on_missing(std::env::var("CI").ok().as_deref()) {
        Missing::Fail => panic!("{why} (CI=true: a missing program is a failure)"),
        Missing::Skip => {
            eprintln!("SKIPPED: {why}");
            None
        }
    }
}

/// On `PATH`, else in `/usr/sbin` or `/sbin` (debootstrap lives there, and
/// a non-root user's `PATH` on Debian lacks them).
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn python_module(module: &str) -> Option<PathBuf> {
    let python = on_path("python3")?;
    let ok = std::process::Command::new(&python)
        .args(["-c", &format!("import {module}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(python)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ci_true_makes_a_missing_program_fail() {
        assert_eq!(on_missing(Some("true")), Missing::Fail);
        assert_eq!(on_missing(Some("1")), Missing::Fail);
        assert_eq!(on_missing(Some("false")), Missing::Skip);
        assert_eq!(on_missing(None), Missing::Skip);
    }

    #[test]
    fn every_hint_names_the_script_and_the_package() {
        for p in PROGRAMS {
            let h = p.install_hint();
            assert!(h.starts_with("scripts/install-deps.sh"), "{h}");
            assert!(h.contains(p.package), "{h}");
        }
        assert_eq!(
            lookup("haproxy").install_hint(),
            "scripts/install-deps.sh --test installs it (haproxy)"
        );
    }

    #[test]
    fn names_are_unique() {
        for (i, p) in PROGRAMS.iter().enumerate() {
            assert!(
                PROGRAMS[i + 1..].iter().all(|q| q.name != p.name),
                "{}",
                p.name
            );
        }
    }

    #[test]
    #[should_panic(expected = "not in redis_ha_testkit::PROGRAMS")]
    fn an_unlisted_program_is_a_bug_in_the_test() {
        lookup("memtier_benchmark");
    }

    #[test]
    fn a_program_that_exists_is_found() {
        // `sh` is on every machine these tests run on.
        assert!(on_path("sh").is_some());
        assert!(on_path("no-such-program-redis-ha").is_none());
    }
}
