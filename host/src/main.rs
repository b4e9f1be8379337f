//! `net-gazer`: parses arguments and hands over to the library. Exit
//! statuses: 0, 1 for a failure, 64 for a command-line mistake, 78 for a
//! configuration error (docs/operations.md).

fn main() -> std::process::ExitCode {
    let cli: net_gazer::cli::Cli = net_gazer_common::exit::parse_args();
    net_gazer::app::init_logging(cli.verbose);
    match net_gazer::app::main(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => net_gazer_common::exit::report("net-gazer", &e),
    }
}
