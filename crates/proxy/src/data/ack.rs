//! `--write-ack replicas=N[,timeout=MS]`: a write is acknowledged to the
//! client only once `WAIT N MS` says N replicas have it, one WAIT per batch
//! (a session's batch on its own connection, a shared connection's flush in
//! multiplex mode). Here: the setting, the WAIT to send and the verdict on
//! its reply; the pipeline holds the replies, the links send the WAITs.

use super::error::ClientError;
use redis_ha_resp::Command;
use std::time::Duration;

/// How long WAIT waits by default: long enough for a replica on a busy
/// network, short enough that a dead one costs little per batch.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct WriteAck {
    pub replicas: u32,
    #[serde(serialize_with = "as_millis")]
    pub timeout: Duration,
}

fn as_millis<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl WriteAck {
    /// Parses `replicas=N[,timeout=MS]` (timeout in ms, or with a unit: 2s).
    pub fn parse(s: &str) -> Result<WriteAck, String> {
        let hint = "expected replicas=N[,timeout=MS], e.g. replicas=1,timeout=500";
        let mut replicas = None;
        let mut timeout = DEFAULT_TIMEOUT;
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: {hint}"))?;
            match k.trim() {
                "replicas" => {
                    let n: u32 = v
                        .trim()
                        .parse()
                        .map_err(|_| format!("replicas={v}: not a number; {hint}"))?;
                    if n == 0 {
                        return Err(
                            "replicas=0 waits for nothing: leave --write-ack out instead".into(),
                        );
                    }
                    replicas = Some(n);
                }
                "timeout" => timeout = parse_ms(v.trim())?,
                other => return Err(format!("unknown key {other:?}: {hint}")),
            }
        }
        let replicas = replicas.ok_or_else(|| format!("{s:?}: replicas= is missing; {hint}"))?;
        Ok(WriteAck { replicas, timeout })
    }

    /// The WAIT the proxy sends after a batch.
    pub fn wait(&self) -> Command {
        let (n, ms) = (
            self.replicas.to_string(),
            self.timeout.as_millis().to_string(),
        );
        Command::from_args(&["WAIT", &n, &ms])
    }

    /// The verdict on WAIT's reply for the writes before it.
    pub fn judge(&self, reply: &[u8]) -> Result<(), ClientError> {
        let detail = match parse_integer(reply) {
            Some(got) if got >= i64::from(self.replicas) => return Ok(()),
            Some(got) => format!(
                "only {got} of {} replicas confirmed it within {} ms",
                self.replicas,
                self.timeout.as_millis()
            ),
            None => format!(
                "WAIT failed: {}",
                String::from_utf8_lossy(reply)
                    .trim_start_matches('-')
                    .trim_end()
            ),
        };
        Err(ClientError::NotReplicated { detail })
    }

    /// The verdict when WAIT never answered (its connection was lost).
    pub fn lost(node: &str) -> ClientError {
        ClientError::NotReplicated {
            detail: format!("the connection to {node} was lost before the replicas confirmed it"),
        }
    }
}

fn parse_ms(v: &str) -> Result<Duration, String> {
    let d = match v.parse::<u64>() {
        Ok(ms) => Duration::from_millis(ms),
        Err(_) => humantime::parse_duration(v)
            .map_err(|e| format!("timeout={v}: {e} (e.g. timeout=500 or timeout=2s)"))?,
    };
    if d.is_zero() {
        // WAIT 0 blocks forever: one dead replica would stall every writer.
        return Err(
            "timeout=0 would wait forever for a dead replica: give a bound (e.g. 500)".into(),
        );
    }
    Ok(d)
}

fn parse_integer(reply: &[u8]) -> Option<i64> {
    let body = reply.strip_prefix(b":")?.strip_suffix(b"\r\n")?;
    std::str::from_utf8(body).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_replicas_and_timeout() {
        let a = WriteAck::parse("replicas=2,timeout=250").unwrap();
        assert_eq!((a.replicas, a.timeout), (2, Duration::from_millis(250)));
        let b = WriteAck::parse("replicas=1").unwrap();
        assert_eq!(b.timeout, DEFAULT_TIMEOUT);
        assert_eq!(
            WriteAck::parse("replicas=1,timeout=2s").unwrap().timeout,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn bad_settings_say_what_is_expected() {
        for bad in [
            "",
            "replicas",
            "replicas=x",
            "replicas=0",
            "timeout=5",
            "replicas=1,timeout=0",
            "replicas=1,foo=2",
        ] {
            let e = WriteAck::parse(bad).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(WriteAck::parse("replicas=1,timeout=0")
            .unwrap_err()
            .contains("forever"));
        assert!(WriteAck::parse("timeout=5")
            .unwrap_err()
            .contains("replicas= is missing"));
    }

    #[test]
    fn the_wait_it_sends() {
        let a = WriteAck::parse("replicas=2,timeout=300").unwrap();
        assert_eq!(
            &a.wait().raw[..],
            b"*3\r\n$4\r\nWAIT\r\n$1\r\n2\r\n$3\r\n300\r\n"
        );
    }

    #[test]
    fn judges_the_reply() {
        let a = WriteAck::parse("replicas=2,timeout=300").unwrap();
        assert_eq!(a.judge(b":2\r\n"), Ok(()));
        assert_eq!(a.judge(b":3\r\n"), Ok(()));
        let short = a.judge(b":1\r\n").unwrap_err();
        assert!(
            short
                .text()
                .starts_with("NOREPLICAS redis-ha: the write ran on the master"),
            "{}",
            short.text()
        );
        assert!(short
            .text()
            .contains("only 1 of 2 replicas confirmed it within 300 ms"));
        let err = a
            .judge(b"-ERR WAIT cannot be used with replica instances\r\n")
            .unwrap_err();
        assert!(
            err.text()
                .contains("WAIT failed: ERR WAIT cannot be used with replica"),
            "{}",
            err.text()
        );
        assert!(WriteAck::lost("n:1")
            .text()
            .contains("connection to n:1 was lost"));
    }
}
