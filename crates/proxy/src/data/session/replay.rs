//! The replay rule: a request is sent again only if it certainly did not
//! run (never written, or refused with READONLY / LOADING / MASTERDOWN) or
//! only reads. A write whose connection was lost after it was written is
//! answered with an unknown-outcome error instead: re-sending it could apply
//! it twice (the old master may have run and replicated it). A request that
//! lost its connection twice is failed whatever it is, so a request that
//! makes Redis drop the connection cannot loop.

use crate::data::commands::Effect;
use crate::data::error::ClientError;

/// Losing a backend connection this many times fails a request.
pub const MAX_LOSSES: u8 = 2;

/// A backend connection lost with requests on it.
#[derive(Clone, Debug)]
pub struct Loss {
    pub node: String,
    pub why: String,
}

/// After the link carrying a written request was lost (`losses` counts this
/// loss too): `Ok` to send it again, or the error to answer it with.
pub fn after_loss(effect: Effect, losses: u8, loss: &Loss) -> Result<(), ClientError> {
    if losses >= MAX_LOSSES {
        return Err(ClientError::Poison {
            node: loss.node.clone(),
        });
    }
    match effect {
        Effect::Read => Ok(()),
        Effect::Write | Effect::Admin => Err(ClientError::UnknownOutcome {
            node: loss.node.clone(),
            why: loss.why.clone(),
        }),
    }
}

/// What a reply from the write endpoint's backend means for its request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The client's answer.
    Answer,
    /// The node refused to run it because it is not (or not yet) a usable
    /// master: it did not run, and is sent again (to the next master, or
    /// the same one once it takes writes) for up to `--failover-hold`.
    NotRun,
}

/// Judges a reply on the write endpoint outside a transaction (inside one,
/// Redis's own EXECABORT logic applies and the reply is the client's).
pub fn judge(reply: &[u8]) -> Verdict {
    // NOREPLICAS: min-replicas-to-write refused it before running it (a new
    // master whose replicas are still resyncing).
    const NOT_RUN: [&[u8]; 4] = [b"-READONLY", b"-LOADING", b"-MASTERDOWN", b"-NOREPLICAS"];
    if reply.first() == Some(&b'-') && NOT_RUN.iter().any(|p| reply.starts_with(p)) {
        Verdict::NotRun
    } else {
        Verdict::Answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loss() -> Loss {
        Loss {
            node: "10.0.0.1:6379".into(),
            why: "reset".into(),
        }
    }

    #[test]
    fn reads_are_sent_again_once() {
        assert_eq!(after_loss(Effect::Read, 1, &loss()), Ok(()));
        assert!(matches!(
            after_loss(Effect::Read, 2, &loss()),
            Err(ClientError::Poison { .. })
        ));
    }

    #[test]
    fn writes_and_admin_commands_are_never_sent_twice() {
        for e in [Effect::Write, Effect::Admin] {
            assert!(matches!(
                after_loss(e, 1, &loss()),
                Err(ClientError::UnknownOutcome { .. })
            ));
        }
    }

    #[test]
    fn refusals_that_mean_not_run() {
        assert_eq!(
            judge(b"-READONLY You can't write against a read only replica.\r\n"),
            Verdict::NotRun
        );
        assert_eq!(
            judge(b"-LOADING Redis is loading the dataset in memory\r\n"),
            Verdict::NotRun
        );
        assert_eq!(
            judge(b"-NOREPLICAS Not enough good replicas to write.\r\n"),
            Verdict::NotRun
        );
        assert_eq!(judge(b"-ERR wrong type\r\n"), Verdict::Answer);
        assert_eq!(judge(b"+OK\r\n"), Verdict::Answer);
        assert_eq!(judge(b"$9\r\n-READONLY\r\n"), Verdict::Answer);
    }
}
