//! The `elevatectl` binary: everything is in the library (`elevate_cli::ctl`).

fn main() -> std::process::ExitCode {
    elevate_cli::ctl::main()
}
