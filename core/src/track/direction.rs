//! Which side of the sensor an address is on.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::event::Direction;

/// The local networks, from configuration or from the capture interface.
#[derive(Clone, Debug, Default)]
pub struct LocalNetworks {
    nets: Vec<IpNet>,
}

impl LocalNetworks {
    pub fn new(nets: Vec<IpNet>) -> Self {
        LocalNetworks {
            nets: nets.into_iter().map(|n| n.trunc()).collect(),
        }
    }

    /// RFC 1918, RFC 6598 shared space, IPv4 link-local, IPv6 ULA and
    /// link-local: the default for replays with nothing configured.
    pub fn private_ranges() -> Self {
        let nets = [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "169.254.0.0/16",
            "fc00::/7",
            "fe80::/10",
        ]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
        LocalNetworks::new(nets)
    }

    pub fn networks(&self) -> &[IpNet] {
        &self.nets
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        // A handful of networks: a linear scan beats any trie here.
        self.nets.iter().any(|n| n.contains(&addr))
    }

    pub fn classify(&self, client: IpAddr, server: IpAddr) -> Direction {
        match (self.contains(client), self.contains(server)) {
            (true, true) => Direction::Internal,
            (true, false) => Direction::Outbound,
            (false, true) => Direction::Inbound,
            (false, false) => Direction::Transit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_by_local_networks() {
        let l = LocalNetworks::new(vec!["10.2.0.0/24".parse().unwrap(), "fd00::/64".parse().unwrap()]);
        let a = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(l.classify(a("10.2.0.5"), a("192.0.2.1")), Direction::Outbound);
        assert_eq!(l.classify(a("192.0.2.1"), a("10.2.0.5")), Direction::Inbound);
        assert_eq!(l.classify(a("10.2.0.5"), a("10.2.0.6")), Direction::Internal);
        assert_eq!(l.classify(a("192.0.2.1"), a("198.51.100.1")), Direction::Transit);
        assert_eq!(l.classify(a("fd00::1"), a("2001:db8::1")), Direction::Outbound);
    }

    #[test]
    fn host_bits_in_configured_networks_are_ignored() {
        let l = LocalNetworks::new(vec!["10.2.0.1/24".parse().unwrap()]);
        assert!(l.contains("10.2.0.200".parse().unwrap()));
    }
}
