//! What a connection logs in with: a password alone (the `default` user,
//! `AUTH password`) or an ACL user and its password (`AUTH user password`).

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

/// Something a connection can log in with: the arguments of its AUTH.
pub trait Credentials {
    fn auth_args(&self) -> Vec<&str>;
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
