//! Discovery in the portal: each report as a page (a period, department and threshold form, an
//! SVG chart drawn here, the table, its facts) and one person's evidence behind their numbers.
//! No chart service and no script: the SVG is markup the template writes, text escaped.
//!
//! Must never: show report text unescaped (askama escapes it inside the SVG as in the table), or
//! compute a number of its own (every number is the report's, as the API gives it).

use elevate_proto::v1::{Report, REPORTS};
use serde_json::Value;

use super::*;
use crate::http::api::ReportQuery;

/// A report query as the page's form sends it (blank fields are absent).
#[derive(Debug, Default, Deserialize)]
pub(super) struct DiscoveryForm {
    report: Option<String>,
    since: Option<String>,
    until: Option<String>,
    department: Option<String>,
    origin: Option<String>,
    moderate: Option<String>,
    high: Option<String>,
}

fn given(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

impl DiscoveryForm {
    fn query(&self) -> std::result::Result<ReportQuery, AppError> {
        let number = |what: &str, v: &Option<String>| {
            given(v)
                .map(|n| {
                    n.parse::<u64>().map_err(|_| {
                        AppError::BadRequest(format!("{what} {n:?} is not a whole number"))
                    })
                })
                .transpose()
        };
        Ok(ReportQuery {
            since: given(&self.since),
            until: given(&self.until),
            department: given(&self.department),
            origin: given(&self.origin),
            moderate: number("moderate", &self.moderate)?,
            high: number("high", &self.high)?,
            calendar: None,
        })
    }

    /// The form's fields as a query string, for links that keep the period.
    fn keep(&self) -> String {
        let mut q = form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("since", &self.since),
            ("until", &self.until),
            ("department", &self.department),
            ("origin", &self.origin),
            ("moderate", &self.moderate),
            ("high", &self.high),
        ] {
            if let Some(v) = given(v) {
                q.append_pair(k, &v);
            }
        }
        q.finish()
    }
}

pub(super) struct Tab {
    label: &'static str,
    href: String,
    current: bool,
}

pub(super) struct Cell {
    key: String,
    text: String,
    href: Option<String>,
}

/// A bar of the chart: its label, value and geometry (SVG user units).
pub(super) struct Bar {
    label: String,
    value: String,
    y: usize,
    text_y: usize,
    width: usize,
}

/// A cell of the heatmap.
pub(super) struct Heat {
    x: usize,
    y: usize,
    opacity: String,
    title: String,
}

#[derive(Template)]
#[template(path = "discovery.html")]
pub(super) struct DiscoveryPage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    tabs: Vec<Tab>,
    name: String,
    title: String,
    period: String,
    since: String,
    until: String,
    department: String,
    origin: String,
    moderate: String,
    high: String,
    facts: Vec<(String, String)>,
    columns: Vec<String>,
    rows: Vec<Vec<Cell>>,
    bars: Vec<Bar>,
    chart_height: usize,
    chart_label: String,
    heat: Vec<Heat>,
    hours: Vec<(usize, String)>,
    days: Vec<(usize, &'static str)>,
}

fn shown(v: &Value) -> String {
    match v {
        Value::Null => "—".into(),
        Value::String(s) => visible(s),
        v => v.to_string(),
    }
}

fn who_link(who: &str, keep: &str) -> String {
    let path: String = form_urlencoded::byte_serialize(who.as_bytes()).collect();
    format!("/portal/discovery/people/{path}?{keep}")
}

/// The value a report's chart draws, per row.
fn chart_key(name: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match name {
        "applications" => ("program", "users", "people who ran it"),
        "users" => ("who", "runs", "elevations"),
        "departments" => ("department", "programs", "distinct programs"),
        "system" => ("program", "runs", "runs"),
        "attempts" => ("program", "runs", "attempts"),
        "risky" => ("program", "runs", "runs"),
        _ => return None,
    })
}

const BAR_ROWS: usize = 15;
const BAR_WIDTH: f64 = 420.0;

fn bars(report: &Report) -> (Vec<Bar>, String) {
    let (label_key, value_key, what) = match report.name.as_str() {
        "segments" => {
            let bars: Vec<(String, u64)> = ["high", "moderate", "low"]
                .iter()
                .map(|s| ((*s).to_owned(), report.facts[*s].as_u64().unwrap_or(0)))
                .collect();
            return (geometry(bars), "people per segment".into());
        }
        name => match chart_key(name) {
            Some(k) => k,
            None => return (Vec::new(), String::new()),
        },
    };
    let values: Vec<(String, u64)> = report
        .rows
        .iter()
        .take(BAR_ROWS)
        .map(|r| {
            let label = match &r[label_key] {
                Value::Null => "(none)".to_owned(),
                v => shown(v),
            };
            (label, r[value_key].as_u64().unwrap_or(0))
        })
        .collect();
    (geometry(values), what.into())
}

fn geometry(values: Vec<(String, u64)>) -> Vec<Bar> {
    let max = values.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1) as f64;
    values
        .into_iter()
        .enumerate()
        .map(|(i, (label, v))| Bar {
            label: if label.chars().count() > 40 {
                format!(
                    "…{}",
                    label
                        .chars()
                        .rev()
                        .take(39)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<String>()
                )
            } else {
                label
            },
            value: v.to_string(),
            y: i * 22,
            text_y: i * 22 + 15,
            width: ((v as f64 / max) * BAR_WIDTH).round().max(1.0) as usize,
        })
        .collect()
}

fn heatmap(report: &Report) -> Vec<Heat> {
    if report.name != "timing" {
        return Vec::new();
    }
    let max = report
        .rows
        .iter()
        .flat_map(|r| (0..24).map(move |h| r[&format!("h{h:02}")].as_u64().unwrap_or(0)))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut out = Vec::new();
    for (d, row) in report.rows.iter().enumerate() {
        for h in 0..24 {
            let n = row[&format!("h{h:02}")].as_u64().unwrap_or(0);
            out.push(Heat {
                x: 40 + h * 22,
                y: 20 + d * 22,
                opacity: format!(
                    "{:.2}",
                    if n == 0 {
                        0.04
                    } else {
                        0.15 + 0.85 * n as f64 / max
                    }
                ),
                title: format!("{} {h:02}:00 — {n}", shown(&row["day"])),
            });
        }
    }
    out
}

pub(super) async fn discovery(
    State(app): State<App>,
    user: PortalUser,
    Query(form): Query<DiscoveryForm>,
) -> Response {
    let name = given(&form.report).unwrap_or_else(|| "applications".into());
    let query = match form.query() {
        Ok(q) => q,
        Err(e) => return page_error(e),
    };
    let params = match query.params() {
        Ok(p) => p,
        Err(e) => return page_error(e),
    };
    let report = match app.report(&user.principal(), &name, &params).await {
        Ok(r) => r,
        Err(e) => return page_error(e),
    };
    let keep = form.keep();
    let tabs = REPORTS
        .iter()
        .map(|(n, t)| Tab {
            label: t,
            href: format!("/portal/discovery?report={n}&{keep}"),
            current: *n == report.name,
        })
        .collect();
    let links = matches!(report.name.as_str(), "users" | "segments" | "attempts");
    let rows = report
        .rows
        .iter()
        .map(|r| {
            report
                .columns
                .iter()
                .map(|c| {
                    let v = r.get(&c.key).unwrap_or(&Value::Null);
                    Cell {
                        key: c.key.clone(),
                        text: shown(v),
                        href: (links && c.key == "who")
                            .then(|| v.as_str().map(|w| who_link(w, &keep)))
                            .flatten(),
                    }
                })
                .collect()
        })
        .collect();
    let (bars, chart_label) = bars(&report);
    let heat = heatmap(&report);
    page(DiscoveryPage {
        signed_in: Some(user.account.name.clone()),
        csrf: user.sign_in.csrf.clone(),
        flash: None,
        tabs,
        period: format!(
            "{} to {} ({} days){}",
            report.since.strftime("%Y-%m-%d"),
            report.until.strftime("%Y-%m-%d"),
            report.days,
            report
                .department
                .as_deref()
                .map(|d| format!(", department {}", visible(d)))
                .unwrap_or_default()
        ),
        since: report.since.strftime("%Y-%m-%d").to_string(),
        until: report.until.strftime("%Y-%m-%d").to_string(),
        department: given(&form.department).unwrap_or_default(),
        origin: given(&form.origin).unwrap_or_default(),
        moderate: params.thresholds.moderate.to_string(),
        high: params.thresholds.high.to_string(),
        facts: report
            .facts
            .iter()
            .map(|(k, v)| (k.clone(), shown(v)))
            .collect(),
        columns: report.columns.iter().map(|c| c.label.clone()).collect(),
        chart_height: bars.len() * 22 + 4,
        rows,
        bars,
        chart_label,
        heat,
        hours: (0..24)
            .map(|h| (40 + h * 22 + 11, format!("{h:02}")))
            .collect(),
        days: ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
            .into_iter()
            .enumerate()
            .map(|(d, n)| (20 + d * 22 + 15, n))
            .collect(),
        name: report.name,
        title: report.title,
    })
}

pub(super) struct EvidenceRow {
    at: String,
    origin: String,
    host: String,
    user: String,
    outcome: String,
    command: String,
}

#[derive(Template)]
#[template(path = "evidence.html")]
pub(super) struct EvidencePage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    who: String,
    logins: String,
    department: String,
    period: String,
    back: String,
    rows: Vec<EvidenceRow>,
}

pub(super) async fn evidence(
    State(app): State<App>,
    user: PortalUser,
    Path(who): Path<String>,
    Query(form): Query<DiscoveryForm>,
) -> Response {
    let params = match form.query().and_then(|q| q.params()) {
        Ok(p) => p,
        Err(e) => return page_error(e),
    };
    let e = match app.evidence(&user.principal(), &who, &params).await {
        Ok(e) => e,
        Err(e) => return page_error(e),
    };
    page(EvidencePage {
        signed_in: Some(user.account.name.clone()),
        csrf: user.sign_in.csrf.clone(),
        flash: None,
        who: visible(&e.who),
        logins: visible(&e.logins.join(", ")),
        department: e.department.as_deref().map_or("none".into(), visible),
        period: format!(
            "{} to {}",
            e.since.strftime("%Y-%m-%d"),
            e.until.strftime("%Y-%m-%d")
        ),
        back: format!("/portal/discovery?report=segments&{}", form.keep()),
        rows: e
            .observations
            .into_iter()
            .map(|o| EvidenceRow {
                at: when(o.at),
                origin: visible(&o.origin),
                host: visible(&o.host),
                user: visible(&o.user),
                outcome: o.outcome.as_str().to_owned(),
                command: visible(&o.command_line),
            })
            .collect(),
    })
}
