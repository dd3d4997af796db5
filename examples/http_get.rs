//! A TCP client on a tap: fetches a URL path from an HTTP server (the kernel's, say) with
//! HTTP/1.0 and prints the response.
//!
//! ```sh
//! # as root, in a namespace with tap0 = 10.0.0.1/24 and a web server on 10.0.0.1:8000
//! # (python3 -m http.server 8000 --bind 10.0.0.1)
//! cargo run --release --example http_get -- tap0 10.0.0.2/24 10.0.0.1:8000 /
//! ```

use std::io::{Read, Write};
use std::time::Duration;
use tapstack::phy::TapDevice;
use tapstack::{Stack, StackConfig, TcpStream};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tap, cidr, server, path] = args.as_slice() else {
        return Err("usage: http_get TAP A.B.C.D/PREFIX SERVER:PORT PATH".into());
    };
    let (ip, prefix) = cidr.split_once('/').ok_or("address needs a /prefix")?;
    let stack = Stack::new(
        TapDevice::open(tap)?,
        StackConfig::new(ip.parse()?, prefix.parse()?),
    )?;
    let mut conn = TcpStream::connect_timeout(&stack, server.as_str(), Duration::from_secs(5))?;
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: {server}\r\n\r\n")?;
    let mut response = Vec::new();
    conn.read_to_end(&mut response)?;
    std::io::stdout().write_all(&response)?;
    Ok(())
}
