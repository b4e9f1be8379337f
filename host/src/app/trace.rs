//! `net-gazer trace HOST`: one trace with the daemon's engine, printed as a
//! report like `mtr --report` (hop, address, loss, RTT best/avg/worst) or
//! as the JSON route event the daemon would write.

use std::io::Write;
use std::net::{IpAddr, ToSocketAddrs};

use anyhow::Context;

use crate::cli::TraceArgs;
use crate::config::Config;
use crate::event::Event;
use crate::trace::engine::Settings;
use crate::trace::trigger::Verdict;
use crate::trace::{socket, tracer, HopResult, Request, Style, TraceResult};

pub fn run(config: &Config, args: &TraceArgs) -> anyhow::Result<()> {
    let dst = resolve(&args.host, args.ipv4, args.ipv6)?;
    let src = socket::source_for(dst).with_context(|| format!("no route to {dst}"))?;
    let t = &config.trace;
    let settings = Settings {
        first_ttl: args.first_ttl.unwrap_or(t.first_ttl),
        max_ttl: args.max_ttl.unwrap_or(t.max_ttl),
        probes_per_hop: args.probes.unwrap_or(t.probes),
        timeout: args.timeout.unwrap_or(t.timeout),
        rate: args.rate.unwrap_or(t.rate),
        burst: t.burst,
        max_concurrent: 1,
        max_waiting: 1,
        style: if args.classic { Style::Classic } else { t.style },
        assume_hops: t.assume_hops,
    };
    let mut out = std::io::stdout().lock();
    for i in 0..args.count.max(1) {
        let request = Request {
            src,
            dst,
            protocol: args.protocol,
            port: args.port,
            handshake_id: None,
            hops_hint: None,
        };
        let results = tracer::trace_now(settings.clone(), vec![request])?;
        let r = results.into_iter().next().context("the trace did not finish")?;
        if args.json {
            let verdict = Verdict {
                changed: false,
                previous: Vec::new(),
            };
            let event = Event::Route(tracer::route_event(i as u64 + 1, &r, verdict));
            let mut line = Vec::new();
            crate::output::json::append(&mut line, &event)?;
            line.push(b'\n');
            out.write_all(&line)?;
        } else {
            write!(out, "{}", report(&args.host, &r, &settings))?;
        }
        out.flush()?;
    }
    Ok(())
}

/// `host` as an address (a literal, or the first of the wanted family its
/// name resolves to).
fn resolve(host: &str, v4: bool, v6: bool) -> anyhow::Result<IpAddr> {
    if let Ok(a) = host.parse::<IpAddr>() {
        anyhow::ensure!(!(v6 && a.is_ipv4()), "{host} is an IPv4 address but -6 was given");
        anyhow::ensure!(!(v4 && a.is_ipv6()), "{host} is an IPv6 address but -4 was given");
        return Ok(a);
    }
    let addrs: Vec<IpAddr> = (host, 0)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .map(|s| s.ip())
        .collect();
    addrs
        .iter()
        .copied()
        .find(|a| (!v6 || a.is_ipv6()) && (!v4 || a.is_ipv4()))
        .with_context(|| format!("{host} has no {} address", if v6 { "IPv6" } else { "IPv4" }))
}

/// The mtr-style report of one trace.
fn report(host: &str, r: &TraceResult, s: &Settings) -> String {
    let mut o = String::new();
    let port = r.dst_port.map(|p| format!(" port {p}")).unwrap_or_default();
    o += &format!(
        "net-gazer trace to {host} ({}) from {}: {}{port}, {}, {} hops max, {} probes per hop\n",
        r.request.dst,
        r.request.src,
        r.protocol.name(),
        r.style.name(),
        s.max_ttl,
        s.probes_per_hop,
    );
    o += &format!(
        "{:>3}  {:<40} {:>6} {:>4} {:>4} {:>8} {:>8} {:>8}\n",
        "HOP", "ADDRESS", "LOSS%", "SNT", "RCV", "BEST ms", "AVG ms", "WRST ms"
    );
    for h in &r.hops {
        o += &hop_line(h);
    }
    let took = r.finished.micros_since(r.started) / 1e6;
    match (r.reached, r.hops.last()) {
        (true, Some(last)) => o += &format!("reached {} at hop {} in {took:.3} s\n", r.request.dst, last.ttl),
        _ => o += &format!("{} not reached ({took:.3} s)\n", r.request.dst),
    }
    o
}

fn hop_line(h: &HopResult) -> String {
    let ms = |v: Option<f64>| v.map(|us| format!("{:.3}", us / 1000.0)).unwrap_or_default();
    let addr = match h.addr {
        Some(a) => format!("{a}{}", mark(h)),
        None => "???".into(),
    };
    let mut line = format!(
        "{:>3}  {:<40} {:>5.1}% {:>4} {:>4} {:>8} {:>8} {:>8}\n",
        h.ttl,
        addr,
        h.loss_percent(),
        h.sent,
        h.received,
        ms(h.rtt_min_us),
        ms(h.rtt_avg_us),
        ms(h.rtt_max_us)
    );
    for other in &h.other_addrs {
        line += &format!("     {other} (also answered at this TTL)\n");
    }
    line
}

/// traceroute's annotations for unreachables from routers: `!H` host,
/// `!N` network, `!X` administratively prohibited, `!P` protocol.
fn mark(h: &HopResult) -> &'static str {
    let v6 = h.addr.is_some_and(|a| a.is_ipv6());
    match (v6, h.icmp_type, h.icmp_code) {
        (false, Some(3), Some(1)) | (true, Some(1), Some(3)) => " !H",
        (false, Some(3), Some(0)) | (true, Some(1), Some(0)) => " !N",
        (false, Some(3), Some(2)) => " !P",
        (false, Some(3), Some(9 | 10 | 13)) | (true, Some(1), Some(1)) => " !X",
        _ => "",
    }
}
