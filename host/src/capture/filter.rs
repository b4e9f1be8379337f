//! The kernel-side capture filter for each mode, in tcpdump syntax, combined
//! with the operator's own filter.
//!
//! libpcap cannot index the TCP header behind IPv6 (`tcp[13]` is IPv4
//! only), so IPv6 segments are matched at fixed offsets behind a 40-byte
//! header with next-header TCP; IPv6 segments behind extension headers do
//! not pass the kernel filter in handshake mode (they are rare; quality mode
//! sees them). The whole expression is repeated behind `vlan` so tagged
//! frames on a trunk pass too, with one
//! tag or two (Q-in-Q); deeper stacks do not.

use crate::track::Mode;

/// SYN, RST or FIN set (whatever else is set: ECE/CWR, data).
const V4_CONTROL: &str = "(ip and tcp and tcp[13] & 0x07 != 0)";
const V6_CONTROL: &str = "(ip6 and ip6[6] = 6 and ip6[53] & 0x07 != 0)";
/// ACK without SYN/RST/FIN and without payload: the client's handshake ACK
/// is one of these.
const V4_PURE_ACK: &str =
    "(ip and tcp and tcp[13] & 0x17 = 0x10 and ip[2:2] - ((ip[0] & 0x0f) << 2) - ((tcp[12] & 0xf0) >> 2) = 0)";
const V6_PURE_ACK: &str = "(ip6 and ip6[6] = 6 and ip6[53] & 0x17 = 0x10 and ip6[4:2] - ((ip6[52] & 0xf0) >> 2) = 0)";

/// The filter expression for `mode`, ANDed with the operator's filter.
pub fn expression(mode: Mode, client_rtt: bool, operator: Option<&str>) -> String {
    let base = match mode {
        Mode::Quality => "tcp".to_string(),
        Mode::Handshake if client_rtt => format!("{V4_CONTROL} or {V6_CONTROL} or {V4_PURE_ACK} or {V6_PURE_ACK}"),
        Mode::Handshake => format!("{V4_CONTROL} or {V6_CONTROL}"),
    };
    let inner = match operator.map(str::trim).filter(|f| !f.is_empty()) {
        Some(op) => format!("({base}) and ({op})"),
        None => base,
    };
    // `vlan` shifts the offsets of everything after it in the expression,
    // so the whole test (operator filter included) is repeated behind it.
    // Each `vlan` shifts the rest of the expression by one tag, so the
    // Q-in-Q test nests inside the single-tag one.
    format!("({inner}) or (vlan and (({inner}) or (vlan and ({inner}))))")
}

/// A capture filter libpcap refused, with its message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{expression}` does not compile: {reason}")]
pub struct FilterError {
    pub expression: String,
    pub reason: String,
}

/// Whether the operator's filter compiles (for Ethernet, as live capture
/// uses it): `Ok(false)` when libpcap cannot be loaded to tell, `Err` with
/// libpcap's message when it does not compile.
pub fn check(mode: Mode, client_rtt: bool, operator: &str) -> Result<bool, FilterError> {
    use crate::capture::libpcap::Program;
    const ETHERNET: u32 = 1;
    if Program::compile(ETHERNET, "tcp").is_err() {
        return Ok(false);
    }
    Program::compile(ETHERNET, &expression(mode, client_rtt, Some(operator)))
        .map(|_| true)
        .map_err(|e| FilterError {
            expression: operator.to_owned(),
            reason: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::craft::{frame, TcpSpec};
    use crate::decode::{LinkType, TcpFlags, VlanStack};

    /// Runs the compiled filter over a frame in user space: the same
    /// program the kernel runs on the socket.
    fn passes(expr: &str, frame: &[u8]) -> bool {
        let prog = crate::capture::libpcap::Program::compile(1, expr)
            .unwrap_or_else(|e| panic!("filter `{expr}` does not compile: {e}"));
        prog.matches(frame)
    }

    fn eth(src: &str, dst: &str, flags: TcpFlags, payload: usize, vlan: VlanStack) -> Vec<u8> {
        let (s, d): (IpAddr, IpAddr) = (src.parse().unwrap(), dst.parse().unwrap());
        let spec = TcpSpec::new(s, 40000, d, 22, flags).payload(&vec![0u8; payload]);
        frame(LinkType::Ethernet, vlan, &spec.ip_bytes())
    }

    #[test]
    fn handshake_filter_passes_control_segments_and_pure_acks_only() {
        let f = expression(Mode::Handshake, true, None);
        let mut q = VlanStack::NONE;
        q.push(42);
        let mut qinq = VlanStack::NONE;
        qinq.push(10);
        qinq.push(20);
        for (src, dst) in [("10.0.0.1", "10.0.0.2"), ("fd00::1", "fd00::2")] {
            for vlan in [VlanStack::NONE, q, qinq] {
                let ctx = format!("{src} vlan {vlan}");
                assert!(passes(&f, &eth(src, dst, TcpFlags::SYN, 0, vlan)), "SYN {ctx}");
                let syn_ecn = TcpFlags::SYN | TcpFlags::ECE | TcpFlags::CWR;
                assert!(passes(&f, &eth(src, dst, syn_ecn, 0, vlan)), "SYN+ECE+CWR {ctx}");
                assert!(
                    passes(&f, &eth(src, dst, TcpFlags::SYN, 100, vlan)),
                    "TFO SYN with data {ctx}"
                );
                assert!(
                    passes(&f, &eth(src, dst, TcpFlags::SYN | TcpFlags::ACK, 0, vlan)),
                    "SYN-ACK {ctx}"
                );
                assert!(
                    passes(&f, &eth(src, dst, TcpFlags::RST | TcpFlags::ACK, 0, vlan)),
                    "RST {ctx}"
                );
                assert!(
                    passes(&f, &eth(src, dst, TcpFlags::FIN | TcpFlags::ACK, 0, vlan)),
                    "FIN {ctx}"
                );
                assert!(passes(&f, &eth(src, dst, TcpFlags::ACK, 0, vlan)), "pure ACK {ctx}");
                assert!(!passes(&f, &eth(src, dst, TcpFlags::ACK, 1000, vlan)), "data {ctx}");
                assert!(
                    !passes(&f, &eth(src, dst, TcpFlags::ACK | TcpFlags::PSH, 10, vlan)),
                    "data+PSH {ctx}"
                );
            }
        }
        let no_acks = expression(Mode::Handshake, false, None);
        assert!(!passes(
            &no_acks,
            &eth("10.0.0.1", "10.0.0.2", TcpFlags::ACK, 0, VlanStack::NONE)
        ));
        assert!(passes(
            &no_acks,
            &eth("10.0.0.1", "10.0.0.2", TcpFlags::SYN, 0, VlanStack::NONE)
        ));
    }

    #[test]
    fn quality_filter_passes_all_tcp_and_operator_filter_is_combined() {
        let f = expression(Mode::Quality, true, Some("not port 22"));
        let mut q = VlanStack::NONE;
        q.push(7);
        for vlan in [VlanStack::NONE, q] {
            assert!(
                !passes(&f, &eth("10.0.0.1", "10.0.0.2", TcpFlags::SYN, 0, vlan)),
                "port 22 excluded, vlan {vlan}"
            );
        }
        let f = expression(Mode::Quality, true, Some("port 22"));
        assert!(passes(
            &f,
            &eth("10.0.0.1", "10.0.0.2", TcpFlags::ACK, 1000, VlanStack::NONE)
        ));
    }

    #[test]
    fn replay_interest_agrees_with_the_kernel_filter() {
        use crate::decode::{decode, Interest};
        let mut q = VlanStack::NONE;
        q.push(9);
        for (mode, client_rtt) in [(Mode::Handshake, true), (Mode::Handshake, false), (Mode::Quality, true)] {
            let expr = expression(mode, client_rtt, None);
            let interest = Interest {
                all_tcp: mode == Mode::Quality,
                pure_acks: client_rtt,
            };
            for (src, dst) in [("10.0.0.1", "10.0.0.2"), ("fd00::1", "fd00::2")] {
                for flags in [
                    TcpFlags::SYN,
                    TcpFlags::SYN | TcpFlags::ACK,
                    TcpFlags::ACK,
                    TcpFlags::ACK | TcpFlags::PSH,
                    TcpFlags::RST,
                    TcpFlags::FIN | TcpFlags::ACK,
                ] {
                    for payload in [0, 10] {
                        for vlan in [VlanStack::NONE, q] {
                            let f = eth(src, dst, flags, payload, vlan);
                            let kernel = passes(&expr, &f);
                            let replay = decode(LinkType::Ethernet, &f, interest, |_| ()).is_ok();
                            assert_eq!(
                                kernel, replay,
                                "{mode:?} client_rtt {client_rtt} {src} {flags:?} payload {payload} vlan {vlan}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_bad_operator_filter_does_not_compile() {
        assert!(
            crate::capture::libpcap::Program::compile(1, &expression(Mode::Handshake, true, Some("port banana")))
                .is_err()
        );
    }
}
