use super::*;

fn event(n: u32) -> AuditEventIn {
    AuditEventIn {
        id: format!("e{n}"),
        at: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
        actor: "user:alice@d".into(),
        action: "request.created".into(),
        subject: "request:x".into(),
        data: serde_json::json!({ "n": n }),
    }
}

#[test]
fn events_survive_reopening_and_leave_only_when_confirmed() {
    let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
    let mut spool = Spool::open(&dir).unwrap();
    spool.append(&[event(1), event(2)]).unwrap();
    drop(spool);
    // A crash left half a line behind.
    fs::OpenOptions::new()
        .append(true)
        .open(dir.join(CURRENT))
        .unwrap()
        .write_all(b"{\"id\":")
        .unwrap();
    let mut spool = Spool::open(&dir).unwrap();
    assert_eq!(spool.pending(), 2);
    let (batch, events) = spool.next_batch().unwrap().unwrap();
    assert_eq!(events, vec![event(1), event(2)]);
    // New events go to a new file while the batch is out.
    spool.append(&[event(3)]).unwrap();
    // Not confirmed: the same batch comes again.
    let (again, _) = spool.next_batch().unwrap().unwrap();
    assert_eq!(again, batch);
    spool.confirm(&batch, events.len()).unwrap();
    // An exit recorded after the fact travels in the same batch as the event before it.
    spool.append_after_the_fact(&[event(4)]).unwrap();
    assert_eq!(spool.pending(), 2);
    let (_, rest) = spool.next_batch().unwrap().unwrap();
    assert_eq!(rest, vec![event(3), event(4)]);
    assert!(!spool.unsynced, "closing a batch flushes it");
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn batches_stay_small_and_refused_events_are_kept_aside() {
    let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
    let mut spool = Spool::open(&dir).unwrap();
    for n in 0..(BATCH_EVENTS as u32 + 10) {
        spool.append(&[event(n)]).unwrap();
    }
    let (first, events) = spool.next_batch().unwrap().unwrap();
    assert_eq!(events.len() as u64, BATCH_EVENTS);
    let bytes = spool.usage().bytes;
    let kept = spool
        .set_aside(&first, events.len(), &events[7..9])
        .unwrap()
        .expect("a file of refused events");
    assert_eq!(spool.pending(), 10);
    assert_eq!(read_events(&dir.join(&kept)).unwrap(), events[7..9]);
    let on_disk: u64 = fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != RESERVE)
        .map(|e| e.metadata().unwrap().len())
        .sum();
    assert_eq!(
        spool.usage().bytes,
        on_disk,
        "refused events count against the bound"
    );
    assert!(spool.usage().bytes < bytes);
    let (_, rest) = spool.next_batch().unwrap().unwrap();
    assert_eq!(rest.len(), 10);
    // Counted the same after a restart.
    drop(spool);
    let spool = Spool::open(&dir).unwrap();
    assert_eq!(spool.usage().bytes, on_disk);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_batch_closes_before_it_outgrows_one_call_to_the_server() {
    let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
    let mut spool = Spool::open(&dir).unwrap();
    let mut big = event(0);
    big.data = serde_json::json!({ "args": vec!["a".repeat(4000); 4], "cwd": "/".repeat(1 << 20) });
    for n in 0..60 {
        big.id = format!("e{n}");
        spool.append(&[big.clone()]).unwrap();
    }
    let mut total = 0;
    while let Some((batch, events)) = spool.next_batch().unwrap() {
        assert!(fs::metadata(&batch).unwrap().len() <= limits::BATCH_BYTES as u64);
        // Each event was bounded on its way in.
        assert!(events.iter().all(|e| e.data["cwd"]["bytes"] == 1 << 20));
        total += events.len();
        spool.confirm(&batch, events.len()).unwrap();
    }
    assert_eq!(total, 60);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn at_the_bound_refused_events_are_summarised_first() {
    let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
    let mut spool = Spool::open(&dir).unwrap();
    spool.set_limit(64 * 1024, "agent@d");
    for n in 0..100 {
        spool.append(&[event(n)]).unwrap();
    }
    let (batch, events) = spool.next_batch().unwrap().unwrap();
    spool.set_aside(&batch, events.len(), &events).unwrap();
    assert_eq!(spool.pending(), 0);
    let mut n = 1000;
    while spool.rejected().unwrap().len() == 1 {
        spool.append_after_the_fact(&[found(n)]).unwrap();
        n += 1;
        assert!(n < 10_000, "the refused events were never summarised");
    }
    spool.flush().unwrap();
    let events = all(&spool);
    let summary: Vec<_> = events
        .iter()
        .filter(|e| e.action == "spool.rejected_summarised")
        .collect();
    assert_eq!(summary.len(), 1);
    assert_eq!(summary[0].data["events"], 100);
    assert_eq!(summary[0].data["actions"]["request.created"], 100);
    assert_eq!(summary[0].data["alert"], true);
    assert!(spool.usage().bytes <= 64 * 1024);
    fs::remove_dir_all(dir).unwrap();
}

fn found(n: u32) -> AuditEventIn {
    AuditEventIn {
        id: format!("d{n}"),
        at: jiff::Timestamp::from_second(1_800_000_000 + i64::from(n)).unwrap(),
        actor: "agent@d".into(),
        action: "discovery.command".into(),
        subject: format!("exec:d{n}"),
        data: serde_json::json!({ "user": if n.is_multiple_of(2) { "carol" } else { "dave" },
            "target": { "path": format!("/usr/bin/tool{}", n % 3) }, "pad": "x".repeat(300) }),
    }
}

/// Every event in the spool's batches and current file.
fn all(spool: &Spool) -> Vec<AuditEventIn> {
    let mut out = Vec::new();
    for f in spool
        .batches()
        .unwrap()
        .into_iter()
        .chain([spool.dir.join(CURRENT)])
    {
        out.extend(read_events(&f).unwrap());
    }
    out
}

#[test]
fn a_full_spool_summarises_discovery_and_keeps_every_audit_event() {
    let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
    let mut spool = Spool::open(&dir).unwrap();
    spool.set_limit(64 * 1024, "agent@d");
    let (mut audit, mut discovery) = (0u32, 0u32);
    for n in 0..2000u32 {
        if n.is_multiple_of(10) {
            spool.append(&[event(n)]).unwrap();
            audit += 1;
        } else {
            spool.append_after_the_fact(&[found(n)]).unwrap();
            discovery += 1;
        }
    }
    spool.flush().unwrap();
    let usage = spool.usage();
    assert!(usage.bytes <= 64 * 1024, "{usage:?}");
    assert!(usage.summarised > 0);
    let events = all(&spool);
    assert_eq!(
        usage.events,
        events.len() as u64,
        "the count follows the files"
    );
    // Every audit event is still there, once.
    let kept: Vec<_> = events
        .iter()
        .filter(|e| e.action == "request.created")
        .collect();
    assert_eq!(kept.len() as u32, audit);
    let mut ids: Vec<_> = kept.iter().map(|e| e.id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len() as u32, audit);
    // Every discovery event is either there or counted in a summary.
    let left = events
        .iter()
        .filter(|e| e.action == "discovery.command")
        .count() as u64;
    let summaries: Vec<_> = events.iter().filter(|e| e.action == SUMMARISED).collect();
    let counted: u64 = summaries
        .iter()
        .map(|e| e.data["events"].as_u64().unwrap())
        .sum();
    assert_eq!(left + counted, u64::from(discovery));
    assert_eq!(counted, usage.summarised);
    let per_program: u64 = summaries
        .iter()
        .flat_map(|e| e.data["commands"].as_array().unwrap().iter())
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert_eq!(
        per_program, counted,
        "users and programs are counted one by one"
    );
    assert!(summaries.iter().all(|e| e.actor == "agent@d"));
    // One alert for the time the bound was reached, not one per event.
    let alerts: Vec<_> = events.iter().filter(|e| e.action == "spool.full").collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].data["alert"], true);
    assert_eq!(alerts[0].data["refusing"], false);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_spool_full_of_audit_events_refuses_actions_until_the_server_takes_them() {
    let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
    let mut spool = Spool::open(&dir).unwrap();
    spool.set_limit(64 * 1024, "agent@d");
    let mut n = 0;
    let refused = loop {
        match spool.append(&[event(n)]) {
            Ok(()) => n += 1,
            Err(e) => break e,
        }
        assert!(n < 10_000, "the bound never refused");
    };
    assert_eq!(refused.kind(), io::ErrorKind::StorageFull);
    assert!(
        refused.to_string().contains("elevation is refused"),
        "{refused}"
    );
    // What already happened is still recorded, past the bound.
    spool.append_after_the_fact(&[event(100_000)]).unwrap();
    let events = all(&spool);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == "request.created")
            .count(),
        n as usize + 1
    );
    let alerts: Vec<_> = events.iter().filter(|e| e.action == "spool.full").collect();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].data["refusing"], true);
    // The server takes the batches: actions may go on.
    while let Some((batch, sent)) = spool.next_batch().unwrap() {
        spool.confirm(&batch, sent.len()).unwrap();
    }
    assert_eq!(spool.usage().bytes, 0);
    spool.append(&[event(200_000)]).unwrap();
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_batch_being_sent_is_not_summarised_and_a_torn_summary_is_dropped() {
    let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
    let mut spool = Spool::open(&dir).unwrap();
    spool.set_limit(64 * 1024, "agent@d");
    for n in 0..100 {
        spool.append_after_the_fact(&[found(n)]).unwrap();
    }
    let (out, sent) = spool.next_batch().unwrap().unwrap();
    // The agent dies while the server stores the batch, and starts again: the batch may be
    // on the server, so it is sent again as it is, never summarised.
    drop(spool);
    let mut spool = Spool::open(&dir).unwrap();
    spool.set_limit(64 * 1024, "agent@d");
    for n in 100..400 {
        spool.append_after_the_fact(&[found(n)]).unwrap();
    }
    assert!(spool.usage().summarised > 0);
    let (again, resent) = spool.next_batch().unwrap().unwrap();
    assert_eq!((&again, &resent), (&out, &sent), "the same batch, first");
    assert_eq!(
        read_events(&out).unwrap(),
        sent,
        "the batch out is untouched"
    );
    spool.confirm(&out, sent.len()).unwrap();
    // The agent died while writing a summary: the batch it was for is whole.
    drop(spool);
    fs::write(dir.join("batch-0.partial"), b"{\"id\":").unwrap();
    let spool = Spool::open(&dir).unwrap();
    assert!(!dir.join("batch-0.partial").exists());
    assert_eq!(spool.usage().events, all(&spool).len() as u64);
    fs::remove_dir_all(dir).unwrap();
}

#[test]
fn a_line_torn_inside_a_character_and_a_lost_rename_lose_nothing_else() {
    let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
    let mut spool = Spool::open(&dir).unwrap();
    spool.append(&[event(1)]).unwrap();
    drop(spool);
    // Cut short in the middle of "é" (0xC3 0xA9): not UTF-8.
    fs::OpenOptions::new()
        .append(true)
        .open(dir.join(CURRENT))
        .unwrap()
        .write_all(b"{\"id\":\"caf\xc3")
        .unwrap();
    // The folder lost a close's renames: the next file holds acknowledged events beside
    // the old current one.
    let mut next = lines(&[event(2)]).unwrap();
    next.extend(lines(&[event(3)]).unwrap());
    fs::write(dir.join(NEXT), next).unwrap();
    let mut spool = Spool::open(&dir).unwrap();
    spool.append(&[event(4)]).unwrap();
    let mut ids: Vec<String> = all(&spool).into_iter().map(|e| e.id).collect();
    ids.sort();
    assert_eq!(ids, ["e1", "e2", "e3", "e4"]);
    assert_eq!(spool.usage().events, 4);
    fs::remove_dir_all(dir).unwrap();
}

proptest::proptest! {
    #![proptest_config(crate::fuzz::config())]

    /// Whatever a crash, a full disk or a bad block leaves in the spool's files, the spool
    /// opens, counts exactly the events it can read, and delivers them.
    #[test]
    fn any_bytes_in_the_spool_are_read_without_panic(
        current in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
        batch in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
        good in 0u32..20,
    ) {
        let dir = std::env::temp_dir().join(format!("elevate-spool-{}", uuid::Uuid::now_v7()));
        fs::create_dir_all(&dir).unwrap();
        let mut valid = lines(&(0..good).map(event).collect::<Vec<_>>()).unwrap();
        valid.extend_from_slice(&batch);
        fs::write(dir.join("batch-0193a000-0000-7000-8000-000000000001.jsonl"), &valid).unwrap();
        fs::write(dir.join(CURRENT), &current).unwrap();
        let mut spool = Spool::open(&dir).unwrap();
        let readable = all(&spool).len() as u64;
        proptest::prop_assert_eq!(spool.pending(), readable);
        proptest::prop_assert!(readable >= u64::from(good));
        let mut sent = 0;
        while let Some((b, events)) = spool.next_batch().unwrap() {
            sent += events.len() as u64;
            spool.confirm(&b, events.len()).unwrap();
        }
        proptest::prop_assert_eq!(sent, readable);
        fs::remove_dir_all(dir).unwrap();
    }
}
