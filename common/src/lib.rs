//! What the sensor (`net-gazer`) and the collector (`net-gazer-collector`)
//! share: how they log, how they find, read and report on their TOML
//! configuration files (with durations and numeric ranges), how they exit,
//! and state that a panic cannot poison.

pub mod config_file;
pub mod duration;
pub mod exit;
pub mod file;
pub mod logging;
#[cfg(feature = "nats")]
pub mod nats;
pub mod range;
pub mod sync;
