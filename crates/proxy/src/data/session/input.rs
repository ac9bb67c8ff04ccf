//! The client side of a session: requests parsed and accepted in order
//! (QUIT, the login gate, refused commands, the proxy's own answers),
//! and the client closing its side.

use super::*;

impl Session {
    pub(super) fn on_client_eof(&mut self) {
        if self.upload.is_some() {
            let e = ClientError::Protocol(
                "the connection ended in the middle of a request; it did not run".into(),
            );
            return self.upload_broken(e);
        }
        self.input = match self.input {
            // A subscriber that leaves: its subscriptions go with the link.
            _ if self.state.replies == Replies::Streamed => Input::Closing,
            Input::Closing => Input::Closing,
            _ => Input::Eof,
        };
    }

    pub(super) fn on_client_data(&mut self) {
        if self.upload.is_some() {
            return; // the rest of a big request first (pump_upload)
        }
        let mut n = 0u64;
        while self.input == Input::Open && self.login != Signin::Waiting {
            match self.parser.next(&mut self.cbuf) {
                Ok(Some(cmd)) => {
                    n += 1;
                    self.accept(cmd);
                }
                Ok(None) => {
                    // Waiting for a big argument: its command goes now.
                    let partial = !self.cbuf.is_empty();
                    if let Some((cmd, d)) = partial
                        .then(|| self.parser.detach(&mut self.cbuf, big::BIG))
                        .flatten()
                    {
                        n += 1;
                        self.accept_detached(cmd, d);
                    }
                    break;
                }
                Err(e) => {
                    self.answer_local(ClientError::Protocol(e.to_string()), After::Close);
                    self.input = Input::Quit;
                }
            }
        }
        if n > 0 {
            self.shared.metrics.ep(self.endpoint).commands.inc_by(n);
        }
    }

    // Inlined into `on_client_data` as before big values had a second
    // caller (`accept_detached`): ~60 instructions per request otherwise.
    #[inline(always)]
    pub(super) fn accept(&mut self, cmd: Command) {
        let class = self.last_class.classify(&cmd);
        // POST and HOST: are no Redis commands: a known one needs no compare.
        if class.spec.is_none() && looks_like_http(&cmd) {
            tracing::warn!("closing a client that sent HTTP to a Redis port");
            self.error_kind(ErrorKind::Protocol);
            self.input = Input::Closing;
            return;
        }
        if class.kind == Kind::Quit {
            return self.accept_quit(cmd, class);
        }
        if self.login == Signin::Required {
            match login::gate(self.shared.cfg.login.as_ref(), &cmd, class.kind) {
                Gate::Forward => self.login = Signin::Waiting,
                Gate::Local(reply) => {
                    return self.pipeline.push_local(cmd, class, reply, After::Continue)
                }
                Gate::Refuse(e) => return self.answer_local(ClientError::Auth(e), After::Continue),
            }
        }
        if let Some(e) = self.shared.deny.check(&cmd, &class) {
            return self.answer_local(e, After::Continue);
        }
        self.pipeline.push(Slot::remote(cmd, class));
    }

    /// QUIT is answered in order; a subscriber's goes to Redis, which
    /// answers it after everything it still streams, then closes.
    pub(super) fn accept_quit(&mut self, cmd: Command, class: Class) {
        self.input = Input::Quit;
        let streaming = (self.state.replies == Replies::Streamed && self.backend.is_some())
            || self.pipeline.has_unsent(Kind::PassThrough);
        if streaming {
            return self.pipeline.push(Slot::remote(cmd, class));
        }
        let ok = Bytes::from_static(b"+OK\r\n");
        self.pipeline.push_local(cmd, class, ok, After::Close);
    }

    /// Answers with the proxy's own error, in order.
    pub(super) fn answer_local(&mut self, e: ClientError, after: After) {
        self.error_kind(e.kind());
        self.pipeline.push_reply(e.reply(), after);
    }

    pub(super) fn error_kind(&self, kind: ErrorKind) {
        self.shared.metrics.ep(self.endpoint).error(kind).inc();
    }
}

/// Redis closes a connection whose first words look like HTTP (a
/// cross-protocol attack); so does the proxy, before any backend sees it.
fn looks_like_http(cmd: &Command) -> bool {
    cmd.is("POST") || cmd.is("HOST:")
}
