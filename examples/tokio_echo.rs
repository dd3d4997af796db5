//! A TCP echo server on tokio over a tap (or a tun), one task per connection: the async API
//! (`tapstack::tokio`, feature `tokio`).
//!
//! ```sh
//! # as root, in a namespace with tap0 = 10.0.0.1/24 (scripts/tap-setup.sh makes one)
//! cargo run --release --features tokio --example tokio_echo -- tap0 10.0.0.2/24 7
//! echo hello | nc -N 10.0.0.2 7
//! # over a tun (bare IP, no ARP): ip tuntap add dev tun0 mode tun; ip addr add 10.0.2.1/24 ...
//! cargo run --release --features tokio --example tokio_echo -- tun:tun0 10.0.2.2/24 7
//! ```

use tapstack::phy::{Device, TapDevice, TunDevice};
use tapstack::tokio::TcpListener;
use tapstack::{Stack, StackConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [device, cidr, port] = args.as_slice() else {
        return Err("usage: tokio_echo TAP|tun:TUN A.B.C.D/PREFIX PORT".into());
    };
    let (ip, prefix) = cidr.split_once('/').ok_or("address needs a /prefix")?;
    let device: Box<dyn Device> = match device.strip_prefix("tun:") {
        Some(tun) => Box::new(TunDevice::open(tun)?),
        None => Box::new(TapDevice::open(device)?),
    };
    let stack = Stack::new(device, StackConfig::new(ip.parse()?, prefix.parse()?))?;
    let listener = TcpListener::bind(&stack, ("0.0.0.0", port.parse::<u16>()?)).await?;
    println!("echo on {cidr} port {port}");
    loop {
        let (mut conn, _) = listener.accept().await?;
        tokio::spawn(async move {
            let mut buf = vec![0u8; 16 * 1024];
            // The peer's FIN ends the loop; an error ends the connection.
            while let Ok(n @ 1..) = conn.read(&mut buf).await {
                if conn.write_all(&buf[..n]).await.is_err() {
                    break;
                }
            }
        });
    }
}
