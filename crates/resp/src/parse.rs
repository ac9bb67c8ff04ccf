//! Incremental RESP parsing.
//!
//! Two entry points with different jobs:
//! - [`parse_command`] reads a client request (RESP multibulk or an inline
//!   command, as Redis accepts both) and keeps its raw bytes for forwarding.
//! - [`frame_len`] measures one complete reply without building it, so the
//!   proxy can forward replies as opaque byte ranges. It is iterative (a
//!   counter of frames still owed), so hostile nesting cannot blow the stack.

use crate::frame::Frame;
use bytes::{Bytes, BytesMut};
use std::ops::Range;

/// Errors use Redis's own wording, so `-ERR Protocol error: {e}` reads like Redis.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    #[error("invalid bulk length")]
    InvalidBulkLength,
    #[error("expected '$', got '{0}'")]
    ExpectedBulk(char),
    #[error("too big inline request")]
    TooBigInline,
    #[error("too big mbulk count string")]
    TooBigCount,
    #[error("too big bulk count string")]
    TooBigBulkCount,
    #[error("unbalanced quotes in request")]
    UnbalancedQuotes,
    #[error("invalid reply: {0}")]
    InvalidReply(String),
}

/// Size limits, defaulting to Redis's own (`proto-max-bulk-len` 512 MB,
/// 64 KB inline requests).
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_bulk_len: usize,
    pub max_multibulk_len: usize,
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: i32::MAX as usize,
            max_inline_len: 64 * 1024,
        }
    }
}

/// A client request: the raw RESP bytes (forwarded untouched) and where its
/// name and first argument sit in them. Building one allocates nothing: the
/// proxy only needs the head to classify a command; the other arguments are
/// found by re-scanning on demand ([`Command::args`]), which few commands need.
#[derive(Clone, Debug)]
pub struct Command {
    pub raw: Bytes,
    argc: usize,
    head: [Range<usize>; 2],
}

impl Command {
    /// Builds a command from arguments, encoding it as a RESP array.
    pub fn from_args<A: AsRef<[u8]>>(args: &[A]) -> Command {
        let mut out = BytesMut::new();
        crate::encode::command(args, &mut out);
        parse_command(&mut out, &Limits::default())
            .ok()
            .flatten()
            .unwrap_or(Command {
                raw: Bytes::new(),
                argc: 0,
                head: [0..0, 0..0],
            })
    }

    /// A command over `raw` already validated as a multibulk of `argc`
    /// arguments, whose first two sit at `head`.
    pub(crate) fn from_parts(raw: Bytes, argc: usize, head: [Range<usize>; 2]) -> Command {
        Command { raw, argc, head }
    }

    /// Number of arguments, the name included.
    pub fn argc(&self) -> usize {
        self.argc
    }

    /// The command name as sent (any case).
    pub fn name(&self) -> &[u8] {
        &self.raw[self.head[0].clone()]
    }

    /// Argument `i` (0 is the name).
    pub fn arg(&self, i: usize) -> Option<&[u8]> {
        match i {
            _ if i >= self.argc => None,
            // `get`: a request detached before its end may lack argument 1.
            0 | 1 => self.raw.get(self.head[i].clone()),
            _ => self.args().nth(i),
        }
    }

    /// All arguments, the name first (re-scans `raw`).
    pub fn args(&self) -> Args<'_> {
        let start = find_crlf(&self.raw, 1).map_or(self.raw.len(), |e| e + 2);
        Args {
            raw: &self.raw,
            pos: start,
            left: self.argc,
        }
    }

    /// Case-insensitive check of the command name.
    pub fn is(&self, name: &str) -> bool {
        self.name().eq_ignore_ascii_case(name.as_bytes())
    }

    /// Case-insensitive check of argument `i`.
    pub fn arg_is(&self, i: usize, s: &str) -> bool {
        self.arg(i)
            .is_some_and(|a| a.eq_ignore_ascii_case(s.as_bytes()))
    }

    pub fn name_upper(&self) -> String {
        String::from_utf8_lossy(self.name()).to_ascii_uppercase()
    }
}

/// Iterator over a parsed command's arguments.
pub struct Args<'a> {
    raw: &'a [u8],
    pos: usize,
    left: usize,
}

impl<'a> Iterator for Args<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.left == 0 {
            return None;
        }
        // `raw` was validated by the parser: `$len\r\n data \r\n` per argument.
        let end = find_crlf(self.raw, self.pos + 1)?;
        let len = parse_int(&self.raw[self.pos + 1..end])? as usize;
        let start = end + 2;
        self.pos = start + len + 2;
        self.left -= 1;
        self.raw.get(start..start + len)
    }
}

/// The first CRLF at or after `from`. Most lines are a few bytes (`*3`,
/// `$5`, `+OK`): a byte loop over the first ones costs less than a memchr
/// call there; a longer line goes to memchr.
pub(crate) fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    const SHORT: usize = 24;
    let rest = buf.get(from..)?;
    let head = &rest[..rest.len().min(SHORT)];
    match head.iter().position(|&b| b == b'\r') {
        Some(i) if rest.get(i + 1) == Some(&b'\n') => Some(from + i),
        None if rest.len() <= SHORT => None,
        _ => find_crlf_long(buf, from),
    }
}

fn find_crlf_long(buf: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    loop {
        let i = memchr::memchr(b'\r', buf.get(at..)?)? + at;
        if buf.get(i + 1) == Some(&b'\n') {
            return Some(i);
        }
        if i + 1 >= buf.len() {
            return None;
        }
        at = i + 1;
    }
}

pub(crate) fn parse_int(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, s),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    // Accumulated negatively so i64::MIN (which Redis can send) fits.
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub((d - b'0') as i64)?;
    }
    if neg {
        Some(n)
    } else {
        n.checked_neg()
    }
}

/// Parses one request from the front of `buf`, consuming it when complete.
///
/// `Ok(None)`: more bytes are needed. Empty requests (`*0`, blank inline
/// lines) are skipped, as Redis does.
pub fn parse_command(
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Command>, ProtocolError> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        let parsed = if buf[0] == b'*' {
            parse_multibulk(buf, limits)?
        } else {
            parse_inline(buf, limits)?
        };
        match parsed {
            Parsed::Incomplete => return Ok(None),
            Parsed::Empty(n) => {
                let _ = buf.split_to(n);
            }
            Parsed::Multibulk(n, argc, head) => {
                let raw = buf.split_to(n).freeze();
                return Ok(Some(Command { raw, argc, head }));
            }
            Parsed::Inline(n, args) => {
                let _ = buf.split_to(n);
                if let Some(cmd) = inline_command(&args, limits)? {
                    return Ok(Some(cmd));
                }
            }
        }
    }
}

/// An inline request's arguments as the multibulk command Redis would see.
pub(crate) fn inline_command(
    args: &[Vec<u8>],
    limits: &Limits,
) -> Result<Option<Command>, ProtocolError> {
    let mut out = BytesMut::new();
    crate::encode::command(args, &mut out);
    parse_command(&mut out, limits)
}

pub(crate) enum Parsed {
    Incomplete,
    Empty(usize),
    Multibulk(usize, usize, [Range<usize>; 2]),
    Inline(usize, Vec<Vec<u8>>),
}

pub(crate) fn parse_multibulk(buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
    let Some(end) = find_crlf(buf, 1) else {
        return if buf.len() > limits.max_inline_len {
            Err(ProtocolError::TooBigCount)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    // Refused whether or not its CRLF arrived yet, so the error never
    // depends on how the bytes were split into reads.
    if end >= limits.max_inline_len {
        return Err(ProtocolError::TooBigCount);
    }
    let count = parse_int(&buf[1..end]).ok_or(ProtocolError::InvalidMultibulkLength)?;
    if count > limits.max_multibulk_len as i64 {
        return Err(ProtocolError::InvalidMultibulkLength);
    }
    let mut pos = end + 2;
    if count <= 0 {
        return Ok(Parsed::Empty(pos));
    }
    let mut head = [0..0, 0..0];
    for i in 0..count as usize {
        let Some(&first) = buf.get(pos) else {
            return Ok(Parsed::Incomplete);
        };
        if first != b'$' {
            return Err(ProtocolError::ExpectedBulk(first as char));
        }
        let Some(end) = find_crlf(buf, pos + 1) else {
            return if buf.len() - pos > limits.max_inline_len {
                Err(ProtocolError::TooBigBulkCount)
            } else {
                Ok(Parsed::Incomplete)
            };
        };
        if end - pos >= limits.max_inline_len {
            return Err(ProtocolError::TooBigBulkCount);
        }
        let len = parse_int(&buf[pos + 1..end]).ok_or(ProtocolError::InvalidBulkLength)?;
        if len < 0 || len as u64 > limits.max_bulk_len as u64 {
            return Err(ProtocolError::InvalidBulkLength);
        }
        let start = end + 2;
        let stop = start + len as usize;
        if buf.len() < stop + 2 {
            return Ok(Parsed::Incomplete);
        }
        if let Some(h) = head.get_mut(i) {
            *h = start..stop;
        }
        pos = stop + 2;
    }
    Ok(Parsed::Multibulk(pos, count as usize, head))
}

fn parse_inline(buf: &[u8], limits: &Limits) -> Result<Parsed, ProtocolError> {
    let Some(nl) = memchr::memchr(b'\n', buf) else {
        return if buf.len() > limits.max_inline_len {
            Err(ProtocolError::TooBigInline)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    inline_line(buf, nl, limits)
}

/// The inline request whose line ends with the `\n` at `nl`.
pub(crate) fn inline_line(buf: &[u8], nl: usize, limits: &Limits) -> Result<Parsed, ProtocolError> {
    if nl > limits.max_inline_len {
        return Err(ProtocolError::TooBigInline);
    }
    let mut line = &buf[..nl];
    if line.last() == Some(&b'\r') {
        line = &line[..line.len() - 1];
    }
    let args = split_args(line)?;
    if args.is_empty() {
        return Ok(Parsed::Empty(nl + 1));
    }
    Ok(Parsed::Inline(nl + 1, args))
}

/// Splits an inline command line like Redis's `sdssplitargs`: whitespace
/// separated, with "double quotes" (C escapes, \xHH) and 'single quotes'.
pub fn split_args(line: &[u8]) -> Result<Vec<Vec<u8>>, ProtocolError> {
    let mut args = Vec::new();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return Ok(args);
        }
        let mut cur = Vec::new();
        let mut inq = false; // double quotes
        let mut insq = false; // single quotes
        loop {
            if inq {
                if i >= n {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\' && i + 3 < n && line[i + 1] == b'x' {
                    let hex = |b: u8| (b as char).to_digit(16);
                    if let (Some(h), Some(l)) = (hex(line[i + 2]), hex(line[i + 3])) {
                        cur.push((h * 16 + l) as u8);
                        i += 4;
                        continue;
                    }
                }
                if c == b'\\' && i + 1 < n {
                    cur.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        o => o,
                    });
                    i += 2;
                    continue;
                }
                if c == b'"' {
                    // A closing quote must be followed by a space or the end.
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                }
                cur.push(c);
                i += 1;
            } else if insq {
                if i >= n {
                    return Err(ProtocolError::UnbalancedQuotes);
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    cur.push(b'\'');
                    i += 2;
                    continue;
                }
                if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return Err(ProtocolError::UnbalancedQuotes);
                    }
                    i += 1;
                    break;
                }
                cur.push(c);
                i += 1;
            } else {
                if i >= n {
                    break;
                }
                match line[i] {
                    c if c.is_ascii_whitespace() => break,
                    b'"' => inq = true,
                    b'\'' => insq = true,
                    c => cur.push(c),
                }
                i += 1;
            }
        }
        args.push(cur);
    }
}

/// Length in bytes of the first complete reply frame in `buf` (RESP2 or
/// RESP3), or `None` if more bytes are needed. Builds nothing.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, ProtocolError> {
    let mut pos = 0usize;
    let mut owed: u64 = 1;
    while owed > 0 {
        let Some(&kind) = buf.get(pos) else {
            return Ok(None);
        };
        let Some(end) = find_crlf(buf, pos + 1) else {
            return Ok(None);
        };
        owed -= 1;
        let head = &buf[pos + 1..end];
        let next = end + 2;
        let count = |mult: u64, extra: u64| -> Result<u64, ProtocolError> {
            match parse_int(head) {
                // A null attribute (`|-1`) still decorates the next frame.
                Some(-1) => Ok(extra),
                Some(n) if n >= 0 => Ok((n as u64).saturating_mul(mult).saturating_add(extra)),
                _ => Err(ProtocolError::InvalidReply(format!(
                    "bad aggregate length {:?}",
                    String::from_utf8_lossy(head)
                ))),
            }
        };
        match kind {
            b'+' | b'-' | b':' | b',' | b'#' | b'_' | b'(' => pos = next,
            b'$' | b'!' | b'=' => match parse_int(head) {
                Some(-1) if kind == b'$' => pos = next,
                Some(n) if n >= 0 => {
                    let stop = (n as usize).saturating_add(next + 2);
                    if buf.len() < stop {
                        return Ok(None);
                    }
                    // Without this, a reply cut short or padded would shift
                    // every later reply onto the wrong request.
                    if &buf[stop - 2..stop] != b"\r\n" {
                        return Err(ProtocolError::InvalidReply(
                            "bulk data not followed by CRLF".into(),
                        ));
                    }
                    pos = stop;
                }
                _ => {
                    return Err(ProtocolError::InvalidReply(format!(
                        "bad bulk length {:?}",
                        String::from_utf8_lossy(head)
                    )))
                }
            },
            b'*' | b'~' | b'>' => {
                // Saturating: a reply owing ~2^64 frames never completes anyway.
                owed = owed.saturating_add(count(1, 0)?);
                pos = next;
            }
            b'%' => {
                owed = owed.saturating_add(count(2, 0)?);
                pos = next;
            }
            // An attribute map decorates the frame that follows it.
            b'|' => {
                owed = owed.saturating_add(count(2, 1)?);
                pos = next;
            }
            other => {
                return Err(ProtocolError::InvalidReply(format!(
                    "unknown type byte {:?}",
                    other as char
                )))
            }
        }
    }
    Ok(Some(pos))
}

/// Parses one complete reply from the front of `buf`, consuming it.
pub fn parse_frame(buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
    let Some(n) = frame_len(buf)? else {
        return Ok(None);
    };
    let bytes = buf.split_to(n).freeze();
    let mut pos = 0;
    let frame = decode(&bytes, &mut pos, MAX_DEPTH)?;
    Ok(Some(frame))
}

/// Deepest nesting [`parse_frame`] builds; Redis's own replies nest a few
/// levels, and a hostile peer must not overflow the stack.
pub const MAX_DEPTH: usize = 512;

/// Decodes a frame already known complete (checked by [`frame_len`]),
/// recursing at most `depth` levels.
fn decode(b: &Bytes, pos: &mut usize, depth: usize) -> Result<Frame, ProtocolError> {
    let depth = depth
        .checked_sub(1)
        .ok_or_else(|| ProtocolError::InvalidReply("nested too deeply".into()))?;
    let kind = b[*pos];
    let end =
        find_crlf(b, *pos + 1).ok_or_else(|| ProtocolError::InvalidReply("truncated".into()))?;
    let head = b.slice(*pos + 1..end);
    *pos = end + 2;
    let int =
        |h: &Bytes| parse_int(h).ok_or_else(|| ProtocolError::InvalidReply("bad integer".into()));
    Ok(match kind {
        b'+' => Frame::Simple(head),
        b'-' => Frame::Error(head),
        b':' => Frame::Integer(int(&head)?),
        b'_' => Frame::Null,
        b',' | b'#' | b'(' => Frame::Other(kind, head),
        b'$' | b'!' | b'=' => {
            let n = int(&head)?;
            if n < 0 {
                Frame::Null
            } else {
                let data = b.slice(*pos..*pos + n as usize);
                *pos += n as usize + 2;
                if kind == b'!' {
                    Frame::Error(data)
                } else {
                    Frame::Bulk(data)
                }
            }
        }
        b'*' | b'~' | b'>' => {
            let n = int(&head)?;
            if n < 0 {
                Frame::Null
            } else {
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(decode(b, pos, depth)?);
                }
                if kind == b'>' {
                    Frame::Push(v)
                } else {
                    Frame::Array(v)
                }
            }
        }
        b'%' | b'|' => {
            let n = int(&head)?;
            let mut kv = Vec::with_capacity(n.max(0) as usize);
            for _ in 0..n.max(0) {
                let k = decode(b, pos, depth)?;
                let v = decode(b, pos, depth)?;
                kv.push((k, v));
            }
            if kind == b'|' {
                // Attributes carry metadata; the reply is the frame after them.
                return decode(b, pos, depth);
            }
            Frame::Map(kv)
        }
        other => {
            return Err(ProtocolError::InvalidReply(format!(
                "unknown type byte {:?}",
                other as char
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(s: &[u8]) -> Result<Option<Command>, ProtocolError> {
        parse_command(&mut BytesMut::from(s), &Limits::default())
    }

    #[test]
    fn find_crlf_answers_as_the_memchr_scan_does() {
        // Every string of up to 6 bytes over an alphabet with lone CRs and
        // LFs, plus ones longer than the short window, from every offset.
        let alphabet = [b'\r', b'\n', b'1', b'$'];
        let mut cases: Vec<Vec<u8>> = vec![vec![]];
        for len in 1..=6u32 {
            for k in 0..alphabet.len().pow(len) {
                let mut v = Vec::new();
                let mut k = k;
                for _ in 0..len {
                    v.push(alphabet[k % alphabet.len()]);
                    k /= alphabet.len();
                }
                cases.push(v);
            }
        }
        cases.push([&[b'7'; 30][..], b"\r\n"].concat());
        cases.push([&[b'7'; 23][..], b"\r\r\n"].concat());
        // Around the window's edge: a CR as its last byte, just past it, none.
        for n in 22..=26 {
            cases.push(vec![b'7'; n]);
            cases.push([&vec![b'7'; n][..], b"\r\n"].concat());
            cases.push([&vec![b'7'; n][..], b"\r"].concat());
        }
        for c in &cases {
            for from in 0..=c.len() + 1 {
                assert_eq!(
                    find_crlf(c, from),
                    find_crlf_long(c, from),
                    "{c:?} from {from}"
                );
            }
        }
    }

    #[test]
    fn multibulk_and_partial() {
        let full = b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n";
        for cut in 0..full.len() {
            assert!(cmd(&full[..cut]).unwrap().is_none(), "cut {cut}");
        }
        let c = cmd(full).unwrap().unwrap();
        assert!(c.is("get"));
        assert_eq!(c.arg(1), Some(&b"foo"[..]));
        assert_eq!(c.argc(), 2);
        assert_eq!(c.args().collect::<Vec<_>>(), [&b"GET"[..], b"foo"]);
        assert_eq!(&c.raw[..], &full[..]);
    }

    #[test]
    fn pipelined_requests_consume_one_at_a_time() {
        let mut buf = BytesMut::from(&b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n*1\r\n"[..]);
        let l = Limits::default();
        assert!(parse_command(&mut buf, &l).unwrap().is_some());
        assert!(parse_command(&mut buf, &l).unwrap().is_some());
        assert!(parse_command(&mut buf, &l).unwrap().is_none());
        assert_eq!(&buf[..], b"*1\r\n");
    }

    #[test]
    fn inline_commands_with_quotes() {
        let c = cmd(b"set k \"a b\\x41\\n\" 'it\\'s'\r\n").unwrap().unwrap();
        assert_eq!(c.argc(), 4);
        assert_eq!(c.arg(2), Some(&b"a bA\n"[..]));
        assert_eq!(c.arg(3), Some(&b"it's"[..]));
        assert_eq!(c.arg(4), None);
        assert_eq!(&c.raw[..4], b"*4\r\n");
        assert_eq!(
            cmd(b"set \"k\r\n").unwrap_err(),
            ProtocolError::UnbalancedQuotes
        );
        assert!(cmd(b"\r\n").unwrap().is_none());
    }

    #[test]
    fn malformed_requests_have_redis_wording() {
        assert_eq!(
            cmd(b"*x\r\n").unwrap_err().to_string(),
            "invalid multibulk length"
        );
        assert_eq!(
            cmd(b"*1\r\n+foo\r\n").unwrap_err().to_string(),
            "expected '$', got '+'"
        );
        assert_eq!(
            cmd(b"*1\r\n$-5\r\n").unwrap_err(),
            ProtocolError::InvalidBulkLength
        );
        assert_eq!(
            cmd(b"*1\r\n$999999999999\r\n").unwrap_err(),
            ProtocolError::InvalidBulkLength
        );
        let big = vec![b'a'; 70 * 1024];
        assert_eq!(cmd(&big).unwrap_err(), ProtocolError::TooBigInline);
        let mut star = vec![b'*'];
        star.extend(vec![b'1'; 70 * 1024]);
        assert_eq!(cmd(&star).unwrap_err(), ProtocolError::TooBigCount);
    }

    #[test]
    fn an_overlong_length_line_is_refused_even_when_complete() {
        // Found by the `request` fuzz target: split reads said "too big",
        // the whole request "invalid multibulk length".
        let l = Limits {
            max_inline_len: 8,
            ..Limits::default()
        };
        let mut b = BytesMut::from(&b"*123456789\r\n"[..]);
        assert_eq!(
            parse_command(&mut b, &l).unwrap_err(),
            ProtocolError::TooBigCount
        );
        let mut b = BytesMut::from(&b"*1\r\n$000000001\r\n"[..]);
        assert_eq!(
            parse_command(&mut b, &l).unwrap_err(),
            ProtocolError::TooBigBulkCount
        );
    }

    #[test]
    fn frame_len_resp2_and_resp3() {
        let cases: &[&[u8]] = &[
            b"+OK\r\n",
            b"-ERR x\r\n",
            b":12\r\n",
            b"$-1\r\n",
            b"$3\r\nfoo\r\n",
            b"*-1\r\n",
            b"*2\r\n$1\r\na\r\n*1\r\n:1\r\n",
            b"%1\r\n+k\r\n$1\r\nv\r\n",
            b"_\r\n",
            b",1.5\r\n",
            b"#t\r\n",
            b">3\r\n+message\r\n+ch\r\n$2\r\nhi\r\n",
            b"|1\r\n+ttl\r\n:3\r\n+OK\r\n",
            b"=8\r\ntxt:abcd\r\n",
        ];
        for c in cases {
            let mut v = c.to_vec();
            v.extend_from_slice(b"+NEXT\r\n");
            assert_eq!(
                frame_len(&v).unwrap(),
                Some(c.len()),
                "{}",
                String::from_utf8_lossy(c)
            );
            for cut in 0..c.len() {
                assert_eq!(frame_len(&c[..cut]).unwrap(), None);
            }
        }
        assert!(frame_len(b"?x\r\n").is_err());
    }

    #[test]
    fn frame_len_wants_crlf_after_bulk_data() {
        assert!(frame_len(b"$3\r\nabcde\r\n").is_err(), "longer than said");
        assert!(frame_len(b"*2\r\n$1\r\nab\r\n:1\r\n").is_err());
        assert!(frame_len(b"=5\r\ntxt:aXY").is_err());
        assert_eq!(frame_len(b"$3\r\nabc\r\n").unwrap(), Some(9));
    }

    #[test]
    fn deep_nesting_does_not_overflow() {
        let mut v = Vec::new();
        for _ in 0..1_000_000 {
            v.extend_from_slice(b"*1\r\n");
        }
        assert_eq!(frame_len(&v).unwrap(), None);
        v.extend_from_slice(b":1\r\n");
        assert_eq!(frame_len(&v).unwrap(), Some(v.len()));
    }

    #[test]
    fn integers_cover_all_of_i64() {
        for n in [i64::MAX, i64::MIN, 0, -1, 999_999_999_999_999_999] {
            let mut b = BytesMut::from(format!(":{n}\r\n").as_bytes());
            assert_eq!(parse_frame(&mut b).unwrap(), Some(Frame::Integer(n)));
        }
        for bad in [
            &b"9223372036854775808"[..],
            b"-9223372036854775809",
            b"-",
            b"",
        ] {
            assert_eq!(parse_int(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn huge_aggregate_counts_do_not_overflow() {
        let v = b"|9223372036854775807\r\n".repeat(4);
        assert_eq!(frame_len(&v).unwrap(), None);
        let v = b"$9223372036854775807\r\n";
        assert_eq!(frame_len(v).unwrap(), None);
    }

    #[test]
    fn parse_frame_refuses_deep_nesting_without_overflowing() {
        let mut v = b"*1\r\n".repeat(100_000);
        v.extend_from_slice(b":1\r\n");
        let e = parse_frame(&mut BytesMut::from(&v[..])).unwrap_err();
        assert_eq!(e, ProtocolError::InvalidReply("nested too deeply".into()));
        let mut v = b"*1\r\n".repeat(MAX_DEPTH - 1);
        v.extend_from_slice(b":1\r\n");
        assert!(parse_frame(&mut BytesMut::from(&v[..])).unwrap().is_some());
    }

    #[test]
    fn a_null_attribute_still_owes_its_frame() {
        // Found by the `reply` fuzz target: parse_frame indexed past the end.
        assert_eq!(frame_len(b"|-1\r\n").unwrap(), None);
        let mut b = BytesMut::from(&b"|-1\r\n:7\r\n"[..]);
        assert_eq!(parse_frame(&mut b).unwrap(), Some(Frame::Integer(7)));
    }

    #[test]
    fn parse_frame_builds_values() {
        let mut b = BytesMut::from(&b"*3\r\n$1\r\na\r\n:5\r\n$-1\r\n"[..]);
        let f = parse_frame(&mut b).unwrap().unwrap();
        assert_eq!(
            f,
            Frame::Array(vec![Frame::bulk("a"), Frame::Integer(5), Frame::Null])
        );
        assert!(b.is_empty());
    }
}
