//! The cluster's DNS, answered by the pod runner itself: the podman network
//! is made without its DNS server (aardvark-dns 1.4 at times answers
//! nothing for tens of seconds, and Redis and Sentinel resolve names in
//! their main thread), and each pod asks this server on the network's
//! gateway instead. It answers A queries for the names the pods answer to
//! (their headless-Service names, the Services' names, as the cluster DNS
//! does with publishNotReadyAddresses) from the pods that exist now: a pod
//! is added when it is created and removed when it is deleted (from the
//! names of a Service without publishNotReadyAddresses as soon as its
//! deletion starts: the endpoints controller drops a terminating pod at
//! once); any other name is NXDOMAIN, any other query type for a known name
//! is empty.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Pod name -> (its address, the names it answers to).
pub type Records = Arc<Mutex<BTreeMap<String, (Ipv4Addr, Vec<String>)>>>;

/// The server: a thread on `gateway:53`, stopped on drop.
pub struct Server {
    pub records: Records,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    pub fn start(gateway: Ipv4Addr) -> anyhow::Result<Server> {
        let socket = UdpSocket::bind((gateway, 53))
            .map_err(|e| anyhow::anyhow!("DNS server on {gateway}:53: {e}"))?;
        socket.set_read_timeout(Some(Duration::from_millis(200)))?;
        let records: Records = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (records.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !s.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let answer = {
                    let table = r.lock().expect("records");
                    answer(&buf[..n], |name| lookup(&table, name))
                };
                if let Some(a) = answer {
                    let _ = socket.send_to(&a, from);
                }
            }
        });
        Ok(Server {
            records,
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The addresses of the pods that answer to `name` (`None`: no such name).
pub fn lookup(
    table: &BTreeMap<String, (Ipv4Addr, Vec<String>)>,
    name: &str,
) -> Option<Vec<Ipv4Addr>> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let ips: Vec<Ipv4Addr> = table
        .values()
        .filter(|(_, names)| names.iter().any(|n| n.eq_ignore_ascii_case(&name)))
        .map(|(ip, _)| *ip)
        .collect();
    (!ips.is_empty()).then_some(ips)
}

/// The reply to one query packet (`None`: not a query we can read).
pub fn answer(q: &[u8], lookup: impl Fn(&str) -> Option<Vec<Ipv4Addr>>) -> Option<Vec<u8>> {
    if q.len() < 12 || q[2] & 0x80 != 0 || u16::from_be_bytes([q[4], q[5]]) != 1 {
        return None;
    }
    // The question: labels, then type and class.
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = *q.get(i)? as usize;
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None;
        }
        labels.push(String::from_utf8_lossy(q.get(i..i + len)?).into_owned());
        i += len;
    }
    let qtype = u16::from_be_bytes([*q.get(i)?, *q.get(i + 1)?]);
    let question_end = i + 4;
    q.get(..question_end)?;
    let found = lookup(&labels.join("."));
    let ips = match (&found, qtype) {
        (Some(ips), 1) => ips.clone(),
        _ => Vec::new(),
    };
    let mut r = Vec::with_capacity(question_end + ips.len() * 16);
    r.extend_from_slice(&q[..2]);
    // QR, opcode 0, AA, RD copied; RA; NXDOMAIN for an unknown name.
    r.push(0x84 | (q[2] & 0x01));
    r.push(0x80 | if found.is_none() { 3 } else { 0 });
    r.extend_from_slice(&[0, 1]);
    r.extend_from_slice(&(ips.len() as u16).to_be_bytes());
    r.extend_from_slice(&[0, 0, 0, 0]);
    r.extend_from_slice(&q[12..question_end]);
    for ip in ips {
        // Name: a pointer to the question's; type A, class IN, TTL 0.
        r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4]);
        r.extend_from_slice(&ip.octets());
    }
    Some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            q.push(l.len() as u8);
            q.extend_from_slice(l.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    #[test]
    fn answers_known_names_and_nxdomain_for_others() {
        let mut t = BTreeMap::new();
        let a: Ipv4Addr = "10.89.0.7".parse().unwrap();
        let b: Ipv4Addr = "10.89.0.9".parse().unwrap();
        t.insert(
            "p-1".to_string(),
            (
                a,
                vec![
                    "redis-ha".to_string(),
                    "p-1.h.ns.svc.cluster.local".to_string(),
                ],
            ),
        );
        t.insert("p-2".to_string(), (b, vec!["redis-ha".to_string()]));
        let look = |n: &str| lookup(&t, n);
        let r = answer(&query("redis-ha", 1), look).unwrap();
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[3] & 0x0f, 0, "NOERROR");
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 2, "two answers");
        assert_eq!(&r[r.len() - 4..], &b.octets());
        let r = answer(&query("P-1.h.ns.svc.cluster.local", 1), look).unwrap();
        assert_eq!(u16::from_be_bytes([r[6], r[7]]), 1);
        assert_eq!(&r[r.len() - 4..], &a.octets());
        // AAAA of a known name: no answer, no error.
        let r = answer(&query("redis-ha", 28), look).unwrap();
        assert_eq!((r[3] & 0x0f, r[7]), (0, 0));
        let r = answer(&query("p-3.h.ns.svc.cluster.local", 1), look).unwrap();
        assert_eq!((r[3] & 0x0f, r[7]), (3, 0), "NXDOMAIN");
        assert!(answer(&[1, 2, 3], look).is_none());
    }
}
