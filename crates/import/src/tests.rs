//! The importers on lines written here for one fact each (the real logs are in `tests/`).

use elevate_proto::v1::{ImportSource, ObservationIn, Outcome};

use crate::su::parse_su;
use crate::sudo_line::{parse_sudo, program_of, unescape};
use crate::{import_reader, Options, Tally};

fn options() -> Options {
    Options {
        year: Some(2026),
        ..Options::default()
    }
}

fn read(source: ImportSource, text: &str) -> (Vec<ObservationIn>, Tally) {
    let mut found = Vec::new();
    let tally = import_reader(text.as_bytes(), source, &options(), &mut |o| {
        o.check().expect("the server would take it");
        found.push(o);
        Ok(())
    })
    .unwrap();
    (found, tally)
}

#[test]
fn a_sudo_line_gives_user_runas_command_cwd_and_tty() {
    let s = parse_sudo("alice : TTY=pts/1 ; PWD=/tmp ; USER=postgres ; GROUP=adm ; TSID=00000A ; ENV=A=1 B=2 ; CHROOT=/srv ; COMMAND=/usr/bin/printf %s\\n 'a ; b'").unwrap();
    assert_eq!(s.user, "alice");
    assert_eq!(s.runas, "postgres");
    assert_eq!(s.tty.as_deref(), Some("pts/1"));
    assert_eq!(s.cwd.as_deref(), Some("/tmp"));
    assert_eq!(s.group.as_deref(), Some("adm"));
    assert_eq!(s.tsid.as_deref(), Some("00000A"));
    assert_eq!(s.env.as_deref(), Some("A=1 B=2"));
    assert_eq!(s.chroot.as_deref(), Some("/srv"));
    assert_eq!(s.command, "/usr/bin/printf %s\\n 'a ; b'");
    assert_eq!(s.outcome, None);
}

#[test]
fn sudo_failures_are_told_apart_from_refusals() {
    let failed = parse_sudo("mike : 3 incorrect password attempts ; TTY=pts/0 ; PWD=/root ; USER=root ; COMMAND=/bin/ls").unwrap();
    assert_eq!(failed.outcome, Some(Outcome::Failed));
    let refused = parse_sudo(
        "ddp2 : user NOT in sudoers ; TTY=ttypZ ; PWD=/home/ddp2 ; USER=root ; COMMAND=/bin/ls",
    )
    .unwrap();
    assert_eq!(refused.outcome, Some(Outcome::Refused));
    assert_eq!(refused.detail.as_deref(), Some("user NOT in sudoers"));
    let not_allowed =
        parse_sudo("bob : command not allowed ; PWD=/ ; USER=root ; COMMAND=/bin/sh").unwrap();
    assert_eq!(not_allowed.outcome, Some(Outcome::Refused));
    assert_eq!(not_allowed.tty, None);
}

#[test]
fn octal_escapes_are_decoded_but_a_nul_stays_escaped() {
    assert_eq!(unescape("a#012b#033[31m"), "a\nb\u{1b}[31m");
    assert_eq!(unescape("#000 and #9 and #"), "#000 and #9 and #");
    assert_eq!(program_of("/opt/my\\ tool/run -x"), "/opt/my tool/run");
}

#[test]
fn a_continued_command_is_one_observation() {
    let text = "Nov 27 00:52:37 web1 sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/echo one\n\
                Nov 27 00:52:37 web1 sudo:    alice : (command continued) two three\n\
                Nov 27 00:52:38 web1 sudo:    alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/id\n";
    let (found, tally) = read(ImportSource::Syslog, text);
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].command_line, "/usr/bin/echo one two three");
    assert_eq!(found[0].host, "web1");
    assert_eq!(tally.read, 3);
}

#[test]
fn the_same_line_twice_is_two_observations_and_the_same_file_twice_the_same_ids() {
    let line = "<85>Nov 27 00:52:37 sudo: alice : PWD=/tmp ; USER=root ; COMMAND=/usr/bin/true\n";
    let text = format!("{line}{line}");
    let (a, _) = read(ImportSource::Syslog, &text);
    let (b, _) = read(ImportSource::Syslog, &text);
    assert_eq!(a.len(), 2);
    assert_ne!(a[0].id, a[1].id);
    assert_eq!(
        a.iter().map(|o| &o.id).collect::<Vec<_>>(),
        b.iter().map(|o| &o.id).collect::<Vec<_>>()
    );
    // No host in a raw capture: the options' host, else "unknown"; no terminal: the system's.
    assert_eq!(a[0].host, "unknown");
    assert!(a[0].system);
}

#[test]
fn timestamps_bsd_rfc3339_and_rfc5424_read_alike() {
    let text = "Dec 31 23:59:59 h sudo: al : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/a\n\
                Jan  1 00:00:01 h sudo: al : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/b\n\
                2026-11-27T00:52:37.123456+01:00 h sudo: al : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/c\n\
                <86>1 2026-11-27T00:52:37Z h sudo 42 - - al : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/d\n";
    let (found, _) = read(ImportSource::Syslog, text);
    let at: Vec<String> = found.iter().map(|o| o.at.to_string()).collect();
    // The year rolls over after December.
    assert_eq!(
        at,
        [
            "2026-12-31T23:59:59Z",
            "2027-01-01T00:00:01Z",
            "2026-11-26T23:52:37.123456Z",
            "2026-11-27T00:52:37Z"
        ]
    );
}

#[test]
fn a_file_written_in_march_puts_december_in_the_year_before() {
    let opts = Options {
        written: Some("2026-03-02T10:00:00Z".parse().unwrap()),
        ..Options::default()
    };
    let text = "Dec 30 10:00:00 h sudo: al : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/a\n\
                Mar  1 10:00:00 h sudo: al : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/b\n";
    let mut found = Vec::new();
    import_reader(text.as_bytes(), ImportSource::Syslog, &opts, &mut |o| {
        found.push(o.at.to_string());
        Ok(())
    })
    .unwrap();
    assert_eq!(found, ["2025-12-30T10:00:00Z", "2026-03-01T10:00:00Z"]);
    // Without a year nor a date of writing, it says what to give.
    let err = import_reader(
        text.as_bytes(),
        ImportSource::Syslog,
        &Options::default(),
        &mut |_| Ok(()),
    )
    .unwrap_err();
    assert!(err.to_string().contains("--year"), "{err}");
}

#[test]
fn su_in_every_form() {
    let cases = [
        ("(to root) alice on pts/0", "alice", "root", Outcome::Ran),
        ("FAILED SU (to root) alice on pts/0", "alice", "root", Outcome::Failed),
        ("dcid to root on /dev/ttyp1", "dcid", "root", Outcome::Ran),
        ("BAD SU ger to fwmaster on /dev/ttyp0", "ger", "fwmaster", Outcome::Failed),
        ("failed: ttyq4 changing from ldap to root", "ldap", "root", Outcome::Failed),
        ("pam_unix(su-l:session): session opened for user root(uid=0) by alice(uid=1000)", "alice", "root", Outcome::Ran),
        ("session opened for user cyrus by (uid=0)", "root", "cyrus", Outcome::Ran),
        ("pam_unix(su:auth): authentication failure; logname=alice uid=1000 euid=0 tty=/dev/pts/0 ruser=alice rhost=  user=root", "alice", "root", Outcome::Failed),
    ];
    for (line, user, runas, outcome) in cases {
        let su = parse_su(line).unwrap_or_else(|| panic!("{line}"));
        assert_eq!(
            (su.user.as_str(), su.runas.as_str(), su.outcome),
            (user, runas, outcome),
            "{line}"
        );
    }
    assert_eq!(
        parse_su("pam_unix(su:session): session closed for user root"),
        None
    );
}

#[test]
fn one_su_process_is_one_session() {
    let text = "Nov 27 10:00:00 h su[77]: (to root) alice on pts/0\n\
                Nov 27 10:00:00 h su[77]: pam_unix(su:session): session opened for user root(uid=0) by alice(uid=1000)\n\
                Nov 27 10:05:00 h su[77]: pam_unix(su:session): session closed for user root\n";
    let (found, tally) = read(ImportSource::Syslog, text);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].tty.as_deref(), Some("pts/0"));
    assert!(!found[0].system);
    assert_eq!(tally.skipped["su session already counted"], 1);
    assert_eq!(tally.skipped["su session end"], 1);
}

#[test]
fn a_forged_journal_line_is_counted_and_skipped() {
    let genuine = r#"{"__CURSOR":"s=1;i=1","__REALTIME_TIMESTAMP":"1796657181000000","_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"sudo","_COMM":"sudo","_EXE":"/usr/bin/sudo","_UID":"0","_PID":"10","MESSAGE":"   alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ; COMMAND=/usr/bin/id"}"#;
    let logger = r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1796657182000000","_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"sudo","_COMM":"logger","_EXE":"/usr/bin/logger","_UID":"1001","MESSAGE":"   bob : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/rm -rf /"}"#;
    let renamed = r#"{"__CURSOR":"s=1;i=3","__REALTIME_TIMESTAMP":"1796657183000000","_HOSTNAME":"web1","SYSLOG_IDENTIFIER":"sudo","_COMM":"sudo","_EXE":"/tmp/sudo","_UID":"1001","MESSAGE":"   bob : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/rm -rf /"}"#;
    let text = format!("{genuine}\n{logger}\n{renamed}\n");
    let (found, tally) = read(ImportSource::Journald, &text);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].user, "alice");
    assert_eq!(found[0].at.to_string(), "2026-12-07T15:26:21Z");
    assert!(found[0].id.starts_with("journald:"));
    assert_eq!(
        tally.skipped["forged: written by another program than it names"],
        2
    );
}

#[test]
fn linux_audit_joins_an_events_records_and_keeps_root_executions_of_people() {
    let text = "type=SYSCALL msg=audit(1795761518.292:4): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=9 auid=1001 uid=0 gid=0 euid=0 tty=pts0 ses=41 comm=\"id\" exe=\"/usr/bin/id\" key=\"x\"\u{1d}AUID=\"alice\" EUID=\"root\"\n\
                type=EXECVE msg=audit(1795761518.292:4): argc=2 a0=\"/usr/bin/id\" a1=2D75\n\
                type=CWD msg=audit(1795761518.292:4): cwd=\"/home/alice\"\n\
                type=EOE msg=audit(1795761518.292:4): \n\
                node=db1 type=SYSCALL msg=audit(1795761519.000:5): arch=c000003e syscall=59 success=yes exit=0 ppid=1 pid=10 auid=4294967295 uid=0 gid=0 euid=0 tty=(none) ses=4294967295 comm=\"cron\" exe=\"/usr/sbin/cron\" key=\"x\"\n\
                type=EOE msg=audit(1795761519.000:5): \n\
                type=SYSCALL msg=audit(1795761519.100:6): arch=c000003e syscall=2 success=yes exit=3 auid=1001 uid=0 euid=0 comm=\"cat\" exe=\"/usr/bin/cat\"\n";
    let (found, tally) = read(ImportSource::LinuxAudit, text);
    assert_eq!(found.len(), 1, "{tally:?}");
    let o = &found[0];
    assert_eq!(
        (o.user.as_str(), o.uid, o.program.as_str()),
        ("alice", Some(1001), "/usr/bin/id")
    );
    assert_eq!(o.command_line, "/usr/bin/id -u");
    assert_eq!(o.cwd.as_deref(), Some("/home/alice"));
    assert_eq!(tally.skipped["not as root for a person who logged in"], 1);
    assert_eq!(tally.skipped["not an execution"], 1);
}

#[test]
fn sudo_json_log_entries_with_repeated_keys_are_each_read_once_per_attempt() {
    let text = r#"{
    "accept": {"uuid": "u1", "submit_time": {"seconds": 1796657181, "nanoseconds": 5}, "submituser": "u1", "command": "/usr/bin/id", "runuser": "root", "submithost": "vm", "submitcwd": "/w", "ttyname": "/dev/pts/3", "runargv": ["/usr/bin/id", "-u"], "runenv": ["SUDO_UID=1001"]},
    "reject": {"uuid": "u2", "reason": "1 incorrect password attempt", "submit_time": {"seconds": 1796657182, "nanoseconds": 0}, "submituser": "u1", "command": "/bin/ls", "runuser": "root", "submithost": "vm", "submitcwd": "/w", "runargv": ["/bin/ls"]},
    "reject": {"uuid": "u2", "reason": "command not allowed", "submit_time": {"seconds": 1796657182, "nanoseconds": 0}, "submituser": "u1", "command": "/bin/ls", "runuser": "root", "submithost": "vm", "submitcwd": "/w", "runargv": ["/bin/ls"]},
    "exit": {"uuid": "u1", "exit_value": 0}
"#;
    let (found, tally) = read(ImportSource::SudoJson, text);
    assert_eq!(found.len(), 2, "{tally:?}");
    assert_eq!(found[0].command_line, "/usr/bin/id -u");
    assert_eq!(
        (found[0].uid, found[0].tty.as_deref()),
        (Some(1001), Some("pts/3"))
    );
    assert_eq!(found[1].outcome, Outcome::Failed);
    assert_eq!(tally.skipped["same attempt already counted"], 1);
    // syslog's form: one `@cee:` object a line.
    let line = r#"Dec  7 15:26:21 vm sudo: @cee:{"sudo":{"accept":{"uuid":"u9","submit_time":{"seconds":1796657181,"nanoseconds":0},"submituser":"u1","command":"/usr/bin/id","runuser":"root","submithost":"vm","runargv":["/usr/bin/id"]}}}"#;
    let (found, _) = read(ImportSource::SudoJson, line);
    assert_eq!(found.len(), 1);
}

#[test]
fn overlong_fields_are_cut_to_what_the_server_takes() {
    let long = "x".repeat(10_000);
    let text = format!("Nov 27 00:52:37 h sudo: al : TTY=pts/0 ; PWD=/{long} ; USER=root ; COMMAND=/bin/echo {long}\n");
    let (found, _) = read(ImportSource::Syslog, &text);
    assert!(found[0].command_line.ends_with('…'));
    assert!(found[0].command_line.len() <= 4096);
}
