//! Who is at the other end of a loopback connection: the kernel knows the owner of both ends of a TCP
//! socket on this machine, and `/proc/net/tcp{,6}` shows it. The server lets its own user's processes in
//! without a token (the same user's curl, scripts and browser), and refuses every other account's
//! processes unless they bring the API token (nexent-api.md's loopback rule, issue 15 item 9).
//!
//! The lookup runs once per accepted connection, not per request. It fails closed: a peer that cannot be
//! found (another network namespace, a remote address, a `/proc` without the entry) counts as a stranger.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;

/// The other end of one connection, as found when it was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub address: SocketAddr,
    /// The peer's socket belongs to the server's own user.
    pub same_user: bool,
}

impl Peer {
    /// Looks up the owner of the client socket `remote` that is connected to our `local` address.
    pub fn identify(local: SocketAddr, remote: SocketAddr) -> Self {
        let same_user = match (server_uid(), socket_owner(local, remote)) {
            (Some(ours), Some(theirs)) => ours == theirs,
            _ => false,
        };
        Self { address: remote, same_user }
    }
}

/// The user the server runs as: the owner of `/proc/self` (no `unsafe` `geteuid` needed), read once.
fn server_uid() -> Option<u32> {
    static UID: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UID.get_or_init(|| std::fs::metadata("/proc/self").ok().map(|metadata| metadata.uid()))
}

/// The uid of the socket whose local address is `remote` and whose peer is `local`, if it is on this
/// machine. Loopback connections only: a socket of another machine is not in our tables.
fn socket_owner(local: SocketAddr, remote: SocketAddr) -> Option<u32> {
    let remote = normalise(remote);
    let local = normalise(local);
    if !remote.ip().is_loopback() {
        return None;
    }
    ["/proc/net/tcp", "/proc/net/tcp6"].iter().find_map(|table| {
        let text = std::fs::read_to_string(table).ok()?;
        owner_in_table(&text, local, remote)
    })
}

/// Finds the row whose local address is the client's and whose remote address is the server's.
fn owner_in_table(table: &str, server: SocketAddr, client: SocketAddr) -> Option<u32> {
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid ...
        let row_local = parse_proc_address(fields.get(1)?)?;
        let row_remote = parse_proc_address(fields.get(2)?)?;
        (row_local == client && row_remote == server).then(|| fields.get(7)?.parse().ok()).flatten()
    })
}

/// `0100007F:1392` (IPv4) or 32 hex digits and a port (IPv6): each 32-bit word as the kernel holds it in
/// memory, printed as a native integer.
fn parse_proc_address(field: &str) -> Option<SocketAddr> {
    let (address, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match address.len() {
        8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(address, 16).ok()?.to_ne_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for (index, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(address.get(index * 8..index * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(normalise(SocketAddr::new(ip, port)))
}

/// IPv4-mapped IPv6 addresses (a dual-stack listener's view) compared as IPv4.
fn normalise(address: SocketAddr) -> SocketAddr {
    match address.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), address.port()),
            None => address,
        },
        IpAddr::V4(_) => address,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_addresses_parse_in_both_families() {
        let v4 = parse_proc_address("0100007F:1392").expect("v4");
        assert_eq!(v4, "127.0.0.1:5010".parse().expect("addr"));
        let v6 = parse_proc_address("00000000000000000000000001000000:1392").expect("v6");
        assert_eq!(v6, "[::1]:5010".parse().expect("addr"));
        let mapped = parse_proc_address("0000000000000000FFFF00000100007F:0050").expect("mapped");
        assert_eq!(mapped, "127.0.0.1:80".parse().expect("addr"));
        for bad in ["", "0100007F", "XYZ:1392", "0100007F:ZZZZ", "01007F:1392"] {
            assert!(parse_proc_address(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_client_row_gives_its_owner() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1392 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0\n\
   1: 0100007F:1392 0100007F:A000 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0\n\
   2: 0100007F:A000 0100007F:1392 01 00000000:00000000 00:00000000 00000000  1001        0 3 1 0\n";
        let server: SocketAddr = "127.0.0.1:5010".parse().expect("addr");
        let client: SocketAddr = "127.0.0.1:40960".parse().expect("addr");
        assert_eq!(owner_in_table(table, server, client), Some(1001));
        assert_eq!(owner_in_table(table, server, "127.0.0.1:40961".parse().expect("addr")), None);
    }

    #[test]
    fn a_real_loopback_connection_is_our_own() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let client = std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (accepted, remote) = listener.accept().expect("accept");
        let peer = Peer::identify(accepted.local_addr().expect("local"), remote);
        assert!(peer.same_user, "a socket of this test process belongs to its user");
        assert_eq!(peer.address, client.local_addr().expect("client addr"));
    }
}
