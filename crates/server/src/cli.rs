//! The `elevate-server` command line: `serve` (default), `demo`, `openapi`, `account
//! add|disable|enable|remove`.
//!
//! Must never: print a secret except the one-time demo passwords the user asked for.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::app::{system_clock, AccountChange, Role};
use crate::config::ServerConfig;

#[derive(Debug, Parser)]
#[command(
    name = "elevate-server",
    version,
    about = "Elevate control plane: API, portal, decisions, audit"
)]
struct Cli {
    /// Configuration file (TOML). Environment variables ELEVATE_* override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Listen address, e.g. 127.0.0.1:8080.
    #[arg(long, global = true)]
    listen: Option<String>,
    /// Data directory (SQLite database and key files).
    #[arg(long, global = true)]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Run a demo server on SQLite with an admin, a policy, a device and requests.
    Demo,
    /// Print the OpenAPI document of API v1.
    Openapi,
    /// Manage accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Create or update an account; the password is read from standard input.
    Add {
        name: String,
        /// Comma-separated roles: admin, approver, auditor.
        #[arg(long, value_delimiter = ',', required = true)]
        roles: Vec<String>,
        /// Comma-separated approver groups, e.g. helpdesk,on-call.
        #[arg(long, value_delimiter = ',')]
        groups: Vec<String>,
        /// Where this person's notifications go (approval requests with one-time links).
        #[arg(long)]
        email: Option<String>,
    },
    /// Disable an account: its password, API tokens and portal sign-ins stop working.
    Disable { name: String },
    /// Enable a disabled account again (it signs in anew).
    Enable { name: String },
    /// Remove an account with its tokens and sign-ins (the audit log keeps its history).
    Remove { name: String },
}

/// Entry point of the binary.
pub fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ELEVATE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        print!("{}", crate::http::openapi::document());
        return Ok(());
    }
    let env: Vec<(String, String)> = std::env::vars().collect();
    let mut config = ServerConfig::load(cli.config.as_deref(), &env)?;
    if let Some(l) = &cli.listen {
        config.listen = l
            .parse()
            .with_context(|| format!("--listen {l} is not an address like 127.0.0.1:8080"))?;
    }
    if let Some(d) = &cli.data_dir {
        config.data_dir = d.clone();
    }
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Demo => demo(config, cli.data_dir.is_some()).await,
            Command::Openapi => Ok(()),
            Command::Account { command } => account(config, command).await,
        }
    })
}

async fn serve(config: ServerConfig) -> anyhow::Result<()> {
    let app = crate::build_app(&config, system_clock()).await?;
    let running = crate::serve(app, config.listen).await?;
    tracing::info!(url = %running.url(), "elevate-server is listening");
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}

async fn demo(mut config: ServerConfig, data_dir_given: bool) -> anyhow::Result<()> {
    if !data_dir_given {
        config.data_dir = std::env::temp_dir().join(format!("elevate-demo-{}", std::process::id()));
    }
    config.database_url = None;
    let app = crate::build_app(&config, system_clock()).await?;
    let seed = crate::demo::seed(&app).await?;
    let running = crate::serve(app, config.listen).await?;
    println!(
        "Elevate demo is running (SQLite in {}).",
        config.data_dir.display()
    );
    println!();
    println!("  Portal:   {}/portal/", running.url());
    println!("  Admin:    admin / {}", seed.admin_password);
    println!("  Approver: carol / {}  (helpdesk)", seed.approver_password);
    println!();
    println!(
        "  elevatectl login --server {} --account admin",
        running.url()
    );
    println!();
    println!("The passwords are shown only now. Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}

async fn account(config: ServerConfig, command: AccountCommand) -> anyhow::Result<()> {
    let (name, change) = match command {
        AccountCommand::Disable { name } => (name, AccountChange::Disable),
        AccountCommand::Enable { name } => (name, AccountChange::Enable),
        AccountCommand::Remove { name } => (name, AccountChange::Remove),
        AccountCommand::Add {
            name,
            roles,
            groups,
            email,
        } => return add_account(config, name, roles, groups, email).await,
    };
    let app = crate::build_app(&config, system_clock()).await?;
    app.change_account("system", &name, change).await?;
    println!(
        "account {name} {}",
        match change {
            AccountChange::Disable => "disabled: its password, tokens and sign-ins no longer work",
            AccountChange::Enable => "enabled",
            AccountChange::Remove => "removed",
        }
    );
    Ok(())
}

async fn add_account(
    config: ServerConfig,
    name: String,
    roles: Vec<String>,
    groups: Vec<String>,
    email: Option<String>,
) -> anyhow::Result<()> {
    let roles = roles
        .iter()
        .map(|r| {
            Role::parse(r)
                .with_context(|| format!("unknown role {r:?}; use admin, approver or auditor"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut password = String::new();
    std::io::stdin()
        .read_to_string(&mut password)
        .context("cannot read the password from standard input")?;
    let app = crate::build_app(&config, system_clock()).await?;
    app.upsert_account(
        &name,
        password.trim_end_matches(['\r', '\n']),
        &roles,
        &groups,
    )
    .await?;
    if let Some(email) = email {
        app.set_account_email(&name, Some(&email)).await?;
    }
    println!("account {name} saved");
    Ok(())
}
