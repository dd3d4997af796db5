//! Async SOCKS5 client: CONNECT and UDP ASSOCIATE (RFC 1928) with optional
//! username/password authentication (RFC 1929).
//!
//! Waits: the whole handshake (TCP connect to the server, method negotiation,
//! authentication, request and reply) is bounded by
//! [`Socks5Config::handshake_timeout`]. Nothing else has an internal timeout:
//! reads and writes on the returned stream, [`UdpAssociation::recv_from`],
//! [`UdpAssociation::send_to`] and [`UdpAssociation::closed`] wait as long as
//! the caller lets them (wrap them in `tokio::time::timeout` or `select!`).
//! All of them are cancel safe.
//!
//! Errors: replies from the server are never trusted; malformed or truncated
//! replies give an [`io::Error`] (kind `InvalidData` or `UnexpectedEof`),
//! never a panic.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

/// RFC 1928 §3: the protocol version, first byte of every SOCKS5 message.
const SOCKS_VERSION: u8 = 0x05;
/// RFC 1928 §3: METHOD "NO AUTHENTICATION REQUIRED".
const METHOD_NO_AUTH: u8 = 0x00;
/// RFC 1928 §3: METHOD "USERNAME/PASSWORD" (RFC 1929).
const METHOD_USER_PASS: u8 = 0x02;
/// RFC 1928 §3: METHOD "NO ACCEPTABLE METHODS".
const METHOD_NO_ACCEPTABLE: u8 = 0xFF;

/// RFC 1929 §2: version of the username/password sub-negotiation.
const USER_PASS_VERSION: u8 = 0x01;
/// RFC 1929 §2: STATUS meaning success (anything else is a failure).
const USER_PASS_SUCCESS: u8 = 0x00;
/// RFC 1929 §2: UNAME and PASSWD are 1 to 255 octets.
const USER_PASS_MIN_LEN: usize = 1;
/// RFC 1929 §2: UNAME and PASSWD are 1 to 255 octets.
const USER_PASS_MAX_LEN: usize = u8::MAX as usize;

/// RFC 1928 §4: CMD "CONNECT".
const CMD_CONNECT: u8 = 0x01;
/// RFC 1928 §4: CMD "UDP ASSOCIATE".
const CMD_UDP_ASSOCIATE: u8 = 0x03;
/// RFC 1928 §4 and §6: the reserved byte (RSV) of requests and replies.
const RSV: u8 = 0x00;

/// RFC 1928 §5: ATYP "IP V4 address".
const ATYP_IPV4: u8 = 0x01;
/// RFC 1928 §5: ATYP "DOMAINNAME" (one length octet, then the name).
const ATYP_DOMAIN: u8 = 0x03;
/// RFC 1928 §5: ATYP "IP V6 address".
const ATYP_IPV6: u8 = 0x04;
/// RFC 1928 §5: length of an IPv4 address.
const IPV4_LEN: usize = 4;
/// RFC 1928 §5: length of an IPv6 address.
const IPV6_LEN: usize = 16;
/// RFC 1928 §5: a domain name has at most 255 octets (one length octet).
const DOMAIN_MAX_LEN: usize = u8::MAX as usize;
/// RFC 1928 §4-§7: ports are two octets in network byte order.
const PORT_LEN: usize = 2;

/// RFC 1928 §6: REP "succeeded".
const REP_SUCCEEDED: u8 = 0x00;
/// RFC 1928 §6: REP "general SOCKS server failure".
const REP_GENERAL_FAILURE: u8 = 0x01;
/// RFC 1928 §6: REP "connection not allowed by ruleset".
const REP_NOT_ALLOWED: u8 = 0x02;
/// RFC 1928 §6: REP "Network unreachable".
const REP_NETWORK_UNREACHABLE: u8 = 0x03;
/// RFC 1928 §6: REP "Host unreachable".
const REP_HOST_UNREACHABLE: u8 = 0x04;
/// RFC 1928 §6: REP "Connection refused".
const REP_CONNECTION_REFUSED: u8 = 0x05;
/// RFC 1928 §6: REP "TTL expired".
const REP_TTL_EXPIRED: u8 = 0x06;
/// RFC 1928 §6: REP "Command not supported".
const REP_COMMAND_NOT_SUPPORTED: u8 = 0x07;
/// RFC 1928 §6: REP "Address type not supported".
const REP_ADDRESS_TYPE_NOT_SUPPORTED: u8 = 0x08;
/// RFC 1928 §6: a reply starts with VER, REP, RSV, ATYP.
const REPLY_HEAD_LEN: usize = 4;

/// RFC 1928 §7: FRAG value of a standalone (unfragmented) datagram.
const UDP_FRAG_NONE: u8 = 0x00;
/// RFC 1928 §7: the two reserved octets (RSV) that start a UDP header.
const UDP_RSV: [u8; 2] = [0x00, 0x00];
/// RFC 1928 §7: RSV (2), FRAG (1) and ATYP (1) precede DST.ADDR.
const UDP_HEAD_LEN: usize = 4;
/// RFC 1928 §7: the longest UDP request header (ATYP domain of 255 octets).
const UDP_HEADER_MAX_LEN: usize = UDP_HEAD_LEN + 1 + DOMAIN_MAX_LEN + PORT_LEN;
/// Largest UDP payload a datagram to or from the relay can carry.
const UDP_DATAGRAM_MAX_LEN: usize = u16::MAX as usize;
/// Size of the scratch buffer used to drain the control connection.
const CONTROL_DRAIN_LEN: usize = 64;

/// Where the SOCKS5 server is and how to log in (RFC 1928 §3, RFC 1929 §2).
#[derive(Clone, Debug)]
pub struct Socks5Config {
    /// Address of the SOCKS5 server's TCP port (RFC 1928 §3).
    pub server: SocketAddr,
    /// Username and password (RFC 1929 §2, each 1 to 255 bytes); `None` offers
    /// only "NO AUTHENTICATION REQUIRED". With `Some`, both methods are
    /// offered and the server picks (RFC 1928 §3).
    pub auth: Option<(String, String)>,
    /// Upper bound on the whole handshake: TCP connect to the server, method
    /// negotiation (RFC 1928 §3), authentication (RFC 1929 §2), request and
    /// reply (RFC 1928 §4, §6). On expiry the call fails with `TimedOut`.
    pub handshake_timeout: Duration,
}

/// Connects to `dst` through the server (CONNECT, RFC 1928 §4). `prepare` is called on the
/// socket before it connects to the server (the caller sets SO_MARK / SO_BINDTODEVICE there).
///
/// A failure reply (RFC 1928 §6) maps to the errno a direct connect would
/// give: REP 0x02 → `EACCES`, 0x03 → `ENETUNREACH`, 0x04 → `EHOSTUNREACH`,
/// 0x05 → `ECONNREFUSED`, 0x06 → `ETIMEDOUT` (all via
/// [`io::Error::from_raw_os_error`]); other codes give kind `Other` with a
/// message naming the code. A rejected login gives `PermissionDenied`.
/// Failing to reach the server itself keeps the error's kind but wraps it in a
/// message naming the server, so `raw_os_error()` is `None` there: a
/// `Some(ECONNREFUSED)` always means the destination refused.
pub async fn connect(
    cfg: &Socks5Config,
    dst: SocketAddr,
    prepare: &(dyn Fn(&TcpSocket) -> io::Result<()> + Sync),
) -> io::Result<TcpStream> {
    let (stream, _bound) = handshake(cfg, prepare, CMD_CONNECT, dst).await?;
    Ok(stream)
}

/// A UDP ASSOCIATE session (RFC 1928 §7): the TCP control connection is kept open for the
/// association's life.
///
/// Dropping it closes the control connection, which ends the association on
/// the server. All methods take `&self`, so one task may send while another
/// receives and a third awaits [`UdpAssociation::closed`].
pub struct UdpAssociation {
    /// The TCP connection the association was requested on (RFC 1928 §7).
    control: TcpStream,
    /// The local UDP socket that talks to the relay.
    udp: UdpSocket,
    /// The relay's address: BND.ADDR/BND.PORT of the reply (RFC 1928 §6).
    relay: SocketAddr,
    /// Reused receive buffer (header + payload); only locked in sync code.
    recv_buf: Mutex<Vec<u8>>,
}

impl std::fmt::Debug for UdpAssociation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpAssociation")
            .field("relay", &self.relay)
            .field("local", &self.udp.local_addr().ok())
            .field("control", &self.control)
            .finish_non_exhaustive()
    }
}

impl UdpAssociation {
    /// Opens an association (UDP ASSOCIATE, RFC 1928 §4 and §7).
    ///
    /// The request carries DST.ADDR/DST.PORT of all zeros ("not known yet",
    /// RFC 1928 §4), so it works behind NAT. If the reply's BND.ADDR is
    /// 0.0.0.0, :: or a domain name, the relay is taken to be the server's IP
    /// with BND.PORT. The UDP socket is bound to the wildcard address of the
    /// relay's family, port 0, and handed to `prepare_udp` before first use;
    /// `prepare_tcp` gets the control socket before it connects. The handshake
    /// is bounded and its errors mapped as in [`connect`].
    pub async fn open(
        cfg: &Socks5Config,
        prepare_tcp: &(dyn Fn(&TcpSocket) -> io::Result<()> + Sync),
        prepare_udp: &(dyn Fn(&std::net::UdpSocket) -> io::Result<()> + Sync),
    ) -> io::Result<UdpAssociation> {
        let unknown = SocketAddr::new(unspecified_like(cfg.server.ip()), 0);
        let (control, bound) = handshake(cfg, prepare_tcp, CMD_UDP_ASSOCIATE, unknown).await?;
        if bound.port == 0 {
            return Err(invalid_data(
                "SOCKS5 UDP ASSOCIATE reply gave port 0 for the relay (RFC 1928 §6)".to_owned(),
            ));
        }
        let relay_ip = match bound.ip {
            Some(ip) if !ip.is_unspecified() => ip,
            _ => cfg.server.ip(),
        };
        let relay = SocketAddr::new(relay_ip, bound.port);

        let std_udp = std::net::UdpSocket::bind(SocketAddr::new(unspecified_like(relay_ip), 0))?;
        prepare_udp(&std_udp)?;
        std_udp.set_nonblocking(true)?;
        let udp = UdpSocket::from_std(std_udp)?;
        Ok(UdpAssociation {
            control,
            udp,
            relay,
            recv_buf: Mutex::new(Vec::new()),
        })
    }

    /// Sends one datagram to dst through the relay (adds the RFC 1928 §7 header).
    ///
    /// Returns the number of payload bytes sent (the header is not counted).
    pub async fn send_to(&self, data: &[u8], dst: SocketAddr) -> io::Result<usize> {
        let mut datagram = Vec::with_capacity(UDP_HEADER_MAX_LEN + data.len());
        encode_udp_header(&mut datagram, dst);
        let header_len = datagram.len();
        datagram.extend_from_slice(data);
        let sent = self.udp.send_to(&datagram, self.relay).await?;
        Ok(sent.saturating_sub(header_len))
    }

    /// Receives one datagram from the relay, strips the header: (payload length copied into buf, the remote it came from). Drops (and keeps waiting past) datagrams from any address other than the relay, and fragmented ones (FRAG != 0).
    ///
    /// Also dropped (RFC 1928 §7): datagrams with a truncated header or whose
    /// DST.ADDR is a domain name or of unknown type. A payload longer than
    /// `buf` is truncated to `buf.len()`, as with a plain UDP socket.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        loop {
            self.udp.readable().await?;
            if let Some(got) = self.try_recv_one(buf)? {
                return Ok(got);
            }
        }
    }

    /// Resolves when the server closes the control connection (the association is over).
    ///
    /// `Ok(())` on an orderly close, `Err` if the connection failed (e.g.
    /// reset); either way the association is over (RFC 1928 §7). Bytes the
    /// server sends on the control connection (RFC 1928 defines none) are
    /// discarded.
    pub async fn closed(&self) -> io::Result<()> {
        let mut sink = [0u8; CONTROL_DRAIN_LEN];
        loop {
            self.control.readable().await?;
            match self.control.try_read(&mut sink) {
                Ok(0) => return Ok(()),
                // Stray bytes (RFC 1928 defines none) or a spurious wake-up.
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The relay address datagrams go to (BND.ADDR/BND.PORT, RFC 1928 §6-§7).
    #[cfg(test)]
    pub fn relay_addr(&self) -> SocketAddr {
        self.relay
    }

    /// The local address of the UDP socket that talks to the relay (RFC 1928 §7).
    #[cfg(test)]
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// One non-blocking receive; `Ok(None)` if nothing usable was read.
    fn try_recv_one(&self, buf: &mut [u8]) -> io::Result<Option<(usize, SocketAddr)>> {
        let mut scratch = self.recv_buf.lock().unwrap_or_else(PoisonError::into_inner);
        let want = buf
            .len()
            .min(UDP_DATAGRAM_MAX_LEN)
            .saturating_add(UDP_HEADER_MAX_LEN);
        if scratch.len() < want {
            scratch.resize(want, 0);
        }
        let (n, from) = match self.udp.try_recv_from(&mut scratch) {
            Ok(got) => got,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        if from != self.relay {
            return Ok(None);
        }
        let Some(datagram) = scratch.get(..n) else {
            return Ok(None);
        };
        let Some((header_len, src)) = decode_udp_header(datagram) else {
            return Ok(None);
        };
        let payload = datagram.get(header_len..).unwrap_or_default();
        let len = payload.len().min(buf.len());
        if let (Some(dst), Some(src_bytes)) = (buf.get_mut(..len), payload.get(..len)) {
            dst.copy_from_slice(src_bytes);
        }
        Ok(Some((len, src)))
    }
}

/// BND.ADDR / BND.PORT of a reply (RFC 1928 §6); `ip` is `None` for a domain name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BoundAddr {
    ip: Option<IpAddr>,
    port: u16,
}

/// Runs the whole client side of RFC 1928 §3-§6 under the handshake timeout.
async fn handshake(
    cfg: &Socks5Config,
    prepare: &(dyn Fn(&TcpSocket) -> io::Result<()> + Sync),
    cmd: u8,
    dst: SocketAddr,
) -> io::Result<(TcpStream, BoundAddr)> {
    check_auth(cfg.auth.as_ref())?;
    let server = cfg.server;
    let socket = if server.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    prepare(&socket)?;
    let steps = async move {
        let mut stream = socket.connect(server).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("connecting to SOCKS5 server {server}: {e}"),
            )
        })?;
        let reply = async {
            negotiate(&mut stream, cfg.auth.as_ref()).await?;
            let mut request = Vec::with_capacity(UDP_HEADER_MAX_LEN);
            request.extend_from_slice(&[SOCKS_VERSION, cmd, RSV]);
            put_addr(&mut request, dst);
            stream.write_all(&request).await?;
            read_reply(&mut stream).await
        }
        .await
        .map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(
                    e.kind(),
                    format!("SOCKS5 server {server} closed the connection mid-handshake"),
                )
            } else {
                e
            }
        })?;
        Ok((stream, reply))
    };
    match tokio::time::timeout(cfg.handshake_timeout, steps).await {
        Ok(result) => result,
        Err(_elapsed) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "SOCKS5 handshake with {server} did not finish within {:?}",
                cfg.handshake_timeout
            ),
        )),
    }
}

/// Rejects credentials RFC 1929 §2 cannot carry, before any connection.
fn check_auth(auth: Option<&(String, String)>) -> io::Result<()> {
    let Some((user, pass)) = auth else {
        return Ok(());
    };
    for (what, value) in [("username", user), ("password", pass)] {
        if !(USER_PASS_MIN_LEN..=USER_PASS_MAX_LEN).contains(&value.len()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "SOCKS5 {what} must be {USER_PASS_MIN_LEN} to {USER_PASS_MAX_LEN} bytes \
                     (RFC 1929 §2), got {}",
                    value.len()
                ),
            ));
        }
    }
    Ok(())
}

/// Method negotiation (RFC 1928 §3), then RFC 1929 login if the server asks.
async fn negotiate<S>(stream: &mut S, auth: Option<&(String, String)>) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let methods: &[u8] = match auth {
        None => &[METHOD_NO_AUTH],
        Some(_) => &[METHOD_NO_AUTH, METHOD_USER_PASS],
    };
    let mut greeting = vec![SOCKS_VERSION, len_u8(methods.len())?];
    greeting.extend_from_slice(methods);
    stream.write_all(&greeting).await?;

    let mut choice = [0u8; 2];
    stream.read_exact(&mut choice).await?;
    let [version, method] = choice;
    if version != SOCKS_VERSION {
        return Err(invalid_data(format!(
            "SOCKS5 method reply has version 0x{version:02x}, expected 0x{SOCKS_VERSION:02x} \
             (RFC 1928 §3)"
        )));
    }
    match (method, auth) {
        (METHOD_NO_AUTH, _) => Ok(()),
        (METHOD_USER_PASS, Some((user, pass))) => login(stream, user, pass).await,
        (METHOD_NO_ACCEPTABLE, None) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "SOCKS5 server requires authentication, but no username/password is configured \
             (RFC 1928 §3: no acceptable methods)",
        )),
        (METHOD_NO_ACCEPTABLE, Some(_)) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "SOCKS5 server accepts neither no-authentication nor username/password \
             (RFC 1928 §3: no acceptable methods)",
        )),
        (other, _) => Err(invalid_data(format!(
            "SOCKS5 server chose method 0x{other:02x}, which was not offered (RFC 1928 §3)"
        ))),
    }
}

/// Username/password sub-negotiation (RFC 1929 §2).
///
/// Only STATUS is checked: some servers put 0x05 instead of 0x01 in the
/// reply's VER octet, and the answer is unambiguous either way.
async fn login<S>(stream: &mut S, user: &str, pass: &str) -> io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut request = Vec::with_capacity(3 + user.len() + pass.len());
    request.push(USER_PASS_VERSION);
    request.push(len_u8(user.len())?);
    request.extend_from_slice(user.as_bytes());
    request.push(len_u8(pass.len())?);
    request.extend_from_slice(pass.as_bytes());
    stream.write_all(&request).await?;

    let mut reply = [0u8; 2];
    stream.read_exact(&mut reply).await?;
    let [_version, status] = reply;
    if status == USER_PASS_SUCCESS {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "SOCKS5 server rejected the username/password \
                 (RFC 1929 §2 STATUS 0x{status:02x})"
            ),
        ))
    }
}

/// Reads a reply (RFC 1928 §6); a REP other than success becomes an error.
async fn read_reply<S>(stream: &mut S) -> io::Result<BoundAddr>
where
    S: AsyncRead + Unpin,
{
    let mut head = [0u8; REPLY_HEAD_LEN];
    stream.read_exact(&mut head).await?;
    let [version, rep, _rsv, atyp] = head;
    if version != SOCKS_VERSION {
        return Err(invalid_data(format!(
            "SOCKS5 reply has version 0x{version:02x}, expected 0x{SOCKS_VERSION:02x} \
             (RFC 1928 §6)"
        )));
    }
    if rep != REP_SUCCEEDED {
        // The rest of a failure reply is not needed and may be missing.
        return Err(reply_error(rep));
    }
    read_addr(stream, atyp).await
}

/// Reads BND.ADDR and BND.PORT of type `atyp` (RFC 1928 §5, §6).
async fn read_addr<S>(stream: &mut S, atyp: u8) -> io::Result<BoundAddr>
where
    S: AsyncRead + Unpin,
{
    let ip = match atyp {
        ATYP_IPV4 => {
            let mut octets = [0u8; IPV4_LEN];
            stream.read_exact(&mut octets).await?;
            Some(IpAddr::from(octets))
        }
        ATYP_IPV6 => {
            let mut octets = [0u8; IPV6_LEN];
            stream.read_exact(&mut octets).await?;
            Some(IpAddr::from(octets))
        }
        ATYP_DOMAIN => {
            let mut len = [0u8; 1];
            stream.read_exact(&mut len).await?;
            let mut name = [0u8; DOMAIN_MAX_LEN];
            let name = name.get_mut(..usize::from(len[0])).unwrap_or_default();
            stream.read_exact(name).await?;
            None
        }
        other => {
            return Err(invalid_data(format!(
                "SOCKS5 reply has unknown address type 0x{other:02x} (RFC 1928 §5)"
            )));
        }
    };
    let mut port = [0u8; PORT_LEN];
    stream.read_exact(&mut port).await?;
    Ok(BoundAddr {
        ip,
        port: u16::from_be_bytes(port),
    })
}

/// Maps a failure REP (RFC 1928 §6) to the error a direct connect would give.
fn reply_error(rep: u8) -> io::Error {
    match rep {
        REP_NOT_ALLOWED => io::Error::from_raw_os_error(libc::EACCES),
        REP_NETWORK_UNREACHABLE => io::Error::from_raw_os_error(libc::ENETUNREACH),
        REP_HOST_UNREACHABLE => io::Error::from_raw_os_error(libc::EHOSTUNREACH),
        REP_CONNECTION_REFUSED => io::Error::from_raw_os_error(libc::ECONNREFUSED),
        REP_TTL_EXPIRED => io::Error::from_raw_os_error(libc::ETIMEDOUT),
        other => io::Error::other(format!(
            "SOCKS5 server replied REP 0x{other:02x} ({}) (RFC 1928 §6)",
            reply_name(other)
        )),
    }
}

/// The RFC 1928 §6 name of a REP code.
fn reply_name(rep: u8) -> &'static str {
    match rep {
        REP_SUCCEEDED => "succeeded",
        REP_GENERAL_FAILURE => "general SOCKS server failure",
        REP_NOT_ALLOWED => "connection not allowed by ruleset",
        REP_NETWORK_UNREACHABLE => "network unreachable",
        REP_HOST_UNREACHABLE => "host unreachable",
        REP_CONNECTION_REFUSED => "connection refused",
        REP_TTL_EXPIRED => "TTL expired",
        REP_COMMAND_NOT_SUPPORTED => "command not supported",
        REP_ADDRESS_TYPE_NOT_SUPPORTED => "address type not supported",
        _ => "unassigned",
    }
}

/// Appends ATYP, DST.ADDR and DST.PORT for an IP address (RFC 1928 §4, §5).
fn put_addr(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.push(ATYP_IPV4);
            out.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            out.push(ATYP_IPV6);
            out.extend_from_slice(&ip.octets());
        }
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Appends the UDP request header for `dst` (RFC 1928 §7): RSV, FRAG, ATYP,
/// DST.ADDR, DST.PORT.
fn encode_udp_header(out: &mut Vec<u8>, dst: SocketAddr) {
    out.extend_from_slice(&UDP_RSV);
    out.push(UDP_FRAG_NONE);
    put_addr(out, dst);
}

/// Parses the UDP header at the start of `datagram` (RFC 1928 §7): the
/// header's length and the address it names. `None` for anything to drop:
/// truncated, fragmented (FRAG != 0), a domain name or an unknown ATYP.
fn decode_udp_header(datagram: &[u8]) -> Option<(usize, SocketAddr)> {
    let (&[_rsv_hi, _rsv_lo, frag, atyp], rest) = datagram.split_first_chunk::<UDP_HEAD_LEN>()?;
    if frag != UDP_FRAG_NONE {
        return None;
    }
    let (ip, rest) = match atyp {
        ATYP_IPV4 => {
            let (octets, rest) = rest.split_first_chunk::<IPV4_LEN>()?;
            (IpAddr::from(*octets), rest)
        }
        ATYP_IPV6 => {
            let (octets, rest) = rest.split_first_chunk::<IPV6_LEN>()?;
            (IpAddr::from(*octets), rest)
        }
        _ => return None,
    };
    let (port, rest) = rest.split_first_chunk::<PORT_LEN>()?;
    let header_len = datagram.len() - rest.len();
    Some((header_len, SocketAddr::new(ip, u16::from_be_bytes(*port))))
}

/// The wildcard address of `ip`'s family.
fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// A length as one octet (RFC 1928 §3 NMETHODS, RFC 1929 §2 ULEN/PLEN).
fn len_u8(len: usize) -> io::Result<u8> {
    u8::try_from(len).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("SOCKS5 field of {len} bytes does not fit its one-octet length"),
        )
    })
}

fn invalid_data(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use tokio::net::TcpListener;
    use tokio::task::JoinHandle;

    const TEST_TIMEOUT: Duration = Duration::from_secs(5);

    fn no_prepare(_: &TcpSocket) -> io::Result<()> {
        Ok(())
    }

    fn no_prepare_udp(_: &std::net::UdpSocket) -> io::Result<()> {
        Ok(())
    }

    fn config(server: SocketAddr, auth: Option<(&str, &str)>) -> Socks5Config {
        Socks5Config {
            server,
            auth: auth.map(|(u, p)| (u.to_owned(), p.to_owned())),
            handshake_timeout: TEST_TIMEOUT,
        }
    }

    /// A one-connection fake SOCKS5 server on 127.0.0.1 running `script`.
    async fn fake_server<F, Fut>(script: F) -> (SocketAddr, JoinHandle<io::Result<()>>)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = io::Result<()>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let (stream, _) = listener.accept().await?;
            script(stream).await
        });
        (addr, task)
    }

    async fn expect(s: &mut TcpStream, want: &[u8]) -> io::Result<()> {
        let mut got = vec![0u8; want.len()];
        s.read_exact(&mut got).await?;
        assert_eq!(got, want, "fake server received unexpected bytes");
        Ok(())
    }

    async fn echo(mut s: TcpStream) -> io::Result<()> {
        let mut buf = [0u8; 1024];
        loop {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                return Ok(());
            }
            s.write_all(&buf[..n]).await?;
        }
    }

    fn request(cmd: u8, dst: SocketAddr) -> Vec<u8> {
        let mut v = vec![SOCKS_VERSION, cmd, RSV];
        put_addr(&mut v, dst);
        v
    }

    const OK_REPLY_V4: [u8; 10] = [5, 0, 0, 1, 127, 0, 0, 1, 0x04, 0x38];

    async fn roundtrip(stream: &mut TcpStream, msg: &[u8]) {
        stream.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        stream.read_exact(&mut back).await.unwrap();
        assert_eq!(back, msg);
    }

    #[tokio::test]
    async fn connect_no_auth_echo_with_domain_bnd() {
        let dst: SocketAddr = "127.0.0.2:8080".parse().unwrap();
        let (server, task) = fake_server(move |mut s| async move {
            expect(&mut s, &[5, 1, 0]).await?;
            s.write_all(&[5, 0]).await?;
            expect(&mut s, &[5, 1, 0, 1, 127, 0, 0, 2, 0x1f, 0x90]).await?;
            // Success with a domain-name BND.ADDR that must be skipped exactly.
            let mut reply = vec![5, 0, 0, 3, 13];
            reply.extend_from_slice(b"proxy.example");
            reply.extend_from_slice(&[0x04, 0x38]);
            s.write_all(&reply).await?;
            echo(s).await
        })
        .await;
        let prepared = Arc::new(AtomicBool::new(false));
        let flag = prepared.clone();
        let prepare = move |_: &TcpSocket| {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        };
        let mut stream = connect(&config(server, None), dst, &prepare).await.unwrap();
        assert!(prepared.load(Ordering::SeqCst));
        roundtrip(&mut stream, b"ping through socks").await;
        drop(stream);
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn connect_ipv6_destination_and_bnd() {
        let dst: SocketAddr = "[2001:db8::1]:443".parse().unwrap();
        let (server, task) = fake_server(move |mut s| async move {
            expect(&mut s, &[5, 1, 0]).await?;
            s.write_all(&[5, 0]).await?;
            expect(&mut s, &request(CMD_CONNECT, dst)).await?;
            assert_eq!(request(CMD_CONNECT, dst)[3], 4);
            let mut reply = vec![5, 0, 0, 4];
            reply.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
            reply.extend_from_slice(&[0, 80]);
            s.write_all(&reply).await?;
            echo(s).await
        })
        .await;
        let mut stream = connect(&config(server, None), dst, &no_prepare)
            .await
            .unwrap();
        roundtrip(&mut stream, b"v6").await;
        drop(stream);
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn connect_user_pass_success() {
        let dst: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let (server, task) = fake_server(move |mut s| async move {
            expect(&mut s, &[5, 2, 0, 2]).await?;
            s.write_all(&[5, 2]).await?;
            expect(&mut s, b"\x01\x04user\x06secret").await?;
            s.write_all(&[1, 0]).await?;
            expect(&mut s, &request(CMD_CONNECT, dst)).await?;
            s.write_all(&OK_REPLY_V4).await?;
            echo(s).await
        })
        .await;
        let cfg = config(server, Some(("user", "secret")));
        let mut stream = connect(&cfg, dst, &no_prepare).await.unwrap();
        roundtrip(&mut stream, b"authenticated").await;
        drop(stream);
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn connect_user_pass_failure() {
        let (server, task) = fake_server(move |mut s| async move {
            expect(&mut s, &[5, 2, 0, 2]).await?;
            s.write_all(&[5, 2]).await?;
            expect(&mut s, b"\x01\x04user\x05wrong").await?;
            s.write_all(&[1, 1]).await?;
            Ok(())
        })
        .await;
        let cfg = config(server, Some(("user", "wrong")));
        let err = connect(&cfg, "127.0.0.1:9".parse().unwrap(), &no_prepare)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert!(err.to_string().contains("username/password"), "{err}");
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn no_acceptable_method_is_permission_denied() {
        let (server, _task) = fake_server(move |mut s| async move {
            expect(&mut s, &[5, 1, 0]).await?;
            s.write_all(&[5, 0xff]).await?;
            Ok(())
        })
        .await;
        let err = connect(
            &config(server, None),
            "127.0.0.1:9".parse().unwrap(),
            &no_prepare,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        assert!(err.to_string().contains("requires authentication"), "{err}");
    }

    #[tokio::test]
    async fn bad_credentials_rejected_before_connecting() {
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let long = "x".repeat(256);
        for (u, p) in [
            ("", "p"),
            ("u", ""),
            (long.as_str(), "p"),
            ("u", long.as_str()),
        ] {
            let err = connect(&config(server, Some((u, p))), server, &no_prepare)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        }
    }

    #[tokio::test]
    async fn reply_codes_map_to_errno() {
        let table: [(u8, Option<i32>); 10] = [
            (REP_GENERAL_FAILURE, None),
            (REP_NOT_ALLOWED, Some(libc::EACCES)),
            (REP_NETWORK_UNREACHABLE, Some(libc::ENETUNREACH)),
            (REP_HOST_UNREACHABLE, Some(libc::EHOSTUNREACH)),
            (REP_CONNECTION_REFUSED, Some(libc::ECONNREFUSED)),
            (REP_TTL_EXPIRED, Some(libc::ETIMEDOUT)),
            (REP_COMMAND_NOT_SUPPORTED, None),
            (REP_ADDRESS_TYPE_NOT_SUPPORTED, None),
            (0x09, None),
            (0xff, None),
        ];
        for (rep, errno) in table {
            let (server, _task) = fake_server(move |mut s| async move {
                expect(&mut s, &[5, 1, 0]).await?;
                s.write_all(&[5, 0]).await?;
                let mut req = [0u8; 10];
                s.read_exact(&mut req).await?;
                // Only the reply head: the client must not need BND for errors.
                s.write_all(&[5, rep, 0, 1]).await?;
                Ok(())
            })
            .await;
            let err = connect(
                &config(server, None),
                "127.0.0.1:9".parse().unwrap(),
                &no_prepare,
            )
            .await
            .unwrap_err();
            match errno {
                Some(code) => assert_eq!(err.raw_os_error(), Some(code), "REP {rep:#x}: {err}"),
                None => {
                    assert_eq!(err.kind(), io::ErrorKind::Other, "REP {rep:#x}: {err}");
                    assert!(err.to_string().contains(&format!("0x{rep:02x}")), "{err}");
                }
            }
        }
        let refused = reply_error(REP_CONNECTION_REFUSED);
        assert_eq!(refused.kind(), io::ErrorKind::ConnectionRefused);
    }

    #[tokio::test]
    async fn malformed_replies_are_errors() {
        use io::ErrorKind::{InvalidData, UnexpectedEof};
        // (method reply, request reply, expected kind)
        let cases: Vec<(Vec<u8>, Vec<u8>, io::ErrorKind)> = vec![
            (vec![], vec![], UnexpectedEof),
            (vec![5], vec![], UnexpectedEof),
            (vec![4, 0], vec![], InvalidData),
            (vec![5, 0x80], vec![], InvalidData),
            (vec![5, 2], vec![], InvalidData), // user/pass chosen but not offered
            (vec![5, 0], vec![], UnexpectedEof),
            (vec![5, 0], vec![5, 0], UnexpectedEof),
            (vec![5, 0], vec![5, 0, 0, 1, 127, 0], UnexpectedEof),
            (vec![5, 0], vec![5, 0, 0, 1, 127, 0, 0, 1, 4], UnexpectedEof),
            (vec![5, 0], vec![5, 0, 0, 4, 0, 0, 0, 0], UnexpectedEof),
            (vec![5, 0], vec![5, 0, 0, 3, 10, b'a', b'b'], UnexpectedEof),
            (vec![5, 0], vec![5, 0, 0, 3, 0], UnexpectedEof),
            (vec![5, 0], vec![5, 0, 0, 9, 0, 0], InvalidData),
            (vec![5, 0], vec![4, 0, 0, 1, 0, 0, 0, 0, 0, 0], InvalidData),
        ];
        for (method_reply, reply, kind) in cases {
            let (mr, rp) = (method_reply.clone(), reply.clone());
            let (server, _task) = fake_server(move |mut s| async move {
                let mut greeting = [0u8; 3];
                s.read_exact(&mut greeting).await?;
                s.write_all(&mr).await?;
                if mr.len() == 2 {
                    let mut req = [0u8; 10];
                    s.read_exact(&mut req).await?;
                    s.write_all(&rp).await?;
                }
                Ok(())
            })
            .await;
            let err = connect(
                &config(server, None),
                "127.0.0.1:9".parse().unwrap(),
                &no_prepare,
            )
            .await
            .unwrap_err();
            assert_eq!(err.kind(), kind, "{method_reply:?} {reply:?}: {err}");
        }
    }

    #[tokio::test]
    async fn silent_server_hits_handshake_timeout() {
        let (server, _task) = fake_server(move |mut s| async move {
            let mut sink = [0u8; 64];
            while s.read(&mut sink).await? > 0 {}
            Ok(())
        })
        .await;
        let mut cfg = config(server, None);
        cfg.handshake_timeout = Duration::from_millis(200);
        let started = std::time::Instant::now();
        let err = connect(&cfg, "127.0.0.1:9".parse().unwrap(), &no_prepare)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert_eq!(err.raw_os_error(), None);
        assert!(started.elapsed() < TEST_TIMEOUT);
    }

    #[tokio::test]
    async fn unreachable_server_keeps_kind_but_names_server() {
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let err = connect(
            &config(closed, None),
            "127.0.0.1:9".parse().unwrap(),
            &no_prepare,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
        assert_eq!(err.raw_os_error(), None, "{err}");
        assert!(err.to_string().contains("SOCKS5 server"), "{err}");
    }

    #[tokio::test]
    async fn prepare_error_is_returned() {
        let prepare = |_: &TcpSocket| Err(io::Error::other("prepare says no"));
        let err = connect(
            &config("127.0.0.1:9".parse().unwrap(), None),
            "127.0.0.1:9".parse().unwrap(),
            &prepare,
        )
        .await
        .unwrap_err();
        assert_eq!(err.to_string(), "prepare says no");
    }

    #[test]
    fn udp_header_round_trip() {
        for dst in ["127.0.0.1:53", "[2001:db8::7]:5353", "0.0.0.0:0"] {
            let dst: SocketAddr = dst.parse().unwrap();
            let mut datagram = Vec::new();
            encode_udp_header(&mut datagram, dst);
            let header_len = datagram.len();
            let want_len = if dst.is_ipv4() { 10 } else { 22 };
            assert_eq!(header_len, want_len);
            assert_eq!(&datagram[..3], &[0, 0, 0]);
            datagram.extend_from_slice(b"payload");
            assert_eq!(decode_udp_header(&datagram), Some((header_len, dst)));
            // Every truncation of the header is rejected, never a panic.
            for cut in 0..header_len {
                assert_eq!(decode_udp_header(&datagram[..cut]), None, "cut {cut}");
            }
            // A header alone (empty payload) is fine.
            assert_eq!(
                decode_udp_header(&datagram[..header_len]),
                Some((header_len, dst))
            );
            let mut fragmented = datagram.clone();
            fragmented[2] = 1;
            assert_eq!(decode_udp_header(&fragmented), None);
            let mut unknown = datagram.clone();
            unknown[3] = 9;
            assert_eq!(decode_udp_header(&unknown), None);
        }
        let mut domain = vec![0, 0, 0, ATYP_DOMAIN, 3];
        domain.extend_from_slice(b"abc\x00\x35data");
        assert_eq!(decode_udp_header(&domain), None);
    }

    /// Fake server with a UDP relay: BND 0.0.0.0 (so the client must use the
    /// server's IP), a stray datagram from another socket and a fragmented one
    /// that the client must drop, then an echo, then the control closes.
    #[tokio::test]
    async fn udp_associate_with_fake_relay() {
        let dst: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let relay_port = relay.local_addr().unwrap().port();
        let (server, task) = fake_server(move |mut s| async move {
            expect(&mut s, &[5, 1, 0]).await?;
            s.write_all(&[5, 0]).await?;
            expect(&mut s, &[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            let mut reply = vec![5, 0, 0, 1, 0, 0, 0, 0];
            reply.extend_from_slice(&relay_port.to_be_bytes());
            s.write_all(&reply).await?;

            let mut buf = [0u8; 2048];
            let (n, client) = relay.recv_from(&mut buf).await?;
            let (header_len, to) = decode_udp_header(&buf[..n]).expect("client header");
            assert_eq!(to, dst);
            assert_eq!(&buf[header_len..n], b"question");

            let stranger = UdpSocket::bind("127.0.0.1:0").await?;
            stranger.send_to(&buf[..n], client).await?;
            let mut fragmented = buf[..n].to_vec();
            fragmented[2] = 1;
            relay.send_to(&fragmented, client).await?;
            relay.send_to(&[0, 0, 0, 1, 127], client).await?; // truncated
            let mut answer = Vec::new();
            encode_udp_header(&mut answer, dst);
            answer.extend_from_slice(b"answer");
            relay.send_to(&answer, client).await?;

            // Wait for the client's go-ahead, then end the association.
            let _ = relay.recv_from(&mut buf).await?;
            drop(s);
            Ok(())
        })
        .await;

        let prepared = Arc::new(AtomicBool::new(false));
        let flag = prepared.clone();
        let prepare_udp = move |_: &std::net::UdpSocket| {
            flag.store(true, Ordering::SeqCst);
            Ok(())
        };
        let assoc = UdpAssociation::open(&config(server, None), &no_prepare, &prepare_udp)
            .await
            .unwrap();
        assert!(prepared.load(Ordering::SeqCst));
        assert_eq!(assoc.relay_addr(), SocketAddr::new(server.ip(), relay_port));
        assert_eq!(assoc.send_to(b"question", dst).await.unwrap(), 8);
        let mut buf = [0u8; 64];
        let (n, from) = tokio::time::timeout(TEST_TIMEOUT, assoc.recv_from(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((&buf[..n], from), (&b"answer"[..], dst));

        // Tell the fake server to close the control connection.
        assoc.send_to(b"done", dst).await.unwrap();
        tokio::time::timeout(TEST_TIMEOUT, assoc.closed())
            .await
            .expect("closed() must resolve once the server closes")
            .unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn udp_associate_domain_bnd_uses_server_ip_and_errors_map() {
        let (server, _task) = fake_server(move |mut s| async move {
            expect(&mut s, &[5, 1, 0]).await?;
            s.write_all(&[5, 0]).await?;
            expect(&mut s, &[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            s.write_all(&[5, 0, 0, 3, 4, b'r', b'e', b'l', b'y', 0x30, 0x39])
                .await?;
            let mut sink = [0u8; 16];
            while s.read(&mut sink).await? > 0 {}
            Ok(())
        })
        .await;
        let assoc = UdpAssociation::open(&config(server, None), &no_prepare, &no_prepare_udp)
            .await
            .unwrap();
        assert_eq!(assoc.relay_addr(), SocketAddr::new(server.ip(), 12345));
        assert!(format!("{assoc:?}").contains("12345"));

        let (server, _task) = fake_server(move |mut s| async move {
            expect(&mut s, &[5, 1, 0]).await?;
            s.write_all(&[5, 0]).await?;
            expect(&mut s, &[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            s.write_all(&[5, REP_NOT_ALLOWED, 0, 1, 0, 0, 0, 0, 0, 0])
                .await?;
            Ok(())
        })
        .await;
        let err = UdpAssociation::open(&config(server, None), &no_prepare, &no_prepare_udp)
            .await
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EACCES));
    }

    #[tokio::test]
    async fn recv_from_truncates_to_buf() {
        let relay = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let relay_addr = relay.local_addr().unwrap();
        let (server, _task) = fake_server(move |mut s| async move {
            expect(&mut s, &[5, 1, 0]).await?;
            s.write_all(&[5, 0]).await?;
            expect(&mut s, &[5, 3, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            let mut reply = vec![5, 0, 0, 1, 127, 0, 0, 1];
            reply.extend_from_slice(&relay_addr.port().to_be_bytes());
            s.write_all(&reply).await?;
            let mut sink = [0u8; 16];
            while s.read(&mut sink).await? > 0 {}
            Ok(())
        })
        .await;
        let assoc = UdpAssociation::open(&config(server, None), &no_prepare, &no_prepare_udp)
            .await
            .unwrap();
        let src: SocketAddr = "[2001:db8::1]:7".parse().unwrap();
        let mut datagram = Vec::new();
        encode_udp_header(&mut datagram, src);
        datagram.extend_from_slice(b"0123456789");
        relay
            .send_to(&datagram, assoc.local_addr().unwrap())
            .await
            .unwrap();
        let mut small = [0u8; 4];
        let (n, from) = tokio::time::timeout(TEST_TIMEOUT, assoc.recv_from(&mut small))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((&small[..n], from), (&b"0123"[..], src));
    }

    /// Against a real server, e.g. danted on 127.0.0.1:11080. Run with
    /// `SOCKS5_TEST_SERVER=127.0.0.1:11080 [SOCKS5_TEST_USER=.. SOCKS5_TEST_PASS=..]
    /// [SOCKS5_TEST_IPV6=1] [SOCKS5_TEST_BLOCKED_DST=0.0.0.0:9] cargo test -- --ignored
    /// real_server` (the server must allow CONNECT and UDP to 127.0.0.0/8, to ::1
    /// with `SOCKS5_TEST_IPV6`, and block `SOCKS5_TEST_BLOCKED_DST`).
    #[tokio::test]
    #[ignore = "needs a running SOCKS5 server (danted) on loopback"]
    async fn real_server() {
        let server: SocketAddr = std::env::var("SOCKS5_TEST_SERVER")
            .unwrap_or_else(|_| "127.0.0.1:11080".to_owned())
            .parse()
            .unwrap();
        let auth = match (
            std::env::var("SOCKS5_TEST_USER"),
            std::env::var("SOCKS5_TEST_PASS"),
        ) {
            (Ok(u), Ok(p)) => Some((u, p)),
            _ => None,
        };
        let cfg = Socks5Config {
            server,
            auth: auth.clone(),
            handshake_timeout: TEST_TIMEOUT,
        };

        // CONNECT to a local TCP echo server.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let echo_addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                tokio::spawn(echo(s));
            }
        });
        let mut stream = connect(&cfg, echo_addr, &no_prepare).await.unwrap();
        tokio::time::timeout(TEST_TIMEOUT, roundtrip(&mut stream, b"hello via danted"))
            .await
            .unwrap();
        drop(stream);
        eprintln!("real_server: CONNECT echo ok via {server}");

        // CONNECT to a closed local port.
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            l.local_addr().unwrap()
        };
        let err = connect(&cfg, closed, &no_prepare).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ECONNREFUSED), "{err}");
        eprintln!("real_server: CONNECT to closed port -> {err}");

        // UDP ASSOCIATE to a local UDP echo socket.
        let udp_echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let udp_echo_addr = udp_echo.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            while let Ok((n, from)) = udp_echo.recv_from(&mut buf).await {
                let _ = udp_echo.send_to(&buf[..n], from).await;
            }
        });
        let assoc = UdpAssociation::open(&cfg, &no_prepare, &no_prepare_udp)
            .await
            .unwrap();
        eprintln!("real_server: UDP relay at {}", assoc.relay_addr());
        assoc.send_to(b"datagram", udp_echo_addr).await.unwrap();
        let mut buf = [0u8; 2048];
        let (n, from) = tokio::time::timeout(TEST_TIMEOUT, assoc.recv_from(&mut buf))
            .await
            .expect("no UDP echo through the relay")
            .unwrap();
        assert_eq!((&buf[..n], from), (&b"datagram"[..], udp_echo_addr));
        eprintln!("real_server: UDP ASSOCIATE echo ok from {from}");

        // Optionally, a destination the server's rules block gives EACCES (REP 0x02).
        if let Ok(blocked) = std::env::var("SOCKS5_TEST_BLOCKED_DST") {
            let blocked: SocketAddr = blocked.parse().unwrap();
            let err = connect(&cfg, blocked, &no_prepare).await.unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EACCES), "{err}");
            eprintln!("real_server: CONNECT to blocked {blocked} -> {err}");
        }

        // Optionally the same over IPv6 loopback destinations (ATYP 4).
        if std::env::var_os("SOCKS5_TEST_IPV6").is_some() {
            let listener = TcpListener::bind("[::1]:0").await.unwrap();
            let echo6 = listener.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((s, _)) = listener.accept().await {
                    tokio::spawn(echo(s));
                }
            });
            let mut stream = connect(&cfg, echo6, &no_prepare).await.unwrap();
            tokio::time::timeout(TEST_TIMEOUT, roundtrip(&mut stream, b"hello over v6"))
                .await
                .unwrap();
            eprintln!("real_server: CONNECT echo ok to {echo6}");

            let udp6 = UdpSocket::bind("[::1]:0").await.unwrap();
            let udp6_addr = udp6.local_addr().unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 2048];
                while let Ok((n, from)) = udp6.recv_from(&mut buf).await {
                    let _ = udp6.send_to(&buf[..n], from).await;
                }
            });
            assoc.send_to(b"datagram6", udp6_addr).await.unwrap();
            let (n, from) = tokio::time::timeout(TEST_TIMEOUT, assoc.recv_from(&mut buf))
                .await
                .expect("no IPv6 UDP echo through the relay")
                .unwrap();
            assert_eq!((&buf[..n], from), (&b"datagram6"[..], udp6_addr));
            eprintln!("real_server: UDP ASSOCIATE echo ok from {from}");
        }

        // With a username configured, a wrong password must be refused.
        if let Some((user, _)) = auth {
            let bad = Socks5Config {
                auth: Some((user, "definitely-wrong".to_owned())),
                ..cfg.clone()
            };
            let err = connect(&bad, echo_addr, &no_prepare).await.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
            eprintln!("real_server: wrong password -> {err}");
        }
    }
}
