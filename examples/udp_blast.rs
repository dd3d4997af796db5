//! Bulk UDP from the stack to a kernel socket, three ways, for `scripts/bench-uso.sh`: each
//! send of SIZE bytes goes as one datagram the IP layer fragments (`frag`), as datagrams of SEG
//! bytes cut by one segmented send (`gso`: the kernel's USO on the tap), or as one `send_to`
//! per SEG bytes (`each`). A kernel socket in this process counts what arrives. Prints one line:
//! the rates sent and delivered, the loss, and the process's CPU time (every thread, user and
//! system, the kernel's work in their system calls included) per MiB delivered.
//!
//! ```sh
//! # as root, in a namespace with tap0 = 10.0.0.1/24
//! cargo run --release --example udp_blast -- tap0 10.0.0.2/24 10.0.0.1:9 gso 3
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapstack::phy::TapDevice;
use tapstack::{Stack, StackConfig, UdpSocket};

/// Bytes per send.
const SIZE: usize = 60_000;
/// Bytes per datagram in the `gso` and `each` modes: what a 1500-byte MTU leaves.
const SEG: usize = 1472;

/// The process's CPU time so far (user and system, every thread).
fn cpu() -> Duration {
    // SAFETY: getrusage fills the struct we own.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [tap, cidr, sink_addr, mode, secs] = args.as_slice() else {
        return Err("usage: udp_blast TAP A.B.C.D/PREFIX SINK_IP:PORT frag|gso|each SECS".into());
    };
    if !["frag", "gso", "each"].contains(&mode.as_str()) {
        return Err(format!("mode {mode}: frag, gso or each").into());
    }
    let secs = Duration::from_secs(secs.parse()?);
    let (ip, prefix) = cidr.split_once('/').ok_or("address needs a /prefix")?;
    let stack = Stack::new(
        TapDevice::open(tap)?,
        StackConfig::new(ip.parse()?, prefix.parse()?),
    )?;
    let sink = std::net::UdpSocket::bind(sink_addr.as_str())?;
    // A receive buffer of 16 MiB (past rmem_max: root), so that bursts are queued, not lost.
    let rcvbuf: libc::c_int = 16 << 20;
    // SAFETY: setsockopt reads the int we pass, on the socket's live descriptor.
    unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sink),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&rcvbuf as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    sink.set_read_timeout(Some(Duration::from_millis(300)))?;
    let done = Arc::new(AtomicBool::new(false));
    let counter = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            let mut bytes = 0u64;
            loop {
                match sink.recv(&mut buf) {
                    Ok(n) => bytes += n as u64,
                    Err(_) if done.load(Ordering::Relaxed) => return bytes,
                    Err(_) => {}
                }
            }
        })
    };
    let socket = UdpSocket::bind(&stack, ("0.0.0.0", 0))?;
    let data = vec![0x5au8; SIZE];
    // The kernel's address resolved first, outside the measurement.
    socket.send_to(&data[..1], sink_addr.as_str())?;
    std::thread::sleep(Duration::from_millis(100));
    let (cpu0, start) = (cpu(), Instant::now());
    let mut sent = 0u64;
    while start.elapsed() < secs {
        match mode.as_str() {
            "frag" => sent += socket.send_to(&data, sink_addr.as_str())? as u64,
            "gso" => sent += socket.send_segments_to(&data, SEG, sink_addr.as_str())? as u64,
            _ => {
                for piece in data.chunks(SEG) {
                    sent += socket.send_to(piece, sink_addr.as_str())? as u64;
                }
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let delivered = counter
        .join()
        .map_err(|_| "sink panicked")?
        .saturating_sub(1);
    let cpu_ms = (cpu() - cpu0).as_secs_f64() * 1e3;
    let mib = delivered as f64 / (1 << 20) as f64;
    println!(
        "mode={mode} sent_mbps={:.0} delivered_mbps={:.0} loss_pct={:.1} cpu_ms_per_mib={:.2}",
        sent as f64 / elapsed / 1e6,
        delivered as f64 / elapsed / 1e6,
        100.0 * (1.0 - delivered as f64 / sent.max(1) as f64),
        cpu_ms / mib.max(1e-9),
    );
    Ok(())
}
