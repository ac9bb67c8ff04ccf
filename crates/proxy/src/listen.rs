//! Listening sockets. With `--reuse-port` several proxies can listen on the
//! same ports at once (SO_REUSEPORT), which is how a restart avoids refused
//! connections: the new proxy binds beside the old one before the old one
//! drains. The newest socket also attaches a one-instruction classic BPF
//! program to the port's group that sends every new connection to the
//! newest member, so the old proxy's accept queue stops filling and is
//! empty when it closes (closing a listener resets what its queue holds).

use std::net::SocketAddr;
use tokio::net::TcpListener;

/// Binds `addr`; with `reuse_port`, beside other `--reuse-port` listeners
/// of the same user, taking their new connections from now on.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    if reuse_port {
        s.set_reuse_port(true)?;
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    if reuse_port {
        steer_to_newest(&s)?;
    }
    TcpListener::from_std(s.into())
}

/// The reuseport group's index of the socket that joined last when two
/// are open (the old proxy is 0). Once the old one closes the index is out
/// of range and the kernel falls back to its hash over what is left.
const NEWEST: u32 = 1;

/// SO_ATTACH_REUSEPORT_CBPF with `ret #NEWEST`.
fn steer_to_newest(s: &socket2::Socket) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let mut prog = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: NEWEST,
    }];
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: a valid socket and a program that outlives the call (the
    // kernel copies it).
    let r = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_REUSEPORT_CBPF,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn two_reuse_port_listeners_share_a_port_and_the_newest_takes_new_clients() {
        let old = bind("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let addr = old.local_addr().unwrap();
        let new = bind(addr, true).unwrap();
        for _ in 0..20 {
            let _c = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (_s, _) = tokio::time::timeout(std::time::Duration::from_secs(2), new.accept())
                .await
                .expect("the newest listener got it")
                .unwrap();
        }
        drop(old);
        let _c = tokio::net::TcpStream::connect(addr).await.unwrap();
        new.accept().await.unwrap();
        // Without --reuse-port the port is taken, as before.
        assert!(bind(addr, false).is_err());
    }
}
