//! Handshake records (alone or in batches) lowered into a plugin's memory
//! in one pass ([`crate::plugin::wit::lower`]).

use super::types;

crate::plugin::wit::lower::put_enum!(types::Direction, types::Outcome, types::Side);

crate::plugin::wit::lower::one_pass_handshake!(ip: String, vlan: String);
