//! libpcap, loaded the first time it is needed (`dlopen`) instead of linked.
//!
//! Debian's libpcap pulls in dbus, systemd, gcrypt, lz4, zstd and lzma: ten
//! shared objects whose loading took 0.6 ms of every start of the binary
//! (measured: an empty C program 0.82 ms, the same linked with -lpcap
//! 1.44 ms), paid by commands that never capture (`trace`, `plugins`,
//! replays without a filter). Only live capture, the interface list and
//! capture filters load it now.
//!
//! The few functions used are bound by name; their C types are libpcap's
//! documented ABI (pcap/pcap.h), unchanged since libpcap 1.5.

use std::ffi::{c_char, c_int, c_uint, c_void, CStr, CString};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::RawFd;
use std::sync::OnceLock;

/// The names libpcap's run-time library has: Debian and Ubuntu's, then
/// upstream's.
const SONAMES: [&str; 3] = ["libpcap.so.0.8", "libpcap.so.1", "libpcap.so"];
const ERRBUF_SIZE: usize = 256;
/// The netmask given to the filter compiler: 0, as tcpdump without an
/// interface and the `pcap` crate did (`ip broadcast` then compiles;
/// PCAP_NETMASK_UNKNOWN would refuse it).
const NETMASK: u32 = 0;
/// LINKTYPE_RAW in files; libpcap's handles call it DLT_RAW, 12 on Linux.
const LINKTYPE_RAW: u32 = 101;
const DLT_RAW: c_int = 12;
const TSTAMP_PRECISION_NANO: c_int = 1;
const IF_LOOPBACK: u32 = 0x1;
const IF_UP: u32 = 0x2;

/// What went wrong, in libpcap's words.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("libpcap error: {0}")]
pub struct Error(pub String);

#[repr(C)]
struct PcapT {
    _private: [u8; 0],
}

#[repr(C)]
struct BpfProgram {
    bf_len: c_uint,
    bf_insns: *mut c_void,
}

#[repr(C)]
struct PktHdr {
    ts: libc::timeval,
    caplen: u32,
    len: u32,
}

#[repr(C)]
struct Stat {
    ps_recv: c_uint,
    ps_drop: c_uint,
    ps_ifdrop: c_uint,
}

#[repr(C)]
struct PcapIf {
    next: *mut PcapIf,
    name: *mut c_char,
    description: *mut c_char,
    addresses: *mut PcapAddr,
    flags: u32,
}

#[repr(C)]
struct PcapAddr {
    next: *mut PcapAddr,
    addr: *mut libc::sockaddr,
    netmask: *mut libc::sockaddr,
    broadaddr: *mut libc::sockaddr,
    dstaddr: *mut libc::sockaddr,
}

/// The functions used, bound once.
struct Api {
    findalldevs: unsafe extern "C" fn(*mut *mut PcapIf, *mut c_char) -> c_int,
    freealldevs: unsafe extern "C" fn(*mut PcapIf),
    create: unsafe extern "C" fn(*const c_char, *mut c_char) -> *mut PcapT,
    set_snaplen: unsafe extern "C" fn(*mut PcapT, c_int) -> c_int,
    set_promisc: unsafe extern "C" fn(*mut PcapT, c_int) -> c_int,
    set_timeout: unsafe extern "C" fn(*mut PcapT, c_int) -> c_int,
    set_buffer_size: unsafe extern "C" fn(*mut PcapT, c_int) -> c_int,
    set_tstamp_precision: unsafe extern "C" fn(*mut PcapT, c_int) -> c_int,
    activate: unsafe extern "C" fn(*mut PcapT) -> c_int,
    geterr: unsafe extern "C" fn(*mut PcapT) -> *mut c_char,
    statustostr: unsafe extern "C" fn(c_int) -> *const c_char,
    open_dead: unsafe extern "C" fn(c_int, c_int) -> *mut PcapT,
    compile: unsafe extern "C" fn(*mut PcapT, *mut BpfProgram, *const c_char, c_int, u32) -> c_int,
    setfilter: unsafe extern "C" fn(*mut PcapT, *mut BpfProgram) -> c_int,
    freecode: unsafe extern "C" fn(*mut BpfProgram),
    offline_filter: unsafe extern "C" fn(*const BpfProgram, *const PktHdr, *const u8) -> c_int,
    setnonblock: unsafe extern "C" fn(*mut PcapT, c_int, *mut c_char) -> c_int,
    datalink: unsafe extern "C" fn(*mut PcapT) -> c_int,
    get_selectable_fd: unsafe extern "C" fn(*mut PcapT) -> c_int,
    next_ex: unsafe extern "C" fn(*mut PcapT, *mut *mut PktHdr, *mut *const u8) -> c_int,
    stats: unsafe extern "C" fn(*mut PcapT, *mut Stat) -> c_int,
    close: unsafe extern "C" fn(*mut PcapT),
    /// Kept loaded for the life of the process.
    _lib: libloading::Library,
}

fn api() -> Result<&'static Api, Error> {
    static API: OnceLock<Result<Api, Error>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Api, Error> {
    let mut tried = Vec::new();
    for name in SONAMES {
        // SAFETY: loading libpcap runs its initialisers, which have no
        // preconditions.
        match unsafe { libloading::Library::new(name) } {
            Ok(lib) => return bind(lib),
            Err(e) => tried.push(format!("{name}: {e}")),
        }
    }
    Err(Error(format!(
        "not installed (apt install libpcap0.8); tried {}",
        tried.join("; ")
    )))
}

fn bind(lib: libloading::Library) -> Result<Api, Error> {
    macro_rules! symbol {
        ($name:literal) => {{
            // SAFETY: the symbol is libpcap's function of that name, whose
            // C type (pcap/pcap.h) is the field's type.
            let f = unsafe { lib.get($name) }
                .map_err(|e| Error(format!("libpcap lacks {}: {e}", String::from_utf8_lossy($name))))?;
            *f
        }};
    }
    Ok(Api {
        findalldevs: symbol!(b"pcap_findalldevs"),
        freealldevs: symbol!(b"pcap_freealldevs"),
        create: symbol!(b"pcap_create"),
        set_snaplen: symbol!(b"pcap_set_snaplen"),
        set_promisc: symbol!(b"pcap_set_promisc"),
        set_timeout: symbol!(b"pcap_set_timeout"),
        set_buffer_size: symbol!(b"pcap_set_buffer_size"),
        set_tstamp_precision: symbol!(b"pcap_set_tstamp_precision"),
        activate: symbol!(b"pcap_activate"),
        geterr: symbol!(b"pcap_geterr"),
        statustostr: symbol!(b"pcap_statustostr"),
        open_dead: symbol!(b"pcap_open_dead"),
        compile: symbol!(b"pcap_compile"),
        setfilter: symbol!(b"pcap_setfilter"),
        freecode: symbol!(b"pcap_freecode"),
        offline_filter: symbol!(b"pcap_offline_filter"),
        setnonblock: symbol!(b"pcap_setnonblock"),
        datalink: symbol!(b"pcap_datalink"),
        get_selectable_fd: symbol!(b"pcap_get_selectable_fd"),
        next_ex: symbol!(b"pcap_next_ex"),
        stats: symbol!(b"pcap_stats"),
        close: symbol!(b"pcap_close"),
        _lib: lib,
    })
}

fn text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libpcap returns NUL-terminated strings that live at least
    // until the next call on the same handle.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

fn errbuf_text(buf: &[c_char; ERRBUF_SIZE]) -> String {
    text(buf.as_ptr())
}

fn c_string(s: &str) -> Result<CString, Error> {
    CString::new(s).map_err(|_| Error(format!("`{s}` contains a NUL byte")))
}

/// An interface as libpcap lists it.
#[derive(Clone, Debug)]
pub struct Device {
    pub name: String,
    pub addresses: Vec<Address>,
    flags: u32,
}

impl Device {
    pub fn is_up(&self) -> bool {
        self.flags & IF_UP != 0
    }

    pub fn is_loopback(&self) -> bool {
        self.flags & IF_LOOPBACK != 0
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Address {
    pub addr: IpAddr,
    pub netmask: Option<IpAddr>,
}

fn ip_of(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: a non-null sockaddr from libpcap; its family tells its real
    // type, read only for the families whose type is known.
    unsafe {
        match c_int::from((*sa).sa_family) {
            libc::AF_INET => {
                let sin = &*(sa as *const libc::sockaddr_in);
                Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into())
            }
            libc::AF_INET6 => {
                let sin6 = &*(sa as *const libc::sockaddr_in6);
                Some(Ipv6Addr::from(sin6.sin6_addr.s6_addr).into())
            }
            _ => None,
        }
    }
}

/// Every interface libpcap can capture on, with its IP addresses.
pub fn devices() -> Result<Vec<Device>, Error> {
    let api = api()?;
    let mut list: *mut PcapIf = std::ptr::null_mut();
    let mut errbuf = [0 as c_char; ERRBUF_SIZE];
    // SAFETY: out-pointer and an error buffer of PCAP_ERRBUF_SIZE.
    if unsafe { (api.findalldevs)(&mut list, errbuf.as_mut_ptr()) } != 0 {
        return Err(Error(errbuf_text(&errbuf)));
    }
    let mut devices = Vec::new();
    let mut d = list;
    while !d.is_null() {
        // SAFETY: a node of the list libpcap returned, freed only below.
        let dev = unsafe { &*d };
        let mut addresses = Vec::new();
        let mut a = dev.addresses;
        while !a.is_null() {
            // SAFETY: a node of the device's address list.
            let addr = unsafe { &*a };
            if let Some(ip) = ip_of(addr.addr) {
                addresses.push(Address {
                    addr: ip,
                    netmask: ip_of(addr.netmask),
                });
            }
            a = addr.next;
        }
        devices.push(Device {
            name: text(dev.name),
            addresses,
            flags: dev.flags,
        });
        d = dev.next;
    }
    // SAFETY: the list from findalldevs, not used after this.
    unsafe { (api.freealldevs)(list) };
    Ok(devices)
}

/// A compiled capture filter, run in user space (replays) or attached to a
/// live capture.
pub struct Program {
    prog: BpfProgram,
    api: &'static Api,
}

// SAFETY: the program is plain memory owned by this value.
unsafe impl Send for Program {}

impl Program {
    /// `expression` compiled for link type `linktype` (DLT number).
    pub fn compile(linktype: u32, expression: &str) -> Result<Program, Error> {
        let api = api()?;
        let linktype = match linktype {
            LINKTYPE_RAW => DLT_RAW,
            other => c_int::try_from(other).map_err(|_| Error(format!("link type {other}")))?,
        };
        // SAFETY: no preconditions; a null result is an error.
        let dead = unsafe { (api.open_dead)(linktype, 65_535) };
        if dead.is_null() {
            return Err(Error("cannot open a libpcap handle for compiling".into()));
        }
        let result = compile_on(api, dead, expression);
        // SAFETY: the dead handle, not used after; the program outlives it.
        unsafe { (api.close)(dead) };
        result
    }

    /// Whether a packet of `data` (its whole length captured) passes.
    pub fn matches(&self, data: &[u8]) -> bool {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        let header = PktHdr {
            ts: libc::timeval { tv_sec: 0, tv_usec: 0 },
            caplen: len,
            len,
        };
        // SAFETY: a compiled program, a header whose caplen is the data's
        // length.
        unsafe { (self.api.offline_filter)(&self.prog, &header, data.as_ptr()) != 0 }
    }
}

fn compile_on(api: &'static Api, handle: *mut PcapT, expression: &str) -> Result<Program, Error> {
    let expr = c_string(expression)?;
    let mut prog = BpfProgram {
        bf_len: 0,
        bf_insns: std::ptr::null_mut(),
    };
    // SAFETY: a live handle, an out-program, a NUL-terminated expression.
    if unsafe { (api.compile)(handle, &mut prog, expr.as_ptr(), 1, NETMASK) } != 0 {
        // SAFETY: the handle the call failed on.
        return Err(Error(text(unsafe { (api.geterr)(handle) })));
    }
    Ok(Program { prog, api })
}

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: compiled by pcap_compile, freed once.
        unsafe { (self.api.freecode)(&mut self.prog) };
    }
}

/// Settings of a live capture.
pub struct Settings<'a> {
    pub device: &'a str,
    pub snaplen: i32,
    pub promiscuous: bool,
    pub buffer_bytes: i32,
    pub timeout_ms: i32,
}

/// A packet of a live capture, valid until the next read.
pub struct Packet<'a> {
    pub ts: libc::timeval,
    pub len: u32,
    pub data: &'a [u8],
}

/// An activated live capture.
pub struct Live {
    handle: *mut PcapT,
    api: &'static Api,
    /// Timestamps in nanoseconds (else microseconds).
    pub nanoseconds: bool,
}

// SAFETY: the handle is used by one thread at a time (it moves with the
// value; libpcap handles are not shared).
unsafe impl Send for Live {}

impl Live {
    /// Creates and activates a capture; the error is libpcap's message.
    pub fn open(s: &Settings) -> Result<Live, Error> {
        let api = api()?;
        let device = c_string(s.device)?;
        let mut errbuf = [0 as c_char; ERRBUF_SIZE];
        // SAFETY: a NUL-terminated name and an error buffer.
        let handle = unsafe { (api.create)(device.as_ptr(), errbuf.as_mut_ptr()) };
        if handle.is_null() {
            return Err(Error(errbuf_text(&errbuf)));
        }
        let mut live = Live {
            handle,
            api,
            nanoseconds: false,
        };
        // SAFETY (all calls below): a created, not yet activated handle.
        unsafe {
            (api.set_snaplen)(handle, s.snaplen);
            (api.set_promisc)(handle, c_int::from(s.promiscuous));
            (api.set_timeout)(handle, s.timeout_ms);
            (api.set_buffer_size)(handle, s.buffer_bytes);
            live.nanoseconds = (api.set_tstamp_precision)(handle, TSTAMP_PRECISION_NANO) == 0;
        }
        // SAFETY: the handle; warnings (> 0) still activate.
        let status = unsafe { (api.activate)(handle) };
        if status < 0 {
            let message = live.error();
            let status_text = text(unsafe { (api.statustostr)(status) });
            return Err(Error(if message.is_empty() {
                status_text
            } else {
                format!("{status_text}: {message}")
            }));
        }
        Ok(live)
    }

    fn error(&self) -> String {
        // SAFETY: our handle.
        text(unsafe { (self.api.geterr)(self.handle) })
    }

    /// Compiles `expression` and attaches it (in the kernel where it can).
    pub fn set_filter(&mut self, expression: &str) -> Result<(), Error> {
        let mut program = compile_on(self.api, self.handle, expression)?;
        // SAFETY: our handle and a compiled program (libpcap copies it).
        if unsafe { (self.api.setfilter)(self.handle, &mut program.prog) } != 0 {
            return Err(Error(self.error()));
        }
        Ok(())
    }

    pub fn set_nonblocking(&mut self) -> Result<(), Error> {
        let mut errbuf = [0 as c_char; ERRBUF_SIZE];
        // SAFETY: our handle and an error buffer.
        if unsafe { (self.api.setnonblock)(self.handle, 1, errbuf.as_mut_ptr()) } < 0 {
            return Err(Error(errbuf_text(&errbuf)));
        }
        Ok(())
    }

    /// The DLT link type.
    pub fn datalink(&self) -> u32 {
        // SAFETY: our activated handle.
        u32::try_from(unsafe { (self.api.datalink)(self.handle) }).unwrap_or(0)
    }

    /// A descriptor to poll for packets.
    pub fn fd(&self) -> RawFd {
        // SAFETY: our activated handle.
        unsafe { (self.api.get_selectable_fd)(self.handle) }
    }

    /// The next packet, or `None` when there is none now.
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, Error> {
        let mut header: *mut PktHdr = std::ptr::null_mut();
        let mut data: *const u8 = std::ptr::null();
        // SAFETY: our handle and two out-pointers.
        match unsafe { (self.api.next_ex)(self.handle, &mut header, &mut data) } {
            1 if !header.is_null() && !data.is_null() => {
                // SAFETY: libpcap's header and buffer of `caplen` bytes,
                // valid until the next read on this handle (the borrow of
                // `self` in the result).
                let h = unsafe { &*header };
                let bytes = unsafe { std::slice::from_raw_parts(data, h.caplen as usize) };
                Ok(Some(Packet {
                    ts: h.ts,
                    len: h.len,
                    data: bytes,
                }))
            }
            0 | 1 | -2 => Ok(None),
            _ => Err(Error(self.error())),
        }
    }

    /// libpcap's counters: received, dropped (buffer full), dropped by the
    /// interface; 32 bits, wrapping.
    pub fn stats(&mut self) -> Result<(u32, u32, u32), Error> {
        let mut s = Stat {
            ps_recv: 0,
            ps_drop: 0,
            ps_ifdrop: 0,
        };
        // SAFETY: our handle and an out-struct.
        if unsafe { (self.api.stats)(self.handle, &mut s) } != 0 {
            return Err(Error(self.error()));
        }
        Ok((s.ps_recv, s.ps_drop, s.ps_ifdrop))
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // SAFETY: our handle, closed once.
        unsafe { (self.api.close)(self.handle) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_compile_run_and_refuse_nonsense() {
        // An Ethernet frame: IPv4, TCP from port 40000 to 22.
        let mut frame = vec![0u8; 14 + 20 + 20];
        frame[12..14].copy_from_slice(&[0x08, 0x00]);
        frame[14] = 0x45;
        frame[16..18].copy_from_slice(&40u16.to_be_bytes());
        frame[23] = 6;
        frame[34..36].copy_from_slice(&40000u16.to_be_bytes());
        frame[36..38].copy_from_slice(&22u16.to_be_bytes());
        frame[46] = 0x50;
        assert!(Program::compile(1, "tcp port 22").unwrap().matches(&frame));
        assert!(!Program::compile(1, "tcp port 80").unwrap().matches(&frame));
        let e = Program::compile(1, "port banana").err().unwrap();
        assert!(e.0.contains("banana"), "{e}");
        // Raw IP captures (LINKTYPE_RAW): the same packet without Ethernet.
        let raw = Program::compile(LINKTYPE_RAW, "tcp port 22").unwrap();
        assert!(raw.matches(&frame[14..]));
        assert!(Program::compile(1, "ip broadcast").is_ok());
    }

    #[test]
    fn the_loopback_interface_is_listed_up() {
        let devices = devices().unwrap();
        let lo = devices.iter().find(|d| d.name == "lo").expect("lo is listed");
        assert!(lo.is_loopback() && lo.is_up(), "{lo:?}");
        assert!(
            lo.addresses.iter().any(|a| a.addr == IpAddr::from([127, 0, 0, 1])),
            "{lo:?}"
        );
    }
}
