//! What the data path needs to know about a command: whether it changes
//! session state that must follow the client to a new backend, ends matching
//! of replies (pub/sub, MONITOR, CLIENT REPLY), cannot survive a switch, or
//! may share a multiplexed backend connection with other clients.
//!
//! Command properties come from [`table`], generated from Redis's own
//! `COMMAND INFO` by `scripts/gen-commands.py`.

use super::table::{self, acl, flag, Spec};
use redis_ha_resp::Command;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Normal,
    Quit,
    /// SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, MONITOR, CLIENT REPLY: replies no
    /// longer pair one-to-one with requests.
    PassThrough,
    Multi,
    /// EXEC, DISCARD: end a transaction (and any WATCH).
    EndMulti,
    Watch,
    Unwatch,
    /// Blocks the connection on the server (BLPOP, WAIT...).
    Blocking,
    Select,
    Auth,
    Hello,
    /// CLIENT SETNAME, CLIENT SETINFO LIB-NAME / LIB-VER (Redis 7.2+):
    /// labels of the connection.
    SetName,
    Reset,
}

/// What running a command a second time could do, from its table flags:
/// the replay rule's input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Only reads (flag `readonly`): sending it again changes nothing.
    Read,
    /// Changes data, or is unknown: never sent twice.
    Write,
    /// Flagged `admin` (CONFIG SET, SHUTDOWN...) or acting on a busy node
    /// (SCRIPT KILL): never
    /// sent twice, and never held for a new master.
    Admin,
}

/// How the data path treats a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class {
    pub kind: Kind,
    /// May go over a backend connection shared with other clients: it
    /// neither reads nor changes connection state, and never blocks it.
    pub shared: bool,
    pub effect: Effect,
    /// Redis's description; `None` for a command Redis does not list.
    pub spec: Option<&'static Spec>,
}

impl Class {
    /// Changes connection state the proxy does not follow (CLIENT
    /// TRACKING, CLIENT NO-EVICT, unknown commands): once Redis accepts it,
    /// the client keeps its dedicated connection.
    pub fn untracked(&self) -> bool {
        self.kind == Kind::Normal
            && !self.shared
            && self.spec.is_none_or(|s| s.acl & acl::CONNECTION != 0)
    }
}

pub fn classify(c: &Command) -> Class {
    let spec = lookup(c);
    let kind = kind(c, spec);
    let shared = kind == Kind::Normal && spec.is_some_and(shareable);
    Class {
        kind,
        shared,
        effect: effect(spec),
        spec,
    }
}

fn effect(spec: Option<&Spec>) -> Effect {
    match spec {
        // The `admin` flag, not the wider @dangerous category (INFO, KEYS...).
        Some(s) if s.flags & flag::ADMIN != 0 => Effect::Admin,
        // ALLOW_BUSY (SCRIPT KILL...) reaches a busy node: it acts at once.
        Some(s) if urgent(s) => Effect::Admin,
        // Neither writes nor may (scripts, PUBLISH): sending it twice changes nothing.
        Some(s)
            if s.flags & (flag::WRITE | flag::MAY_REPLICATE) == 0
                && s.acl & (acl::WRITE | acl::SCRIPTING | acl::PUBSUB) == 0 =>
        {
            Effect::Read
        }
        _ => Effect::Write,
    }
}

/// Reply frames Redis sends for `c` outside a transaction on a connection
/// with no subscriptions (with some, replies stream unpaired): one, but
/// (P|S)UNSUBSCRIBE answers once per channel given, or once with none.
/// None of those is shared: a shared command (the hot path) takes no compare.
pub fn reply_frames(c: &Command, class: &Class) -> usize {
    if class.shared {
        return 1;
    }
    let name = c.name();
    let unsubscribe = matches!(name.len(), 11 | 12)
        && ["UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE"]
            .iter()
            .any(|u| name.eq_ignore_ascii_case(u.as_bytes()));
    if unsubscribe {
        (c.argc() - 1).max(1)
    } else {
        1
    }
}

/// Whether `frame` is a RESP3 (P|S)UNSUBSCRIBE confirmation: a push, yet
/// the command's reply rather than out-of-band data.
pub fn is_unsubscribe_push(frame: &[u8]) -> bool {
    let Some(rest) = frame.strip_prefix(b">3\r\n$") else {
        return false;
    };
    [
        &b"11\r\nunsubscribe\r\n"[..],
        b"12\r\npunsubscribe\r\n",
        b"12\r\nsunsubscribe\r\n",
    ]
    .iter()
    .any(|kind| rest.starts_with(kind))
}

/// Remembers the last command classified on a connection: clients tend to
/// repeat the same few commands, and a byte compare is cheaper than a lookup.
#[derive(Default)]
pub struct LastClass {
    name: [u8; 16],
    len: u8,
    class: Option<Class>,
}

impl LastClass {
    #[inline(always)] // one call per request (and a cold one for big values)
    pub fn classify(&mut self, c: &Command) -> Class {
        let name = c.name();
        if let Some(class) = self.class {
            if name.len() == self.len as usize && name == &self.name[..name.len()] {
                return class;
            }
        }
        let class = classify(c);
        // Only commands whose class depends on the name alone.
        let by_name = name.len() <= self.name.len()
            && c.argc() > 0
            && lookup(c).is_some_and(|s| !s.name.contains('|'))
            && !name.eq_ignore_ascii_case(b"XREAD")
            && !name.eq_ignore_ascii_case(b"XREADGROUP")
            && !name.eq_ignore_ascii_case(b"CLIENT");
        if by_name {
            self.name[..name.len()].copy_from_slice(name);
            self.len = name.len() as u8;
            self.class = Some(class);
        }
        class
    }
}

fn kind(c: &Command, spec: Option<&Spec>) -> Kind {
    let n = c.name();
    let is = |s: &str| n.eq_ignore_ascii_case(s.as_bytes());
    match n.len() {
        _ if is("QUIT") => Kind::Quit,
        _ if is("SUBSCRIBE") || is("PSUBSCRIBE") || is("SSUBSCRIBE") || is("MONITOR") => {
            Kind::PassThrough
        }
        _ if is("CLIENT") && c.arg_is(1, "REPLY") => Kind::PassThrough,
        _ if is("CLIENT") && (c.arg_is(1, "SETNAME") || c.arg_is(1, "SETINFO")) => Kind::SetName,
        _ if is("MULTI") => Kind::Multi,
        _ if is("EXEC") || is("DISCARD") => Kind::EndMulti,
        _ if is("WATCH") => Kind::Watch,
        _ if is("UNWATCH") => Kind::Unwatch,
        _ if is("SELECT") => Kind::Select,
        _ if is("AUTH") => Kind::Auth,
        _ if is("HELLO") => Kind::Hello,
        _ if is("RESET") => Kind::Reset,
        // Not flagged "blocking" by Redis, but they hold the connection.
        _ if is("WAIT") || is("WAITAOF") => Kind::Blocking,
        // XREAD / XREADGROUP block only with the BLOCK option.
        _ if is("XREAD") || is("XREADGROUP") => {
            if c.args().skip(1).any(|a| a.eq_ignore_ascii_case(b"BLOCK")) {
                Kind::Blocking
            } else {
                Kind::Normal
            }
        }
        _ if spec.is_some_and(|s| s.flags & flag::BLOCKING != 0) => Kind::Blocking,
        _ => Kind::Normal,
    }
}

/// Meant to act on a busy node at once: SCRIPT KILL, FUNCTION KILL (not
/// the connection and transaction commands a server also lets through
/// while busy, like AUTH, or MULTI and WATCH on Valkey).
fn urgent(s: &Spec) -> bool {
    s.flags & flag::ALLOW_BUSY != 0
        && s.flags & flag::READONLY == 0
        && s.acl & (acl::CONNECTION | acl::TRANSACTION) == 0
        && s.first_key == 0
}

fn shareable(s: &Spec) -> bool {
    if s.name == "PING" || s.name == "ECHO" {
        return true;
    }
    // Blocking commands are already Kind::Blocking (see `kind`).
    let f = s.flags;
    // SCRIPT KILL, FUNCTION KILL...: a shared connection may be stuck
    // behind the very script they are meant to stop.
    !urgent(s)
        && s.acl & (acl::CONNECTION | acl::TRANSACTION) == 0
        // SUBSCRIBE & co., and admin commands that take over or reconfigure
        // the connection (SYNC, PSYNC, REPLCONF, MONITOR...).
        && !(f & flag::NOSCRIPT != 0 && f & (flag::PUBSUB | flag::ADMIN) != 0)
}

/// The table entry for a command (or `CONTAINER|SUBCOMMAND`). Unknown
/// commands get `None` and are never shared.
pub fn lookup(c: &Command) -> Option<&'static Spec> {
    let name = c.name();
    let i = find(fnv(name, FNV_OFFSET), name)?;
    let spec = &table::COMMANDS[i];
    if !index().1[i] {
        return Some(spec);
    }
    // A container (CLIENT, CONFIG...): the subcommand decides.
    let sub = c.arg(1)?;
    let h = fnv(sub, fnv(b"|", fnv(name, FNV_OFFSET)));
    let by_hash = &index().0;
    let j = by_hash[by_hash.binary_search_by_key(&h, |e| e.0).ok()?].1 as usize;
    let cand = table::COMMANDS[j].name.as_bytes();
    let ok = cand.len() == name.len() + 1 + sub.len()
        && cand[..name.len()].eq_ignore_ascii_case(name)
        && cand[name.len()] == b'|'
        && cand[name.len() + 1..].eq_ignore_ascii_case(sub);
    ok.then_some(&table::COMMANDS[j])
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over the upper-cased bytes, continuing from `h`.
fn fnv(s: &[u8], mut h: u64) -> u64 {
    for b in s {
        h ^= b.to_ascii_uppercase() as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// (hash, table position) sorted by hash, and which entries are containers.
/// Looking a name up costs one hash and integer compares instead of a
/// string comparison per step of a binary search (it was 13% of the proxy's
/// CPU with pipelining).
#[allow(clippy::type_complexity)]
fn index() -> &'static (Vec<(u64, u16)>, Vec<bool>) {
    static INDEX: std::sync::OnceLock<(Vec<(u64, u16)>, Vec<bool>)> = std::sync::OnceLock::new();
    INDEX.get_or_init(|| {
        let mut by_hash: Vec<(u64, u16)> = table::COMMANDS
            .iter()
            .enumerate()
            .map(|(i, s)| (fnv(s.name.as_bytes(), FNV_OFFSET), i as u16))
            .collect();
        by_hash.sort_unstable();
        let containers = table::COMMANDS
            .iter()
            .enumerate()
            .map(|(i, s)| {
                table::COMMANDS.get(i + 1).is_some_and(|next| {
                    next.name.len() > s.name.len()
                        && next.name.as_bytes()[s.name.len()] == b'|'
                        && next.name.starts_with(s.name)
                })
            })
            .collect();
        (by_hash, containers)
    })
}

fn find(h: u64, name: &[u8]) -> Option<usize> {
    let by_hash = &index().0;
    let k = by_hash.binary_search_by_key(&h, |e| e.0).ok()?;
    let i = by_hash[k].1 as usize;
    table::COMMANDS[i]
        .name
        .as_bytes()
        .eq_ignore_ascii_case(name)
        .then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(args: &[&str]) -> Kind {
        classify(&Command::from_args(args)).kind
    }

    #[test]
    fn unsubscribe_is_answered_once_per_channel() {
        let n = |args: &[&str]| {
            let c = Command::from_args(args);
            reply_frames(&c, &classify(&c))
        };
        assert_eq!(n(&["unsubscribe"]), 1);
        assert_eq!(n(&["UNSUBSCRIBE", "a", "b"]), 2);
        assert_eq!(n(&["PUnsubscribe", "a*", "b*", "c*"]), 3);
        assert_eq!(n(&["SUNSUBSCRIBE", "a", "b"]), 2);
        assert_eq!(n(&["SUBSCRIBE", "a", "b"]), 1, "streams, never paired");
        assert_eq!(n(&["MGET", "a", "b"]), 1);
        assert!(is_unsubscribe_push(
            b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n"
        ));
        assert!(is_unsubscribe_push(
            b">3\r\n$12\r\npunsubscribe\r\n$1\r\nx\r\n:0\r\n"
        ));
        assert!(!is_unsubscribe_push(
            b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"
        ));
        assert!(!is_unsubscribe_push(
            b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n"
        ));
    }

    fn shared(args: &[&str]) -> bool {
        classify(&Command::from_args(args)).shared
    }

    #[test]
    fn kinds() {
        assert_eq!(k(&["get", "x"]), Kind::Normal);
        assert_eq!(k(&["quit"]), Kind::Quit);
        assert_eq!(k(&["Subscribe", "ch"]), Kind::PassThrough);
        assert_eq!(k(&["client", "reply", "off"]), Kind::PassThrough);
        assert_eq!(k(&["client", "setname", "x"]), Kind::SetName);
        assert_eq!(k(&["client", "setinfo", "lib-name", "x"]), Kind::SetName);
        assert_eq!(k(&["blpop", "l", "0"]), Kind::Blocking);
        assert_eq!(k(&["bzmpop", "0", "1", "z", "MIN"]), Kind::Blocking);
        assert_eq!(k(&["wait", "1", "0"]), Kind::Blocking);
        assert_eq!(
            k(&["xread", "block", "0", "streams", "s", "$"]),
            Kind::Blocking
        );
        assert_eq!(k(&["xread", "streams", "s", "0"]), Kind::Normal);
        assert_eq!(k(&["exec"]), Kind::EndMulti);
    }

    #[test]
    fn table_lookup_is_case_insensitive_and_knows_subcommands() {
        let l = |args: &[&str]| lookup(&Command::from_args(args)).map(|s| s.name);
        assert_eq!(l(&["gEt", "k"]), Some("GET"));
        assert_eq!(l(&["config", "get", "x"]), Some("CONFIG|GET"));
        assert_eq!(l(&["CONFIG", "nosuch"]), None);
        assert_eq!(l(&["nosuchcommand"]), None);
        assert_eq!(l(&[&"x".repeat(100)]), None);
        let get = l(&["get"]).and_then(|_| lookup(&Command::from_args(&["get"])));
        assert!(get.is_some_and(|s| s.flags & flag::READONLY != 0 && s.first_key == 1));
        assert!(table::COMMANDS.windows(2).all(|w| w[0].name < w[1].name));
        // Every entry is found by its own name, and no two names collide.
        let hashes = &index().0;
        assert!(hashes.windows(2).all(|w| w[0].0 != w[1].0));
        for (i, s) in table::COMMANDS.iter().enumerate() {
            if index().1[i] {
                continue; // a container alone needs its subcommand
            }
            let mut parts = s.name.split('|');
            let args: Vec<&str> = parts.by_ref().collect();
            let lower: Vec<String> = args.iter().map(|a| a.to_lowercase()).collect();
            assert_eq!(
                lookup(&Command::from_args(&lower)).map(|x| x.name),
                Some(s.name)
            );
        }
    }

    #[test]
    fn the_cache_never_changes_an_answer() {
        let mut last = LastClass::default();
        for args in [
            &["GET", "k"][..],
            &["GET", "k"],
            &["xread", "streams", "s", "0"],
            &["xread", "block", "0", "streams", "s", "0"],
            &["client", "id"],
            &["client", "reply", "off"],
            &["SELECT", "1"],
            &["SELECT", "1"],
            &["get", "k"],
            &["nosuch"],
            &["nosuch"],
        ] {
            let c = Command::from_args(args);
            assert_eq!(last.classify(&c), classify(&c), "{args:?}");
        }
    }

    #[test]
    fn effects_decide_what_may_be_sent_twice() {
        let e = |args: &[&str]| classify(&Command::from_args(args)).effect;
        for read in [
            &["get", "k"][..],
            &["mget", "a", "b"],
            &["ping"],
            &["scan", "0"],
        ] {
            assert_eq!(e(read), Effect::Read, "{read:?}");
        }
        for write in [
            &["set", "k", "v"][..],
            &["incr", "k"],
            &["rpush", "l", "x"],
            &["eval", "return 1", "0"],
            &["nosuch"],
            &["publish", "c", "m"],
            &["flushall"],
        ] {
            assert_eq!(e(write), Effect::Write, "{write:?}");
        }
        for admin in [
            &["shutdown"][..],
            &["debug", "sleep", "1"],
            &["config", "set", "x", "y"],
            &["script", "kill"],
            &["function", "kill"],
            &["replicaof", "no", "one"],
            &["client", "kill", "id", "1"],
        ] {
            assert_eq!(e(admin), Effect::Admin, "{admin:?}");
        }
        assert!(!shared(&["script", "kill"]) && !shared(&["function", "kill"]));
        // Valkey lets MULTI and WATCH through while busy (allow_busy in the
        // table): they are still held through a failover like the rest.
        for held in [&["multi"][..], &["watch", "k"]] {
            assert_ne!(e(held), Effect::Admin, "{held:?}");
        }
        let untracked = |args: &[&str]| classify(&Command::from_args(args)).untracked();
        assert!(untracked(&["client", "tracking", "on"]) && untracked(&["nosuch"]));
        assert!(!untracked(&["script", "kill"]) && !untracked(&["config", "set", "a", "b"]));
    }

    #[test]
    fn what_may_share_a_backend_connection() {
        for ok in [
            &["get", "k"][..],
            &["SET", "k", "v"],
            &["incr", "k"],
            &["mget", "a", "b"],
            &["ping"],
            &["echo", "x"],
            &["publish", "ch", "m"],
            &["eval", "return 1", "0"],
            &["xread", "streams", "s", "0"],
            &["info"],
            &["dbsize"],
        ] {
            assert!(shared(ok), "{ok:?} should be shared");
        }
        for no in [
            &["select", "1"][..],
            &["multi"],
            &["watch", "k"],
            &["exec"],
            &["blpop", "l", "0"],
            &["xread", "block", "0", "streams", "s", "$"],
            &["wait", "1", "0"],
            &["subscribe", "ch"],
            &["monitor"],
            &["client", "tracking", "on"],
            &["client", "id"],
            &["hello", "3"],
            &["auth", "pw"],
            &["reset"],
            &["psync", "?", "-1"],
            &["sync"],
            &["replconf", "listening-port", "1"],
            &["nosuchcommand"],
            &["quit"],
        ] {
            assert!(!shared(no), "{no:?} must get a dedicated connection");
        }
    }
}
