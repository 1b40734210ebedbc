//! `elevatectl import`: existing logs read into discovery observations (`elevate_import`) and
//! sent in batches, with a progress line (events/s) and a summary per file: read, imported,
//! duplicates, skipped by reason, and damage skipped over.
//!
//! Must never: send a batch larger than the server takes (5,000 events, well under its body
//! limit), or claim a file was imported when a batch failed (it says how far it got; importing
//! again is safe, the server keeps each record once).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use elevate_import::{detect, import_file, Options, Tally};
use elevate_proto::client::Client;
use elevate_proto::v1::{ImportIn, ImportOut, ImportSource, ObservationIn, MAX_IMPORT_EVENTS};
use serde::Serialize;

use super::commands::print_json;
use super::output::terminal_safe;
use super::{Cli, ImportArgs};

/// A batch is sent when it reaches this many bytes of text (the server reads 16 MiB).
const BATCH_BYTES: usize = 8 * 1024 * 1024;

/// What one file gave.
#[derive(Debug, Serialize)]
struct FileSummary {
    file: String,
    source: &'static str,
    read: u64,
    found: u64,
    imported: u64,
    duplicates: u64,
    skipped: std::collections::BTreeMap<String, u64>,
    problems: Vec<String>,
    seconds: f64,
}

pub fn import(cli: &Cli, client: Option<&Client>, a: &ImportArgs) -> anyhow::Result<ExitCode> {
    let chosen = match a.source.as_str() {
        "auto" => None,
        s => Some(ImportSource::parse(s).with_context(|| {
            format!(
                "--source {s:?} is not a kind of log; use auto, {}",
                ImportSource::ALL.map(|k| k.as_str()).join(", ")
            )
        })?),
    };
    let tz = match &a.timezone {
        Some(name) => jiff::tz::TimeZone::get(name).with_context(|| {
            format!("--timezone {name:?} is not a time zone (e.g. Europe/Berlin)")
        })?,
        None => jiff::tz::TimeZone::system(),
    };
    let mut summaries = Vec::new();
    for path in &a.files {
        let source = match chosen {
            Some(s) => s,
            None => detect(path).with_context(|| format!("cannot read {}", path.display()))?,
        };
        let written = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| jiff::Timestamp::try_from(t).ok());
        let options = Options {
            host: a.host.clone(),
            year: a.year,
            written,
            tz: tz.clone(),
        };
        let summary = one_file(client, path, source, &options)?;
        if !cli.json {
            print_summary(&summary, client.is_none());
        }
        summaries.push(summary);
    }
    if cli.json {
        print_json(&summaries)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn one_file(
    client: Option<&Client>,
    path: &Path,
    source: ImportSource,
    options: &Options,
) -> anyhow::Result<FileSummary> {
    let started = Instant::now();
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {msg} {pos} events ({per_sec})")
            .expect("a valid template"),
    );
    bar.set_message(terminal_safe(&path.display().to_string()));
    let file = path.display().to_string();
    let mut batch: Vec<ObservationIn> = Vec::new();
    let mut bytes = 0;
    let mut sent = ImportOut::default();
    let mut send = |batch: &mut Vec<ObservationIn>| -> Result<(), String> {
        let Some(client) = client else {
            batch.clear();
            return Ok(());
        };
        let body = ImportIn {
            source,
            file: Some(file.clone()),
            events: std::mem::take(batch),
        };
        let out: ImportOut = client.post("/v1/imports", &body).map_err(|e| {
            format!(
                "{e} (after {} events were stored; importing again is safe)",
                sent.imported + sent.duplicates
            )
        })?;
        sent.imported += out.imported;
        sent.duplicates += out.duplicates;
        Ok(())
    };
    let result = import_file(path, source, options, &mut |o| {
        bytes += o.command_line.len()
            + o.cwd.as_ref().map_or(0, String::len)
            + o.detail.as_ref().map_or(0, String::len)
            + o.program.len()
            + 512;
        batch.push(o);
        bar.inc(1);
        if batch.len() >= MAX_IMPORT_EVENTS || bytes >= BATCH_BYTES {
            bytes = 0;
            send(&mut batch)?;
        }
        Ok(())
    });
    let tally: Tally = match result {
        Ok(t) => t,
        Err(e) => {
            bar.finish_and_clear();
            bail!("{}: {e}", path.display());
        }
    };
    if !batch.is_empty() {
        if let Err(e) = send(&mut batch) {
            bar.finish_and_clear();
            bail!("{}: {e}", path.display());
        }
    }
    bar.finish_and_clear();
    Ok(FileSummary {
        file: path.display().to_string(),
        source: source.as_str(),
        read: tally.read,
        found: tally.found,
        imported: sent.imported,
        duplicates: sent.duplicates,
        skipped: tally.skipped,
        problems: tally.problems,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn print_summary(s: &FileSummary, dry_run: bool) {
    let rate = s.found as f64 / s.seconds.max(0.001);
    println!(
        "{} ({}): read {}, found {}{}, in {:.1}s ({:.0} events/s)",
        terminal_safe(&s.file),
        s.source,
        s.read,
        s.found,
        if dry_run {
            " (dry run: nothing sent)".to_owned()
        } else {
            format!(", imported {}, duplicates {}", s.imported, s.duplicates)
        },
        s.seconds,
        rate
    );
    for (reason, n) in &s.skipped {
        println!("  skipped {n}: {}", terminal_safe(reason));
    }
    for p in &s.problems {
        println!("  problem: {}", terminal_safe(p));
    }
}
