//! A tokio client over a tap: opens N connections to an echo server at once, sends each a
//! message, and checks the echo, all from one task per connection (`tapstack::tokio`).
//!
//! ```sh
//! # as root, in a namespace with tap0 = 10.0.0.1/24 and an echo server on the kernel side,
//! # e.g. `ncat -lk -e /bin/cat 10.0.0.1 7` or `socat TCP-LISTEN:7,fork EXEC:cat`
//! cargo run --release --features tokio --example tokio_client -- tap0 10.0.0.2/24 10.0.0.1:7 100
//! ```

use std::time::{Duration, Instant};
use tapstack::phy::TapDevice;
use tapstack::tokio::TcpStream;
use tapstack::{Stack, StackConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tap, cidr, server, count] = args.as_slice() else {
        return Err("usage: tokio_client TAP A.B.C.D/PREFIX SERVER:PORT CONNECTIONS".into());
    };
    let (ip, prefix) = cidr.split_once('/').ok_or("address needs a /prefix")?;
    let stack = std::sync::Arc::new(Stack::new(
        TapDevice::open(tap)?,
        StackConfig::new(ip.parse()?, prefix.parse()?),
    )?);
    let server: std::net::SocketAddr = server.parse()?;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..count.parse::<usize>()? {
        let stack = stack.clone();
        tasks.push(tokio::spawn(async move {
            let work = async {
                let mut conn = TcpStream::connect(&stack, server).await?;
                let message = format!("hello from task {i}\n");
                conn.write_all(message.as_bytes()).await?;
                conn.shutdown().await?;
                let mut echo = String::new();
                conn.read_to_string(&mut echo).await?;
                Ok::<bool, std::io::Error>(echo == message)
            };
            // Every wait is bounded: a task that hears nothing in 10 s gives up.
            tokio::time::timeout(Duration::from_secs(10), work).await
        }));
    }
    let mut good = 0;
    for t in tasks {
        match t.await? {
            Ok(Ok(true)) => good += 1,
            Ok(Ok(false)) => eprintln!("wrong echo"),
            Ok(Err(e)) => eprintln!("error: {e}"),
            Err(_) => eprintln!("timed out"),
        }
    }
    println!(
        "{good} of {count} echoes right in {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
