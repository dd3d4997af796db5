//! A TCP relay over the kernel's sockets alone: it accepts on each listening address, dials
//! the upstream paired with it, and copies both ways, carrying a half-close
//! (`tokio::io::copy_bidirectional`). One thread, one task per connection, as tunproxy's relay.
//!
//! It is a reference point of the proxy benchmark (`scripts/bench-proxy.sh`, path e): its
//! client's TCP ends in the kernel, over loopback, with no tun and no stack of the relay's
//! own. `tunproxy --direct` does the same work but terminates the client's TCP itself, behind
//! a tun; the benchmark's d/e column is what that costs. Its copies use tokio's 8 KiB buffers,
//! as most relays do, so in bulk it is no ceiling.
//!
//! ```sh
//! cargo run --release --example kernel_relay -- 127.0.0.2:80=198.51.100.10:80
//! curl http://127.0.0.2/
//! ```

use std::net::SocketAddr;
use tokio::net::{TcpListener, TcpStream};

/// Relays every connection `listener` accepts to `upstream`, until the process ends.
async fn serve(listener: TcpListener, upstream: SocketAddr) {
    loop {
        let (mut client, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors, say: the next accept may succeed.
                eprintln!("kernel_relay: accept: {e}");
                tokio::task::yield_now().await;
                continue;
            }
        };
        tokio::spawn(async move {
            let Ok(mut up) = TcpStream::connect(upstream).await else {
                return;
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
