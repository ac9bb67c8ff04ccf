//! Big values through a session ([`crate::data::big`]): the rest of a big
//! request written on as it is read ([`Session::pump_upload`]), and a big
//! reply passed to the client as it arrives ([`Session::relay_dedicated`],
//! [`Session::on_part`]).
//!
//! What can go wrong mid-value, and what the client sees:
//! - the backend link is lost while a request streams: Redis never had the
//!   whole command, so it did not run; the client gets an error that says
//!   so ([`ClientError::Unsent`]) and the rest of its value is read and
//!   dropped. Lost after the last byte: unknown outcome, as for any write.
//! - the client sends something malformed mid-value, or closes: the link
//!   is closed (Redis drops the partial command, unrun) and so is the client.
//! - the link is lost while a reply streams: part of the value has reached
//!   the client, so nothing may follow it; the client's connection is closed
//!   before the value's end, which every client reports as an error, never
//!   as a value.

use super::pipeline::{Stream, Upstream};
use super::*;
use redis_ha_resp::Detached;

impl Session {
    /// A request detached before a big argument ([`RequestParser::detach`]):
    /// accepted as any request, its rest to follow.
    pub(super) fn accept_detached(&mut self, cmd: Command, d: Detached) {
        self.upload = Some(Upload::new(d));
        if d.index == 0 {
            let e = ClientError::Protocol("command name too long".into());
            return self.answer_local(e, After::Continue);
        }
        let kind = self.last_class.classify(&cmd).kind;
        if kind != Kind::Normal {
            // Its arguments are kept (AUTH, HELLO, CLIENT SETNAME...) to be
            // replayed on a new connection: not with a value cut off.
            let e = ClientError::Protocol(format!(
                "redis-ha passes an argument of {} bytes or more only to plain commands, not {}",
                big::BIG,
                cmd.name_upper()
            ));
            return self.answer_local(e, After::Continue);
        }
        let before = self.pipeline.len();
        self.accept(cmd);
        if self.pipeline.len() > before {
            self.pipeline.detach_last();
        }
    }

    /// Passes on what has been read of the big request: written to its link
    /// once its command went out, dropped if it was answered without
    /// running. When it ends, the requests after it are read as usual (and
    /// sent at once: a timer wakes the session for them).
    pub(super) async fn pump_upload(&mut self) {
        let ended = self.pump().await;
        if ended && self.pipeline.queued() > 0 {
            self.retry_at = Some(Instant::now());
        }
    }

    /// [`Session::pump_upload`]'s work; true if a big request ended.
    async fn pump(&mut self) -> bool {
        let mut ended = false;
        while let Some(u) = self.upload.as_mut() {
            let to = self.pipeline.upstream();
            if to == Upstream::Wait {
                return ended;
            }
            let took = u.take(&self.cbuf, &self.shared.limits);
            let gate = u.gate;
            let (n, done) = match took {
                Ok(x) => x,
                Err(e) => {
                    self.upload_broken(ClientError::Protocol(e.to_string()));
                    return ended;
                }
            };
            if n == 0 && !done {
                return ended;
            }
            if to == Upstream::Forward {
                let sent = match self.backend.as_mut() {
                    Some(b) => b.write(&self.cbuf[..n]).await,
                    None => Err(SendError::Closed),
                };
                match sent {
                    Ok(()) => {}
                    Err(SendError::Closed) => self.backend_lost("no connection for the rest"),
                    Err(SendError::Failed(e)) => self.backend_lost(&e.to_string()),
                }
                if self.pipeline.upstream() == Upstream::Forward && self.backend.is_none() {
                    // Not resolved (a drain ended the link): give up.
                    self.upload = None;
                    self.input = Input::Closing;
                    return ended;
                }
                // Lost: it was answered "not run"; the rest is dropped.
            }
            self.cbuf.advance(n);
            if !done {
                continue;
            }
            self.upload = None;
            ended = true;
            if self.pipeline.upstream() == Upstream::Forward {
                self.pipeline.sent_whole();
                if let (true, Some(a)) = (gate, &self.shared.cfg.write_ack) {
                    let mut batch = BytesMut::new();
                    self.pipeline.push_gate(a.wait(), &mut batch);
                    if let Some(b) = self.backend.as_mut() {
                        if let Err(SendError::Failed(e)) = b.write(&batch).await {
                            self.backend_lost(&e.to_string());
                        }
                    }
                }
            }
            if matches!(self.input, Input::Draining { .. }) {
                self.refuse_unread();
            } else {
                self.on_client_data();
            }
        }
        ended
    }

    /// The rest of the big request cannot be passed on (malformed, or the
    /// client closed): its link is closed so Redis drops the partial
    /// command unrun, and the client gets `e` (if it still reads) and is
    /// closed.
    pub(super) fn upload_broken(&mut self, e: ClientError) {
        tracing::info!(error = %e.text(), "a big request ended before its end");
        self.upload = None;
        let to = self.pipeline.upstream();
        if to == Upstream::Wait {
            let n = self
                .pipeline
                .fail_queued_where(&e, |s| s.stream == Stream::Sending);
            self.shared
                .metrics
                .ep(self.endpoint)
                .error(e.kind())
                .inc_by(n);
        }
        if to == Upstream::Forward {
            if let Some(during) = self.pinned() {
                return self.break_session(during);
            }
            let loss = self.loss("the client's request broke off mid-value");
            let r = self.pipeline.lose_written(&loss);
            for e in &r.failed {
                self.error_kind(e.kind());
            }
            self.drop_backend();
        }
        self.answer_local(e, After::Close);
        self.input = Input::Quit;
    }

    /// The dedicated link's buffer may start with a big reply, or hold the
    /// next piece of one: passes what it can to the client. True when
    /// frames may follow in the buffer (the usual parse goes on).
    pub(super) fn relay_dedicated(&mut self) -> bool {
        let Some(Link::Dedicated(d)) = self.backend.as_mut().map(|b| &mut b.link) else {
            return false;
        };
        if self.relay.is_none() {
            if self.state.replies != Replies::Paired || !self.pipeline.relay_ok() {
                return false; // gathered whole, as any reply
            }
            let Some((_, total)) = big::bulk_head(&d.buf) else {
                return false;
            };
            self.relay = Some(Relay { left: total });
        }
        let Some(relay) = self.relay.as_mut() else {
            return false;
        };
        let n = relay.piece(d.buf.len());
        let piece = d.buf.split_to(n);
        relay.left -= n;
        let last = relay.left == 0;
        if d.buf.is_empty() && d.buf.capacity() > super::super::mux::SHRINK_ABOVE {
            d.buf = BytesMut::new();
        }
        self.pass(&piece, last)
    }

    /// A piece of a big reply from a shared connection.
    pub(super) fn on_part(&mut self, data: Bytes, last: bool) {
        if self.relay.is_none() && self.gathered.is_empty() {
            if self.state.replies == Replies::Paired && self.pipeline.relay_ok() {
                self.relay = Some(Relay { left: usize::MAX });
            } else {
                self.gathered = BytesMut::with_capacity(data.len());
            }
        }
        if self.relay.is_some() {
            self.pass(&data, last);
            return;
        }
        self.gathered.extend_from_slice(&data);
        if last {
            let whole = std::mem::take(&mut self.gathered);
            self.on_frame(&whole);
        }
    }

    /// Writes a piece of the relayed reply out; the last one answers the
    /// first slot. A last piece not ending the bulk string with its CRLF
    /// means the backend's stream is off: the client is cut.
    fn pass(&mut self, piece: &[u8], last: bool) -> bool {
        bufpool::held(&mut self.out).extend_from_slice(piece);
        if !last {
            return false;
        }
        self.relay = None;
        if !piece.ends_with(b"\r\n") {
            self.relay_cut("protocol error from backend: bulk data not followed by CRLF");
            return false;
        }
        self.pipeline.relayed();
        true
    }

    /// The link was lost, or the stream broke, with part of a reply already
    /// on its way to the client: nothing may follow it, so the client is
    /// closed before the value's end (an error to it, never a value).
    pub(super) fn relay_cut(&mut self, why: &str) {
        tracing::info!(why, "a big reply was cut short: closing its client");
        self.error_kind(ErrorKind::Cut);
        self.relay = None;
        self.upload = None;
        self.pipeline.clear();
        self.drop_backend();
        self.input = Input::Closing;
    }
}
