//! The demo: a server on SQLite in a fresh folder, with a demo admin (password printed once), a
//! demo policy, an enrolled demo device and a few requests waiting in the queue.
//!
//! Must never: run against an existing data directory's accounts without saying so.

use elevate_core::Channel;
use elevate_proto::v1::{NewRequest, WireTarget};

use crate::app::auth::new_token;
use crate::app::{App, Principal, Role};

/// The demo policy: the DESIGN sketch, in UTC so it reads the same everywhere.
pub const DEMO_POLICY: &str = r#"version = 1

[defaults]
unmatched = "approve"
approvers = "helpdesk"
reason = "optional"
session_max = "2h"

[[calendar]]
name = "business-hours"
timezone = "UTC"
weekly = ["mon-fri 08:00-18:00"]

[[rule]]
name = "package managers for developers"
who = { groups = ["developers"] }
what = { paths = ["/usr/bin/apt", "/usr/bin/apt-get"], package = "required" }
action = "auto"

[[rule]]
name = "shells and editors with shell escapes"
what = { paths = ["/bin/bash", "/usr/bin/bash", "/bin/sh", "/usr/bin/dash", "/usr/bin/vi", "/usr/bin/vim*", "/usr/bin/less"] }
action = { deny = "use a specific command instead of a root shell" }

[[rule]]
name = "IT staff, fast track in business hours"
who = { groups = ["it-staff"] }
when = "business-hours"
action = "auto"

[[rule]]
name = "after hours goes to on-call"
when = "!business-hours"
action = { approve = { approvers = "helpdesk", count = 1, sla = "15m", escalate = "security" } }
"#;

/// What the demo printed for its user.
#[derive(Debug)]
pub struct DemoSeed {
    pub admin_password: String,
    pub approver_password: String,
}

fn command(
    user: &str,
    uid: u32,
    groups: &[&str],
    path: &str,
    args: &[&str],
    reason: Option<&str>,
) -> NewRequest {
    NewRequest {
        user: user.into(),
        uid,
        groups: groups.iter().map(|g| g.to_string()).collect(),
        target: WireTarget::Command {
            path: path.into(),
            invoked: None,
            sha256: Some(elevate_proto::bundle::sha256_hex(path)),
            package: Some(path.rsplit('/').next().unwrap_or("").into()),
            args: args.iter().map(|a| a.to_string()).collect(),
        },
        reason: reason.map(str::to_string),
        channel: Channel::Native,
        cwd: Some("/home/demo".into()),
    }
}

/// Seeds accounts, policy, a device and requests into an empty server.
pub async fn seed(app: &App) -> anyhow::Result<DemoSeed> {
    let admin_password = new_token("")[..20].to_string();
    let approver_password = new_token("")[..20].to_string();
    let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    app.upsert_account(
        "admin",
        &admin_password,
        &[Role::Admin, Role::Approver, Role::Auditor],
        &groups(&["helpdesk", "security"]),
    )
    .await?;
    app.upsert_account(
        "carol",
        &approver_password,
        &[Role::Approver],
        &groups(&["helpdesk"]),
    )
    .await?;
    let admin = Principal::Account(
        app.store()
            .account("admin")
            .await?
            .ok_or_else(|| anyhow::anyhow!("the demo admin was not saved"))?,
    );
    app.apply_policy(&admin, DEMO_POLICY, Some("demo policy"))
        .await?;
    let token = app
        .create_enrol_token(&admin, None, &["laptop".into()])
        .await?;
    let device = app.enrol(&token.token, "demo-laptop").await?;
    let device = Principal::Device(
        app.store()
            .device_by_name(&device.name)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the demo device was not saved"))?,
    );
    let requests = [
        command(
            "alice",
            1001,
            &["developers"],
            "/usr/bin/apt",
            &["install", "htop"],
            None,
        ),
        command(
            "bob",
            1002,
            &["finance"],
            "/usr/sbin/fdisk",
            &["-l"],
            Some("check the new disk"),
        ),
        command("bob", 1002, &["finance"], "/bin/bash", &[], None),
        command(
            "dave",
            1004,
            &["marketing"],
            "/usr/bin/printf",
            &["\u{1b}]0;looks harmless\u{7}", "rm -rf /"],
            Some("trust me"),
        ),
        NewRequest {
            user: "erin".into(),
            uid: 1005,
            groups: vec!["it-staff".into()],
            target: WireTarget::Session {
                duration_secs: 1800,
            },
            reason: Some("printer driver update".into()),
            channel: Channel::Sudo,
            cwd: None,
        },
    ];
    for r in &requests {
        let _ = app.create_request(&device, r).await?;
    }
    Ok(DemoSeed {
        admin_password,
        approver_password,
    })
}
