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
    SetName,
    Reset,
}

/// How the data path treats a command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Class {
    pub kind: Kind,
    /// May go over a backend connection shared with other clients: it
    /// neither reads nor changes connection state, and never blocks it.
    pub shared: bool,
}

pub fn classify(c: &Command) -> Class {
    let spec = lookup(c);
    let kind = kind(c, spec);
    let shared = kind == Kind::Normal && spec.is_some_and(shareable);
    Class { kind, shared }
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
        _ if is("CLIENT") && c.arg_is(1, "SETNAME") => Kind::SetName,
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

fn shareable(s: &Spec) -> bool {
    if s.name == "PING" || s.name == "ECHO" {
        return true;
    }
    // Blocking commands are already Kind::Blocking (see `kind`).
    let f = s.flags;
    s.acl & (acl::CONNECTION | acl::TRANSACTION) == 0
        // SUBSCRIBE & co., and admin commands that take over or reconfigure
        // the connection (SYNC, PSYNC, REPLCONF, MONITOR...).
        && !(f & flag::NOSCRIPT != 0 && f & (flag::PUBSUB | flag::ADMIN) != 0)
}

/// The table entry for a command (or `CONTAINER|SUBCOMMAND`). Unknown
/// commands get `None` and are never shared.
pub fn lookup(c: &Command) -> Option<&'static Spec> {
    let mut buf = [0u8; 64];
    let name = c.name();
    let n = upper(name, &mut buf)?;
    let i = find(&buf[..n])?;
    let spec = &table::COMMANDS[i];
    let container = table::COMMANDS
        .get(i + 1)
        .is_some_and(|next| next.name.len() > n && next.name.as_bytes()[n] == b'|');
    if !container {
        return Some(spec);
    }
    buf[n] = b'|';
    let m = upper(c.arg(1)?, &mut buf[n + 1..])?;
    find(&buf[..n + 1 + m]).map(|j| &table::COMMANDS[j])
}

fn upper(s: &[u8], out: &mut [u8]) -> Option<usize> {
    let out = out.get_mut(..s.len())?;
    for (o, b) in out.iter_mut().zip(s) {
        *o = b.to_ascii_uppercase();
    }
    Some(s.len())
}

fn find(name: &[u8]) -> Option<usize> {
    table::COMMANDS
        .binary_search_by(|s| s.name.as_bytes().cmp(name))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(args: &[&str]) -> Kind {
        classify(&Command::from_args(args)).kind
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
