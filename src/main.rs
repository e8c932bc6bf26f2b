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
    // Mesa's Vulkan device-select layer picks a default GPU for a display by connecting to it,
    // and prints "error: XDG_RUNTIME_DIR is invalid or not set" where there is none. descent
    // ranks adapters itself and draws nothing, so it turns the layer off unless the user set it.
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        // Before any thread starts, so nothing reads the environment while it changes.
        std::env::set_var("NODEVICE_SELECT", "1");
    }
    std::process::exit(cli::main());
}
