//! The `elevated` command line: `run` (the daemon, default), `enrol`, `status`, `install-sudo`,
//! `uninstall-sudo`, and the hidden `session-reaper` the agent starts for each admin session.
//!
//! Must never: print the device credential or secret.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::daemon::AgentConfig;

#[derive(Debug, Parser)]
#[command(name = "elevated", version, about = "Elevate's root agent")]
struct Cli {
    /// Folder for the enrolment, the policy cache and the audit spool.
    #[arg(long, global = true, default_value = crate::DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent (the default).
    Run {
        /// Socket the `elevate` command connects to.
        #[arg(long, default_value = crate::DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Seconds between policy refreshes.
        #[arg(long, default_value_t = 60)]
        refresh_secs: u64,
        /// The cgroup (v2) folder admin sessions are made in (default: `elevate` at the top of
        /// the cgroup v2 hierarchy). Only for agents that share a kernel, such as tests.
        #[arg(long)]
        cgroup_root: Option<PathBuf>,
        /// Record root commands run outside sudo and elevate (su, pkexec, root shells) through
        /// Linux audit, where auditing is on.
        #[arg(long, default_value = "on", value_parser = ["on", "off"])]
        linux_audit: String,
        /// The most the audit spool may hold while the server cannot be reached, e.g. 256MiB,
        /// 2GiB, 512KiB. Past it the oldest discovery events are summarised; when only audit
        /// events are left, elevation is refused until they are delivered.
        #[arg(long, default_value = "256MiB", value_parser = parse_size)]
        spool_max: u64,
    },
    /// Enrol this device with a one-time token from `elevatectl enrol-token create`.
    Enrol {
        /// Server URL, e.g. https://elevate.example.
        #[arg(long)]
        server: String,
        /// The token, or `-` to read it from standard input (keeps it out of `ps`).
        #[arg(long)]
        token: String,
        /// Device name (default: the host name).
        #[arg(long)]
        name: Option<String>,
        /// Allow a plain http:// server beyond this machine. The credential and the
        /// offline-code secret then cross the network in clear; `elevate status` says so.
        #[arg(long)]
        insecure_http: bool,
        /// The certificate authority (PEM) that issued the server's certificate, when it is
        /// your organisation's own rather than one of the web's.
        #[arg(long)]
        ca_file: Option<std::path::PathBuf>,
    },
    /// Show what the running agent is doing: server, policy, spool, and which collectors record
    /// elevation here (the elevate front door, the sudo plugin, Linux audit).
    Status {
        /// The running agent's socket.
        #[arg(long, default_value = crate::DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Route sudo through Elevate: add the plugins to sudo.conf (safely, idempotently).
    InstallSudo {
        #[command(flatten)]
        sudo: SudoArgs,
    },
    /// Stop routing sudo through Elevate: remove the managed lines from sudo.conf.
    UninstallSudo {
        #[command(flatten)]
        sudo: SudoArgs,
    },
    /// Standing admin rights on this machine: what grants root (sudoers, root-equivalent
    /// groups, polkit, directory services), and what Elevate has taken away.
    Rights {
        /// End every process of USER: a group taken away stays with the sessions that were
        /// open before, until they end.
        #[arg(long, value_name = "USER")]
        end_sessions: Option<String>,
    },
    /// Internal: started by the agent for each admin session; ends it at its expiry even when
    /// the agent is gone.
    #[command(hide = true)]
    SessionReaper {
        #[arg(long)]
        id: String,
        /// The agent's cgroup folder for admin sessions.
        #[arg(long)]
        cgroup_root: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct SudoArgs {
    /// The sudo configuration to edit.
    #[arg(long, default_value = "/etc/sudo.conf")]
    sudo_conf: PathBuf,
    /// The sudo binary (its version decides whether plugins can work at all).
    #[arg(long, default_value = "/usr/bin/sudo")]
    sudo: PathBuf,
    /// The Elevate sudo plugin (root-owned, not writable by others).
    #[arg(long, default_value = crate::sudo_setup::DEFAULT_PLUGIN)]
    plugin: PathBuf,
    /// The agent's socket, as the plugins should reach it.
    #[arg(long, default_value = crate::DEFAULT_SOCKET)]
    socket: PathBuf,
}

impl SudoArgs {
    fn setup(self, state_dir: PathBuf) -> crate::sudo_setup::SudoSetup {
        crate::sudo_setup::SudoSetup {
            sudo_conf: self.sudo_conf,
            sudo: self.sudo,
            plugin: self.plugin,
            socket: self.socket,
            state_dir,
        }
    }
}

fn host_name() -> String {
    crate::os::host::node_name()
}

/// The agent holds descriptors for what it serves and supervises (sockets, pidfds, ptys):
/// the soft limit (often 1024) is raised to the hard one, so a busy machine does not run out.
fn raise_open_file_limit() {
    if let Err(e) = crate::os::process::raise_open_file_limit() {
        tracing::warn!(error = %e, "cannot raise the open-file limit");
    }
}

/// `elevated status`: asks the running agent (as any caller may) and prints its state.
fn status(socket: &std::path::Path) -> anyhow::Result<()> {
    use elevate_proto::ipc::{encode, AgentFrame, ClientFrame, FrameReader};
    use std::io::Write;
    let mut stream = std::os::unix::net::UnixStream::connect(socket).with_context(|| {
        format!(
            "the agent is not running (nothing listens on {}); start it with `elevated run`",
            socket.display()
        )
    })?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(&encode(&ClientFrame::Status))?;
    let mut reader = FrameReader::new();
    let mut buf = [0u8; 8192];
    let frame = loop {
        if let Some(frame) = reader.next_frame::<AgentFrame>()? {
            break frame;
        }
        let n = stream.read(&mut buf)?;
        anyhow::ensure!(n > 0, "the agent closed the connection without an answer");
        reader.push(&buf[..n]);
    };
    let AgentFrame::Status(s) = frame else {
        anyhow::bail!("the agent did not answer with its status: {frame:?}");
    };
    let shown = elevate_core::text::visible;
    println!("agent:   running (elevated {})", s.version);
    println!("device:  {}", shown(&s.device));
    println!("server:  {} ({})", shown(&s.server), shown(&s.upstream));
    match s.policy_version {
        Some(v) => println!("policy:  version {v}"),
        None => println!("policy:  none yet (nothing can run until the agent reaches the server)"),
    }
    println!(
        "spooled: {} audit events waiting for the server",
        s.spooled_events
    );
    if let Some(spool) = &s.spool {
        println!("spool:   {}", shown(spool));
    }
    for c in &s.collectors {
        println!("records: {}", shown(c));
    }
    Ok(())
}

/// A size such as `256MiB`, `2GiB`, `512KiB` or a number of bytes (at least 64 KiB).
fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size; write e.g. 256MiB, 2GiB or 512KiB"))?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "K" | "KiB" | "k" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown unit {other:?}; use KiB, MiB or GiB (e.g. 256MiB)"
            ))
        }
    };
    let bytes = number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if bytes < 64 << 10 {
        return Err(format!(
            "{text:?} is too small to hold even a few events; use at least 64KiB"
        ));
    }
    Ok(bytes)
}

/// Entry point of the binary.
pub fn main() -> anyhow::Result<()> {
    crate::os::memory::single_malloc_arena();
    crate::os::exec::ensure_standard_fds().context("cannot open /dev/null")?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("ELEVATE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    raise_open_file_limit();
    let cli = Cli::parse();
    if !crate::os::host::running_as_root() {
        anyhow::bail!("elevated must run as root");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    match cli.command.unwrap_or(Command::Run {
        socket: crate::DEFAULT_SOCKET.into(),
        refresh_secs: 60,
        cgroup_root: None,
        linux_audit: "on".into(),
        spool_max: crate::spool::DEFAULT_MAX_BYTES,
    }) {
        Command::Run {
            socket,
            refresh_secs,
            cgroup_root,
            linux_audit,
            spool_max,
        } => runtime.block_on(crate::daemon::run(AgentConfig {
            socket,
            state_dir: cli.state_dir,
            refresh: Duration::from_secs(refresh_secs.max(1)),
            cgroup_root,
            linux_audit: linux_audit == "on",
            spool_max,
        })),
        Command::Enrol {
            server,
            token,
            name,
            insecure_http,
            ca_file,
        } => {
            // Refused before the token is read or anything is sent.
            crate::enrolment::transport(&server, insecure_http)?;
            let ca_pem = ca_file
                .map(|f| {
                    std::fs::read_to_string(&f)
                        .with_context(|| format!("cannot read the CA file {}", f.display()))
                })
                .transpose()?;
            let token = if token == "-" {
                let mut t = String::new();
                std::io::stdin().read_to_string(&mut t)?;
                t.trim().to_string()
            } else {
                token
            };
            let name = name.unwrap_or_else(host_name);
            let e = runtime.block_on(crate::enrolment::enrol(
                &server,
                &token,
                &name,
                &cli.state_dir,
                crate::enrolment::Reach {
                    insecure_http,
                    ca_pem,
                },
            ))?;
            println!(
                "enrolled as {} ({}) with {}; start the agent with `elevated run`",
                e.name, e.device_id, e.server
            );
            Ok(())
        }
        Command::Status { socket } => status(&socket),
        Command::InstallSudo { sudo } => {
            println!(
                "{}",
                crate::sudo_setup::install(&sudo.setup(cli.state_dir))?
            );
            Ok(())
        }
        Command::SessionReaper { id, cgroup_root } => {
            let mut places = crate::grants::AdminSessions::system(&cli.state_dir);
            if cgroup_root.is_some() {
                places.cgroups = cgroup_root;
            }
            places.reap(&id)
        }
        Command::Rights { end_sessions } => rights(&cli.state_dir, end_sessions.as_deref()),
        Command::UninstallSudo { sudo } => {
            println!(
                "{}",
                crate::sudo_setup::uninstall(&sudo.setup(cli.state_dir))?
            );
            Ok(())
        }
    }
}

/// `elevated rights`: what grants root here, what was taken; or ends a user's processes.
fn rights(state_dir: &std::path::Path, end_sessions: Option<&str>) -> anyhow::Result<()> {
    use elevate_core::text::visible;
    if let Some(user) = end_sessions {
        let uid = crate::users::uid_of(user)
            .ok_or_else(|| anyhow::anyhow!("there is no user {}", visible(user)))?;
        let ended = crate::rights::end_sessions(uid)?;
        println!(
            "ended {ended} processes of {}; their next login has only the groups they hold now",
            visible(user)
        );
        return Ok(());
    }
    let rights = crate::rights::Rights::system(state_dir);
    let standing = rights.standing()?;
    let ledger = rights.ledger()?;
    if standing.is_empty() && ledger.is_empty() {
        println!("no standing admin rights here");
    }
    for (user, right) in &standing {
        println!(
            "standing  {}: {}",
            visible(user),
            visible(&right.describe())
        );
    }
    for r in &ledger {
        println!(
            "revoked   {}: {} (since {})",
            visible(&r.user),
            visible(&r.right.describe()),
            r.at
        );
    }
    Ok(())
}
