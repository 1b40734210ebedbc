//! The audit page: the latest records and the chain's status.
//!
//! Must never: show a record's text unescaped.

use super::*;
use crate::app::FULL_EVERY;

pub(super) struct AuditRow {
    seq: u64,
    when: String,
    actor: String,
    action: String,
    subject: String,
    data: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
pub(super) struct AuditPage {
    signed_in: Option<String>,
    csrf: String,
    flash: Option<String>,
    chain_status: String,
    chain_class: String,
    rows: Vec<AuditRow>,
}

pub(super) async fn audit(State(app): State<App>, user: PortalUser) -> Response {
    let principal = user.principal();
    let (report, recent) = match app.verify_audit_recent(&principal).await {
        Ok(r) => r,
        Err(e) => return page_error(e),
    };
    let records = match app.store().audit_latest(200).await {
        Ok(r) => r,
        Err(e) => return page_error(e.into()),
    };
    let (chain_status, chain_class) = match &report.first_break {
        None => (
            match recent.after {
                None => format!(
                    "Chain intact: {} records verified; head {}",
                    report.count,
                    &report.head[..16]
                ),
                Some(from) => format!(
                    "Chain intact: {} records; those after record {from} verified now, the \
                     whole chain at {} (again every {} minutes; elevatectl audit verify checks \
                     every record now), and the newest signed checkpoint matches; head {}",
                    report.count,
                    when(recent.full_at),
                    FULL_EVERY.as_mins(),
                    &report.head[..16]
                ),
            },
            "ok",
        ),
        Some(b) => (format!("Chain BROKEN: {}", visible(&b.message)), "broken"),
    };
    page(AuditPage {
        signed_in: Some(user.account.name.clone()),
        csrf: user.sign_in.csrf.clone(),
        flash: None,
        chain_status,
        chain_class: chain_class.into(),
        rows: records
            .into_iter()
            .map(|r| AuditRow {
                seq: r.seq,
                when: when(r.event.at),
                actor: visible(&r.event.actor),
                action: visible(&r.event.action),
                subject: visible(&r.event.subject),
                data: visible(&r.event.data),
            })
            .collect(),
    })
}
