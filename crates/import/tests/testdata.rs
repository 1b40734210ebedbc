//! The importers on real logs from `../shared/testdata` (Wazuh's sudo and su samples, loghub's
//! Linux messages, Windows EVTX and JSON captures).

use std::path::PathBuf;

use elevate_import::{import_file, import_reader, Options, Tally};
use elevate_proto::v1::{ImportSource, ObservationIn, Outcome};

fn testdata(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/testdata")
        .join(path)
}

fn options(year: i16) -> Options {
    Options {
        year: Some(year),
        ..Options::default()
    }
}

fn import(path: &str, source: ImportSource, year: i16) -> (Vec<ObservationIn>, Tally) {
    let mut found = Vec::new();
    let tally = import_file(&testdata(path), source, &options(year), &mut |o| {
        o.check()
            .expect("the server takes every observation an importer makes");
        found.push(o);
        Ok(())
    })
    .unwrap();
    (found, tally)
}

/// The `log N pass = <line>` lines of a Wazuh ruleset test file.
fn wazuh_lines(path: &str) -> Vec<String> {
    std::fs::read_to_string(testdata(path))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(" pass = ").map(|(_, line)| line.to_owned()))
        .collect()
}

fn one(line: &str) -> ObservationIn {
    let mut found = Vec::new();
    import_reader(
        line.as_bytes(),
        ImportSource::Syslog,
        &options(2020),
        &mut |o| {
            found.push(o);
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(found.len(), 1, "{line}");
    found.remove(0)
}

#[test]
fn every_wazuh_sudo_line_gives_user_runas_command_cwd_and_tty() {
    // (user, runas, command, cwd, tty, outcome), in the file's order.
    let expected = [
        ("dcid", "root", "/usr/bin/tail /var/log/snort/alert.fast", "/home/dcid", "pts/4", Outcome::Ran),
        ("dcid", "root", "/bin/cp -pr ../../bin/addagent ../../bin/osaudit-logaudit ../../bin/ossec-execd ../../bin/ossec-logcollector ../../bin/ossec-maild ../../bin/ossec-remoted /var/ossec/bin", "/home/dcid/ossec-hids.0.1a/src/analysisd", "ttyp3", Outcome::Ran),
        ("dcid", "root", "/sbin/chown dcid.dcid .", "/var/www/alex", "ttyp3", Outcome::Ran),
        ("cplummer", "root", "/bin/bash", "/home/cplummer1", "pts/2", Outcome::Ran),
        ("mike", "root", "/bin/ls", "/root", "pts/0", Outcome::Failed),
        ("mike", "root", "/bin/su -", "/home/vagrant", "pts/0", Outcome::Ran),
        ("mike", "root", "/bin/ls", "/root", "pts/0", Outcome::Failed),
        ("ddp2", "root", "/bin/ls", "/home/ddp2", "ttypZ", Outcome::Refused),
    ];
    let lines = wazuh_lines("linux/wazuh_sudo.ini");
    assert_eq!(lines.len(), expected.len());
    for (line, (user, runas, command, cwd, tty, outcome)) in lines.iter().zip(expected) {
        let o = one(line);
        assert_eq!(
            (
                o.user.as_str(),
                o.runas.as_str(),
                o.command_line.as_str(),
                o.cwd.as_deref(),
                o.tty.as_deref(),
                o.outcome
            ),
            (user, runas, command, Some(cwd), Some(tty), outcome),
            "{line}"
        );
        assert_eq!(o.via, "sudo");
        assert_eq!(o.program, command.split(' ').next().unwrap());
        // A person at a terminal, not the system.
        assert!(!o.system, "{line}");
    }
    assert_eq!(
        one(&lines[6]).detail.as_deref(),
        Some("3 incorrect password attempts")
    );
    assert_eq!(
        one(&lines[7]).detail.as_deref(),
        Some("user NOT in sudoers")
    );
}

#[test]
fn every_wazuh_su_line_gives_who_became_whom() {
    let expected = [
        ("ldap", "root", Outcome::Failed),
        ("ger", "fwmaster", Outcome::Failed),
        ("dcid", "root", Outcome::Ran),
    ];
    let lines = wazuh_lines("linux/wazuh_su.ini");
    assert_eq!(lines.len(), expected.len());
    for (line, (user, runas, outcome)) in lines.iter().zip(expected) {
        let o = one(line);
        assert_eq!(
            (o.user.as_str(), o.runas.as_str(), o.outcome, o.via.as_str()),
            (user, runas, outcome, "su"),
            "{line}"
        );
    }
}

#[test]
fn loghub_gives_its_su_sessions_and_counts_the_rest() {
    let text = std::fs::read_to_string(testdata("linux/loghub_Linux_2k.log")).unwrap();
    let opened = text
        .lines()
        .filter(|l| l.contains(" su(pam_unix)[") && l.contains("session opened"))
        .count() as u64;
    let closed = text
        .lines()
        .filter(|l| l.contains(" su(pam_unix)[") && l.contains("session closed"))
        .count() as u64;
    assert!(opened > 50);
    let (found, tally) = import("linux/loghub_Linux_2k.log", ImportSource::Syslog, 2005);
    assert_eq!(tally.read, text.lines().count() as u64);
    assert_eq!(tally.found, opened);
    assert_eq!(found.len() as u64, opened);
    assert_eq!(tally.skipped["su session end"], closed);
    assert_eq!(
        tally.found + tally.skipped.values().sum::<u64>(),
        tally.read
    );
    // `session opened for user cyrus by (uid=0)`: root's cron job becoming cyrus.
    let first = &found[0];
    assert_eq!(
        (
            first.user.as_str(),
            first.uid,
            first.runas.as_str(),
            first.host.as_str()
        ),
        ("root", Some(0), "cyrus", "combo")
    );
    assert_eq!(first.at.to_string(), "2005-06-15T04:06:18Z");
    assert!(first.system);
}

#[test]
fn sysmon_evtx_gives_user_image_command_line_and_integrity_and_survives_its_corrupt_chunk() {
    let (found, tally) = import(
        "windows/evtxcrate_sysmon.evtx",
        ImportSource::WindowsEvtx,
        2017,
    );
    // Every one of the 227 process creations is read: the elevated ones kept, the others counted.
    assert_eq!(
        tally.found + tally.skipped["not elevated (medium integrity or lower)"],
        227
    );
    assert!(tally.skipped["corrupt EVTX record or chunk"] >= 1);
    assert!(
        tally.problems.iter().any(|p| p.contains("chunk number 9")),
        "{:?}",
        tally.problems
    );
    let ping = &found[0];
    assert_eq!(ping.host, "DESKTOP-2KGM189");
    assert_eq!(ping.user, "NT AUTHORITY\\SYSTEM");
    assert_eq!(ping.program, "C:\\Windows\\SysWOW64\\PING.EXE");
    assert_eq!(ping.command_line, "ping  -n 6 127.0.0.1 ");
    assert_eq!(ping.elevation.as_deref(), Some("system"));
    assert!(ping.system);
    assert!(found
        .iter()
        .all(|o| matches!(o.elevation.as_deref(), Some("high" | "system"))));
}

#[test]
fn a_uac_bypass_capture_shows_a_person_at_high_integrity() {
    let (found, _) = import(
        "windows/Sysmon_UACME_22.evtx",
        ImportSource::WindowsEvtx,
        2019,
    );
    let person_high: Vec<_> = found
        .iter()
        .filter(|o| o.elevation.as_deref() == Some("high") && !o.system)
        .collect();
    assert!(!person_high.is_empty(), "{found:#?}");
    assert!(person_high
        .iter()
        .all(|o| o.user.contains('\\') && o.host == "MSEDGEWIN10"));
}

#[test]
fn a_process_seen_by_security_4688_and_sysmon_1_counts_once() {
    let (found, tally) = import(
        "windows/otrf_secds_process_creation.jsonl.gz",
        ImportSource::WindowsJson,
        2020,
    );
    assert_eq!(tally.read, 2565);
    let twice = tally.skipped["same process already counted (4688 and Sysmon 1)"];
    assert!(twice > 100, "{tally:?}");
    assert_eq!(
        tally.found + tally.skipped.values().sum::<u64>(),
        tally.read
    );
    // The file opens with sppsvc.exe as Sysmon 1 and, 11 ms later, as 4688: one process.
    let sppsvc: Vec<_> = found
        .iter()
        .filter(|o| {
            o.program == "C:\\Windows\\System32\\sppsvc.exe"
                && o.at.to_string().starts_with("2020-06-10T02:51:0")
        })
        .collect();
    assert_eq!(sppsvc.len(), 1, "{sppsvc:#?}");
    assert_eq!(sppsvc[0].user, "NT AUTHORITY\\NETWORK SERVICE");
    // 4688's elevation: a full token at high integrity is kept with its user.
    assert!(found
        .iter()
        .any(|o| o.elevation.as_deref() == Some("high") && !o.system && o.user.contains('\\')));
    // The same file again: the same ids.
    let (again, _) = import(
        "windows/otrf_secds_process_creation.jsonl.gz",
        ImportSource::WindowsJson,
        2020,
    );
    assert_eq!(
        found.iter().map(|o| &o.id).collect::<Vec<_>>(),
        again.iter().map(|o| &o.id).collect::<Vec<_>>()
    );
}

#[test]
fn the_kind_of_a_file_is_recognised() {
    use elevate_import::detect;
    assert_eq!(
        detect(&testdata("windows/evtxcrate_security.evtx")).unwrap(),
        ImportSource::WindowsEvtx
    );
    assert_eq!(
        detect(&testdata("windows/otrf_secds_process_creation.jsonl.gz")).unwrap(),
        ImportSource::WindowsJson
    );
    assert_eq!(
        detect(&testdata("linux/loghub_Linux_2k.log")).unwrap(),
        ImportSource::Syslog
    );
}
