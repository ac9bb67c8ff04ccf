//! Property tests of the codec: frames survive encode then parse, measuring
//! agrees with encoding, and split requests parse as whole ones do.

use bytes::{Bytes, BytesMut};
use proptest::collection::vec;
use proptest::prelude::*;
use redis_ha_resp::encode;
use redis_ha_resp::parse::{frame_len, parse_command, parse_frame};
use redis_ha_resp::{Frame, Limits, RequestParser};

/// Text for a line-based frame: anything but CR and LF.
fn line() -> impl Strategy<Value = Bytes> {
    vec(
        any::<u8>().prop_filter("no CR/LF", |b| *b != b'\r' && *b != b'\n'),
        0..12,
    )
    .prop_map(Bytes::from)
}

/// Any frame the RESP3 encoding keeps exactly.
fn frame() -> impl Strategy<Value = Frame> {
    let leaf = prop_oneof![
        line().prop_map(Frame::Simple),
        line().prop_map(Frame::Error),
        any::<i64>().prop_map(Frame::Integer),
        vec(any::<u8>(), 0..24).prop_map(Frame::bulk),
        Just(Frame::Null),
        (prop::sample::select(&b",#("[..]), line()).prop_map(|(k, t)| Frame::Other(k, t)),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Frame::Array),
            vec(inner.clone(), 0..6).prop_map(Frame::Push),
            vec((inner.clone(), inner), 0..4).prop_map(Frame::Map),
        ]
    })
}

fn encoded(f: &Frame) -> BytesMut {
    let mut out = BytesMut::new();
    encode::frame(f, true, &mut out);
    out
}

/// What a command is, for comparing: its arguments.
fn args_of(c: &redis_ha_resp::Command) -> Vec<Vec<u8>> {
    c.args().map(<[u8]>::to_vec).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn a_frame_survives_encode_then_parse(f in frame()) {
        let mut wire = encoded(&f);
        let len = wire.len();
        prop_assert_eq!(parse_frame(&mut wire).unwrap(), Some(f));
        prop_assert!(wire.is_empty(), "consumed {} of {}", len - wire.len(), len);
    }

    #[test]
    fn measuring_a_frame_gives_its_encoded_length(f in frame(), tail in vec(any::<u8>(), 0..8)) {
        let mut wire = encoded(&f);
        let len = wire.len();
        prop_assert_eq!(frame_len(&wire[..len - 1]).unwrap(), None);
        wire.extend_from_slice(&tail);
        prop_assert_eq!(frame_len(&wire).unwrap(), Some(len));
    }

    #[test]
    fn split_requests_parse_as_whole_ones(
        cmds in vec(vec(vec(any::<u8>(), 0..10), 1..5), 1..6),
        cuts in vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut input = BytesMut::new();
        for c in &cmds {
            encode::command(c, &mut input);
        }
        let mut whole = input.clone();
        let mut expected = Vec::new();
        while let Some(c) = parse_command(&mut whole, &Limits::default()).unwrap() {
            expected.push(args_of(&c));
        }
        prop_assert_eq!(&expected, &cmds);

        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(input.len() + 1)).collect();
        cuts.push(input.len());
        cuts.sort_unstable();
        let mut parser = RequestParser::new(Limits::default());
        let (mut buf, mut got, mut last) = (BytesMut::new(), Vec::new(), 0);
        for cut in cuts {
            buf.extend_from_slice(&input[last..cut]);
            last = cut;
            while let Some(c) = parser.next(&mut buf).unwrap() {
                got.push(args_of(&c));
            }
        }
        prop_assert_eq!(got, cmds);
        prop_assert!(buf.is_empty());
    }
}
