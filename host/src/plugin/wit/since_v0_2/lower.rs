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

crate::plugin::wit::lower::one_pass_handshake!(ip: types::IpAddress, vlan: Vec<u16>);
