//! What a connection logs in with: a password alone (the `default` user,
//! `AUTH password`) or an ACL user and its password (`AUTH user password`);
//! and [`Access`], that login with the TLS it connects over.

use crate::tls::Tls;
use std::sync::Arc;

/// An ACL user's login. `user: None` is the default user.
#[derive(Clone, PartialEq, Eq)]
pub struct Login {
    pub user: Option<String>,
    pub password: String,
}

impl Login {
    /// The default user with `password`, as `requirepass` sets it up.
    pub fn default_user(password: &str) -> Login {
        Login {
            user: None,
            password: password.into(),
        }
    }

    /// The user's name as Redis knows it (`default` when none is given).
    pub fn user_name(&self) -> &str {
        self.user.as_deref().unwrap_or("default")
    }
}

/// Never prints the password (configs are logged and shown in errors).
impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({} / ***)", self.user_name())
    }
}

/// Something a connection presents: the arguments of its AUTH (none: no
/// AUTH), and the TLS to connect over, if any.
pub trait Credentials {
    fn auth_args(&self) -> Vec<&str>;
    fn tls(&self) -> Option<&Arc<Tls>> {
        None
    }
}

/// How to reach a node: over TLS or not, logged in or not.
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub login: Option<Login>,
    pub tls: Option<Arc<Tls>>,
}

impl Access {
    /// A login over plain TCP.
    pub fn login(login: Option<Login>) -> Access {
        Access { login, tls: None }
    }
}

impl Credentials for Access {
    fn auth_args(&self) -> Vec<&str> {
        self.login.as_ref().map_or_else(Vec::new, Login::auth_args)
    }
    fn tls(&self) -> Option<&Arc<Tls>> {
        self.tls.as_ref()
    }
}

/// A bare password: the default user, as `requirepass` sets it.
impl Credentials for str {
    fn auth_args(&self) -> Vec<&str> {
        vec!["AUTH", self]
    }
}

impl Credentials for Login {
    fn auth_args(&self) -> Vec<&str> {
        match &self.user {
            Some(u) => vec!["AUTH", u, &self.password],
            None => vec!["AUTH", &self.password],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_arguments() {
        assert_eq!("pw".auth_args(), ["AUTH", "pw"]);
        let l = Login {
            user: Some("proxy".into()),
            password: "pw".into(),
        };
        assert_eq!(l.auth_args(), ["AUTH", "proxy", "pw"]);
        assert_eq!(l.user_name(), "proxy");
        assert!(!format!("{l:?}").contains("pw"));
        let d = Login {
            user: None,
            password: "pw".into(),
        };
        assert_eq!(
            (d.auth_args(), d.user_name()),
            (vec!["AUTH", "pw"], "default")
        );
    }
}
