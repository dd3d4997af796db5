//! A blocking TCP echo server on a tap, one thread per connection: the smallest useful
//! program over tapstack's `std::net`-like API.
//!
//! ```sh
//! # as root, in a namespace with tap0 = 10.0.0.1/24 (scripts/tap-setup.sh makes one)
//! cargo run --release --example echo_server -- tap0 10.0.0.2/24 7
//! echo hello | nc -N 10.0.0.2 7
//! ```

use std::io::{Read, Write};
use tapstack::phy::TapDevice;
use tapstack::{Stack, StackConfig, TcpListener};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tap, cidr, port] = args.as_slice() else {
        return Err("usage: echo_server TAP A.B.C.D/PREFIX PORT".into());
    };
    let (ip, prefix) = cidr.split_once('/').ok_or("address needs a /prefix")?;
    let stack = Stack::new(
        TapDevice::open(tap)?,
        StackConfig::new(ip.parse()?, prefix.parse()?),
    )?;
    let listener = TcpListener::bind(&stack, ("0.0.0.0", port.parse::<u16>()?))?;
    println!("echo on {cidr} port {port}");
    for conn in listener.incoming() {
        let mut conn = conn?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 16 * 1024];
            // The peer's FIN ends the loop; an error ends the connection.
            while let Ok(n @ 1..) = conn.read(&mut buf) {
                if conn.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    }
    Ok(())
}
