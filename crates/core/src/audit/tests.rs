use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;

use super::*;

/// A plausible event number `n` (ids unique per `n`).
fn event(n: u64) -> AuditEvent {
    AuditEvent {
        id: format!("0193a6f0-0000-7000-8000-{n:012}"),
        at: Timestamp::from_millisecond(1_750_000_000_000 + 1_000 * n as i64).unwrap(),
        actor: "user:alice".into(),
        action: "request.created".into(),
        subject: format!("request:{n}"),
        data: format!(r#"{{"n":{n},"reason":"deploy"}}"#),
    }
}

/// Appends `events` to an empty log.
fn build(events: impl IntoIterator<Item = AuditEvent>) -> Vec<ChainedRecord> {
    let mut head = Head::genesis();
    let mut records = Vec::new();
    for e in events {
        let r = append(&head, e);
        head = r.head();
        records.push(r);
    }
    records
}

/// A sound log of `n` records, seq 1..=n.
fn chain(n: u64) -> Vec<ChainedRecord> {
    build((1..=n).map(event))
}

/// A forged record that correctly hashes and links after `prev`.
fn forged_after(prev: &Head, n: u64) -> ChainedRecord {
    let mut e = event(n);
    e.id = format!("f0f0f0f0-0000-7000-8000-{n:012}");
    e.action = "request.approved".into();
    append(prev, e)
}

/// Renumbers records so that seq follows position again.
fn renumber(records: &mut [ChainedRecord]) {
    for (i, r) in records.iter_mut().enumerate() {
        r.seq = i as u64 + 1;
    }
}

#[track_caller]
fn check(records: &[ChainedRecord], head: Option<&Head>, want: Option<(BreakKind, u64)>) {
    let got = verify(records, head);
    match (&got, want) {
        (Ok(h), None) => assert_eq!(Some(h), records.last().map(ChainedRecord::head).as_ref()),
        (Err(b), Some((kind, seq))) => {
            assert_eq!((b.kind, b.seq), (kind, seq), "{}", b.message);
            assert!(b.message.contains(&seq.to_string()), "{}", b.message);
        }
        _ => panic!("got {got:?}, want {want:?}"),
    }
}

type Tamper = fn(&mut Vec<ChainedRecord>);

/// What was done, how, whether to pass the head of the untouched chain, and the first break.
type Case = (&'static str, Tamper, bool, Option<(BreakKind, u64)>);

#[test]
fn tampering_is_found_and_named() {
    use BreakKind::*;
    const HEAD: bool = true;
    const NO_HEAD: bool = false;
    #[rustfmt::skip]
    let cases: &[Case] = &[
        ("untouched", |_| {}, NO_HEAD, None),
        ("untouched, with head", |_| {}, HEAD, None),
        ("edit actor", |c| c[3].event.actor = "user:mallory".into(), HEAD, Some((Edited, 4))),
        ("edit action", |c| c[3].event.action = "x".into(), NO_HEAD, Some((Edited, 4))),
        ("edit subject", |c| c[0].event.subject.push('9'), NO_HEAD, Some((Edited, 1))),
        ("edit data of last", |c| c[9].event.data = "{}".into(), NO_HEAD, Some((Edited, 10))),
        ("edit data whitespace", |c| c[4].event.data.push(' '), NO_HEAD, Some((Edited, 5))),
        ("edit id", |c| c[4].event.id = "x".into(), NO_HEAD, Some((Edited, 5))),
        ("edit time by 1ms", |c| c[0].event.at += ms(1), NO_HEAD, Some((Edited, 1))),
        ("edit time below 1ms: not hashed", |c| c[0].event.at += us(300), HEAD, None),
        ("edit stored hash", |c| c[2].hash = GENESIS.into(), NO_HEAD, Some((Edited, 3))),
        ("edit prev_hash", |c| c[5].prev_hash = c[1].hash.clone(), NO_HEAD, Some((Edited, 6))),
        ("replace, rehash", |c| c[5] = forged_after(&c[4].head(), 6), NO_HEAD, Some((Deleted, 7))),
        ("delete middle", |c| drop(c.remove(4)), NO_HEAD, Some((Deleted, 6))),
        ("delete middle, renumber", |c| { c.remove(4); renumber(c) }, NO_HEAD, Some((Deleted, 5))),
        ("delete first", |c| drop(c.remove(0)), NO_HEAD, Some((Deleted, 2))),
        ("delete first, renumber", |c| { c.remove(0); renumber(c) }, NO_HEAD, Some((Deleted, 1))),
        ("delete two", |c| drop(c.drain(3..5)), NO_HEAD, Some((Deleted, 6))),
        ("insert forged", |c| {
            let f = forged_after(&c[3].head(), 5);
            c.insert(4, f);
            renumber(c)
        }, NO_HEAD, Some((Inserted, 5))),
        ("insert forged, not renumbered", |c| {
            let f = forged_after(&c[3].head(), 5);
            c.insert(4, f)
        }, NO_HEAD, Some((Inserted, 5))),
        ("insert two forged", |c| {
            let f1 = forged_after(&c[3].head(), 5);
            let f2 = forged_after(&f1.head(), 6);
            c.splice(4..4, [f1, f2]);
            renumber(c)
        }, NO_HEAD, Some((Inserted, 5))),
        ("insert forged first", |c| {
            c.insert(0, forged_after(&Head::genesis(), 1));
            renumber(c)
        }, NO_HEAD, Some((Inserted, 1))),
        ("duplicate a record", |c| {
            let d = c[2].clone();
            c.insert(3, d);
            renumber(c)
        }, NO_HEAD, Some((Inserted, 4))),
        ("reuse an event id", |c| {
            let mut f = forged_after(&c[5].head(), 7);
            f.event.id = c[1].event.id.clone();
            f.hash = event_hash(&f.prev_hash, &f.event);
            c.insert(6, f);
            renumber(c)
        }, NO_HEAD, Some((Inserted, 7))),
        ("swap rows", |c| c.swap(3, 4), NO_HEAD, Some((Reordered, 5))),
        ("swap rows and seq", |c| { c.swap(3, 4); renumber(c) }, NO_HEAD, Some((Reordered, 4))),
        ("swap first two", |c| { c.swap(0, 1); renumber(c) }, NO_HEAD, Some((Reordered, 1))),
        ("swap last two", |c| { c.swap(8, 9); renumber(c) }, HEAD, Some((Reordered, 9))),
        ("swap far apart", |c| { c.swap(1, 7); renumber(c) }, NO_HEAD, Some((Reordered, 2))),
        ("move one to the end", |c| {
            let r = c.remove(2);
            c.push(r);
            renumber(c)
        }, NO_HEAD, Some((Reordered, 3))),
        ("renumber from the middle", |c| c[5..].iter_mut().for_each(|r| r.seq += 1), NO_HEAD,
            Some((Renumbered, 7))),
        ("renumber one", |c| c[5].seq = 60, NO_HEAD, Some((Renumbered, 60))),
        ("first is not 1", |c| c[0].seq = 0, NO_HEAD, Some((Renumbered, 0))),
        ("truncate tail, no head", |c| c.truncate(7), NO_HEAD, None),
        ("truncate tail", |c| c.truncate(7), HEAD, Some((Truncated, 8))),
        ("truncate last", |c| c.truncate(9), HEAD, Some((Truncated, 10))),
        ("truncate all", |c| c.clear(), HEAD, Some((Truncated, 1))),
        ("append after head", |c| {
            let f = forged_after(&c[9].head(), 11);
            c.push(f)
        }, HEAD, Some((Inserted, 11))),
        ("truncate and re-append", |c| {
            c.truncate(8);
            let f1 = forged_after(&c[7].head(), 9);
            let f2 = forged_after(&f1.head(), 10);
            c.extend([f1, f2]);
        }, HEAD, Some((Truncated, 10))),
        ("rewrite from the middle", |c| {
            c.truncate(4);
            for n in 5..=10 {
                let f = forged_after(&c.last().unwrap().head(), n);
                c.push(f);
            }
        }, HEAD, Some((Truncated, 10))),
    ];
    let head10 = chain(10).last().unwrap().head();
    for &(what, tamper, with_head, want) in cases {
        let mut records = chain(10);
        tamper(&mut records);
        println!("{what}");
        check(&records, with_head.then_some(&head10), want);
    }
}

fn ms(n: i64) -> SignedDuration {
    SignedDuration::from_millis(n)
}

fn us(n: i64) -> SignedDuration {
    SignedDuration::from_micros(n)
}

#[test]
fn messages_speak_to_an_auditor() {
    let head = chain(10).last().unwrap().head();
    let msg = |tamper: Tamper, with_head: bool| {
        let mut records = chain(10);
        tamper(&mut records);
        verify(&records, with_head.then_some(&head))
            .unwrap_err()
            .to_string()
    };
    let id = |n| event(n).id;
    assert_eq!(
        msg(|c| c[6].event.actor = "user:mallory".into(), false),
        format!(
            "record 7 (event {}) was edited: its content no longer matches its hash",
            id(7)
        )
    );
    assert_eq!(
        msg(|c| drop(c.remove(4)), false),
        format!(
            "record 6 (event {}) links to a record that is not in the log: one or more records \
             between record 4 and it were deleted or replaced",
            id(6)
        )
    );
    assert_eq!(
        msg(
            |c| {
                c.swap(3, 4);
                renumber(c)
            },
            false
        ),
        format!(
            "record 4 (event {}) is out of order: it links to record 5 (event {}), which is \
             stored after it",
            id(5),
            id(4)
        )
    );
    assert_eq!(
        msg(|c| c.truncate(7), true),
        "the log ends at record 7 but the recorded head is record 10: records 8 to 10 were \
         removed from the end"
    );
    assert!(msg(|c| c[5].seq = 60, false).contains("should be numbered 6"));
    let inserted = msg(
        |c| {
            c.insert(0, forged_after(&Head::genesis(), 1));
            renumber(c)
        },
        false,
    );
    assert!(
        inserted.ends_with("links past it to the start of the log"),
        "{inserted}"
    );
}

#[test]
fn empty_log_and_genesis() {
    assert_eq!(GENESIS.len(), 64);
    assert!(GENESIS.bytes().all(|b| b == b'0'));
    assert_eq!(verify(&[], None), Ok(Head::genesis()));
    assert_eq!(verify(&[], Some(&Head::genesis())), Ok(Head::genesis()));
}

#[test]
fn verify_from_continues_a_verified_head() {
    let records = chain(10);
    let middle = verify(&records[..4], None).unwrap();
    let end = verify_from(&middle, &records[4..], Some(&records[9].head())).unwrap();
    assert_eq!(end, records[9].head());
    // Starting from the wrong head: the first record's link has nothing to point to.
    let wrong = records[2].head();
    assert_eq!(
        verify_from(&wrong, &records[4..], None).unwrap_err().kind,
        BreakKind::Deleted
    );
    // Nothing new since the head.
    assert_eq!(verify_from(&middle, &[], Some(&middle)), Ok(middle));
}

#[test]
fn field_boundaries_are_unambiguous() {
    let a = event(1);
    let mut b = a.clone();
    (b.actor, b.action) = ("user:alicerequest.".into(), "created".into());
    assert_ne!(event_hash(GENESIS, &a), event_hash(GENESIS, &b));
    let mut c = a.clone();
    (c.subject, c.data) = (format!("{}{}", a.subject, a.data), String::new());
    assert_ne!(event_hash(GENESIS, &a), event_hash(GENESIS, &c));
}

/// Pins the version 1 encoding: if this fails, every stored log would stop verifying. The hashes
/// were computed once by an independent implementation of the encoding in the module doc.
#[test]
fn fixed_test_vector() {
    let e1 = AuditEvent {
        id: "01937b4e-7c1a-7d3e-9f00-000000000001".into(),
        at: "2025-01-02T03:04:05.678Z".parse().unwrap(),
        actor: "user:alice".into(),
        action: "request.created".into(),
        subject: "request:01937b4e-7c1a-7d3e-9f00-0000000000aa".into(),
        data:
            r#"{"command":"/usr/bin/systemctl","args":["restart","nginx"],"reason":"déploiement"}"#
                .into(),
    };
    let e2 = AuditEvent {
        id: "01937b4e-7c1a-7d3e-9f00-000000000002".into(),
        at: "2025-01-02T03:05:00.000999Z".parse().unwrap(),
        actor: "approver:bob".into(),
        action: "request.approved".into(),
        subject: "request:01937b4e-7c1a-7d3e-9f00-0000000000aa".into(),
        data: "{}".into(),
    };
    let records = build([e1, e2]);
    let h1 = "30a08bbc6bd25fdc1ffb78385bbaab5d29502692ad4cc51063c36006d5bb40a0";
    let h2 = "a0b33194c0d3dfd780c85ab51095ea1c00b5bbd06295242ce03ddb547c571012";
    assert_eq!(records[0].seq, 1);
    assert_eq!(records[0].prev_hash, GENESIS);
    assert_eq!(records[0].hash, h1);
    assert_eq!(records[1].seq, 2);
    assert_eq!(records[1].prev_hash, h1);
    assert_eq!(records[1].hash, h2);
    assert_eq!(
        verify(&records, None).unwrap(),
        Head {
            count: 2,
            hash: h2.into()
        }
    );
}

#[test]
fn break_kinds_serialise_in_snake_case() {
    use BreakKind::*;
    for kind in [Edited, Deleted, Inserted, Reordered, Renumbered, Truncated] {
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{}\"", kind.as_str()));
        assert_eq!(kind.to_string(), kind.as_str());
        assert_eq!(serde_json::from_str::<BreakKind>(&json).unwrap(), kind);
    }
    let mut records = chain(3);
    records[1].event.data.push('x');
    let b = verify(&records, None).unwrap_err();
    let back: ChainBreak = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
    assert_eq!(back, b);
}

/// Events with arbitrary text, increasing times and unique ids.
fn arb_events(max: usize) -> impl Strategy<Value = Vec<AuditEvent>> {
    let field = "\\PC{0,12}";
    prop::collection::vec((field, field, field, field, 0i64..100_000), 1..max).prop_map(|rows| {
        let mut ms = 1_700_000_000_000;
        rows.into_iter()
            .enumerate()
            .map(|(i, (actor, action, subject, data, step))| {
                ms += step;
                AuditEvent {
                    id: format!("evt-{i}"),
                    at: Timestamp::from_millisecond(ms).unwrap(),
                    actor,
                    action,
                    subject,
                    data,
                }
            })
            .collect()
    })
}

/// Changes `text` to something else.
fn alter(text: &mut String, new: String) {
    *text = if *text == new { format!("{new}!") } else { new };
}

proptest! {
    #[test]
    fn appended_chains_verify(events in arb_events(16), split in any::<prop::sample::Index>()) {
        let records = build(events);
        let last = records.last().unwrap().head();
        prop_assert_eq!(verify(&records, None), Ok(last.clone()));
        prop_assert_eq!(verify(&records, Some(&last)), Ok(last.clone()));
        let k = split.index(records.len());
        let middle = verify(&records[..k], None).unwrap();
        prop_assert_eq!(verify_from(&middle, &records[k..], Some(&last)), Ok(last));
    }

    #[test]
    fn any_edit_is_found_at_its_record(
        events in arb_events(12),
        at in any::<prop::sample::Index>(),
        field in 0..8usize,
        text in "\\PC{0,12}",
        hash in "[0-9a-f]{64}",
        millis in 1i64..10_000_000,
    ) {
        let mut records = build(events);
        let i = at.index(records.len());
        let r = &mut records[i];
        match field {
            0 => alter(&mut r.event.id, text),
            1 => r.event.at -= SignedDuration::from_millis(millis),
            2 => alter(&mut r.event.actor, text),
            3 => alter(&mut r.event.action, text),
            4 => alter(&mut r.event.subject, text),
            5 => alter(&mut r.event.data, text),
            6 => alter(&mut r.prev_hash, hash),
            _ => alter(&mut r.hash, hash),
        }
        let b = verify(&records, None).unwrap_err();
        prop_assert_eq!((b.kind, b.seq), (BreakKind::Edited, i as u64 + 1));
    }

    #[test]
    fn deleting_a_record_is_found(
        events in arb_events(12),
        at in any::<prop::sample::Index>(),
        renumbered: bool,
    ) {
        let mut records = build(events);
        prop_assume!(records.len() >= 2);
        let i = at.index(records.len() - 1);
        records.remove(i);
        if renumbered {
            renumber(&mut records);
        }
        let b = verify(&records, None).unwrap_err();
        prop_assert_eq!((b.kind, b.seq), (BreakKind::Deleted, records[i].seq));
    }

    #[test]
    fn swapping_neighbours_is_found(
        events in arb_events(12),
        at in any::<prop::sample::Index>(),
        renumbered: bool,
    ) {
        let mut records = build(events);
        prop_assume!(records.len() >= 2);
        let i = at.index(records.len() - 1);
        records.swap(i, i + 1);
        if renumbered {
            renumber(&mut records);
        }
        let b = verify(&records, None).unwrap_err();
        prop_assert_eq!((b.kind, b.seq), (BreakKind::Reordered, records[i].seq));
    }

    #[test]
    fn cutting_the_tail_is_found_with_the_head(
        events in arb_events(12),
        at in any::<prop::sample::Index>(),
    ) {
        let mut records = build(events);
        let head = records.last().unwrap().head();
        let keep = at.index(records.len());
        records.truncate(keep);
        let b = verify(&records, Some(&head)).unwrap_err();
        prop_assert_eq!((b.kind, b.seq), (BreakKind::Truncated, keep as u64 + 1));
    }
}
