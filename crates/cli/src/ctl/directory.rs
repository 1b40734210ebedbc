//! `elevatectl directory import` and `elevatectl people`: the people directory from a CSV file
//! (with a dry run), and the people in it.
//!
//! Must never: send half a file (a file with one bad row sends nothing and names the row).

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::{bail, Context};
use elevate_proto::client::Client;
use elevate_proto::v1::*;

use super::commands::print_json;
use super::output::{table, terminal_safe};
use super::{Cli, DirectoryCommand, PeopleCommand};

/// The columns a people file may have; `user_name` is the one it must.
const COLUMNS: &[&str] = &[
    "user_name",
    "display_name",
    "email",
    "department",
    "manager",
    "accounts",
    "slack",
    "logins",
    "groups",
    "active",
];

/// One login as a file writes it: `LOGIN` (every device), `LOGIN@device:NAME` or
/// `LOGIN@tag:TAG`.
fn login(entry: &str) -> PersonLogin {
    for marker in ["@device:", "@tag:"] {
        if let Some(at) = entry.rfind(marker) {
            return PersonLogin {
                login: entry[..at].to_owned(),
                scope: entry[at + 1..].to_owned(),
            };
        }
    }
    PersonLogin {
        login: entry.to_owned(),
        scope: "*".into(),
    }
}

/// A list cell: entries separated by `;`, blanks dropped.
fn list(cell: &str) -> Vec<String> {
    cell.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Reads a people file: a header row naming columns from `COLUMNS` (any order, any case), then
/// one person a row. Every row is checked; the first bad one is named with its line.
pub fn read_people(text: &str) -> anyhow::Result<Vec<PersonIn>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .context("the file has no header row")?
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    for h in &header {
        if !COLUMNS.contains(&h.as_str()) {
            bail!(
                "the header names a column {:?} that is not one; use {}",
                terminal_safe(h),
                COLUMNS.join(", ")
            );
        }
    }
    if !header.iter().any(|h| h == "user_name") {
        bail!("the header has no user_name column: each row needs the person's user name");
    }
    let mut people = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = record
            .as_ref()
            .ok()
            .and_then(|r| r.position())
            .map_or(i + 2, |p| p.line() as usize);
        let record = record.with_context(|| format!("line {line}"))?;
        let cells: HashMap<&str, &str> = header
            .iter()
            .map(String::as_str)
            .zip(record.iter())
            .collect();
        let text = |c: &str| {
            cells
                .get(c)
                .filter(|v| !v.is_empty())
                .map(|v| v.to_string())
        };
        let active = match cells.get("active").map(|v| v.to_ascii_lowercase()) {
            None => true,
            Some(v) if ["", "yes", "true", "1"].contains(&v.as_str()) => true,
            Some(v) if ["no", "false", "0"].contains(&v.as_str()) => false,
            Some(v) => bail!(
                "line {line}: active is {:?}; write yes or no",
                terminal_safe(&v)
            ),
        };
        let person = PersonIn {
            user_name: text("user_name").unwrap_or_default(),
            display_name: text("display_name"),
            email: text("email"),
            department: text("department"),
            manager: text("manager"),
            accounts: list(cells.get("accounts").unwrap_or(&"")),
            slack: list(cells.get("slack").unwrap_or(&"")),
            logins: list(cells.get("logins").unwrap_or(&""))
                .iter()
                .map(|l| login(l))
                .collect(),
            groups: list(cells.get("groups").unwrap_or(&"")),
            active,
        };
        person
            .check()
            .map_err(|e| anyhow::anyhow!("line {line}: {}", terminal_safe(&e)))?;
        people.push(person);
    }
    if people.len() > MAX_IMPORT {
        bail!(
            "the file names {} people; an import takes at most {MAX_IMPORT}",
            people.len()
        );
    }
    Ok(people)
}

pub(super) fn directory(
    cli: &Cli,
    client: &Client,
    c: &DirectoryCommand,
) -> anyhow::Result<ExitCode> {
    let (file, dry_run, remove_missing) = match c {
        DirectoryCommand::Import {
            file,
            dry_run,
            remove_missing,
        } => (file, dry_run, remove_missing),
        DirectoryCommand::ScimToken { provider } => {
            let made: ScimTokenOut = client.post(
                "/v1/scim-tokens",
                &ScimTokenIn {
                    provider: provider.clone(),
                },
            )?;
            if cli.json {
                print_json(&made)?;
            } else {
                println!("{}", made.token);
                eprintln!(
                    "give {} this bearer token and the base URL {} (shown once; the provider's previous token no longer works)",
                    terminal_safe(provider),
                    made.base_url
                );
            }
            return Ok(ExitCode::SUCCESS);
        }
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let people = read_people(&text).with_context(|| format!("{}", file.display()))?;
    let out: DirectoryImportOut = client.post(
        "/v1/directory/import",
        &DirectoryImport {
            people,
            dry_run: *dry_run,
            remove_missing: *remove_missing,
        },
    )?;
    if cli.json {
        print_json(&out)?;
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = out
        .changes
        .iter()
        .map(|c| {
            vec![
                c.change.clone(),
                terminal_safe(&c.user_name),
                c.fields.join(", "),
            ]
        })
        .collect();
    if !rows.is_empty() {
        table(&["CHANGE", "PERSON", "FIELDS"], &rows);
    }
    let verb = if out.dry_run { "would" } else { "did" };
    println!(
        "{verb} create {}, update {}, remove {}; {} unchanged{}",
        out.created,
        out.updated,
        out.removed,
        out.unchanged,
        if out.dry_run {
            " (dry run: nothing changed)"
        } else {
            ""
        }
    );
    Ok(ExitCode::SUCCESS)
}

fn logins(p: &PersonView) -> String {
    p.logins
        .iter()
        .map(|l| match l.scope.as_str() {
            "*" => l.login.clone(),
            scope => format!("{}@{scope}", l.login),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub(super) fn people(cli: &Cli, client: &Client, c: &PeopleCommand) -> anyhow::Result<ExitCode> {
    match c {
        PeopleCommand::List => {
            let people: Vec<PersonView> = client.get("/v1/people")?;
            if cli.json {
                print_json(&people)?;
            } else {
                let rows: Vec<Vec<String>> = people
                    .iter()
                    .map(|p| {
                        vec![
                            terminal_safe(&p.user_name),
                            terminal_safe(p.display_name.as_deref().unwrap_or("")),
                            terminal_safe(p.department.as_deref().unwrap_or("")),
                            terminal_safe(&p.accounts.join("; ")),
                            terminal_safe(&logins(p)),
                            if p.active { "active" } else { "left" }.into(),
                        ]
                    })
                    .collect();
                table(
                    &[
                        "PERSON",
                        "NAME",
                        "DEPARTMENT",
                        "ACCOUNTS",
                        "LOGINS",
                        "STATE",
                    ],
                    &rows,
                );
            }
        }
        PeopleCommand::Show { user_name } => {
            let p: PersonView = client.get(&format!("/v1/people/{}", path_segment(user_name)))?;
            if cli.json {
                print_json(&p)?;
            } else {
                for (k, v) in [
                    ("person", p.user_name.clone()),
                    ("name", p.display_name.clone().unwrap_or_default()),
                    ("e-mail", p.email.clone().unwrap_or_default()),
                    ("department", p.department.clone().unwrap_or_default()),
                    ("manager", p.manager.clone().unwrap_or_default()),
                    ("accounts", p.accounts.join("; ")),
                    ("slack", p.slack.join("; ")),
                    ("logins", logins(&p)),
                    ("groups", p.groups.join("; ")),
                    ("state", if p.active { "active" } else { "left" }.into()),
                    ("source", p.source.clone()),
                ] {
                    println!("{k:<11} {}", terminal_safe(&v));
                }
            }
        }
        PeopleCommand::Remove { user_name } => {
            client.delete(&format!("/v1/people/{}", path_segment(user_name)))?;
            println!(
                "{} is no longer in the directory (their accounts stay)",
                terminal_safe(user_name)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A user name as one path segment (percent-encoded).
fn path_segment(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_people_file_reads_lists_scopes_and_states() {
        let people = read_people(
            "User_Name,Display_Name,Department,Accounts,Logins,Groups,Active\n\
             alice,Alice Smith,Finance,asmith,alice; a.smith@tag:finance; root2@device:web-1,staff;finance,\n\
             bob,,IT,,bob@corp.example,,no\n",
        )
        .unwrap();
        assert_eq!(people.len(), 2);
        assert_eq!(people[0].accounts, ["asmith"]);
        assert_eq!(
            people[0].logins,
            [
                PersonLogin {
                    login: "alice".into(),
                    scope: "*".into()
                },
                PersonLogin {
                    login: "a.smith".into(),
                    scope: "tag:finance".into()
                },
                PersonLogin {
                    login: "root2".into(),
                    scope: "device:web-1".into()
                },
            ]
        );
        assert_eq!(people[0].groups, ["staff", "finance"]);
        assert!(people[0].active);
        // A login with an @ of its own (SSSD's qualified names) stays whole.
        assert_eq!(people[1].logins[0].login, "bob@corp.example");
        assert_eq!(people[1].display_name, None);
        assert!(!people[1].active);
    }

    #[test]
    fn a_bad_file_names_its_line_and_sends_nothing() {
        let e = read_people("user_name,colour\nalice,red\n").unwrap_err();
        assert!(format!("{e:#}").contains("\"colour\""), "{e:#}");
        let e = read_people("display_name\nAlice\n").unwrap_err();
        assert!(format!("{e:#}").contains("no user_name column"), "{e:#}");
        let e = read_people("user_name,logins\nalice,alice\nbob,bob@host:x\ncarol,\"a\u{7}\"\n")
            .unwrap_err();
        assert!(format!("{e:#}").contains("line 4"), "{e:#}");
        let e = read_people("user_name,active\nalice,maybe\n").unwrap_err();
        assert!(format!("{e:#}").contains("yes or no"), "{e:#}");
    }
}
