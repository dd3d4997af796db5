//! A TCP relay over the kernel's sockets alone: it accepts on each listening address, dials
//! the upstream paired with it, and copies both ways, carrying a half-close
//! (`tokio::io::copy_bidirectional`). One thread, one task per connection, as tunproxy's relay.
//!
//! It is a reference point of the proxy benchmark (`scripts/bench-proxy.sh`, path e): its
//! client's TCP ends in the kernel, over loopback, with no tun and no stack of the relay's
//! own. `tunproxy --direct` does the same work but terminates the client's TCP itself, behind
//! a tun; the benchmark's d/e column is roughly what that costs. Its copies go through tokio's
//! 8 KiB buffers, without `splice`, so in bulk it is no ceiling.
//!
//! ```sh
//! cargo run --release --example kernel_relay -- 127.0.0.2:80=198.51.100.10:80
//! curl http://127.0.0.2/
//! ```

use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The pause after a failed accept: out of descriptors, the waiting connection keeps the
/// listener ready, and retrying at once would spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// Relays every connection `listener` accepts to `upstream`, until the process ends.
async fn serve(listener: TcpListener, upstream: SocketAddr) {
    loop {
        let (mut client, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                eprintln!("kernel_relay: accept: {e}");
                tokio::time::sleep(ACCEPT_RETRY).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let mut up = match TcpStream::connect(upstream).await {
                Ok(up) => up,
                Err(e) => {
                    eprintln!("kernel_relay: {upstream}: {e}");
                    return;
                }
            };
            let _ = client.set_nodelay(true);
            let _ = up.set_nodelay(true);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
        });
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let pairs = std::env::args()
        .skip(1)
        .map(|arg| {
            let (listen, upstream) = arg
                .split_once('=')
                .ok_or("usage: kernel_relay LISTEN=UPSTREAM...")?;
            Ok((listen.parse()?, upstream.parse()?))
        })
        .collect::<Result<Vec<(SocketAddr, SocketAddr)>, Box<dyn std::error::Error>>>()?;
    if pairs.is_empty() {
        return Err("usage: kernel_relay LISTEN=UPSTREAM...".into());
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    runtime.block_on(async {
        let mut tasks = Vec::new();
        for (listen, upstream) in pairs {
            let listener = TcpListener::bind(listen).await?;
            println!("kernel_relay: {listen} -> {upstream}");
            tasks.push(tokio::spawn(serve(listener, upstream)));
        }
        for t in tasks {
            t.await?;
        }
        Ok(())
    })
}
