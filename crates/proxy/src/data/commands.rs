//! What the data path needs to know about a command: whether it changes
//! session state that must follow the client to a new backend, ends matching
//! of replies (pub/sub, MONITOR, CLIENT REPLY), or cannot survive a switch.

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

pub fn classify(c: &Command) -> Kind {
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
        _ if is_blocking(c) => Kind::Blocking,
        _ => Kind::Normal,
    }
}

fn is_blocking(c: &Command) -> bool {
    const BLOCKING: &[&str] = &[
        "BLPOP",
        "BRPOP",
        "BRPOPLPUSH",
        "BLMOVE",
        "BLMPOP",
        "BZPOPMIN",
        "BZPOPMAX",
        "BZMPOP",
        "WAIT",
        "WAITAOF",
    ];
    let n = c.name();
    if BLOCKING
        .iter()
        .any(|b| n.eq_ignore_ascii_case(b.as_bytes()))
    {
        return true;
    }
    // XREAD / XREADGROUP block only with the BLOCK option.
    (n.eq_ignore_ascii_case(b"XREAD") || n.eq_ignore_ascii_case(b"XREADGROUP"))
        && c.args.iter().any(|a| a.eq_ignore_ascii_case(b"BLOCK"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let k = |args: &[&str]| classify(&Command::from_args(args));
        assert_eq!(k(&["get", "x"]), Kind::Normal);
        assert_eq!(k(&["quit"]), Kind::Quit);
        assert_eq!(k(&["Subscribe", "ch"]), Kind::PassThrough);
        assert_eq!(k(&["client", "reply", "off"]), Kind::PassThrough);
        assert_eq!(k(&["client", "setname", "x"]), Kind::SetName);
        assert_eq!(k(&["blpop", "l", "0"]), Kind::Blocking);
        assert_eq!(
            k(&["xread", "block", "0", "streams", "s", "$"]),
            Kind::Blocking
        );
        assert_eq!(k(&["xread", "streams", "s", "0"]), Kind::Normal);
        assert_eq!(k(&["exec"]), Kind::EndMulti);
    }
}
