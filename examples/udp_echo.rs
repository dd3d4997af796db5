//! A UDP echo server on a tap: every datagram goes back to its sender.
//!
//! ```sh
//! # as root, in a namespace with tap0 = 10.0.0.1/24
//! cargo run --release --example udp_echo -- tap0 10.0.0.2/24 7
//! echo hello | nc -u -w1 10.0.0.2 7
//! ```

use tapstack::phy::TapDevice;
use tapstack::{Stack, StackConfig, UdpSocket};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tap, cidr, port] = args.as_slice() else {
        return Err("usage: udp_echo TAP A.B.C.D/PREFIX PORT".into());
    };
    let (ip, prefix) = cidr.split_once('/').ok_or("address needs a /prefix")?;
    let stack = Stack::new(
        TapDevice::open(tap)?,
        StackConfig::new(ip.parse()?, prefix.parse()?),
    )?;
    let socket = UdpSocket::bind(&stack, ("0.0.0.0", port.parse::<u16>()?))?;
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = socket.recv_from(&mut buf)?;
        socket.send_to(&buf[..n], from)?;
    }
}
