//! The `deploy` binary: parses arguments and hands over to the library's CLI.

use clap::Parser;

fn main() {
    let cli = match deploy::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Usage errors exit 1, never 2: `plan --detailed-exitcode` gives 2 its own
            // meaning (changes present).
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    std::process::exit(deploy::cli::run(cli));
}
