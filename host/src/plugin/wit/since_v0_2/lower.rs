//! Handshake records (alone or in batches) lowered into a plugin's memory
//! in one pass ([`crate::plugin::wit::lower`]).

use super::types;

crate::plugin::wit::lower::put_enum!(types::Direction, types::Outcome, types::Side);

/// `ip-address`: a one-byte discriminant, the payload at the variant's
/// payload offset (8: the alignment of the IPv6 case's u64s).
impl crate::plugin::wit::lower::Field for types::IpAddress {
    #[inline(always)]
    fn put(&self, mem: &mut [u8], at: usize) {
        use wasmtime::component::__internal::ComponentVariant;
        let payload = at + <types::IpAddress as ComponentVariant>::PAYLOAD_OFFSET32;
        match self {
            types::IpAddress::Ipv4(v4) => {
                mem[at] = 0;
                v4.put(mem, payload);
            }
            types::IpAddress::Ipv6(v6) => {
                mem[at] = 1;
                v6.put(mem, payload);
            }
        }
    }
}

crate::plugin::wit::lower::one_pass_record!(FastHandshake => types::Handshake {
    id: u64,
    ts_us: i64,
    client_ip: types::IpAddress,
    client_port: u16,
    server_ip: types::IpAddress,
    server_port: u16,
    ip_version: u8,
    vlan: Vec<u16>,
    direction: types::Direction,
    outcome: types::Outcome,
    completed: bool,
    syn_count: u32,
    syns_before_synack: u32,
    synack_count: u32,
    first_syn_us: i64,
    first_synack_us: Option<i64>,
    ack_us: Option<i64>,
    rtt_last_syn_us: Option<f64>,
    rtt_first_syn_us: Option<f64>,
    client_rtt_us: Option<f64>,
    reordered: bool,
    synack_seq_changed: bool,
    rst_from: Option<types::Side>,
    client_ttl: u8,
    client_initial_ttl: u8,
    client_hops: u8,
    server_ttl: Option<u8>,
    server_initial_ttl: Option<u8>,
    server_hops: Option<u8>,
    client_mss: Option<u16>,
    client_wscale: Option<u8>,
    client_sack_permitted: bool,
    client_timestamps: bool,
    server_mss: Option<u16>,
    server_wscale: Option<u8>,
    server_sack_permitted: Option<bool>,
    server_timestamps: Option<bool>,
    syn_data_len: u32,
    ecn_setup: bool,
    tags: Vec<types::Tag>,
});

crate::plugin::wit::lower::one_pass_event!(FastEvent => types::Event, types::Event::Handshake => FastHandshake);
