//! netsim: test-only network helpers for net-gazer's network-namespace tests.
//!
//! `netsim delay --queue NUM --ms MILLISECONDS` takes the packets a netfilter
//! rule sends to NFQUEUE `NUM` and accepts each one `MILLISECONDS` after it
//! was received, in arrival order: a fixed extra latency on exactly the
//! packets the rule selects, on kernels without netem. Run it before the
//! rule sees traffic (a queue nobody listens on drops its packets). It exits
//! on SIGTERM, or when its standard input closes, so a test that dies does
//! not leave it behind.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use nfq::{Message, Queue, Verdict};

const USAGE: &str = "usage: netsim delay --queue NUM --ms MILLISECONDS [--verbose]\n\n\
    Accepts each packet of NFQUEUE NUM MILLISECONDS after receiving it, in order.\n\
    --verbose: a line per packet on standard error: how long it was held, how late.\n\
    Exits on SIGTERM or when standard input closes (so /dev/null as input exits at once).";

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("netsim: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("delay") => delay(&DelayArgs::parse(&args[1..])?),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => bail!("{USAGE}"),
    }
}

struct DelayArgs {
    queue: u16,
    delay: Duration,
    verbose: bool,
}

impl DelayArgs {
    fn parse(args: &[String]) -> anyhow::Result<DelayArgs> {
        let (mut queue, mut ms, mut verbose) = (None, None, false);
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let mut value = || it.next().with_context(|| format!("{flag} needs a value\n\n{USAGE}"));
            match flag.as_str() {
                "--queue" => {
                    let v = value()?;
                    queue = Some(
                        v.parse::<u16>()
                            .with_context(|| format!("--queue {v}: not a queue number"))?,
                    );
                }
                "--ms" => {
                    let v = value()?;
                    ms = Some(
                        v.parse::<u64>()
                            .with_context(|| format!("--ms {v}: not a number of milliseconds"))?,
                    );
                }
                "-v" | "--verbose" => verbose = true,
                other => bail!("unknown argument `{other}`\n\n{USAGE}"),
            }
        }
        match (queue, ms) {
            (Some(queue), Some(ms)) => Ok(DelayArgs {
                queue,
                delay: Duration::from_millis(ms),
                verbose,
            }),
            _ => bail!("--queue and --ms are required\n\n{USAGE}"),
        }
    }
}

/// A packet waiting for its deadline.
struct Held {
    due: Instant,
    received: Instant,
    msg: Message,
}

fn delay(args: &DelayArgs) -> anyhow::Result<()> {
    let before = netfilter_sockets()?;
    let mut queue = Queue::open().context("opening a netfilter netlink socket (needs CAP_NET_ADMIN)")?;
    let fd = queue_fd(&before)?;
    queue
        .bind(args.queue)
        .with_context(|| format!("binding NFQUEUE {}", args.queue))?;
    queue.set_nonblocking(true);
    // Wake at the deadline, not up to the default 50 µs timer slack later.
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    eprintln!(
        "netsim: delaying the packets of NFQUEUE {} by {} ms",
        args.queue,
        args.delay.as_millis()
    );

    // Deadlines grow with arrival order: the front is always due first.
    let mut held: VecDeque<Held> = VecDeque::new();
    let mut count = 0u64;
    loop {
        let now = Instant::now();
        while held.front().is_some_and(|h| h.due <= now) {
            if let Some(h) = held.pop_front() {
                count += 1;
                release(&mut queue, h, count, args.verbose)?;
            }
        }
        let timeout = held.front().map(|h| h.due.saturating_duration_since(now));
        let ready = wait(fd, timeout)?;
        if ready.stdin_closed {
            // Let what is held go rather than drop it.
            for h in held.drain(..) {
                count += 1;
                release(&mut queue, h, count, args.verbose)?;
            }
            return Ok(());
        }
        if ready.queue {
            loop {
                match queue.recv() {
                    Ok(msg) => {
                        // Not the packet's kernel timestamp: nfq 0.2's
                        // get_timestamp() panics on some values.
                        let received = Instant::now();
                        held.push_back(Held {
                            due: received + args.delay,
                            received,
                            msg,
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e).context("receiving from the queue"),
                }
            }
        }
    }
}

fn release(queue: &mut Queue, mut h: Held, n: u64, verbose: bool) -> anyhow::Result<()> {
    // The hold ends when the verdict is given: read the clock before the
    // call, so that being descheduled after it does not count.
    let now = Instant::now();
    h.msg.set_verdict(Verdict::Accept);
    queue.verdict(h.msg).context("sending a verdict")?;
    if verbose {
        eprintln!(
            "netsim: packet {n} held {} µs (late {} µs)",
            (now - h.received).as_micros(),
            now.saturating_duration_since(h.due).as_micros()
        );
    }
    Ok(())
}

/// The process's NETLINK_NETFILTER sockets.
fn netfilter_sockets() -> anyhow::Result<Vec<RawFd>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").context("listing /proc/self/fd")? {
        let entry = entry.context("listing /proc/self/fd")?;
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<RawFd>() else {
            continue;
        };
        if socket_option(fd, libc::SO_DOMAIN) == Some(libc::AF_NETLINK)
            && socket_option(fd, libc::SO_PROTOCOL) == Some(libc::NETLINK_NETFILTER)
        {
            fds.push(fd);
        }
    }
    Ok(fds)
}

/// nfq 0.2 does not expose its socket, but waiting on it with ppoll(2) is
/// what lets packets go at their deadline (a high-resolution timer) without
/// polling: it is the one netfilter netlink socket that appeared with the
/// queue.
fn queue_fd(before: &[RawFd]) -> anyhow::Result<RawFd> {
    let new: Vec<RawFd> = netfilter_sockets()?
        .into_iter()
        .filter(|fd| !before.contains(fd))
        .collect();
    match new.as_slice() {
        [fd] => Ok(*fd),
        _ => bail!("cannot tell the queue's netlink socket apart (new netfilter sockets: {new:?})"),
    }
}

fn socket_option(fd: RawFd, name: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` are valid for writes and describe an int.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&raw mut value).cast(), &mut len) };
    (rc == 0).then_some(value)
}

struct Ready {
    queue: bool,
    stdin_closed: bool,
}

/// Waits until the queue socket is readable, standard input closes, or
/// `timeout` passes (None: no limit).
fn wait(queue_fd: RawFd, timeout: Option<Duration>) -> anyhow::Result<Ready> {
    let mut fds = [
        libc::pollfd {
            fd: queue_fd,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: libc::STDIN_FILENO,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: t.as_secs().try_into().unwrap_or(libc::time_t::MAX),
        tv_nsec: t.subsec_nanos().into(),
    });
    let ts_ptr = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: `fds` is a valid array of its length; `ts_ptr` is null or
    // points at `ts`, which outlives the call.
    let n = unsafe { libc::ppoll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ts_ptr, std::ptr::null()) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(Ready {
                queue: false,
                stdin_closed: false,
            });
        }
        return Err(e).context("waiting for packets");
    }
    let queue_events = fds[0].revents;
    if queue_events & (libc::POLLERR | libc::POLLNVAL) != 0 {
        bail!("the queue's netlink socket failed (poll events {queue_events:#x})");
    }
    let stdin_events = fds[1].revents;
    let stdin_closed = if stdin_events & libc::POLLNVAL != 0 {
        true
    } else if stdin_events & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
        stdin_at_end()
    } else {
        false
    };
    Ok(Ready {
        queue: queue_events & libc::POLLIN != 0,
        stdin_closed,
    })
}

/// Reads (and discards) what standard input has; true at end of file or
/// on an error.
fn stdin_at_end() -> bool {
    let mut buf = [0u8; 4096];
    // SAFETY: `buf` is valid for writes of its length.
    let n = unsafe { libc::read(libc::STDIN_FILENO, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted;
    }
    n == 0
}
