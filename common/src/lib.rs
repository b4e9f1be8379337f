//! What the sensor (`net-gazer`) and the collector (`net-gazer-collector`)
//! share: how they log, and how they find, read and report on their TOML
//! configuration files.

pub mod config_file;
pub mod logging;
