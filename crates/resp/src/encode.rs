//! RESP encoding.

use crate::frame::Frame;
use bytes::{BufMut, BytesMut};

fn int_line(prefix: u8, n: i64, out: &mut BytesMut) {
    let mut b = itoa::Buffer::new();
    out.put_u8(prefix);
    out.put_slice(b.format(n).as_bytes());
    out.put_slice(b"\r\n");
}

/// Encodes a command as a RESP array of bulk strings.
pub fn command<A: AsRef<[u8]>>(args: &[A], out: &mut BytesMut) {
    int_line(b'*', args.len() as i64, out);
    for a in args {
        bulk(a.as_ref(), out);
    }
}

pub fn bulk(b: &[u8], out: &mut BytesMut) {
    int_line(b'$', b.len() as i64, out);
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

/// `-{msg}\r\n`; `msg` should start with an error code such as `ERR`.
pub fn error(msg: &str, out: &mut BytesMut) {
    line(b'-', msg.as_bytes(), out);
}

/// `{prefix}{text}\r\n`. A CR or LF would break framing; Redis replaces
/// them with spaces too.
fn line(prefix: u8, text: &[u8], out: &mut BytesMut) {
    out.put_u8(prefix);
    out.extend(
        text.iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c }),
    );
    out.put_slice(b"\r\n");
}

pub fn simple(s: &str, out: &mut BytesMut) {
    out.put_u8(b'+');
    out.put_slice(s.as_bytes());
    out.put_slice(b"\r\n");
}

pub fn integer(n: i64, out: &mut BytesMut) {
    int_line(b':', n, out);
}

/// Encodes any frame. `Null` becomes RESP2's `$-1` unless `resp3`.
pub fn frame(f: &Frame, resp3: bool, out: &mut BytesMut) {
    match f {
        Frame::Simple(b) => line(b'+', b, out),
        // A blob error (`!`) may hold CR/LF; as a line it must not.
        Frame::Error(b) => line(b'-', b, out),
        Frame::Integer(n) => integer(*n, out),
        Frame::Bulk(b) => bulk(b, out),
        Frame::Null if resp3 => out.put_slice(b"_\r\n"),
        Frame::Null => out.put_slice(b"$-1\r\n"),
        Frame::Array(v) | Frame::Push(v) => {
            let p = if matches!(f, Frame::Push(_)) && resp3 {
                b'>'
            } else {
                b'*'
            };
            int_line(p, v.len() as i64, out);
            for x in v {
                frame(x, resp3, out);
            }
        }
        Frame::Map(kv) => {
            if resp3 {
                int_line(b'%', kv.len() as i64, out);
            } else {
                int_line(b'*', 2 * kv.len() as i64, out);
            }
            for (k, v) in kv {
                frame(k, resp3, out);
                frame(v, resp3, out);
            }
        }
        Frame::Other(kind, b) => {
            if resp3 {
                out.put_u8(*kind);
                out.put_slice(b);
                out.put_slice(b"\r\n");
            } else {
                bulk(b, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_frame;

    #[test]
    fn roundtrip() {
        let f = Frame::Array(vec![
            Frame::bulk("x"),
            Frame::Integer(-3),
            Frame::Null,
            Frame::Simple("OK".into()),
            Frame::Map(vec![(Frame::bulk("k"), Frame::Integer(1))]),
        ]);
        let mut out = BytesMut::new();
        frame(&f, true, &mut out);
        assert_eq!(parse_frame(&mut out).unwrap().unwrap(), f);
    }

    #[test]
    fn errors_cannot_break_framing() {
        let mut out = BytesMut::new();
        error("ERR bad\r\nthing", &mut out);
        assert_eq!(&out[..], b"-ERR bad  thing\r\n");
    }

    #[test]
    fn a_blob_error_with_crlf_reencodes_as_one_line() {
        // `!` blob errors may hold CRLF; re-encoded as `-` lines they split in two.
        let mut b = BytesMut::from(&b"!4\r\na\r\nb\r\n"[..]);
        let f = parse_frame(&mut b).unwrap().unwrap();
        let mut out = BytesMut::new();
        frame(&f, true, &mut out);
        assert_eq!(&out[..], b"-a  b\r\n");
        frame(&Frame::Simple("x\ny".into()), false, &mut out);
        assert_eq!(&out[7..], b"+x y\r\n");
    }
}
