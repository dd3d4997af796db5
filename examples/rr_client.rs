//! A request/response client over tapstack: connects to an echo server (the kernel's, say),
//! sends `COUNT` requests of `SIZE` bytes one after another and prints the latency of each
//! exchange as percentiles. With a sub-MSS tail on every message, it shows that neither side
//! waits on a delayed-ACK timer (a 40 ms wait would stand out in the maximum).
//!
//! ```sh
//! # as root, in a namespace with tap0 = 10.0.0.1/24 and an echo server on 10.0.0.1:7
//! cargo run --release --example rr_client -- tap0 10.0.0.2/24 10.0.0.1:7 1000 10406
//! ```

use std::io::{Read, Write};
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};
use tapstack::phy::TapDevice;
use tapstack::{Stack, StackConfig, TcpStream};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tap, cidr, server, count, size] = args.as_slice() else {
        return Err("usage: rr_client TAP A.B.C.D/PREFIX SERVER:PORT COUNT SIZE".into());
    };
    let (ip, prefix) = cidr.split_once('/').ok_or("address needs a /prefix")?;
    let ip: std::net::Ipv4Addr = ip.parse()?;
    let mut config = StackConfig::new(ip, prefix.parse()?);
    let o = ip.octets();
    config.mac = tapstack::wire::MacAddr([0x02, 0x00, o[0], o[1], o[2], o[3]]);
    let stack = Stack::new(TapDevice::open(tap)?, config)?;
    let server: SocketAddrV4 = server.parse()?;
    let (count, size): (usize, usize) = (count.parse()?, size.parse()?);

    let mut conn = TcpStream::connect_timeout(&stack, server, Duration::from_secs(10))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let request: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut response = vec![0u8; size];
    let mut times = Vec::with_capacity(count);
    for _ in 0..count {
        let start = Instant::now();
        conn.write_all(&request)?;
        conn.read_exact(&mut response)?;
        times.push(start.elapsed());
        if response != request {
            return Err("the echo differs".into());
        }
    }
    times.sort();
    let at = |p: usize| times[(times.len() * p / 100).min(times.len() - 1)];
    println!(
        "{count} exchanges of {size} bytes: p50 {:?} p99 {:?} max {:?}",
        at(50),
        at(99),
        times[times.len() - 1]
    );
    println!("{}", stack.counters()?);
    Ok(())
}
