//! Logging in through the proxy, as with Redis: before a login every command
//! but AUTH, HELLO ... AUTH, RESET and QUIT gets Redis's NOAUTH. A wrong
//! password for the default user is refused on the spot; a good one, or any
//! other user's, goes to Redis, which has the last word, and nothing sent
//! after it is read until Redis has answered.

use crate::data::commands::Kind;
use crate::secret::same_bytes;
use bytes::Bytes;
use redis_ha_resp::Command;

/// Where a client stands with its login.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Login {
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

/// `user`/`pass` are what the proxy's own connections log in with: the
/// default user with `password`.
pub fn same_login(password: Option<&str>, user: Option<&[u8]>, pass: Option<&[u8]>) -> bool {
    let Some(pw) = password else {
        return false;
    };
    user.is_none_or(|u| u == b"default") && pass.is_some_and(|p| same_bytes(p, pw.as_bytes()))
}

/// The gate for a command before login (the answers are Redis's own).
pub fn gate(password: Option<&str>, cmd: &Command, kind: Kind) -> Gate {
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
        // The default user's password is known here; other users' are not.
        (Some(u), _) if u != b"default" => Gate::Forward,
        (user, pass) if same_login(password, user, pass) => Gate::Forward,
        _ => Gate::Refuse(WRONGPASS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(args: &[&str], kind: Kind) -> Gate {
        gate(Some("pw"), &Command::from_args(args), kind)
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
        assert!(!same_login(Some("pw"), None, Some(b"pX")));
        assert!(!same_login(None, None, Some(b"pw")));
    }
}
