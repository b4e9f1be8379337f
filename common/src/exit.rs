//! Exit statuses for service managers (sysexits.h): a configuration error
//! exits 78 (`EX_CONFIG`), so a unit with `RestartPreventExitStatus=78`
//! stops instead of restarting in a loop on a file that will not change;
//! a command-line mistake exits 64 (`EX_USAGE`); anything else 1.

use std::process::ExitCode;

/// `EX_USAGE`: the command line is wrong.
pub const USAGE: u8 = 64;
/// `EX_CONFIG`: the configuration is wrong.
pub const CONFIG: u8 = 78;

/// Marks an error as a configuration error (exit 78) wherever it sits in
/// an `anyhow` chain.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigProblem(pub String);

/// The arguments, or the process ends: help and version exit 0, a usage
/// error prints clap's message and exits 64.
pub fn parse_args<C: clap::Parser>() -> C {
    match C::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { i32::from(USAGE) } else { 0 })
        }
    }
}

/// Prints `error` (with its causes) after `program: error: ` and gives the
/// status it deserves.
pub fn report(program: &str, error: &anyhow::Error) -> ExitCode {
    eprintln!("{program}: error: {error:#}");
    ExitCode::from(status_of(error))
}

/// 78 when a configuration error is anywhere in the chain, else 1.
pub fn status_of(error: &anyhow::Error) -> u8 {
    let config = error.chain().any(|e| {
        e.is::<ConfigProblem>() || e.is::<crate::config_file::ConfigError>() || e.is::<crate::config_file::Invalid>()
    });
    if config {
        CONFIG
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_errors_anywhere_in_the_chain_exit_78() {
        let plain = anyhow::anyhow!("the interface is gone");
        assert_eq!(status_of(&plain), 1);
        let config = anyhow::Error::new(ConfigProblem("key `x`: bad".into())).context("starting");
        assert_eq!(status_of(&config), CONFIG);
    }
}
