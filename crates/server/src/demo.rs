//! The demo: a server on SQLite in a fresh folder, with a demo admin (password printed once), a
//! demo policy, an enrolled demo device, a few requests waiting in the queue, and a directory of
//! people with the last 30 days of their admin use imported, so the discovery pages have data.
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
    seed_discovery(app, &admin).await?;
    Ok(DemoSeed {
        admin_password,
        approver_password,
    })
}

/// Departments of the demo's people and the programs each uses.
const DEPARTMENTS: [(&str, &[&str]); 4] = [
    (
        "Engineering",
        &[
            "/usr/bin/apt",
            "/usr/bin/docker",
            "/usr/bin/systemctl",
            "/usr/bin/journalctl",
        ],
    ),
    ("Finance", &["/usr/sbin/lpadmin"]),
    (
        "IT",
        &[
            "/usr/bin/apt",
            "/usr/bin/systemctl",
            "/usr/sbin/useradd",
            "/usr/bin/tcpdump",
            "/usr/bin/vim",
            "/bin/bash",
        ],
    ),
    ("Sales", &["/usr/sbin/lpadmin", "/usr/bin/nmcli"]),
];

/// Forty people in four departments (and a few logins the directory does not know) with the
/// last 30 days of their elevations, plus two system jobs, imported as a syslog file would be.
async fn seed_discovery(app: &App, admin: &Principal) -> anyhow::Result<()> {
    use elevate_proto::v1::{
        DirectoryImport, ImportIn, ImportSource, ObservationIn, Outcome, PersonIn, PersonLogin,
    };
    let people: Vec<PersonIn> = (0..40)
        .map(|i| PersonIn {
            user_name: format!("person{i:02}"),
            display_name: Some(format!("Person {i}")),
            email: None,
            department: Some(DEPARTMENTS[i % 4].0.into()),
            manager: None,
            accounts: Vec::new(),
            slack: Vec::new(),
            logins: vec![PersonLogin {
                login: format!("user{i:02}"),
                scope: "*".into(),
            }],
            groups: Vec::new(),
            active: true,
        })
        .collect();
    app.import_directory(
        admin,
        DirectoryImport {
            people,
            dry_run: false,
            remove_missing: false,
        },
    )
    .await?;
    let now = app.now().as_second();
    let mut events = Vec::new();
    let mut add = |id: String,
                   ago_hours: i64,
                   host: String,
                   user: String,
                   program: &str,
                   tty: bool,
                   outcome: Outcome| {
        let at = jiff::Timestamp::from_second(now - ago_hours * 3600)
            .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        events.push(ObservationIn {
            id,
            at,
            host,
            user: user.clone(),
            uid: Some(if user == "root" { 0 } else { 1000 }),
            runas: "root".into(),
            program: program.into(),
            command_line: format!("{program} --demo"),
            cwd: Some("/".into()),
            tty: tty.then(|| "pts/0".into()),
            outcome,
            detail: (outcome != Outcome::Ran).then(|| "user NOT in sudoers".into()),
            via: "sudo".into(),
            system: !tty || user == "root",
            elevation: None,
        });
    };
    for i in 0..44usize {
        let (login, programs) = if i < 40 {
            (format!("user{i:02}"), DEPARTMENTS[i % 4].1)
        } else {
            (format!("contractor{}", i - 40), &["/usr/bin/apt"][..])
        };
        // Every third person is frequent, every third occasional, the rest rare.
        let runs = [26, 9, 2][i % 3];
        for k in 0..runs {
            let ago = 1 + ((i * 7 + k * 29) % (29 * 24)) as i64;
            let outcome = if k == 0 && i % 9 == 0 {
                Outcome::Refused
            } else {
                Outcome::Ran
            };
            add(
                format!("syslog:demo-{i}-{k}"),
                ago,
                format!("ws-{i:02}"),
                login.clone(),
                programs[k % programs.len()],
                true,
                outcome,
            );
        }
    }
    for d in 0..30 {
        add(
            format!("syslog:demo-logrotate-{d}"),
            d * 24 + 3,
            "db1".into(),
            "root".into(),
            "/usr/sbin/logrotate",
            false,
            Outcome::Ran,
        );
        add(
            format!("syslog:demo-backup-{d}"),
            d * 24 + 1,
            "backup1".into(),
            "backup".into(),
            "/usr/bin/rsync",
            false,
            Outcome::Ran,
        );
    }
    app.import_observations(
        admin,
        ImportIn {
            source: ImportSource::Syslog,
            file: Some("demo".into()),
            events,
        },
    )
    .await?;
    Ok(())
}
