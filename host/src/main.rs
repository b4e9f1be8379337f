//! `net-gazer`: parses arguments and hands over to the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = net_gazer::cli::Cli::parse();
    net_gazer::app::init_logging(cli.verbose);
    match net_gazer::app::main(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("net-gazer: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
