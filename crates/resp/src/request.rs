//! A resumable request parser: [`RequestParser::next`] gives the same
//! commands and errors as [`parse_command`](crate::parse::parse_command) but
//! remembers how far the request at the front of the buffer was validated, so
//! a request arriving in many reads costs work linear in its size, not
//! quadratic.
//!
//! Contract: between calls the caller only appends bytes to the buffer (the
//! parser itself consumes whole requests from its front).

use crate::parse::{
    find_crlf, inline_line, parse_int, parse_multibulk, Command, Limits, Parsed, ProtocolError,
};
use bytes::BytesMut;
use std::ops::Range;

/// Where the request at the front of the buffer stands.
#[derive(Clone, Debug, Default)]
enum Stage {
    /// Nothing of the current request examined yet.
    #[default]
    Start,
    /// An inline request: no `\n` before `searched`.
    Inline { searched: usize },
    /// A multibulk whose `*count` line has no CRLF before `searched`.
    Count { searched: usize },
    /// A multibulk whose arguments before `arg.at` are validated.
    Args(Multibulk),
}

/// Progress through a multibulk's arguments.
#[derive(Clone, Debug)]
struct Multibulk {
    count: usize,
    done: usize,
    head: [Range<usize>; 2],
    arg: Arg,
}

/// The argument being read: its `$len` line, then its data.
#[derive(Clone, Debug)]
enum Arg {
    /// The `$len` line starting at `at` has no CRLF before `searched`.
    Header { at: usize, searched: usize },
    /// The data is `start..stop`, followed by CRLF.
    Data { start: usize, stop: usize },
}

/// A request cut where one of its arguments starts: what
/// [`RequestParser::detach`] leaves for the caller to pass on as it comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Detached {
    /// The argument whose data the command ends before (0 is the name).
    pub index: usize,
    /// Its data length (the CRLF after it not counted).
    pub len: usize,
    /// Arguments after it.
    pub after: usize,
}

/// What one step over the buffer found.
enum Step {
    Incomplete(Stage),
    Skip(usize),
    Done(Command),
}

/// Parses client requests incrementally. See the module docs.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    stage: Stage,
    scanned: u64,
}

impl RequestParser {
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            stage: Stage::Start,
            scanned: 0,
        }
    }

    /// Bytes examined by searches so far (for tests of linear cost).
    pub fn scanned_bytes(&self) -> u64 {
        self.scanned
    }

    /// One request from the front of `buf`, consumed when complete;
    /// `Ok(None)` when more bytes are needed. After an error the parser starts
    /// over, so calling again on the same bytes gives the same error.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, ProtocolError> {
        loop {
            if buf.is_empty() {
                return Ok(None);
            }
            if matches!(self.stage, Stage::Start) && buf[0] == b'*' {
                match self.whole(buf)? {
                    Some(Step::Done(cmd)) => return Ok(Some(cmd)),
                    Some(Step::Skip(n)) => {
                        let _ = buf.split_to(n);
                        continue;
                    }
                    Some(Step::Incomplete(_)) | None => {}
                }
            }
            let stage = std::mem::take(&mut self.stage);
            match self.step(buf, stage)? {
                Step::Incomplete(stage) => {
                    self.stage = stage;
                    return Ok(None);
                }
                Step::Skip(n) => {
                    let _ = buf.split_to(n);
                }
                Step::Done(cmd) => return Ok(Some(cmd)),
            }
        }
    }

    /// The request at the front is a multibulk waiting for the data of an
    /// argument of at least `min` bytes: the command up to that data (its
    /// `$len` line included) is split off `buf` and the parser starts over;
    /// the argument's data, its CRLF and the arguments after it are the
    /// caller's to read ([`Detached`]). Arguments from `index` on are not in
    /// the command (`arg` gives `None` for them). `None` (nothing taken)
    /// otherwise.
    pub fn detach(&mut self, buf: &mut BytesMut, min: usize) -> Option<(Command, Detached)> {
        let Stage::Args(mb) = &self.stage else {
            return None;
        };
        let Arg::Data { start, stop } = mb.arg else {
            return None;
        };
        if stop - start < min {
            return None;
        }
        let missing = usize::MAX..usize::MAX;
        let mut head = mb.head.clone();
        for (i, h) in head.iter_mut().enumerate() {
            if i >= mb.done {
                *h = missing.clone();
            }
        }
        let d = Detached {
            index: mb.done,
            len: stop - start,
            after: mb.count - mb.done - 1,
        };
        let raw = buf.split_to(start).freeze();
        let cmd = Command::from_parts(raw, mb.count, head);
        self.stage = Stage::Start;
        Some((cmd, d))
    }

    /// The usual case, a multibulk already whole in the buffer, in one pass
    /// without the resumable bookkeeping (~200 fewer instructions for a SET).
    /// `None`: incomplete, so the step-by-step parse takes over; it starts
    /// from the request's first byte once, so the cost stays linear.
    fn whole(&mut self, buf: &mut BytesMut) -> Result<Option<Step>, ProtocolError> {
        match parse_multibulk(buf, &self.limits)? {
            Parsed::Multibulk(n, argc, head) => {
                self.scanned += n as u64;
                let raw = buf.split_to(n).freeze();
                Ok(Some(Step::Done(Command::from_parts(raw, argc, head))))
            }
            Parsed::Empty(n) => {
                self.scanned += n as u64;
                Ok(Some(Step::Skip(n)))
            }
            Parsed::Incomplete | Parsed::Inline(..) => {
                self.scanned += buf.len() as u64;
                Ok(None)
            }
        }
    }

    fn step(&mut self, buf: &mut BytesMut, stage: Stage) -> Result<Step, ProtocolError> {
        match stage {
            Stage::Start if buf[0] == b'*' => self.count(buf, 1),
            Stage::Start => self.inline(buf, 0),
            Stage::Inline { searched } => self.inline(buf, searched),
            Stage::Count { searched } => self.count(buf, searched),
            Stage::Args(mb) => self.args(buf, mb),
        }
    }

    fn inline(&mut self, buf: &mut BytesMut, searched: usize) -> Result<Step, ProtocolError> {
        let found = memchr::memchr(b'\n', &buf[searched..]);
        self.scanned += found.map_or(buf.len() - searched, |i| i + 1) as u64;
        let Some(nl) = found.map(|i| i + searched) else {
            if buf.len() > self.limits.max_inline_len {
                return Err(ProtocolError::TooBigInline);
            }
            return Ok(Step::Incomplete(Stage::Inline {
                searched: buf.len(),
            }));
        };
        match inline_line(buf, nl, &self.limits)? {
            Parsed::Inline(n, args) => {
                let _ = buf.split_to(n);
                match crate::parse::inline_command(&args, &self.limits)? {
                    Some(cmd) => Ok(Step::Done(cmd)),
                    None => Ok(Step::Skip(0)),
                }
            }
            Parsed::Empty(n) => Ok(Step::Skip(n)),
            Parsed::Incomplete | Parsed::Multibulk(..) => unreachable!("inline_line ends a line"),
        }
    }

    fn count(&mut self, buf: &mut BytesMut, searched: usize) -> Result<Step, ProtocolError> {
        let Some(end) = self.find_crlf(buf, searched) else {
            if buf.len() > self.limits.max_inline_len {
                return Err(ProtocolError::TooBigCount);
            }
            let searched = resume_at(buf, 1);
            return Ok(Step::Incomplete(Stage::Count { searched }));
        };
        if end >= self.limits.max_inline_len {
            return Err(ProtocolError::TooBigCount);
        }
        let count = parse_int(&buf[1..end]).ok_or(ProtocolError::InvalidMultibulkLength)?;
        if count > self.limits.max_multibulk_len as i64 {
            return Err(ProtocolError::InvalidMultibulkLength);
        }
        if count <= 0 {
            return Ok(Step::Skip(end + 2));
        }
        let at = end + 2;
        let mb = Multibulk {
            count: count as usize,
            done: 0,
            head: [0..0, 0..0],
            arg: Arg::Header {
                at,
                searched: at + 1,
            },
        };
        self.args(buf, mb)
    }

    fn args(&mut self, buf: &mut BytesMut, mut mb: Multibulk) -> Result<Step, ProtocolError> {
        while mb.done < mb.count {
            let (start, stop) = match mb.arg {
                Arg::Header { at, searched } => match self.header(buf, at, searched)? {
                    Some(range) => range,
                    None => {
                        let searched = resume_at(buf, at + 1);
                        mb.arg = Arg::Header { at, searched };
                        return Ok(Step::Incomplete(Stage::Args(mb)));
                    }
                },
                Arg::Data { start, stop } => (start, stop),
            };
            if buf.len() < stop + 2 {
                mb.arg = Arg::Data { start, stop };
                return Ok(Step::Incomplete(Stage::Args(mb)));
            }
            if let Some(h) = mb.head.get_mut(mb.done) {
                *h = start..stop;
            }
            mb.done += 1;
            let at = stop + 2;
            mb.arg = Arg::Header {
                at,
                searched: at + 1,
            };
        }
        let Arg::Header { at, .. } = mb.arg else {
            unreachable!("a finished argument is followed by a header")
        };
        let raw = buf.split_to(at).freeze();
        Ok(Step::Done(Command::from_parts(raw, mb.count, mb.head)))
    }

    /// The data range of the argument whose `$len` line starts at `at` (its
    /// CRLF searched for from `searched`), or `None` if the line is incomplete.
    fn header(
        &mut self,
        buf: &[u8],
        at: usize,
        searched: usize,
    ) -> Result<Option<(usize, usize)>, ProtocolError> {
        let Some(&first) = buf.get(at) else {
            return Ok(None);
        };
        if first != b'$' {
            return Err(ProtocolError::ExpectedBulk(first as char));
        }
        let Some(end) = self.find_crlf(buf, searched) else {
            if buf.len() - at > self.limits.max_inline_len {
                return Err(ProtocolError::TooBigBulkCount);
            }
            return Ok(None);
        };
        if end - at >= self.limits.max_inline_len {
            return Err(ProtocolError::TooBigBulkCount);
        }
        let len = parse_int(&buf[at + 1..end]).ok_or(ProtocolError::InvalidBulkLength)?;
        if len < 0 || len as u64 > self.limits.max_bulk_len as u64 {
            return Err(ProtocolError::InvalidBulkLength);
        }
        let start = end + 2;
        Ok(Some((start, start + len as usize)))
    }

    /// [`find_crlf`] from `from`, counting the bytes it examines.
    fn find_crlf(&mut self, buf: &[u8], from: usize) -> Option<usize> {
        let found = find_crlf(buf, from);
        let upto = found.map_or(buf.len(), |i| i + 2);
        self.scanned += upto.saturating_sub(from) as u64;
        found
    }
}

/// Where a CRLF search that failed resumes: the last byte may be a `\r`
/// whose `\n` is still to come.
fn resume_at(buf: &[u8], floor: usize) -> usize {
    buf.len().saturating_sub(1).max(floor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_command;

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    type Outcome = Result<Vec<u8>, ProtocolError>;

    /// Feeds `input` in the given pieces to both parsers, calling each until
    /// it wants more after every piece; returns what each produced.
    fn both(input: &[u8], cuts: &[usize], limits: &Limits) -> (Vec<Outcome>, Vec<Outcome>) {
        let mut old = (BytesMut::new(), Vec::new());
        let mut new = (
            BytesMut::new(),
            Vec::new(),
            RequestParser::new(limits.clone()),
        );
        let mut last = 0;
        for &cut in cuts.iter().chain([input.len()].iter()) {
            old.0.extend_from_slice(&input[last..cut]);
            new.0.extend_from_slice(&input[last..cut]);
            last = cut;
            drain(&mut old.1, || parse_command(&mut old.0, limits));
            drain(&mut new.1, || new.2.next(&mut new.0));
            if old.1.last().is_some_and(Result::is_err) {
                break;
            }
        }
        (old.1, new.1)
    }

    fn drain(
        out: &mut Vec<Outcome>,
        mut f: impl FnMut() -> Result<Option<Command>, ProtocolError>,
    ) {
        if out.last().is_some_and(Result::is_err) {
            return;
        }
        loop {
            match f() {
                Ok(Some(c)) => out.push(Ok(describe(&c))),
                Ok(None) => return,
                Err(e) => return out.push(Err(e)),
            }
        }
    }

    /// Everything observable about a command: raw bytes, argc and each arg.
    fn describe(c: &Command) -> Vec<u8> {
        let mut v = c.raw.to_vec();
        v.extend_from_slice(format!("|{}|", c.argc()).as_bytes());
        for a in [c.arg(0), c.arg(1), c.arg(c.argc())] {
            v.extend_from_slice(a.unwrap_or(b"<none>"));
            v.push(b'|');
        }
        for a in c.args() {
            v.extend_from_slice(a);
            v.push(b'|');
        }
        v
    }

    fn corpus() -> Vec<Vec<u8>> {
        let big_bulk = format!("*2\r\n$3\r\nSET\r\n${}\r\n", 1 << 20).into_bytes();
        let mut many = b"*5000\r\n".to_vec();
        for i in 0..5000 {
            many.extend_from_slice(format!("${}\r\n{i}\r\n", i.to_string().len()).as_bytes());
        }
        let mut long_inline = vec![b'a'; 70 * 1024];
        long_inline.extend_from_slice(b"\r\n");
        let mut long_count = b"*".to_vec();
        long_count.extend(vec![b'1'; 70 * 1024]);
        let mut long_header = b"*1\r\n$".to_vec();
        long_header.extend(vec![b'1'; 70 * 1024]);
        vec![
            b"*2\r\n$3\r\nGET\r\n$3\r\nfoo\r\n*1\r\n$4\r\nPING\r\n".to_vec(),
            b"*0\r\n*-1\r\n\r\n  \r\nPING\r\nset k \"a b\\x41\" 'it\\'s'\n*1\r\n$4\r\nPING\r\n"
                .to_vec(),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\nGET k\r\n*1\r\n+x\r\n".to_vec(),
            b"*1\r\n$-5\r\n".to_vec(),
            b"*x\r\n".to_vec(),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$999999999999\r\n".to_vec(),
            b"*100\r\n$1\r\na\r\n".to_vec(),
            b"set \"k\r\nPING\r\n".to_vec(),
            big_bulk,
            many,
            long_inline,
            long_count,
            long_header,
        ]
    }

    #[test]
    fn same_results_as_parse_command_on_random_splits() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let limits = [
            Limits::default(),
            Limits {
                max_bulk_len: 4,
                max_multibulk_len: 3,
                max_inline_len: 16,
            },
        ];
        for input in corpus() {
            for limits in &limits {
                for _ in 0..20 {
                    let mut cuts: Vec<usize> = (0..rng.below(40))
                        .map(|_| rng.below(input.len() + 1))
                        .collect();
                    cuts.sort_unstable();
                    let (old, new) = both(&input, &cuts, limits);
                    assert_eq!(
                        old,
                        new,
                        "input {:?} cuts {cuts:?}",
                        String::from_utf8_lossy(&input[..input.len().min(60)])
                    );
                }
                let every: Vec<usize> = (0..input.len().min(3000)).collect();
                let (old, new) = both(&input, &every, limits);
                assert_eq!(old, new, "byte by byte");
            }
        }
    }

    #[test]
    fn results_are_what_is_expected() {
        let (_, new) = both(&corpus()[1], &[3, 9, 20], &Limits::default());
        assert_eq!(new.len(), 3);
        let (_, new) = both(&corpus()[2], &[], &Limits::default());
        assert_eq!(new.last(), Some(&Err(ProtocolError::ExpectedBulk('+'))));
        let (_, new) = both(&corpus()[10], &[1000], &Limits::default());
        assert_eq!(new, [Err(ProtocolError::TooBigInline)]);
    }

    #[test]
    fn a_huge_command_in_small_pieces_is_scanned_about_once() {
        let argc = 200_000;
        let mut input = format!("*{argc}\r\n").into_bytes();
        for i in 0..argc {
            let a = format!("k{i}");
            input.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
        }
        let mut p = RequestParser::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut got = None;
        for piece in input.chunks(700) {
            buf.extend_from_slice(piece);
            if let Some(c) = p.next(&mut buf).unwrap() {
                got = Some(c);
            }
        }
        let c = got.expect("the command completes");
        assert_eq!(c.argc(), argc);
        assert_eq!(
            c.arg(argc - 1),
            Some(&format!("k{}", argc - 1).into_bytes()[..])
        );
        assert!(buf.is_empty());
        let scanned = p.scanned_bytes();
        assert!(
            scanned > 0 && scanned <= 2 * input.len() as u64,
            "scanned {scanned} of {}",
            input.len()
        );
    }

    #[test]
    fn a_big_argument_is_detached_with_the_command_before_it() {
        let mut p = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n0123"[..]);
        assert!(p.next(&mut buf).unwrap().is_none());
        assert!(p.detach(&mut buf, 11).is_none(), "below the size asked");
        let (c, d) = p.detach(&mut buf, 10).expect("detached");
        assert_eq!(&c.raw[..], b"*4\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\n");
        assert_eq!(
            (c.argc(), c.arg(1), c.arg(2), c.arg(3)),
            (4, Some(&b"k"[..]), None, None)
        );
        assert_eq!(
            d,
            Detached {
                index: 2,
                len: 10,
                after: 1
            }
        );
        assert_eq!(&buf[..], b"0123");
        // The name's own data: no argument 1 in the command.
        let mut buf = BytesMut::from(&b"*2\r\n$4\r\nECHO\r\n$5\r\nab"[..]);
        assert!(p.next(&mut buf).unwrap().is_none());
        let (c, d) = p.detach(&mut buf, 5).expect("detached");
        assert_eq!((c.is("ECHO"), c.arg(1)), (true, None));
        assert_eq!(
            d,
            Detached {
                index: 1,
                len: 5,
                after: 0
            }
        );
    }

    #[test]
    fn a_never_ending_inline_request_is_refused_without_rescanning() {
        let mut p = RequestParser::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut err = None;
        for _ in 0..200 {
            buf.extend_from_slice(&[b'x'; 700]);
            match p.next(&mut buf) {
                Ok(None) => continue,
                Ok(Some(_)) => panic!("no command in the input"),
                Err(e) => {
                    err = Some(e);
                    break;
                }
            }
        }
        assert_eq!(err, Some(ProtocolError::TooBigInline));
        assert!(p.scanned_bytes() <= 2 * buf.len() as u64);
    }
}
