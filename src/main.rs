//! The `deploy` binary: parses arguments and hands over to the library's CLI.

use clap::Parser;

fn main() {
    let cli = deploy::cli::Cli::parse();
    std::process::exit(deploy::cli::run(cli));
}
