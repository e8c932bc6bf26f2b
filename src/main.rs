//! The `descent` command line. Usage errors exit with 2, runtime errors with 1, and every
//! error is one message that says what was wrong and what to do.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
