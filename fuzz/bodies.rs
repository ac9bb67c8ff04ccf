//! The fuzz targets' bodies, shared with the stable replay test
//! (`crates/resp/tests/fuzz_corpus.rs`) so CI checks the corpus without nightly.

use bytes::BytesMut;
use redis_ha_resp::encode;
use redis_ha_resp::parse::{frame_len, parse_command, parse_frame};
use redis_ha_resp::{Command, Limits, ProtocolError, RequestParser};

type Outcome = Result<Vec<Vec<u8>>, ProtocolError>;

/// Request parser: [`RequestParser`] fed `data` in pieces (cut where the
/// first byte says) gives exactly what [`parse_command`] gives on the whole,
/// and every command's raw bytes re-parse to the same command.
pub fn request(data: &[u8]) {
    let Some((&knob, input)) = data.split_first() else {
        return;
    };
    // Small limits for half the inputs, so the limit paths get exercised.
    let limits = if knob & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_bulk_len: 8,
            max_multibulk_len: 4,
            max_inline_len: 32,
        }
    };
    let step = 1 + (knob >> 1) as usize;
    let whole = drain(&mut BytesMut::from(input), |b| parse_command(b, &limits));
    let mut parser = RequestParser::new(limits.clone());
    let mut buf = BytesMut::new();
    let mut pieces = Vec::new();
    for chunk in input.chunks(step) {
        buf.extend_from_slice(chunk);
        let out = drain(&mut buf, |b| parser.next(b));
        let failed = out.last().is_some_and(Result::is_err);
        pieces.extend(out);
        if failed {
            break;
        }
    }
    assert_eq!(whole, pieces, "whole vs in pieces of {step}");
}

/// Every outcome until the parser wants more bytes or fails.
fn drain(
    buf: &mut BytesMut,
    mut next: impl FnMut(&mut BytesMut) -> Result<Option<Command>, ProtocolError>,
) -> Vec<Outcome> {
    let mut out = Vec::new();
    loop {
        match next(buf) {
            Ok(Some(c)) => out.push(Ok(check_command(&c))),
            Ok(None) => return out,
            Err(e) => {
                out.push(Err(e));
                return out;
            }
        }
    }
}

/// A command's arguments, checked against its own accessors and a re-parse.
fn check_command(c: &Command) -> Vec<Vec<u8>> {
    let args: Vec<Vec<u8>> = c.args().map(<[u8]>::to_vec).collect();
    assert_eq!(args.len(), c.argc());
    assert!(c.argc() > 0, "empty requests are skipped");
    for (i, a) in args.iter().enumerate().take(3) {
        assert_eq!(c.arg(i), Some(&a[..]));
    }
    assert_eq!(c.arg(c.argc()), None);
    let mut raw = BytesMut::from(&c.raw[..]);
    let again = parse_command(&mut raw, &Limits::default())
        .expect("a parsed command re-parses")
        .expect("a parsed command is complete");
    assert!(raw.is_empty());
    assert_eq!(
        again.args().collect::<Vec<_>>(),
        c.args().collect::<Vec<_>>()
    );
    args
}

/// Reply framer: [`frame_len`] on backend bytes never panics; a length it
/// gives is exact (no shorter prefix is complete, trailing bytes don't
/// change it), and a frame built from it re-encodes to bytes that frame and
/// parse back the same.
pub fn reply(data: &[u8]) {
    let Ok(Some(n)) = frame_len(data) else {
        return;
    };
    assert!(n > 0 && n <= data.len());
    assert_eq!(frame_len(&data[..n]), Ok(Some(n)));
    assert_eq!(frame_len(&data[..n - 1]), Ok(None));
    let mut buf = BytesMut::from(data);
    let Ok(Some(frame)) = parse_frame(&mut buf) else {
        return;
    };
    assert_eq!(buf.len(), data.len() - n, "parse_frame consumed the frame");
    for resp3 in [false, true] {
        let mut wire = BytesMut::new();
        encode::frame(&frame, resp3, &mut wire);
        assert_eq!(frame_len(&wire), Ok(Some(wire.len())));
        let back = parse_frame(&mut wire.clone()).unwrap().unwrap();
        let mut again = BytesMut::new();
        encode::frame(&back, resp3, &mut again);
        assert_eq!(wire, again, "encoding is stable after one round trip");
    }
}
