//! Reads three fields of each handshake through the host and drops the
//! event, as the testkit plugin in `mode = "drop"` does after lifting all
//! of them: once through a handle (`on-handshake`), once through plain host
//! functions (`on-current`).

wit_bindgen::generate!({ path: "../lean.wit", world: "lean" });

use net_gazer::lean::current;
use net_gazer::lean::types::IpAddress;

struct Lean;

impl Guest for Lean {
    fn on_handshake(event: &Handshake) -> Verdict {
        let port = event.server_port();
        let rtt = event.rtt_last_syn_us();
        let ip = event.server_ip();
        if port == 0 && rtt.is_some() && matches!(ip, IpAddress::Ipv6(_)) {
            event.add_tag("never", "here");
            return Verdict::Keep;
        }
        Verdict::Drop
    }

    fn on_current() -> Verdict {
        let port = current::server_port();
        let rtt = current::rtt_last_syn_us();
        let ip = current::server_ip();
        if port == 0 && rtt.is_some() && matches!(ip, IpAddress::Ipv6(_)) {
            current::add_tag("never", "here");
            return Verdict::Keep;
        }
        Verdict::Drop
    }
}

export!(Lean);
