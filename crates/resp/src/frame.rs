//! The RESP data model (RESP2 plus the RESP3 types Redis 7 sends).

use bytes::Bytes;

/// One RESP value.
#[derive(Clone, Debug, PartialEq)]
pub enum Frame {
    /// `+OK`
    Simple(Bytes),
    /// `-ERR ...` (and RESP3 `!` blob errors)
    Error(Bytes),
    /// `:42`
    Integer(i64),
    /// `$3\r\nfoo` (and RESP3 `=` verbatim strings, prefix kept)
    Bulk(Bytes),
    /// `$-1`, `*-1` and RESP3 `_`
    Null,
    /// `*N`, RESP3 sets `~N` and pushes `>N`
    Array(Vec<Frame>),
    /// RESP3 `>N` out-of-band push (pub/sub messages, invalidations)
    Push(Vec<Frame>),
    /// RESP3 `%N`, as key/value pairs in wire order
    Map(Vec<(Frame, Frame)>),
    /// RESP3 `,1.5`, `(123...` and `#t`: kept as their text
    Other(u8, Bytes),
}

impl Frame {
    /// A bulk string frame from anything byte-like.
    pub fn bulk(b: impl Into<Bytes>) -> Frame {
        Frame::Bulk(b.into())
    }

    /// The text of a simple string, bulk string or error, lossily as UTF-8.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Frame::Simple(b) | Frame::Bulk(b) | Frame::Error(b) | Frame::Other(_, b) => {
                Some(String::from_utf8_lossy(b).into_owned())
            }
            Frame::Integer(i) => Some(i.to_string()),
            _ => None,
        }
    }

    /// The bytes of a simple or bulk string.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Frame::Simple(b) | Frame::Bulk(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Frame::Integer(i) => Some(*i),
            Frame::Simple(b) | Frame::Bulk(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }

    /// Elements of an array, set or push.
    pub fn as_array(&self) -> Option<&[Frame]> {
        match self {
            Frame::Array(v) | Frame::Push(v) => Some(v),
            _ => None,
        }
    }

    pub fn into_array(self) -> Option<Vec<Frame>> {
        match self {
            Frame::Array(v) | Frame::Push(v) => Some(v),
            Frame::Map(kv) => Some(kv.into_iter().flat_map(|(k, v)| [k, v]).collect()),
            _ => None,
        }
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    /// For `-ERR ...` returns the whole message; None for anything else.
    pub fn error_message(&self) -> Option<String> {
        match self {
            Frame::Error(b) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }

    /// Interprets a flat `[k1, v1, k2, v2...]` array (as SENTINEL MASTER
    /// returns under RESP2) or a RESP3 map as string pairs.
    pub fn into_pairs(self) -> Vec<(String, String)> {
        let items: Vec<Frame> = match self {
            Frame::Map(kv) => kv.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            other => other.into_array().unwrap_or_default(),
        };
        items
            .chunks(2)
            .filter_map(|c| match c {
                [k, v] => Some((k.as_text()?, v.as_text().unwrap_or_default())),
                _ => None,
            })
            .collect()
    }
}
