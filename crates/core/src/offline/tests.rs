//! The documented vectors (docs/offline-codes.md, computed with Python's hmac independently of
//! this code), RFC 4226's truncation vectors, and what a mistyped or altered code does.

use super::*;

const SECRET: [u8; 32] = {
    let mut s = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        s[i] = i as u8;
        i += 1;
    }
    s
};

fn apt() -> [u8; 32] {
    command_digest(
        "/usr/bin/apt",
        &"ab".repeat(32),
        &["install".into(), "htop".into()],
    )
}

fn systemctl() -> [u8; 32] {
    command_digest(
        "/usr/bin/systemctl",
        &"00".repeat(32),
        &["restart".into(), "cups".into()],
    )
}

#[test]
fn the_documented_command_digests_hold() {
    assert_eq!(
        hex::encode(apt()),
        "75235850253fdafe63534f88ed2e578a8ceaf16928a6485f3e9834a86b0a2fa6"
    );
    assert_eq!(command_bits(&apt()), 479_797);
    assert_eq!(
        hex::encode(systemctl()),
        "f2b3ba4eb2d2177da1ab29bff5a7d3d81a20159db11e2b4a576435a511642846"
    );
    assert_eq!(command_bits(&systemctl()), 994_107);
    // Arguments are counted, not joined: ["a b"] is not ["a", "b"].
    assert_ne!(
        command_digest("/bin/x", "00", &["a b".into()]),
        command_digest("/bin/x", "00", &["a".into(), "b".into()])
    );
}

/// (device id, uid, nonce, command digest, challenge, [(scope, minutes, response)]).
#[allow(clippy::type_complexity)]
fn vectors() -> Vec<(
    &'static str,
    u32,
    u32,
    Option<[u8; 32]>,
    &'static str,
    Vec<(Scope, u16, &'static str)>,
)> {
    vec![
        (
            "01a21ba6-ff25-712a-b95c-69334d79d8ad",
            1001,
            0x234_5678,
            Some(apt()),
            "BCJYF-67C00-00Z91-38NKR-EMHNJ",
            vec![
                (Scope::Request, 30, "01XFD-PRAZB"),
                (Scope::Session, 60, "43RAQ-63PZA"),
                (Scope::Session, 1440, "6T1FT-ZJ072"),
            ],
        ),
        (
            "web-01",
            1000,
            0,
            Some(systemctl()),
            "BCS37-M8W00-00Z80-00000-YASVW",
            vec![
                (Scope::Request, 30, "01WPF-WBS23"),
                (Scope::Session, 60, "43RAB-FWEP1"),
                (Scope::Session, 1440, "6T18R-7161E"),
            ],
        ),
        (
            "e2e-host",
            4_294_967_294,
            (1 << 30) - 1,
            None,
            "8MHWV-B9FZZ-ZZZYZ-ZZZZZ-0000V",
            vec![
                (Scope::Session, 60, "43SP7-MQH26"),
                (Scope::Session, 1440, "6T0XR-QGQKP"),
            ],
        ),
    ]
}

#[test]
fn the_documented_vectors_hold() {
    for (device, uid, nonce, digest, challenge_text, responses) in vectors() {
        let challenge = Challenge {
            device: device_key(device),
            uid,
            nonce,
            command: digest.as_ref().map_or(0, command_bits),
        };
        assert_eq!(challenge.encode(), challenge_text, "{device}");
        assert_eq!(Challenge::parse(challenge_text), Ok(challenge));
        for (scope, minutes, response_text) in responses {
            let response = match scope {
                Scope::Request => challenge
                    .respond_request(&SECRET, minutes, digest.as_ref().unwrap())
                    .unwrap(),
                _ => challenge.respond_session(&SECRET, minutes).unwrap(),
            };
            assert_eq!(
                response.encode(),
                response_text,
                "{device} {scope:?} {minutes}"
            );
            let typed = Response::parse(response_text).unwrap();
            assert_eq!(typed, response);
            assert!(challenge.verify(&SECRET, &typed, digest.as_ref()));
        }
    }
}

/// (challenge, codes needed, share, minutes, response): break-glass shares
/// (docs/offline-codes.md).
const SHARES: &[(&str, u8, u8, u16, &str)] = &[
    ("BCS37-M8W00-00Z80-00000-YASVW", 2, 1, 60, "83SHJ-S5X3Y"),
    ("BCS37-M8W00-00Z80-00000-YASVW", 2, 2, 60, "83RW9-1VME6"),
    ("BCS37-M8W00-00Z80-00000-YASVW", 3, 3, 240, "8F18P-SFKSD"),
    ("8MHWV-B9FZZ-ZZZYZ-ZZZZZ-0000V", 2, 1, 60, "83RP2-QS1FS"),
    ("8MHWV-B9FZZ-ZZZYZ-ZZZZZ-0000V", 2, 2, 60, "83S71-2SDHC"),
    ("8MHWV-B9FZZ-ZZZYZ-ZZZZZ-0000V", 3, 3, 240, "8F17X-4849K"),
];

#[test]
fn the_documented_break_glass_vectors_hold_and_name_their_share() {
    for (challenge_text, needed, share, minutes, response_text) in SHARES {
        let challenge = Challenge::parse(challenge_text).unwrap();
        let response = challenge
            .respond_share(&SECRET, *share, *needed, *minutes)
            .unwrap();
        assert_eq!(
            response.encode(),
            *response_text,
            "{challenge_text} {share}"
        );
        let typed = Response::parse(response_text).unwrap();
        assert_eq!(typed, response);
        assert_eq!(typed.scope, Scope::BreakGlass);
        let read = Share {
            number: *share,
            needed: *needed,
        };
        assert_eq!(challenge.share_of(&SECRET, &typed, 2), Some(read));
        assert!(
            !challenge.verify(&SECRET, &typed, None),
            "a share alone answers nothing"
        );
        // Not for another challenge, and not under another secret.
        let other = Challenge::parse("BCJYF-67C00-00Z91-38NKR-EMHNJ").unwrap();
        assert_eq!(other.share_of(&SECRET, &typed, 2), None);
        assert_eq!(challenge.share_of(&[9; 32], &typed, 2), None);
    }
    // A share is never a session code, nor a session code a share.
    let challenge = Challenge::parse("8MHWV-B9FZZ-ZZZYZ-ZZZZZ-0000V").unwrap();
    let session = challenge.respond_session(&SECRET, 60).unwrap();
    assert_eq!(challenge.share_of(&SECRET, &session, 2), None);
    let share = challenge.respond_share(&SECRET, 1, 2, 60).unwrap();
    let as_session = Response {
        scope: Scope::Session,
        ..share
    };
    assert!(!challenge.verify(&SECRET, &as_session, None));
    for (number, needed) in [(MAX_SHARES + 1, 2), (0, 2), (1, 1), (1, MAX_SHARES + 1)] {
        assert_eq!(
            challenge.respond_share(&SECRET, number, needed, 60),
            Err(CodeError::Share)
        );
    }
}

/// The number of shares is the server's: raised there, a device with an older policy asks for
/// the new number; lowered there, the device's older (higher) number holds until it hears.
#[test]
fn a_share_carries_how_many_shares_the_server_needs() {
    let challenge = Challenge::parse("8MHWV-B9FZZ-ZZZYZ-ZZZZZ-0000V").unwrap();
    let three = challenge.respond_share(&SECRET, 1, 3, 60).unwrap();
    assert_eq!(
        challenge.share_of(&SECRET, &three, 2),
        Some(Share {
            number: 1,
            needed: 3
        })
    );
    let two = challenge.respond_share(&SECRET, 1, 2, 60).unwrap();
    assert_eq!(challenge.share_of(&SECRET, &two, 3), None);
}

#[test]
fn a_response_fits_only_its_challenge_device_command_scope_and_duration() {
    let challenge = Challenge::parse("BCJYF-67C00-00Z91-38NKR-EMHNJ").unwrap();
    let response = Response::parse("01XFD-PRAZB").unwrap();
    assert!(challenge.verify(&SECRET, &response, Some(&apt())));
    // Another device's secret.
    let mut other_secret = SECRET;
    other_secret[0] ^= 1;
    assert!(!challenge.verify(&other_secret, &response, Some(&apt())));
    // Another command: refused on the device, and the helpdesk cannot make one for it.
    assert!(!challenge.verify(&SECRET, &response, Some(&systemctl())));
    assert!(!challenge.verify(&SECRET, &response, None));
    assert_eq!(
        challenge.respond_request(&SECRET, 30, &systemctl()),
        Err(CodeError::Command)
    );
    // A command whose digest shares the challenge's 20 bits is still refused by the MAC.
    let mut near = apt();
    near[31] ^= 1;
    assert!(challenge.names(&near));
    assert!(!challenge.verify(&SECRET, &response, Some(&near)));
    // No request code for a challenge that names no command (an admin session).
    let session = Challenge {
        command: 0,
        ..challenge
    };
    assert_eq!(
        session.respond_request(&SECRET, 30, &apt()),
        Err(CodeError::Command)
    );
    // Another challenge (nonce, user, device or command bits).
    for other in [
        Challenge {
            nonce: challenge.nonce ^ 1,
            ..challenge
        },
        Challenge {
            uid: challenge.uid + 1,
            ..challenge
        },
        Challenge {
            device: challenge.device ^ 1,
            ..challenge
        },
        Challenge {
            command: challenge.command ^ 1,
            ..challenge
        },
    ] {
        assert!(!other.verify(&SECRET, &response, Some(&apt())));
    }
    // The same MAC with a wider scope or a longer duration.
    for forged in [
        Response {
            scope: Scope::Session,
            ..response
        },
        Response {
            minutes: response.minutes + 1,
            ..response
        },
    ] {
        assert!(!challenge.verify(&SECRET, &forged, Some(&apt())));
    }
    assert_eq!(
        challenge.respond_request(&SECRET, 0, &apt()),
        Err(CodeError::Duration)
    );
    assert_eq!(
        challenge.respond_session(&SECRET, MAX_MINUTES + 1),
        Err(CodeError::Duration)
    );
}

#[test]
fn typing_is_forgiving_but_misreadings_are_caught() {
    let challenge = Challenge::parse("BCJYF-67C00-00Z91-38NKR-EMHNJ").unwrap();
    // Lower case, spaces, O for 0, L for 1: the same challenge.
    assert_eq!(
        Challenge::parse("bcjyf 67coo ooz9l 38nkr emhnj"),
        Ok(challenge)
    );
    // Every single misread character is caught by the check character.
    let text: Vec<char> = "01XFDPRAZB".chars().collect();
    for i in 0..text.len() {
        for c in ALPHABET.iter().map(|b| *b as char) {
            if c == text[i] {
                continue;
            }
            let mut wrong = text.clone();
            wrong[i] = c;
            let wrong: String = wrong.into_iter().collect();
            assert!(Response::parse(&wrong).is_err(), "{wrong} passed the check");
        }
    }
    assert!(matches!(
        Response::parse("01XFD-PRAZ"),
        Err(CodeError::Length {
            want: 10,
            got: 9,
            ..
        })
    ));
    assert_eq!(
        Response::parse("01XFD-PRAUB"),
        Err(CodeError::Character('U'))
    );
}

/// RFC 4226 Appendix D (shared/testdata): the truncation used for responses is HOTP's.
#[test]
#[allow(clippy::disallowed_methods)] // reads the RFC's test vectors
fn truncation_agrees_with_rfc_4226() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/crypto/rfc-4226.txt"
    );
    let Ok(text) = std::fs::read_to_string(path) else {
        assert!(std::env::var("CI").is_err(), "{path} is missing in CI");
        eprintln!("SKIPPED: {path} not found (the shared folder sits beside the project in CI)");
        return;
    };
    let mut checked = 0;
    let mut fields = std::collections::HashMap::new();
    for line in text.lines().chain(std::iter::once("")) {
        if let Some((k, v)) = line.split_once(" = ") {
            fields.insert(k.trim().to_owned(), v.trim().to_owned());
            continue;
        }
        if !line.trim().is_empty() || !fields.contains_key("HOTP") {
            continue;
        }
        let counter: u64 = fields["COUNTER"].parse().unwrap();
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(fields["SECRET"].as_bytes()).unwrap();
        mac.update(&counter.to_be_bytes());
        let hmac = mac.finalize().into_bytes();
        assert_eq!(hex::encode(hmac), fields["INTERMEDIATE"]);
        let truncated = truncate(&hmac);
        assert_eq!(format!("{truncated:x}"), fields["TRUNCATED"]);
        assert_eq!(format!("{:06}", truncated % 1_000_000), fields["HOTP"]);
        checked += 1;
        fields.clear();
    }
    assert_eq!(checked, 10, "RFC 4226 has ten vectors");
}
