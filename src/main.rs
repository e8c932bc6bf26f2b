//! The `descent` command line. Usage errors exit with 2, runtime errors with 1, and every
//! error is one message that says what was wrong and what to do.

mod cli;

fn main() {
    // Exit quietly when the reader of stdout goes away (`descent ... | head`), as Unix tools do.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(cli::main());
}
