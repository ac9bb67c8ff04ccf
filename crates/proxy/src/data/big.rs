//! Big values pass through, they are not held: a request argument or a
//! reply bulk string of at least [`BIG`] bytes is forwarded in pieces as
//! it arrives, so a session's memory does not grow with the value.
//!
//! Requests: once the command and the arguments before the big one are
//! read, the command so far goes out like any request (on a dedicated
//! connection: bytes of one request cannot interleave with other clients'
//! on a shared one), then [`Upload`] measures the rest as it is read and the
//! session writes it on. Replies: a bulk string at the front of what the
//! backend sent ([`bulk_head`]) is written to the client as it comes, with
//! backpressure: no more is read from the backend while the client's output
//! holds [`RELAY_OUT`] bytes.

use redis_ha_resp::parse::frame_len;
use redis_ha_resp::{Detached, Limits, ProtocolError};

/// Values from this size on stream; smaller ones are buffered whole.
pub const BIG: usize = 1 << 20;

/// Client bytes read ahead of an upload that cannot go out yet.
pub const UPLOAD_AHEAD: usize = 256 * 1024;

/// Bytes of a relayed reply waiting for the client past which nothing more
/// is read from the backend.
pub const RELAY_OUT: usize = 1 << 20;

/// The rest of a detached request, measured as it is read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    /// Bytes of the current argument's data and CRLF still to come.
    left: usize,
    /// Arguments after the current one.
    after: usize,
    /// The write-ack WAIT owed once the request is out.
    pub gate: bool,
}

impl Upload {
    pub fn new(d: Detached) -> Upload {
        Upload {
            left: d.len + 2,
            after: d.after,
            gate: false,
        }
    }

    /// How many bytes at the front of `buf` belong to the request (checked
    /// as the parser checks them), and whether they end it.
    pub fn take(&mut self, buf: &[u8], limits: &Limits) -> Result<(usize, bool), ProtocolError> {
        let mut at = 0;
        loop {
            if self.left > 0 {
                let n = self.left.min(buf.len() - at);
                self.left -= n;
                at += n;
                if self.left > 0 {
                    return Ok((at, false));
                }
            }
            if self.after == 0 {
                return Ok((at, true));
            }
            // The next argument's `$len` line.
            let rest = &buf[at..];
            let Some(&first) = rest.first() else {
                return Ok((at, false));
            };
            if first != b'$' {
                return Err(ProtocolError::ExpectedBulk(first as char));
            }
            let line = &rest[..rest.len().min(limits.max_inline_len + 1)];
            let Some(end) = line.iter().position(|&b| b == b'\n') else {
                if rest.len() > limits.max_inline_len {
                    return Err(ProtocolError::TooBigBulkCount);
                }
                return Ok((at, false));
            };
            if end >= limits.max_inline_len || end < 2 || rest[end - 1] != b'\r' {
                return Err(ProtocolError::TooBigBulkCount);
            }
            let len = std::str::from_utf8(&rest[1..end - 1])
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or(ProtocolError::InvalidBulkLength)?;
            if len < 0 || len as u64 > limits.max_bulk_len as u64 {
                return Err(ProtocolError::InvalidBulkLength);
            }
            at += end + 1;
            self.after -= 1;
            self.left = len as usize + 2;
        }
    }
}

/// The bulk string of at least [`BIG`] bytes that `buf` starts with and
/// does not hold whole: its header's length and the whole frame's.
pub fn bulk_head(buf: &[u8]) -> Option<(usize, usize)> {
    if buf.first() != Some(&b'$') {
        return None;
    }
    let end = buf[..buf.len().min(24)].iter().position(|&b| b == b'\n')?;
    let len: usize = std::str::from_utf8(buf.get(1..end.checked_sub(1)?)?)
        .ok()?
        .parse()
        .ok()?;
    if len < BIG || buf[end - 1] != b'\r' {
        return None;
    }
    let total = end + 1 + len + 2;
    // Whole already (or malformed): the usual path takes it.
    match frame_len(buf) {
        Ok(None) => Some((end + 1, total)),
        _ => None,
    }
}

/// A bulk string passing in pieces: the bytes still to come, its CRLF
/// included. Pieces are cut so that the last holds the CRLF whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Relay {
    pub left: usize,
}

impl Relay {
    /// How much of `avail` bytes to pass now: all that is left once it is
    /// all there, else all but the last two bytes still to come.
    pub fn piece(&self, avail: usize) -> usize {
        if avail >= self.left {
            self.left
        } else {
            avail.min(self.left - 2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_measured_across_reads() {
        let limits = Limits::default();
        let mut u = Upload::new(Detached {
            index: 2,
            len: 5,
            after: 1,
        });
        assert_eq!(u.take(b"abc", &limits), Ok((3, false)));
        assert_eq!(u.take(b"de\r", &limits), Ok((3, false)));
        assert_eq!(u.take(b"\n$2", &limits), Ok((1, false)), "header not whole");
        assert_eq!(u.take(b"$2\r\nxy\r\n*1\r\n", &limits), Ok((8, true)));
        let mut bad = Upload::new(Detached {
            index: 1,
            len: 1,
            after: 1,
        });
        assert_eq!(
            bad.take(b"a\r\n$-3\r\n", &limits),
            Err(ProtocolError::InvalidBulkLength)
        );
        let mut bad = Upload::new(Detached {
            index: 1,
            len: 1,
            after: 1,
        });
        assert_eq!(
            bad.take(b"a\r\n+x\r\n", &limits),
            Err(ProtocolError::ExpectedBulk('+'))
        );
    }

    #[test]
    fn only_a_big_bulk_not_yet_whole_is_relayed() {
        let mut b = format!("${BIG}\r\n").into_bytes();
        let head = b.len();
        b.extend_from_slice(b"xyz");
        assert_eq!(bulk_head(&b), Some((head, head + BIG + 2)));
        assert_eq!(bulk_head(b"$5\r\nab"), None);
        assert_eq!(bulk_head(b"+OK\r\n"), None);
        let r = Relay { left: 10 };
        assert_eq!(
            (r.piece(3), r.piece(9), r.piece(10), r.piece(50)),
            (3, 8, 10, 10)
        );
    }
}
