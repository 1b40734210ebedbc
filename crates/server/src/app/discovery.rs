//! Discovery's intake: observations imported from existing logs (`POST /v1/imports`) and the
//! `discovery.command` events enrolled devices report, stored alike and rolled up as they
//! arrive; imports stay marked as imports.
//!
//! Must never: let an import pass for a device's report (its ids may not take the `device:`
//! form, and its origin is `import`), store half a batch, or take an observation whose user is
//! not the one the device's event was made for.

use elevate_core::audit::AuditEvent;
use elevate_proto::v1::{is_system, shorten, ImportIn, ImportOut, ObservationIn};

use super::{App, AppError, Principal, Result, Role};
use crate::store::{ObservationRow, Tx};

/// The action of a device's discovery event.
pub(super) const DISCOVERY_COMMAND: &str = "discovery.command";

impl App {
    /// Stores a batch of imported observations (admins); those seen before are counted.
    pub async fn import_observations(
        &self,
        caller: &Principal,
        batch: ImportIn,
    ) -> Result<ImportOut> {
        let admin = caller.require(&[Role::Admin])?;
        batch.check().map_err(AppError::BadRequest)?;
        if let Some(e) = batch.events.iter().find(|e| e.id.starts_with("device:")) {
            return Err(AppError::BadRequest(format!(
                "event {:?}: ids that start with `device:` are the devices' own; an import \
                 names its records by its source (`syslog:…`)",
                e.id
            )));
        }
        let source = batch.source.as_str();
        let rows: Vec<ObservationRow> = batch
            .events
            .into_iter()
            .map(|e| row_of_import(source, e))
            .collect();
        let mut tx = self.store.begin().await?;
        let imported = tx.insert_observations(&rows).await?;
        let out = ImportOut {
            imported,
            duplicates: rows.len() as u64 - imported,
        };
        tx.append_audit(self.event(
            format!("account:{}", admin.name),
            "discovery.imported",
            format!("import:{source}"),
            serde_json::json!({ "source": source, "file": batch.file,
                "received": rows.len(), "imported": out.imported, "duplicates": out.duplicates }),
        ))
        .await?;
        tx.commit().await?;
        Ok(out)
    }

    /// Stores the observations of a device's newly ingested `discovery.command` events, in
    /// the transaction that stored the events.
    pub(super) async fn observe_device_events(
        &self,
        tx: &mut Tx<'_>,
        device: &str,
        events: &[AuditEvent],
    ) -> Result<()> {
        let rows: Vec<ObservationRow> = events
            .iter()
            .filter_map(|e| row_of_device_event(device, e))
            .collect();
        if !rows.is_empty() {
            tx.insert_observations(&rows).await?;
        }
        Ok(())
    }
}

fn row_of_import(source: &str, e: ObservationIn) -> ObservationRow {
    ObservationRow {
        id: e.id,
        origin: "import".into(),
        source: source.into(),
        at: e.at,
        host: e.host,
        user_name: e.user,
        uid: e.uid,
        runas: e.runas,
        program: e.program,
        command_line: e.command_line,
        cwd: e.cwd,
        tty: e.tty,
        outcome: e.outcome.as_str().into(),
        detail: e.detail,
        via: e.via,
        system: e.system,
        elevation: e.elevation,
        package: None,
        sha256: None,
    }
}

/// A device's `discovery.command` event as an observation. The user is the one the event's
/// actor names (`user:NAME@device`); the rest comes from the event's data, bounded as the
/// agent bounded it (a cut value is an object, and is read as absent).
fn row_of_device_event(device: &str, e: &AuditEvent) -> Option<ObservationRow> {
    if e.action != DISCOVERY_COMMAND {
        return None;
    }
    let user = e
        .actor
        .strip_prefix("user:")?
        .strip_suffix(&format!("@{device}"))?;
    let data: serde_json::Value = serde_json::from_str(&e.data).ok()?;
    let text = |v: &serde_json::Value| v.as_str().map(|s| shorten(s, 4096));
    let target = &data["target"];
    let program = text(&target["path"])?;
    let args: Vec<String> = match &target["args"] {
        serde_json::Value::Array(a) => a.iter().filter_map(text).collect(),
        _ => Vec::new(),
    };
    let mut command_line = program.clone();
    for a in &args {
        command_line.push(' ');
        command_line.push_str(a);
    }
    let tty = text(&data["tty"]).filter(|t| !t.is_empty());
    let uid = data["uid"].as_u64().map(|u| u as u32);
    // Discovery lets everything run as before; what the policy would have said is kept in
    // the audit event (for simulation), not taken for what happened.
    let outcome = if data["error"].is_string() {
        "failed"
    } else {
        "ran"
    };
    let channel = text(&data["channel"]).unwrap_or_else(|| "device".into());
    let system = is_system(user, uid, tty.as_deref());
    Some(ObservationRow {
        id: format!("device:{}", e.id),
        origin: "device".into(),
        source: channel.clone(),
        at: e.at,
        host: device.to_owned(),
        user_name: user.to_owned(),
        uid,
        runas: text(&data["runas"]).unwrap_or_else(|| "root".into()),
        program,
        command_line: shorten(&command_line, 4096),
        cwd: text(&data["cwd"]),
        tty,
        outcome: outcome.into(),
        detail: text(&data["error"]),
        via: if channel == "linux-audit" {
            "exec".into()
        } else {
            channel
        },
        system,
        elevation: None,
        package: text(&target["package"]),
        sha256: text(&target["sha256"]),
    })
}
