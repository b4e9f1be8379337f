//! Which capabilities this process holds, to say exactly what is missing
//! when a raw socket is refused.

/// Linux capability numbers (linux/capability.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Capability {
    NetAdmin = 12,
    NetRaw = 13,
}

impl Capability {
    pub fn name(self) -> &'static str {
        match self {
            Capability::NetAdmin => "CAP_NET_ADMIN",
            Capability::NetRaw => "CAP_NET_RAW",
        }
    }
}

/// The effective capability set, from /proc/self/status; None when it
/// cannot be read (not Linux, no procfs).
pub fn effective() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?.trim();
    u64::from_str_radix(hex, 16).ok()
}

/// The capabilities of `wanted` that the process lacks.
pub fn missing(wanted: &[Capability]) -> Vec<Capability> {
    match effective() {
        Some(set) => wanted
            .iter()
            .copied()
            .filter(|c| set & (1u64 << *c as u32) == 0)
            .collect(),
        None => Vec::new(),
    }
}
