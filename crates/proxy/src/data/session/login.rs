//! Logging in through the proxy, as with Redis: before a login every command
//! but AUTH, HELLO ... AUTH, RESET and QUIT gets Redis's NOAUTH. A wrong
//! password for the proxy's own user (`--user`, else `default`) is refused
//! on the spot; a good one, or any other user's, goes to Redis, which has
//! the last word, and nothing sent after it is read until Redis has answered.

use crate::data::commands::Kind;
use crate::secret::same_bytes;
use bytes::Bytes;
use redis_ha_resp::{Command, Login};

/// Where a client stands with its login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signin {
    /// Must log in before anything else.
    Required,
    /// A login is on its way to Redis: read nothing more until answered.
    Waiting,
    /// Logged in, or no login needed.
    Done,
}

/// What a command from a client that has not logged in gets.
#[derive(Debug, PartialEq, Eq)]
pub enum Gate {
    /// A login attempt Redis answers.
    Forward,
    /// Answered by the proxy.
    Local(Bytes),
    /// Refused with this error.
    Refuse(&'static str),
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";
const HELLO_NOAUTH: &str = "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time";

/// Where `AUTH user pass` starts in `HELLO [protover [AUTH user pass] ...]`.
pub fn hello_auth_at(hello: &Command) -> Option<usize> {
    (2..hello.argc()).find(|&i| hello.arg_is(i, "AUTH"))
}

/// `user` (none: `default`) is the user the proxy's own connections log in
/// as (`login`).
fn is_proxy_user(login: &Login, user: Option<&[u8]>) -> bool {
    user.unwrap_or(b"default") == login.user_name().as_bytes()
}

/// `user`/`pass` are what the proxy's own connections log in with.
pub fn same_login(login: Option<&Login>, user: Option<&[u8]>, pass: Option<&[u8]>) -> bool {
    login.is_some_and(|l| {
        is_proxy_user(l, user) && pass.is_some_and(|p| same_bytes(p, l.password.as_bytes()))
    })
}

/// The gate for a command before login (the answers are Redis's own).
pub fn gate(login: Option<&Login>, cmd: &Command, kind: Kind) -> Gate {
    let creds = match kind {
        Kind::Auth => match cmd.argc() {
            2 => (None, cmd.arg(1)),
            3 => (cmd.arg(1), cmd.arg(2)),
            _ => return Gate::Refuse("ERR wrong number of arguments for 'auth' command"),
        },
        Kind::Hello => match hello_auth_at(cmd) {
            Some(i) => (cmd.arg(i + 1), cmd.arg(i + 2)),
            None => return Gate::Refuse(HELLO_NOAUTH),
        },
        // Nothing to reset before a login.
        Kind::Reset => return Gate::Local(Bytes::from_static(b"+RESET\r\n")),
        _ => return Gate::Refuse("NOAUTH Authentication required."),
    };
    match creds {
        (_, None) => Gate::Refuse("ERR Syntax error in HELLO option 'auth'"),
        // The proxy's own user's password is known here; others' are not.
        (user, _) if !login.is_some_and(|l| is_proxy_user(l, user)) => Gate::Forward,
        (user, pass) if same_login(login, user, pass) => Gate::Forward,
        _ => Gate::Refuse(WRONGPASS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(user: Option<&str>) -> Login {
        Login {
            user: user.map(str::to_string),
            password: "pw".into(),
        }
    }

    fn g(args: &[&str], kind: Kind) -> Gate {
        gate(Some(&login(None)), &Command::from_args(args), kind)
    }

    #[test]
    fn the_gate_answers_as_redis_would() {
        assert_eq!(g(&["AUTH", "pw"], Kind::Auth), Gate::Forward);
        assert_eq!(g(&["AUTH", "default", "pw"], Kind::Auth), Gate::Forward);
        assert_eq!(g(&["AUTH", "alice", "x"], Kind::Auth), Gate::Forward);
        assert_eq!(g(&["AUTH", "nope"], Kind::Auth), Gate::Refuse(WRONGPASS));
        assert_eq!(
            g(&["HELLO", "3", "AUTH", "default", "pw"], Kind::Hello),
            Gate::Forward
        );
        assert_eq!(g(&["HELLO", "3"], Kind::Hello), Gate::Refuse(HELLO_NOAUTH));
        assert_eq!(
            g(&["GET", "k"], Kind::Normal),
            Gate::Refuse("NOAUTH Authentication required.")
        );
        assert!(matches!(g(&["RESET"], Kind::Reset), Gate::Local(_)));
        assert!(!same_login(Some(&login(None)), None, Some(b"pX")));
        assert!(!same_login(None, None, Some(b"pw")));
    }

    #[test]
    fn with_its_own_user_the_proxy_judges_only_that_users_password() {
        let l = login(Some("proxy"));
        let g = |args: &[&str]| gate(Some(&l), &Command::from_args(args), Kind::Auth);
        assert_eq!(g(&["AUTH", "proxy", "pw"]), Gate::Forward);
        assert_eq!(g(&["AUTH", "proxy", "nope"]), Gate::Refuse(WRONGPASS));
        // The default user's password is Redis's to judge now.
        assert_eq!(g(&["AUTH", "other-pw"]), Gate::Forward);
        assert_eq!(g(&["AUTH", "default", "x"]), Gate::Forward);
        assert!(same_login(Some(&l), Some(b"proxy"), Some(b"pw")));
        assert!(
            !same_login(Some(&l), None, Some(b"pw")),
            "default is not proxy"
        );
        assert!(!same_login(Some(&l), Some(b"default"), Some(b"pw")));
    }
}
