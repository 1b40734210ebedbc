//! The `elevated` binary: everything is in the library (`elevate_agent::cli`).

fn main() -> anyhow::Result<()> {
    elevate_agent::cli::main()
}
