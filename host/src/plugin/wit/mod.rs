//! The plugin contract, one module per version (Zed's `wit.rs` layout): a
//! host that grows the contract keeps loading plugins built against every
//! version it still lists here.
//!
//! A plugin's version is read from the name of the interface it exports
//! (`net-gazer:plugin/plugin@0.1.0`) before anything of it runs.

pub mod lower;
pub mod since_v0_1;

use std::fmt;

/// The package and interface every plugin exports.
pub const EXPORT_PREFIX: &str = "net-gazer:plugin/plugin@";

/// A contract version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
        let v = Version {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        parts.next().is_none().then_some(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// The contract versions this host runs, newest first.
pub const SUPPORTED: [Version; 1] = [since_v0_1::VERSION];

/// Which binding module runs a plugin of `version`: the same major and minor
/// (before 1.0, the minor is the breaking number, as in Cargo) and a patch
/// no newer than the host knows.
pub fn binding_for(version: Version) -> Option<Version> {
    SUPPORTED
        .iter()
        .copied()
        .find(|s| s.major == version.major && s.minor == version.minor && version.patch <= s.patch)
}

pub fn supported_list() -> String {
    SUPPORTED.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_and_match_like_cargo_before_1_0() {
        let v = |s| Version::parse(s).unwrap();
        assert_eq!(Version::parse("0.1"), None);
        assert_eq!(Version::parse("0.1.0.1"), None);
        assert_eq!(Version::parse("x.1.0"), None);
        assert_eq!(binding_for(v("0.1.0")), Some(v("0.1.0")));
        assert_eq!(binding_for(v("0.2.0")), None);
        assert_eq!(binding_for(v("1.1.0")), None);
        assert_eq!(
            binding_for(v("0.1.7")),
            None,
            "a newer patch may use what this host lacks"
        );
    }
}
