//! A network partition made with a network namespace: the master runs in its
//! own namespace behind a veth pair, and the test takes the link down, so
//! packets to it vanish instead of being refused, as when a node is cut off.
//! Sentinels and replicas fail over; the proxy must follow with no
//! client-visible error but the one unknown-outcome error per writer whose
//! write was in flight at the cut, never write to the cut-off master again, and lose
//! no write acknowledged through it except what asynchronous replication
//! loses at the cut: what the promoted replica had not received yet, and the
//! one reply per connection already on its way. Every write acknowledged
//! after that came from the new master and must be on it.
//!
//! Needs Linux, root and iproute2 (`ip`); elsewhere it says why and returns.

#[macro_use]
mod common;
use common::*;
use redis_ha_proxy::config::{ConnMode, ProxyConfig};
use redis_ha_proxy::server::start;
use redis_ha_resp::conn::query;
use redis_ha_resp::Frame;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A namespace with one veth link to the host; removed on drop.
struct Net {
    ns: String,
    host_if: String,
    host_ip: String,
    ns_ip: String,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Net {
    /// `None` (with the reason) where namespaces cannot be made.
    fn create(tag: u32) -> Result<Net, String> {
        // /proc/self belongs to the effective user.
        let euid = std::os::unix::fs::MetadataExt::uid(
            &std::fs::metadata("/proc/self").map_err(|e| format!("no /proc: {e}"))?,
        );
        if euid != 0 {
            return Err("not root".into());
        }
        // Unique per process and test, so parallel runs do not collide.
        let id = (std::process::id() * 2 + tag) % 60_000;
        let (a, b) = ((id / 240) % 150, id % 240 * 4);
        let (b0, b1) = (b / 256, b % 256);
        let net = Net {
            ns: format!("rha{id}"),
            host_if: format!("rhah{id}"),
            host_ip: format!("10.{}.{}.{}", 100 + a, b0, b1 + 1),
            ns_ip: format!("10.{}.{}.{}", 100 + a, b0, b1 + 2),
        };
        let peer = format!("rhap{id}");
        ip(&["netns", "add", &net.ns])?;
        let host_cidr = format!("{}/30", net.host_ip);
        let ns_cidr = format!("{}/30", net.ns_ip);
        let steps: [&[&str]; 7] = [
            &[
                "link",
                "add",
                &net.host_if,
                "type",
                "veth",
                "peer",
                "name",
                &peer,
            ],
            &["link", "set", &peer, "netns", &net.ns],
            &["addr", "add", &host_cidr, "dev", &net.host_if],
            &["link", "set", &net.host_if, "up"],
            &["-n", &net.ns, "addr", "add", &ns_cidr, "dev", &peer],
            &["-n", &net.ns, "link", "set", &peer, "up"],
            &["-n", &net.ns, "link", "set", "lo", "up"],
        ];
        for s in steps {
            ip(s)?; // on error, Drop removes what exists
        }
        Ok(net)
    }

    fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]).unwrap();
    }

    fn heal(&self) {
        ip(&["link", "set", &self.host_if, "up"]).unwrap();
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and the pair.
        let _ = ip(&["netns", "del", &self.ns]);
        let _ = ip(&["link", "del", &self.host_if]);
    }
}

/// Processes killed on drop.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(prefix: &[&str], bin: &str, conf: &std::path::Path) -> Child {
    let (prog, args): (&str, Vec<&str>) = match prefix.split_first() {
        Some((p, rest)) => (p, rest.iter().copied().chain([bin]).collect()),
        None => (bin, vec![]),
    };
    Command::new(prog)
        .args(args)
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start {bin}: {e}"))
}

/// The three sentinels' logs.
fn sentinel_logs(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    (0..3)
        .map(|i| {
            let p = dir.join(format!("s{i}/sentinel.log"));
            let log = std::fs::read_to_string(&p).unwrap_or_default();
            (p, log)
        })
        .collect()
}

/// Prints the sentinels' logs if the test fails past this point.
struct LogsOnPanic(std::path::PathBuf);

impl Drop for LogsOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for (p, log) in sentinel_logs(&self.0) {
                eprintln!("--- {}\n{log}", p.display());
            }
        }
    }
}

/// Failovers completed, as the most-informed sentinel logged them.
fn switch_count(dir: &std::path::Path) -> usize {
    sentinel_logs(dir)
        .iter()
        .map(|(_, log)| log.matches("+switch-master mymaster").count())
        .max()
        .unwrap_or(0)
}

/// `SENTINEL <what> mymaster` on sentinel `s`, as an array (`None` if it
/// does not answer).
async fn sentinel(s: &str, what: &str) -> Option<Vec<Frame>> {
    let f = query(s, &["SENTINEL", what, "mymaster"], Duration::from_secs(1))
        .await
        .ok()?;
    f.as_array().map(<[Frame]>::to_vec)
}

async fn partition_the_master(mode: ConnMode) {
    let tag = (mode == ConnMode::Multiplex) as u32;
    let net = match Net::create(tag) {
        Ok(n) => n,
        Err(why) => {
            eprintln!("SKIPPED: network namespaces unavailable ({why}); run as root on Linux with iproute2");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    // Free on the host side's address (the namespace has ports of its own).
    let ports = redis_ha_local::ports::free_ports(&net.host_ip, 6).unwrap();
    let (m_port, r_ports, s_ports) = (ports[0], &ports[1..3], &ports[3..6]);
    let master = format!("{}:{m_port}", net.ns_ip);
    let redis_conf = |name: &str, bind: &str, port: u16, extra: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("redis.conf");
        std::fs::write(
            &p,
            format!(
                "port {port}\nbind {bind}\nprotected-mode no\ndir {}\nsave \"\"\nappendonly no\nrepl-timeout 5\n{extra}\n",
                d.display()
            ),
        )
        .unwrap();
        p
    };
    let _logs = LogsOnPanic(dir.path().to_path_buf());
    let mut procs = Procs(vec![]);
    let ns_exec = ["ip", "netns", "exec", net.ns.as_str()];
    procs.0.push(spawn(
        &ns_exec,
        "redis-server",
        &redis_conf("m", &net.ns_ip, m_port, ""),
    ));
    for (i, p) in r_ports.iter().enumerate() {
        let extra = format!("replicaof {} {m_port}", net.ns_ip);
        let conf = redis_conf(&format!("r{i}"), &net.host_ip, *p, &extra);
        procs.0.push(spawn(&[], "redis-server", &conf));
    }
    // Not the 1 s / 3 s of the other tests: on a loaded 2-core CI machine a
    // stalled sentinel once saw every node down and failed over a second
    // time, after a 3 s failover-timeout had ended the first failover before
    // the other replica was pointed at the new master, so Sentinel promoted a
    // replica that had never replicated from it (67k acknowledged writes
    // gone: Sentinel's choice, not something a proxy can undo).
    let mut sentinels = vec![];
    for (i, p) in s_ports.iter().enumerate() {
        let d = dir.path().join(format!("s{i}"));
        std::fs::create_dir_all(&d).unwrap();
        let conf = d.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {p}\nbind {host}\nprotected-mode no\ndir {dir}\n\
                 sentinel monitor mymaster {ns} {m_port} 2\n\
                 sentinel down-after-milliseconds mymaster 2000\n\
                 sentinel failover-timeout mymaster 10000\nlogfile {dir}/sentinel.log\n",
                host = net.host_ip,
                dir = d.display(),
                ns = net.ns_ip,
            ),
        )
        .unwrap();
        procs.0.push(spawn(&[], "redis-sentinel", &conf));
        sentinels.push(format!("{}:{p}", net.host_ip));
    }
    // Replication up and every sentinel aware of the others.
    poll("replicas in sync", Duration::from_secs(20), || async {
        let f = query(&master, &["INFO", "replication"], Duration::from_secs(1))
            .await
            .ok()?;
        (text(&f).matches("state=online").count() == 2).then_some(())
    })
    .await;
    poll(
        "sentinels to know each other and both replicas",
        Duration::from_secs(20),
        || async {
            for s in &sentinels {
                let v = sentinel(s, "MASTER").await?;
                let field = |name: &str| {
                    v.chunks(2)
                        .find(|kv| text(&kv[0]) == name)
                        .map(|kv| text(&kv[1]))
                };
                // Replicas are learned from the master's INFO, every 10 s:
                // a sentinel that started before they connected knows none
                // yet and could not fail over ("no good slave").
                if field("num-other-sentinels")? != "2" || field("num-slaves")? != "2" {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;

    let mut cfg = ProxyConfig::for_test(sentinels.clone(), "mymaster");
    cfg.mode = mode;
    // A failed Sentinel election is retried only after a while (up to twice
    // failover-timeout); on a loaded machine writes must be held that long.
    cfg.failover_hold = Duration::from_secs(60);
    let p = start(cfg).await.expect("proxy");
    assert_eq!(
        p.wait_master(Duration::from_secs(10)).await.unwrap(),
        master
    );

    // Writers: one SET at a time each, recording what was acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = vec![];
    for w in 0..4 {
        let (addr, stop) = (p.write_addr, stop.clone());
        writers.push(tokio::spawn(async move {
            let mut c = conn(addr).await;
            c.timeout = Duration::from_secs(90);
            let mut acked = vec![];
            let mut unknown = 0;
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{w}:{i}");
                let r = text(&cmd(&mut c, &["SET", &key, "v"]).await);
                i += 1;
                // The write in flight at the cut: the proxy cannot know if
                // it ran, and says so instead of sending it twice.
                if r.contains("unknown outcome") {
                    unknown += 1;
                    assert!(unknown <= 1, "{key}: a second unknown outcome");
                    continue;
                }
                assert_eq!(r, "OK", "{key}: a client-visible error");
                acked.push((key, std::time::Instant::now()));
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await; // some load first
    let epoch0 = p.routes.current().epoch;
    // The cut takes effect while `ip` runs (milliseconds, several writes per
    // writer at this rate); only replies after it returns are past the cut.
    net.cut();
    let t0 = std::time::Instant::now();
    let new = poll(
        "the proxy to adopt the promoted replica",
        Duration::from_secs(90),
        || async {
            let r = p.routes.current();
            (r.epoch > epoch0 && r.master.as_deref() != Some(master.as_str()))
                .then(|| r.master.clone())
                .flatten()
        },
    )
    .await;
    assert!(new.starts_with(&net.host_ip), "new master {new}");
    eprintln!(
        "{mode:?}: new master adopted {:?} after the cut",
        t0.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(500)).await; // writes on the new master
    net.heal();
    // The old master comes back and is demoted by the sentinels.
    poll(
        "the old master demoted",
        // Sentinel's reconnect to it can sit in SYN retransmission backoff
        // (1, 2, 4, 8, 16, 32 s) from the cut: tens of seconds.
        Duration::from_secs(180),
        || async {
            let f = query(&master, &["ROLE"], Duration::from_secs(1))
                .await
                .ok()?;
            (text(&f.as_array()?[0]) == "slave").then_some(())
        },
    )
    .await;
    eprintln!(
        "{mode:?}: old master demoted {:?} after the cut",
        t0.elapsed()
    );
    stop.store(true, Ordering::Relaxed);
    let mut acked = vec![];
    for w in writers {
        acked.push(w.await.expect("writer"));
    }
    // Sentinel with a 1 s down-after can fail over once more on a loaded
    // machine (a stalled sentinel sees every node as down): check against the
    // master the sentinels finally agree on, which the proxy must follow.
    let last = poll(
        "the sentinels to agree and the proxy to follow",
        Duration::from_secs(60),
        || async {
            let mut agreed: Option<String> = None;
            for s in &sentinels {
                let v = sentinel(s, "GET-MASTER-ADDR-BY-NAME").await?;
                let m = format!("{}:{}", text(v.first()?), text(v.get(1)?));
                if agreed.get_or_insert(m.clone()) != &m {
                    return None;
                }
            }
            let m = agreed?;
            (p.routes.current().master.as_deref() == Some(m.as_str())).then_some(m)
        },
    )
    .await;
    let failovers = switch_count(dir.path()).max(1);
    if last != new {
        eprintln!("{mode:?}: {failovers} failovers in all; last master {last}");
    }
    // Writes the old master acknowledged before the cut and had not yet
    // replicated are lost with it (asynchronous replication: as many as the
    // replica lagged, thousands on a loaded machine); so may be the one write
    // per writer whose reply was already on its way at the cut. Every later
    // acknowledgement came from the new master through the proxy: all of
    // those must be on it.
    let mut c = conn(&last).await;
    let before: Vec<&str> = acked
        .iter()
        .flatten()
        .filter(|(_, at)| *at < t0)
        .map(|(k, _)| k.as_str())
        .collect();
    let after: Vec<&str> = acked
        .iter()
        .flat_map(|w| w.iter().filter(|(_, at)| *at >= t0).skip(1))
        .map(|(k, _)| k.as_str())
        .collect();
    let (n_before, n_after) = (before.len(), after.len());
    let lost_before = missing(&mut c, &before).await;
    let lost_after = missing(&mut c, &after).await;
    eprintln!(
        "{mode:?}: {n_before} writes acknowledged before the cut ({lost_before} lost with the old master), {n_after} after ({lost_after} lost)"
    );
    assert!(
        n_after > 100,
        "too few writes after the cut to say anything ({n_after})"
    );
    if failovers == 1 {
        assert_eq!(
            lost_after, 0,
            "writes acknowledged through the proxy after the cut were lost"
        );
    } else {
        // A later failover may promote a replica Sentinel had not yet pointed
        // at the new master: its losses are Sentinel's, not the proxy's.
        eprintln!("{mode:?}: {failovers} failovers: losses after the cut not checked");
    }
    drop(procs);
}

/// How many of `keys` the node behind `c` does not have.
async fn missing(c: &mut redis_ha_resp::Connection, keys: &[&str]) -> usize {
    let mut n = 0;
    for chunk in keys.chunks(1000) {
        let mut args = vec!["EXISTS"];
        args.extend(chunk);
        n += chunk.len() - cmd(c, &args).await.as_int().unwrap_or(0) as usize;
    }
    n
}

in_both_modes!(partition_the_master);
