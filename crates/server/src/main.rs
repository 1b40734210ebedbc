//! The `elevate-server` binary: everything is in the library (`elevate_server::cli`).

fn main() -> anyhow::Result<()> {
    elevate_server::cli::main()
}
