//! Keeps `scripts/install-deps.sh` and the README in step with the programs
//! the tests call ([`redis_ha_testkit::PROGRAMS`]): a program added to a test
//! without its install step fails here, on any machine, before a fresh
//! machine's CI finds it missing.

use redis_ha_testkit::{Kind, PROGRAMS};
use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What `install-deps.sh --list OPTION` says it installs: `(registry, package)`.
fn listed(option: &str) -> Vec<(String, String)> {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("scripts/install-deps.sh"))
        .arg("--list");
    if !option.is_empty() {
        cmd.arg(option);
    }
    let out = cmd.output().expect("run install-deps.sh --list");
    assert!(
        out.status.success(),
        "install-deps.sh --list {option}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, p)| (r.to_string(), p.trim().to_string()))
        .collect()
}

#[test]
fn install_deps_installs_every_program_the_tests_call() {
    for p in PROGRAMS {
        let registry = match p.kind {
            Kind::Command if matches!(p.name, "kubernetes-validate" | "checkov") => "pip",
            Kind::Command => "apt",
            Kind::PythonModule => "pip",
        };
        let list = listed(p.option);
        assert!(
            list.iter().any(|(r, pkg)| r == registry && pkg == p.package),
            "scripts/install-deps.sh {} does not install {} ({registry} package {}), which {} needs; it lists {list:?}",
            p.option,
            p.name,
            p.package,
            p.used_by
        );
    }
}

#[test]
fn the_list_option_installs_nothing_and_refuses_unknown_options() {
    // --list alone: the runtime set, printed, nothing installed (it returns
    // at once even where apt-get would need the network).
    let base = listed("");
    assert!(base.contains(&("apt".into(), "redis-server".into())));
    assert!(!base.iter().any(|(_, p)| p == "haproxy"));
    let out = Command::new("bash")
        .arg(repo().join("scripts/install-deps.sh"))
        .args(["--list", "--no-such-option"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown option"));
}

#[test]
fn the_readme_lists_every_program_the_tests_call() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let section = readme
        .split("### What the tests need")
        .nth(1)
        .expect("README has a '### What the tests need' section");
    let section = section.split("\n#").next().unwrap();
    for p in PROGRAMS {
        assert!(
            section.contains(&format!("`{}`", p.name)),
            "README's 'What the tests need' does not list `{}`",
            p.name
        );
    }
}
