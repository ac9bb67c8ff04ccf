//! While `redis-ha init-role` decides, it listens on its node's Redis port
//! and answers every connection with one error saying what this node's
//! disk holds ([`boot_inputs::init_role_reply`]), then closes it. On
//! Kubernetes an init container sees only its own volume: this is how the
//! peers, deciding at the same time, compare data when no Redis pod runs
//! (the sentinels lost their state in a cold start). To Sentinel and to
//! clients the error is no valid reply: the node counts as down, as when
//! nothing listens. Plain TCP only: with TLS the peers cannot read it and
//! wait, as before.

use redis_ha_topology::boot_inputs;
use std::path::PathBuf;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Listens on every address at `port`; `None` (and a line saying why) when
/// the port is taken. The task ends when the handle is aborted or dropped
/// with the runtime.
pub async fn spawn(me: String, port: u16, data_dir: PathBuf) -> Option<JoinHandle<()>> {
    let listener = match TcpListener::bind(("0.0.0.0", port)).await {
        Ok(l) => l,
        Err(e) => {
            println!("{me}: cannot listen on port {port} to tell the peers this node's data ({e}); they wait to compare");
            return None;
        }
    };
    Some(tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let reply = boot_inputs::init_role_reply(&me, boot_inputs::disk(&data_dir));
            tokio::spawn(async move {
                // Read the request (any), answer once, close: one error
                // ends a client's AUTH or INFO alike.
                let mut buf = [0u8; 512];
                let read = s.read(&mut buf);
                if let Ok(Ok(n)) =
                    tokio::time::timeout(std::time::Duration::from_secs(2), read).await
                {
                    if n > 0 {
                        let _ = s.write_all(format!("-{reply}\r\n").as_bytes()).await;
                    }
                }
            });
        }
    }))
}
