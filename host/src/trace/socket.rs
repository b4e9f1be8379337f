//! trace::socket: the raw sockets probes leave by and answers arrive on.
//!
//! Per address family one raw socket per protocol: the kernel writes the IP
//! header (the TTL is set before each send), we write the transport header
//! and payload ([`super::wire`]). Answers come from the ICMP socket (time
//! exceeded, unreachable, echo reply) and the TCP socket (SYN-ACK and RST
//! from the destination); kernel filters keep everything else out. Raw
//! sockets need CAP_NET_RAW.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::engine::Transmit;
use super::wire::{self, Answer};
use super::Protocol;
use crate::capture::caps::{self, Capability};
use crate::time::Timestamp;

struct Family {
    icmp: OwnedFd,
    udp: OwnedFd,
    tcp: OwnedFd,
}

/// The probe sockets of both families (IPv6 when the host has it).
pub struct Sockets {
    v4: Option<Family>,
    v6: Option<Family>,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn raw_socket(family: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) has no memory preconditions; a non-negative result
    // is a new descriptor nobody else owns.
    let fd = check(unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    })?;
    // SAFETY: `fd` was just returned by socket(2) and is owned here only.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn set_option<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size passed.
    check(unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// sendto(2) of `bytes` to the socket address `sa` (a sockaddr_in or
/// sockaddr_in6).
fn send_to<A>(fd: RawFd, bytes: &[u8], sa: &A) -> io::Result<()> {
    // SAFETY: buffer and address are live for the call, with their true
    // sizes; `A` is one of the sockaddr types the caller built.
    let rc = unsafe {
        libc::sendto(
            fd,
            bytes.as_ptr().cast(),
            bytes.len(),
            0,
            (sa as *const A).cast(),
            std::mem::size_of::<A>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn attach_filter(fd: RawFd, program: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_ptr() as *mut libc::sock_filter,
    };
    set_option(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
}

const BPF_LD: u16 = 0x00;
const BPF_LDX: u16 = 0x01;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_B: u16 = 0x10;
const BPF_ABS: u16 = 0x20;
const BPF_IND: u16 = 0x40;
const BPF_MSH: u16 = 0xa0;
const BPF_AND: u16 = 0x50;
const BPF_JEQ: u16 = 0x10;
const BPF_JSET: u16 = 0x40;
const BPF_K: u16 = 0x00;

/// Accept TCP segments with RST, or SYN and ACK; `ip_header`: the socket
/// sees the IPv4 header first (IPv6 raw sockets start at TCP).
fn tcp_answers_only(ip_header: bool) -> Vec<libc::sock_filter> {
    let mut p = Vec::new();
    if ip_header {
        p.push(bpf(BPF_LDX | BPF_B | BPF_MSH, 0, 0, 0)); // x = IPv4 header length
        p.push(bpf(BPF_LD | BPF_B | BPF_IND, 0, 0, 13)); // a = TCP flags
    } else {
        p.push(bpf(BPF_LD | BPF_B | BPF_ABS, 0, 0, 13));
    }
    p.push(bpf(BPF_JMP | BPF_JSET | BPF_K, 2, 0, 0x04)); // RST → accept
    p.push(bpf(BPF_ALU | BPF_AND | BPF_K, 0, 0, 0x12));
    p.push(bpf(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 0x12)); // SYN+ACK → accept
    p.push(bpf(BPF_RET | BPF_K, 0, 0, 0x40000));
    p.push(bpf(BPF_RET | BPF_K, 0, 0, 0));
    p
}

/// Send-only sockets receive nothing.
fn nothing() -> Vec<libc::sock_filter> {
    vec![bpf(BPF_RET | BPF_K, 0, 0, 0)]
}

/// `ICMP_FILTER` (linux/icmp.h), on SOL_RAW.
const ICMP_FILTER: libc::c_int = 1;
/// `ICMP6_FILTER` (netinet/icmp6.h), on IPPROTO_ICMPV6.
const ICMP6_FILTER: libc::c_int = 1;

impl Family {
    fn open(v6: bool) -> io::Result<Family> {
        let (af, icmp_proto) = if v6 {
            (libc::AF_INET6, libc::IPPROTO_ICMPV6)
        } else {
            (libc::AF_INET, libc::IPPROTO_ICMP)
        };
        let f = Family {
            icmp: raw_socket(af, icmp_proto)?,
            udp: raw_socket(af, libc::IPPROTO_UDP)?,
            tcp: raw_socket(af, libc::IPPROTO_TCP)?,
        };
        attach_filter(f.udp.as_raw_fd(), &nothing())?;
        for fd in [f.icmp.as_raw_fd(), f.tcp.as_raw_fd()] {
            set_option(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &(1 as libc::c_int))?;
        }
        attach_filter(f.tcp.as_raw_fd(), &tcp_answers_only(!v6))?;
        if v6 {
            // Pass echo reply (129), unreachable (1), time exceeded (3).
            let mut block = [u32::MAX; 8];
            for t in [1u32, 3, 129] {
                block[(t >> 5) as usize] &= !(1 << (t & 31));
            }
            set_option(f.icmp.as_raw_fd(), libc::IPPROTO_ICMPV6, ICMP6_FILTER, &block)?;
        } else {
            let block: u32 = !((1 << 0) | (1 << 3) | (1 << 11));
            set_option(f.icmp.as_raw_fd(), libc::SOL_RAW, ICMP_FILTER, &block)?;
        }
        Ok(f)
    }

    fn socket(&self, p: Protocol) -> RawFd {
        match p {
            Protocol::Icmp => self.icmp.as_raw_fd(),
            Protocol::Udp => self.udp.as_raw_fd(),
            Protocol::Tcp => self.tcp.as_raw_fd(),
        }
    }
}

/// The message for a refused raw socket: which capability is missing.
fn explain(e: io::Error) -> io::Error {
    if e.kind() != io::ErrorKind::PermissionDenied {
        return e;
    }
    let missing = caps::missing(&[Capability::NetRaw]);
    let what = if missing.is_empty() {
        "raw sockets were refused".to_string()
    } else {
        "this process lacks CAP_NET_RAW".to_string()
    };
    io::Error::new(
        e.kind(),
        format!("traceroute needs raw sockets and {what} ({e}): run as root or grant CAP_NET_RAW"),
    )
}

impl Sockets {
    /// Opens the sockets; IPv6 is left out (with a log line) when the host
    /// has no IPv6. The error names CAP_NET_RAW when it is missing.
    pub fn open() -> io::Result<Sockets> {
        let v4 = Family::open(false).map_err(explain)?;
        let v6 = match Family::open(true) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => return Err(explain(e)),
            Err(e) => {
                tracing::info!(error = %e, "no IPv6 raw sockets: IPv6 destinations are not traced");
                None
            }
        };
        Ok(Sockets { v4: Some(v4), v6 })
    }

    /// Only the sockets of the families asked for (a one-off trace needs
    /// its destination's family alone: three raw sockets and their filters
    /// fewer to set up).
    /// Without IPv6 raw sockets, IPv6 destinations fail alone (as with
    /// [`Sockets::open`]) unless there are only IPv6 destinations.
    pub fn open_only(v4: bool, v6: bool) -> io::Result<Sockets> {
        let v4 = if v4 {
            Some(Family::open(false).map_err(explain)?)
        } else {
            None
        };
        let v6 = match v6.then(|| Family::open(true)) {
            None => None,
            Some(Ok(f)) => Some(f),
            Some(Err(e)) if v4.is_none() || e.kind() == io::ErrorKind::PermissionDenied => return Err(explain(e)),
            Some(Err(e)) => {
                tracing::info!(error = %e, "no IPv6 raw sockets: IPv6 destinations are not traced");
                None
            }
        };
        Ok(Sockets { v4, v6 })
    }

    fn family(&self, v6: bool) -> io::Result<&Family> {
        let f = if v6 { self.v6.as_ref() } else { self.v4.as_ref() };
        f.ok_or_else(|| io::Error::new(io::ErrorKind::Unsupported, "no IPv6 raw sockets on this host"))
    }

    /// Sends one probe with its TTL.
    pub fn send(&self, t: &Transmit) -> io::Result<()> {
        let v6 = t.dst.is_ipv6();
        let fd = self.family(v6)?.socket(t.protocol);
        let ttl = t.ttl as libc::c_int;
        match t.dst {
            IpAddr::V4(a) => {
                set_option(fd, libc::IPPROTO_IP, libc::IP_TTL, &ttl)?;
                let sa = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: 0,
                    sin_addr: libc::in_addr {
                        s_addr: u32::from_ne_bytes(a.octets()),
                    },
                    sin_zero: [0; 8],
                };
                send_to(fd, &t.bytes, &sa)
            }
            IpAddr::V6(a) => {
                set_option(fd, libc::IPPROTO_IPV6, libc::IPV6_UNICAST_HOPS, &ttl)?;
                // SAFETY: sockaddr_in6 is plain data; all zeroes is valid.
                let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                sa.sin6_addr.s6_addr = a.octets();
                send_to(fd, &t.bytes, &sa)
            }
        }
    }

    fn receivers(&self) -> Vec<(RawFd, bool, Protocol)> {
        let mut fds = Vec::new();
        for (f, v6) in [(&self.v4, false), (&self.v6, true)] {
            if let Some(f) = f {
                fds.push((f.icmp.as_raw_fd(), v6, Protocol::Icmp));
                fds.push((f.tcp.as_raw_fd(), v6, Protocol::Tcp));
            }
        }
        fds
    }

    /// Waits until an answer may be readable, at most `timeout`.
    pub fn wait(&self, timeout: Duration) -> io::Result<()> {
        let mut polls: Vec<libc::pollfd> = self
            .receivers()
            .into_iter()
            .map(|(fd, _, _)| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        let ms = timeout.as_millis().min(i32::MAX as u128) as libc::c_int;
        // SAFETY: `polls` is a live array of that many pollfd.
        let rc = unsafe { libc::poll(polls.as_mut_ptr(), polls.len() as libc::nfds_t, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Reads every waiting packet; `on` gets each answer with the time
    /// the kernel received it (anything else on the sockets is skipped).
    /// Returns how many packets were read.
    pub fn receive(&self, mut on: impl FnMut(Answer, Timestamp)) -> io::Result<u64> {
        let mut buf = [0u8; 2048];
        // Room for one timespec control message (and more, should the
        // kernel add any).
        let mut control = [0u64; 16];
        let mut read = 0;
        for (fd, v6, protocol) in self.receivers() {
            loop {
                // SAFETY: sockaddr_storage and msghdr are plain data;
                // zeroes are valid.
                let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
                let mut iov = libc::iovec {
                    iov_base: buf.as_mut_ptr().cast(),
                    iov_len: buf.len(),
                };
                // SAFETY: as above.
                let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
                msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
                msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                msg.msg_iov = &mut iov;
                msg.msg_iovlen = 1;
                msg.msg_control = control.as_mut_ptr().cast();
                msg.msg_controllen = std::mem::size_of_val(&control) as _;
                // SAFETY: every pointer in `msg` refers to a live buffer of
                // the length given beside it.
                let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::WouldBlock {
                        break;
                    }
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
                read += 1;
                let at = kernel_timestamp(&msg).unwrap_or_else(crate::clock::now);
                let packet = &buf[..n as usize];
                let answer = if v6 {
                    let sender = ipv6_of(&from);
                    match protocol {
                        Protocol::Icmp => wire::parse_icmpv6(sender, packet),
                        _ => wire::parse_tcpv6(sender, packet),
                    }
                } else {
                    wire::parse_ipv4(packet)
                };
                if let Some(a) = answer {
                    on(a, at);
                }
            }
        }
        Ok(read)
    }
}

/// The receive time the kernel attached (SO_TIMESTAMPNS).
fn kernel_timestamp(msg: &libc::msghdr) -> Option<Timestamp> {
    // SAFETY: `msg` was filled by recvmsg; the CMSG macros walk its
    // control buffer within msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                return Some(Timestamp::from_nanos(
                    ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64,
                ));
            }
            c = libc::CMSG_NXTHDR(msg, c);
        }
    }
    None
}

fn ipv6_of(from: &libc::sockaddr_storage) -> Ipv6Addr {
    if from.ss_family as libc::c_int != libc::AF_INET6 {
        return Ipv6Addr::UNSPECIFIED;
    }
    // SAFETY: the family says the storage holds a sockaddr_in6, which fits.
    let sa = unsafe { &*(from as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
    Ipv6Addr::from(sa.sin6_addr.s6_addr)
}

/// The local address the kernel would send from towards `dst` (a UDP
/// socket's route look-up; nothing is sent).
pub fn source_for(dst: IpAddr) -> io::Result<IpAddr> {
    let any: IpAddr = if dst.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let s = UdpSocket::bind(SocketAddr::new(any, 0))?;
    s.connect(SocketAddr::new(dst, wire::UDP_BASE_PORT))?;
    Ok(s.local_addr()?.ip())
}

/// Every address of this host's interfaces.
pub fn own_addresses() -> Vec<IpAddr> {
    match crate::capture::libpcap::devices() {
        Ok(ds) => ds.iter().flat_map(|d| d.addresses.iter().map(|a| a.addr)).collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list this host's addresses: inbound connections to them may be traced");
            Vec::new()
        }
    }
}
