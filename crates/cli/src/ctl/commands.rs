//! What each `elevatectl` command does: one API call (or two), then output.
//!
//! Must never: print the token.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;

use anyhow::{bail, Context};
use elevate_core::Channel;
use elevate_proto::client::{Client, ClientError};
use elevate_proto::v1::*;

use super::output::{self, table, terminal_safe};
use super::{directory, fleet};
use super::{
    AuditCommand, Cli, Command, OfflineCommand, PolicyCommand, PolicyTestArgs, RequestsCommand,
    Settings,
};

pub(super) fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn client(cli: &Cli, saved: &Settings) -> anyhow::Result<Client> {
    let server = cli
        .server
        .clone()
        .or_else(|| saved.server.clone())
        .context(
            "no server given; run `elevatectl login --server URL --account NAME` or pass --server",
        )?;
    let token = cli.token.clone().or_else(|| saved.token.clone());
    trusting(Client::new(&server, token), cli, saved)
}

/// The client, trusting the CA file given or saved at login, if any.
fn trusting(client: Client, cli: &Cli, saved: &Settings) -> anyhow::Result<Client> {
    let Some(file) = cli.ca_file.as_ref().or(saved.ca_file.as_ref()) else {
        return Ok(client);
    };
    let pem = std::fs::read_to_string(file)
        .with_context(|| format!("cannot read the CA file {}", file.display()))?;
    client
        .trusting(&pem)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// Runs one command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let saved = Settings::load()?;
    match &cli.command {
        Command::Login {
            account,
            password_stdin,
        } => login(&cli, &saved, account, *password_stdin),
        Command::Logout => {
            let mut s = saved.clone();
            s.token = None;
            s.save()?;
            println!("signed out");
            Ok(ExitCode::SUCCESS)
        }
        Command::Whoami => {
            let me: Account = client(&cli, &saved)?.get("/v1/whoami")?;
            if cli.json {
                print_json(&me)?;
            } else {
                println!(
                    "{} (roles: {}; approver groups: {})",
                    terminal_safe(&me.name),
                    me.roles.join(", "),
                    terminal_safe(&me.groups.join(", "))
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Policy(c) => policy(&cli, &client(&cli, &saved)?, c),
        Command::Requests(c) => requests(&cli, &client(&cli, &saved)?, c),
        Command::Devices(c) => fleet::devices(&cli, &client(&cli, &saved)?, c),
        Command::EnrolToken(c) => fleet::enrol_token(&cli, &client(&cli, &saved)?, c),
        Command::Tokens(c) => fleet::tokens(&cli, &client(&cli, &saved)?, c),
        Command::Accounts(c) => fleet::accounts(&client(&cli, &saved)?, c),
        Command::Directory(c) => directory::directory(&cli, &client(&cli, &saved)?, c),
        Command::People(c) => directory::people(&cli, &client(&cli, &saved)?, c),
        Command::Import(a) if a.dry_run => super::discovery::import(&cli, None, a),
        Command::Import(a) => super::discovery::import(&cli, Some(&client(&cli, &saved)?), a),
        Command::Report(a) => super::report::report(&cli, &client(&cli, &saved)?, a),
        Command::Audit(c) => audit(&cli, &client(&cli, &saved)?, c),
        Command::Offline(c) => offline(&cli, &client(&cli, &saved)?, c),
    }
}

fn offline(cli: &Cli, client: &Client, c: &OfflineCommand) -> anyhow::Result<ExitCode> {
    match c {
        OfflineCommand::Show { challenge } => {
            let seen: OfflineChallengeView = client.post(
                "/v1/offline/challenges",
                &OfflineChallengeIn {
                    challenge: challenge.clone(),
                },
            )?;
            if cli.json {
                print_json(&seen)?;
            } else {
                println!("challenge: {}", seen.challenge);
                for d in &seen.devices {
                    println!(
                        "device:    {} (tags {}; last seen {})",
                        terminal_safe(&d.name),
                        terminal_safe(&d.tags.join(",")),
                        d.last_seen_at
                            .map(|t| t.to_string())
                            .unwrap_or_else(|| "never".into())
                    );
                }
                println!(
                    "user:      uid {}{}",
                    seen.uid,
                    seen.user
                        .as_deref()
                        .map(|u| format!(" ({})", terminal_safe(u)))
                        .unwrap_or_else(|| " (no request from this uid seen on that device)".into())
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        OfflineCommand::Respond {
            challenge,
            scope,
            duration,
            reason,
            device,
            command,
            sha256,
        } => {
            let length = elevate_core::duration::parse(duration)
                .map_err(|e| anyhow::anyhow!("--duration: {e}"))?;
            let minutes = (length.as_secs().max(0) as u64).div_ceil(60);
            anyhow::ensure!(
                (1..=1440).contains(&minutes),
                "--duration must be between 1m and 24h"
            );
            let answer: OfflineResponseOut = client.post(
                "/v1/offline/responses",
                &OfflineRespondIn {
                    challenge: challenge.clone(),
                    scope: scope.clone(),
                    minutes: minutes as u16,
                    reason: reason.clone(),
                    device: device.clone(),
                    command: command.clone(),
                    sha256: sha256.clone(),
                },
            )?;
            if cli.json {
                print_json(&answer)?;
            } else {
                println!("{}", answer.response);
                if let (Some(command), Some(sha256)) = (&answer.command, &answer.sha256) {
                    eprintln!(
                        "it covers {} only (SHA-256 {}, {}; rule {})",
                        terminal_safe(command),
                        &sha256[..16.min(sha256.len())],
                        answer.package.as_deref().map_or_else(
                            || "no package".into(),
                            |p| format!("package {}", terminal_safe(p))
                        ),
                        terminal_safe(answer.rule.as_deref().unwrap_or("(the defaults)"))
                    );
                }
                eprintln!(
                    "read it back to {} on {}: {} for {} min (recorded in the audit log)",
                    answer
                        .user
                        .as_deref()
                        .map(terminal_safe)
                        .unwrap_or_else(|| format!("uid {}", answer.uid)),
                    terminal_safe(&answer.device),
                    match answer.scope.as_str() {
                        "session" => "an admin session",
                        "break-glass" => "your share of a break-glass session",
                        _ => "the pending request, once,",
                    },
                    answer.minutes
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn login(cli: &Cli, saved: &Settings, account: &str, from_stdin: bool) -> anyhow::Result<ExitCode> {
    let server = cli
        .server
        .clone()
        .or_else(|| saved.server.clone())
        .context(
            "give the server: elevatectl --server https://elevate.example login --account NAME",
        )?;
    let password = if from_stdin || !std::io::stdin().is_terminal() {
        let mut p = String::new();
        std::io::stdin().read_to_string(&mut p)?;
        p.trim_end_matches(['\r', '\n']).to_string()
    } else {
        rpassword::prompt_password(format!("Password for {account}: "))?
    };
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let issued: TokenIssued = trusting(Client::new(&server, None), cli, saved)?.post(
        "/v1/tokens",
        &TokenRequest {
            account: account.to_string(),
            password,
            label: Some(format!("elevatectl {host}").trim().to_string()),
        },
    )?;
    let path = Settings {
        server: Some(server),
        token: Some(issued.token),
        ca_file: cli.ca_file.clone().or_else(|| saved.ca_file.clone()),
    }
    .save()?;
    println!(
        "signed in as {} (roles: {}) until {}; token saved in {}",
        issued.account,
        issued.roles.join(", "),
        issued.expires_at,
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}

fn policy(cli: &Cli, client: &Client, c: &PolicyCommand) -> anyhow::Result<ExitCode> {
    match c {
        PolicyCommand::Apply { file, comment } => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let applied: Result<PolicyVersion, ClientError> = client.post(
                "/v1/policies",
                &PolicyApply {
                    text,
                    comment: comment.clone(),
                },
            );
            match applied {
                Ok(v) if cli.json => print_json(&v)?,
                Ok(v) => {
                    println!(
                        "applied {} as version {} ({})",
                        file.display(),
                        v.version,
                        &v.sha256[..12]
                    );
                    for warning in &v.warnings {
                        eprintln!("warning: {}", elevate_core::text::visible(warning));
                    }
                }
                Err(ClientError::Api {
                    message,
                    details: Some(d),
                    ..
                }) => {
                    bail!("{}: {message} [line {}]", file.display(), d["line"]);
                }
                Err(e) => return Err(e.into()),
            }
        }
        PolicyCommand::Show { version } => {
            let path = match version {
                Some(v) => format!("/v1/policies/{v}"),
                None => "/v1/policies/current".into(),
            };
            let doc: PolicyDocument = client.get(&path)?;
            if cli.json {
                print_json(&doc)?;
            } else {
                print!("{}", doc.text);
            }
        }
        PolicyCommand::List => {
            let versions: Vec<PolicyVersion> = client.get("/v1/policies")?;
            if cli.json {
                print_json(&versions)?;
            } else {
                let rows: Vec<Vec<String>> = versions
                    .iter()
                    .map(|v| {
                        vec![
                            v.version.to_string(),
                            v.created_at.to_string(),
                            v.author.clone(),
                            v.sha256[..12].to_string(),
                            v.comment.clone().unwrap_or_default(),
                        ]
                    })
                    .collect();
                table(
                    &["VERSION", "APPLIED", "AUTHOR", "SHA256", "COMMENT"],
                    &rows,
                );
            }
        }
        PolicyCommand::Diff { from, to } => {
            let diff: PolicyDiff = client.get(&format!("/v1/policies/{from}/diff/{to}"))?;
            if cli.json {
                print_json(&diff)?;
            } else {
                print!("{}", terminal_safe(&diff.diff).replace("\\u{000a}", "\n"));
            }
        }
        PolicyCommand::Test(args) => {
            let tested: PolicyTestResult = client.post("/v1/policy-test", &policy_test(args)?)?;
            let decision = &tested.decision;
            if cli.json {
                print_json(&tested)?;
            } else {
                for warning in &tested.warnings {
                    eprintln!("warning: {}", terminal_safe(warning));
                }
                println!("{}", decision.outcome.to_uppercase());
                println!("  rule: {}", decision.rule.as_deref().unwrap_or("defaults"));
                println!("  why:  {}", terminal_safe(&decision.explanation));
                if let Some(a) = &decision.approvers {
                    println!("  approvers: {a} ({} needed)", decision.needed);
                }
                if let Some(m) = &decision.message {
                    println!("  message: {}", terminal_safe(m));
                }
                if decision.reason_required {
                    println!("  a reason is required");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn policy_test(a: &PolicyTestArgs) -> anyhow::Result<PolicyTest> {
    let target = match (&a.path, &a.session) {
        (Some(path), None) => WireTarget::Command {
            path: path.clone(),
            invoked: None,
            sha256: a.sha256.clone(),
            package: a.package.clone(),
            args: a.args.clone(),
        },
        (None, Some(len)) => WireTarget::Session {
            duration_secs: elevate_core::duration::parse(len)
                .map_err(|e| anyhow::anyhow!("--session: {e}"))?
                .as_secs() as u64,
        },
        _ => bail!("give either --path /absolute/command or --session 30m"),
    };
    let at =
        a.at.as_deref()
            .map(|t| {
                t.parse::<jiff::Timestamp>().with_context(|| {
                    format!("--at {t} is not an RFC 3339 time like 2026-12-24T20:00:00Z")
                })
            })
            .transpose()?;
    let text = a
        .file
        .as_ref()
        .map(|f| std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display())))
        .transpose()?;
    Ok(PolicyTest {
        request: NewRequest {
            user: a.user.clone(),
            uid: a.uid,
            groups: a.groups.clone(),
            target,
            reason: a.reason.clone(),
            channel: Channel::Native,
            cwd: None,
        },
        device: a.device.clone(),
        device_tags: a.tags.clone(),
        at,
        text,
        version: a.version,
    })
}

fn requests(cli: &Cli, client: &Client, c: &RequestsCommand) -> anyhow::Result<ExitCode> {
    match c {
        RequestsCommand::List { state, limit } => {
            let mut path = format!("/v1/requests?limit={limit}");
            if let Some(s) = state {
                path.push_str(&format!("&state={s}"));
            }
            let list: Vec<RequestView> = client.get(&path)?;
            if cli.json {
                print_json(&list)?;
            } else {
                let rows: Vec<Vec<String>> = list
                    .iter()
                    .map(|r| {
                        vec![
                            r.id.clone(),
                            r.created_at.strftime("%Y-%m-%d %H:%M").to_string(),
                            r.state.clone(),
                            format!("{}@{}", r.user, r.device),
                            r.decision.approvers.clone().unwrap_or_else(|| "-".into()),
                            r.target.describe(),
                        ]
                    })
                    .collect();
                table(
                    &["ID", "CREATED", "STATE", "WHO", "APPROVERS", "WHAT"],
                    &rows,
                );
            }
        }
        RequestsCommand::Show { id } => {
            let r: RequestView = client.get(&format!("/v1/requests/{id}"))?;
            if cli.json {
                print_json(&r)?;
            } else {
                output::request(&r);
            }
        }
        RequestsCommand::Approve { id, comment } | RequestsCommand::Deny { id, comment } => {
            let verb = if matches!(c, RequestsCommand::Approve { .. }) {
                "approve"
            } else {
                "deny"
            };
            let r: RequestView = client.post(
                &format!("/v1/requests/{id}/{verb}"),
                &Verdict {
                    comment: comment.clone(),
                },
            )?;
            if cli.json {
                print_json(&r)?;
            } else {
                println!("request {} is now {}", r.id, r.state);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn audit(cli: &Cli, client: &Client, c: &AuditCommand) -> anyhow::Result<ExitCode> {
    match c {
        AuditCommand::Verify => {
            let report: VerifyReport = client.get("/v1/audit/verify")?;
            if cli.json {
                print_json(&report)?;
            } else if let Some(b) = &report.first_break {
                println!("BROKEN: {}", terminal_safe(&b.message));
                println!(
                    "  first bad record: {} ({}); {} records read",
                    b.seq, b.kind, report.count
                );
            } else {
                println!(
                    "ok: {} records verified; head {}",
                    report.count, report.head
                );
                match report.checkpointed_to {
                    Some(seq) => println!(
                        "   {} signed checkpoints match; the newest covers record {seq}",
                        report.checkpoints
                    ),
                    None => {
                        println!("   no signed checkpoint yet (the server signs one every 15 s)")
                    }
                }
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Export { format, output } => {
            let body = client.get_text(&format!("/v1/audit/export?format={format}"))?;
            match output {
                Some(path) => {
                    std::fs::write(path, body)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    eprintln!("exported to {}", path.display());
                }
                None => print!("{body}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
