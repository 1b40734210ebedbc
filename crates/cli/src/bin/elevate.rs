//! The `elevate` binary: everything is in the library (`elevate_cli::elevate`).

fn main() -> std::process::ExitCode {
    elevate_cli::elevate::main()
}
