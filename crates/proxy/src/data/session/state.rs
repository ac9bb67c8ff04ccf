//! What a client has set on its connection and must follow it to a new
//! backend connection (login, HELLO, SELECT, names), what cannot follow
//! (a transaction, WATCH, pub/sub), and the decisions that depend on it:
//! what to replay on a new connection, and whether the client may share the
//! multiplexed connections.

use super::login::{hello_auth_at, same_login};
use crate::data::commands::{Class, Kind};
use crate::data::mux::Proto;
use bytes::BytesMut;
use redis_ha_resp::{encode, Command, Credentials, Login};

/// Transaction state on the backend connection.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Tx {
    #[default]
    None,
    Watching,
    /// MULTI sent; `watching` is what holds if it is refused.
    Multi {
        watching: bool,
    },
}

/// How replies relate to requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Replies {
    /// One reply per request.
    #[default]
    Paired,
    /// Pub/sub, MONITOR, CLIENT REPLY: the backend speaks on its own.
    Streamed,
}

#[derive(Clone, Debug, Default)]
pub struct ConnState {
    pub hello: Option<Command>,
    pub auth: Option<Command>,
    /// CLIENT SETNAME / SETINFO, the last one per label.
    pub labels: Vec<Command>,
    pub select: Option<Command>,
    pub tx: Tx,
    pub replies: Replies,
    /// Redis accepted a connection command the proxy does not follow (CLIENT
    /// TRACKING, an unknown command): the connection may hold state.
    pub untracked: bool,
}

impl ConnState {
    /// Tracks state as requests go out (a MULTI is in progress from the
    /// moment it is sent).
    pub fn on_sent(&mut self, kind: Kind) {
        match (kind, self.tx) {
            (Kind::Multi, Tx::Multi { .. }) => {}
            (Kind::Multi, tx) => {
                self.tx = Tx::Multi {
                    watching: tx == Tx::Watching,
                }
            }
            (Kind::Watch, Tx::None) => self.tx = Tx::Watching,
            (Kind::PassThrough, _) => self.replies = Replies::Streamed,
            _ => {}
        }
    }

    /// Updates the state from the reply to `cmd`. Returns true for a
    /// RESET that Redis accepted (the caller resets the login too).
    pub fn on_reply(&mut self, cmd: &Command, class: &Class, reply: &[u8]) -> bool {
        let ok = reply.first() != Some(&b'-') && reply.first() != Some(&b'!');
        match class.kind {
            Kind::Multi if !ok => {
                if let Tx::Multi { watching } = self.tx {
                    self.tx = if watching { Tx::Watching } else { Tx::None };
                }
            }
            Kind::EndMulti => self.tx = Tx::None,
            Kind::Unwatch if self.tx == Tx::Watching => self.tx = Tx::None,
            Kind::Select if ok => self.select = Some(cmd.clone()),
            Kind::Auth if ok => self.auth = Some(cmd.clone()),
            Kind::Hello if ok => {
                if hello_auth_at(cmd).is_some() {
                    self.auth = None; // replaced by this login
                }
                self.hello = Some(cmd.clone());
            }
            Kind::SetName if ok => self.set_label(cmd),
            Kind::Reset if ok => {
                *self = ConnState::default();
                return true;
            }
            _ if ok && class.untracked() => self.untracked = true,
            _ => {}
        }
        false
    }

    /// Replaces the same label: SETNAME, or SETINFO of the same attribute.
    fn set_label(&mut self, cmd: &Command) {
        let n = if cmd.arg_is(1, "SETINFO") { 3 } else { 2 };
        let same = |c: &Command| {
            (1..n).all(|i| {
                c.arg(i)
                    .zip(cmd.arg(i))
                    .is_some_and(|(x, y)| x.eq_ignore_ascii_case(y))
            })
        };
        self.labels.retain(|c| !same(c));
        self.labels.push(cmd.clone());
    }

    /// State a new backend cannot take over, named for the client's error.
    pub fn pinned(&self) -> Option<&'static str> {
        match (self.replies, self.tx) {
            (Replies::Streamed, _) => Some("subscribed / MONITOR / CLIENT REPLY"),
            (_, Tx::Multi { .. }) => Some("MULTI"),
            (_, Tx::Watching) => Some("WATCH"),
            _ => None,
        }
    }

    /// The protocol the client asked for with HELLO.
    pub fn proto(&self) -> Proto {
        match &self.hello {
            Some(h) if h.arg_is(1, "3") => Proto::Resp3,
            _ => Proto::Resp2,
        }
    }

    /// Nothing on a dedicated connection that the shared ones lack: the
    /// client may share them again (the timing is the caller's).
    pub fn shareable(&self, login: Option<&Login>) -> bool {
        self.tx == Tx::None
            && self.replies == Replies::Paired
            && !self.untracked
            && self.hello_shareable(login)
            && self.auth_shareable(login)
            && self.select.as_ref().is_none_or(|c| c.arg_is(1, "0"))
    }

    /// No AUTH, or one that logs in as the shared connections do.
    fn auth_shareable(&self, pw: Option<&Login>) -> bool {
        match &self.auth {
            None => true,
            Some(a) if a.argc() == 2 => same_login(pw, None, a.arg(1)),
            Some(a) if a.argc() == 3 => same_login(pw, a.arg(1), a.arg(2)),
            Some(_) => false,
        }
    }

    /// No HELLO, or `HELLO [2|3] [AUTH user pass] [SETNAME name]` whose
    /// AUTH, if any, is the shared connections' login.
    fn hello_shareable(&self, pw: Option<&Login>) -> bool {
        let Some(h) = &self.hello else {
            return true;
        };
        let mut i = 2;
        while i < h.argc() {
            if h.arg_is(i, "AUTH") && same_login(pw, h.arg(i + 1), h.arg(i + 2)) {
                i += 3;
            } else if h.arg_is(i, "SETNAME") && h.arg(i + 1).is_some() {
                i += 2;
            } else {
                return false;
            }
        }
        true
    }

    /// The commands that give a new connection this state, in an order Redis
    /// accepts: the login first (a HELLO without AUTH fails on a connection
    /// not logged in; a HELLO that logs in replaces an earlier AUTH, and an
    /// AUTH after it wins). Returns how many were encoded.
    pub fn replay(&self, login: Option<&Login>, out: &mut BytesMut) -> usize {
        let mut n = 0;
        let hello_logs_in = self.hello.as_ref().and_then(hello_auth_at).is_some();
        if let Some(l) = login {
            if self.auth.is_none() && !hello_logs_in {
                encode::command(&l.auth_args(), out);
                n += 1;
            }
        }
        let once = if hello_logs_in {
            [&self.hello, &self.auth, &self.select]
        } else {
            [&self.auth, &self.hello, &self.select]
        };
        for c in once.into_iter().flatten().chain(&self.labels) {
            out.extend_from_slice(&c.raw);
            n += 1;
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::commands::classify;

    fn apply(s: &mut ConnState, args: &[&str], reply: &[u8]) {
        let c = Command::from_args(args);
        let class = classify(&c);
        s.on_sent(class.kind);
        s.on_reply(&c, &class, reply);
    }

    #[test]
    fn transactions_and_watch() {
        let mut s = ConnState::default();
        apply(&mut s, &["WATCH", "k"], b"+OK\r\n");
        assert_eq!(s.pinned(), Some("WATCH"));
        apply(&mut s, &["MULTI"], b"+OK\r\n");
        assert_eq!(s.tx, Tx::Multi { watching: true });
        apply(&mut s, &["EXEC"], b"*0\r\n");
        assert_eq!((s.tx, s.pinned()), (Tx::None, None));
        apply(
            &mut s,
            &["MULTI"],
            b"-ERR MULTI calls can not be nested\r\n",
        );
        assert_eq!(s.tx, Tx::None);
    }

    fn proxy_login() -> Login {
        Login {
            user: Some("proxy".into()),
            password: "pw".into(),
        }
    }

    #[test]
    fn login_is_replayed_first() {
        let pw = Some(proxy_login());
        let pw = pw.as_ref();
        let mut s = ConnState::default();
        apply(&mut s, &["HELLO", "3"], b"%0\r\n");
        apply(&mut s, &["SELECT", "2"], b"+OK\r\n");
        apply(&mut s, &["CLIENT", "SETNAME", "a"], b"+OK\r\n");
        apply(&mut s, &["CLIENT", "SETNAME", "b"], b"+OK\r\n");
        let mut out = BytesMut::new();
        assert_eq!(s.replay(pw, &mut out), 4);
        let text = String::from_utf8_lossy(&out);
        let at = |w: &str| text.find(w).unwrap();
        assert!(at("AUTH") < at("HELLO") && at("HELLO") < at("SELECT"));
        assert!(
            text.starts_with("*3\r\n$4\r\nAUTH\r\n$5\r\nproxy\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nb\r\n") && !text.contains("\r\na\r\n"));
        assert!(!s.shareable(pw), "SELECT 2 keeps it dedicated");
        apply(&mut s, &["SELECT", "0"], b"+OK\r\n");
        assert!(s.shareable(pw));
        apply(&mut s, &["CLIENT", "TRACKING", "on"], b"+OK\r\n");
        assert!(!s.shareable(pw));
    }

    #[test]
    fn only_the_proxys_own_login_shares() {
        let pw = Some(proxy_login());
        let mut s = ConnState::default();
        apply(&mut s, &["AUTH", "pw"], b"+OK\r\n");
        assert!(!s.shareable(pw.as_ref()), "default is another user");
        apply(&mut s, &["AUTH", "proxy", "pw"], b"+OK\r\n");
        assert!(s.shareable(pw.as_ref()));
        apply(&mut s, &["HELLO", "3", "AUTH", "proxy", "pw"], b"%0\r\n");
        assert!(s.shareable(pw.as_ref()));
    }
}
