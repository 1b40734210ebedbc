//! `elevatectl report`: discovery reports as a table, JSON or CSV, and one person's evidence.
//!
//! Must never: print server text raw to a terminal (tables go through `terminal_safe`), or
//! write a CSV cell a spreadsheet would run as a formula (`=`, `+`, `-`, `@` first are quoted
//! with a leading `'`).

use std::process::ExitCode;

use anyhow::{bail, Context};
use elevate_proto::client::Client;
use elevate_proto::v1::{EvidenceView, Report, REPORTS};
use serde_json::Value;

use super::commands::print_json;
use super::output::{table, terminal_safe};
use super::{Cli, ReportArgs};

pub fn report(cli: &Cli, client: &Client, a: &ReportArgs) -> anyhow::Result<ExitCode> {
    let format = if cli.json { "json" } else { a.format.as_str() };
    if !matches!(format, "table" | "json" | "csv") {
        bail!("--format {format:?} is not one; use table, json or csv");
    }
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("since", &a.since),
        ("until", &a.until),
        ("department", &a.department),
        ("calendar", &a.calendar),
        ("origin", &a.origin),
    ] {
        if let Some(v) = v {
            query.append_pair(k, v);
        }
    }
    for (k, v) in [("moderate", a.moderate), ("high", a.high)] {
        if let Some(v) = v {
            query.append_pair(k, &v.to_string());
        }
    }
    let query = query.finish();
    if a.name == "evidence" {
        let who = a.who.as_deref().context("evidence needs --who NAME")?;
        let who_path: String = form_urlencoded::byte_serialize(who.as_bytes()).collect();
        let e: EvidenceView = client.get(&format!("/v1/reports/people/{who_path}?{query}"))?;
        return evidence(&e, format);
    }
    if !REPORTS.iter().any(|(n, _)| *n == a.name) {
        bail!(
            "there is no report {:?}; use {} or evidence",
            terminal_safe(&a.name),
            REPORTS.map(|(n, _)| n).join(", ")
        );
    }
    let r: Report = client.get(&format!("/v1/reports/{}?{query}", a.name))?;
    match format {
        "json" => print_json(&r)?,
        "csv" => csv_out(
            &r.columns.iter().map(|c| c.key.as_str()).collect::<Vec<_>>(),
            &cells(&r),
        )?,
        _ => {
            println!(
                "{} — {} to {} ({} days){}",
                r.title,
                r.since.strftime("%Y-%m-%d"),
                r.until.strftime("%Y-%m-%d"),
                r.days,
                r.department
                    .as_deref()
                    .map(|d| format!(", department {}", terminal_safe(d)))
                    .unwrap_or_default()
            );
            for (k, v) in &r.facts {
                println!("{k}: {}", terminal_safe(&text(v)));
            }
            let header: Vec<&str> = r.columns.iter().map(|c| c.label.as_str()).collect();
            table(&header, &cells(&r));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        v => v.to_string(),
    }
}

fn cells(r: &Report) -> Vec<Vec<String>> {
    r.rows
        .iter()
        .map(|row| {
            r.columns
                .iter()
                .map(|c| text(row.get(&c.key).unwrap_or(&Value::Null)))
                .collect()
        })
        .collect()
}

/// A cell a spreadsheet will show as text, never run as a formula.
pub fn csv_cell(cell: &str) -> String {
    if cell.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{cell}")
    } else {
        cell.to_owned()
    }
}

fn csv_out(header: &[&str], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let mut w = csv::Writer::from_writer(std::io::stdout());
    w.write_record(header)?;
    for r in rows {
        w.write_record(r.iter().map(|c| csv_cell(c)))?;
    }
    w.flush()?;
    Ok(())
}

fn evidence(e: &EvidenceView, format: &str) -> anyhow::Result<ExitCode> {
    if format == "json" {
        print_json(e)?;
        return Ok(ExitCode::SUCCESS);
    }
    let header = ["at", "origin", "host", "user", "outcome", "command"];
    let rows: Vec<Vec<String>> = e
        .observations
        .iter()
        .map(|o| {
            vec![
                o.at.to_string(),
                o.origin.clone(),
                o.host.clone(),
                o.user.clone(),
                o.outcome.as_str().to_owned(),
                o.command_line.clone(),
            ]
        })
        .collect();
    if format == "csv" {
        csv_out(&header, &rows)?;
    } else {
        println!(
            "{} (logins {}; department {}): {} observations",
            terminal_safe(&e.who),
            terminal_safe(&e.logins.join(", ")),
            terminal_safe(e.department.as_deref().unwrap_or("none")),
            e.observations.len()
        );
        table(&header, &rows);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn report_csv_cells_are_defused() {
        assert_eq!(super::csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(super::csv_cell("+1"), "'+1");
        assert_eq!(super::csv_cell("-rf"), "'-rf");
        assert_eq!(super::csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(super::csv_cell("/usr/bin/apt"), "/usr/bin/apt");
    }
}
