//! `elevatectl devices`, `enrol-token`, `tokens` and `accounts`: the fleet and the credentials
//! that reach it.
//!
//! Must never: print a token other than the one-time enrolment token it was asked for.

use std::process::ExitCode;

use anyhow::bail;
use elevate_proto::client::Client;
use elevate_proto::v1::*;

use super::commands::print_json;
use super::output::table;
use super::{AccountsCommand, Cli, DevicesCommand, EnrolTokenCommand, TokensCommand};

/// A device name as the server takes it (a host name), or a clear error before anything is sent.
fn device_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        bail!(
            "{:?} is not a device name (see `elevatectl devices list`)",
            name
        );
    }
    Ok(())
}

pub(super) fn devices(cli: &Cli, client: &Client, c: &DevicesCommand) -> anyhow::Result<ExitCode> {
    match c {
        DevicesCommand::List => {
            let devices: Vec<Device> = client.get("/v1/devices")?;
            if cli.json {
                print_json(&devices)?;
            } else {
                let rows: Vec<Vec<String>> = devices
                    .iter()
                    .map(|d| {
                        vec![
                            d.name.clone(),
                            d.tags.join(","),
                            d.enrolled_at.to_string(),
                            d.last_seen_at
                                .map(|t| t.to_string())
                                .unwrap_or_else(|| "never".into()),
                            match &d.revoked_at {
                                Some(at) => format!(
                                    "revoked {at} by {}",
                                    d.revoked_by.as_deref().unwrap_or("?")
                                ),
                                None => "enrolled".into(),
                            },
                            d.id.clone(),
                        ]
                    })
                    .collect();
                table(
                    &["NAME", "TAGS", "ENROLLED", "LAST SEEN", "STATE", "ID"],
                    &rows,
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DevicesCommand::Revoke { name, reason } => {
            device_name(name)?;
            let path = format!("/v1/devices/{name}/revoke");
            let device: Device = client.post(
                &path,
                &DeviceRevoke {
                    reason: reason.clone(),
                },
            )?;
            if cli.json {
                print_json(&device)?;
            } else {
                println!("{name} is revoked: its credential is refused from now on; to use it again, enrol it anew");
            }
            Ok(ExitCode::SUCCESS)
        }
        DevicesCommand::Rights { name } => {
            device_name(name)?;
            let path = format!("/v1/devices/{name}/rights");
            let alerts: Vec<RightAlert> = client.get(&path)?;
            if cli.json {
                print_json(&alerts)?;
            } else if alerts.is_empty() {
                println!("{name} reports no standing rights that need a person");
            } else {
                let rows: Vec<Vec<String>> = alerts
                    .iter()
                    .map(|a| {
                        vec![
                            a.at.to_string(),
                            a.action.clone(),
                            a.user.clone(),
                            a.right.clone(),
                            a.message.clone(),
                        ]
                    })
                    .collect();
                table(&["REPORTED", "WHAT", "USER", "RIGHT", "TO DO"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(super) fn enrol_token(
    cli: &Cli,
    client: &Client,
    c: &EnrolTokenCommand,
) -> anyhow::Result<ExitCode> {
    let EnrolTokenCommand::Create { ttl, tags } = c;
    let ttl_secs = ttl
        .as_deref()
        .map(|t| elevate_core::duration::parse(t).map(|d| d.as_secs() as u64))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--ttl: {e}"))?;
    let created: EnrolTokenCreated = client.post(
        "/v1/enrol-tokens",
        &EnrolTokenCreate {
            ttl_secs,
            tags: tags.clone(),
        },
    )?;
    if cli.json {
        print_json(&created)?;
    } else {
        println!("{}", created.token);
        eprintln!(
            "works once, until {}: elevated enrol --server URL --token TOKEN",
            created.expires_at
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn tokens(cli: &Cli, client: &Client, c: &TokensCommand) -> anyhow::Result<ExitCode> {
    match c {
        TokensCommand::List { account, all } => {
            let mut path = String::from("/v1/tokens");
            if let Some(account) = &account {
                path.push_str(&format!(
                    "?account={}",
                    form_urlencoded::byte_serialize(account.as_bytes()).collect::<String>()
                ));
            } else if *all {
                path.push_str("?all=true");
            }
            let tokens: Vec<ApiToken> = client.get(&path)?;
            if cli.json {
                print_json(&tokens)?;
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.account.clone(),
                            t.label.clone().unwrap_or_default(),
                            t.created_at.to_string(),
                            t.expires_at.to_string(),
                        ]
                    })
                    .collect();
                table(&["ID", "ACCOUNT", "LABEL", "ISSUED", "EXPIRES"], &rows);
            }
            Ok(ExitCode::SUCCESS)
        }
        TokensCommand::Revoke { id } => {
            if id.len() != 16 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
                bail!("{id:?} is not a token id: 16 hex digits, from `elevatectl tokens list`");
            }
            let path = format!("/v1/tokens/{id}/revoke");
            client.post_empty(&path)?;
            println!("token {id} revoked");
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(super) fn accounts(client: &Client, change: &AccountsCommand) -> anyhow::Result<ExitCode> {
    let (name, verb, done) = match &change {
        AccountsCommand::Disable { name } => (name, "disable", "disabled"),
        AccountsCommand::Enable { name } => (name, "enable", "enabled"),
        AccountsCommand::Remove { name } => (name, "remove", "removed"),
    };
    let encoded: String = form_urlencoded::byte_serialize(name.as_bytes()).collect();
    client.post_empty(&format!("/v1/accounts/{encoded}/{verb}"))?;
    println!("account {name} {done}");
    Ok(ExitCode::SUCCESS)
}
