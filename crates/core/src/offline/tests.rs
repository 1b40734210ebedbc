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

/// (device id, uid, nonce, challenge, [(scope, minutes, response)]).
#[allow(clippy::type_complexity)]
const VECTORS: &[(&str, u32, u32, &str, [(Scope, u16, &str); 3])] = &[
    (
        "01a21ba6-ff25-712a-b95c-69334d79d8ad",
        1001,
        0x234_5678,
        "7CJYF-67C00-00Z91-38NKR-9",
        [
            (Scope::Request, 30, "01XQ3-K8JR1"),
            (Scope::Session, 60, "43SEX-DJMGJ"),
            (Scope::Session, 1440, "6T0FK-F5KA4"),
        ],
    ),
    (
        "web-01",
        1000,
        0,
        "7CS37-M8W00-00Z80-00000-2",
        [
            (Scope::Request, 30, "01WGS-A2TPE"),
            (Scope::Session, 60, "43S29-0V5AY"),
            (Scope::Session, 1440, "6T1A5-B3K4R"),
        ],
    ),
    (
        "e2e-host",
        4_294_967_294,
        (1 << 30) - 1,
        "4MHWV-B9FZZ-ZZZYZ-ZZZZZ-Z",
        [
            (Scope::Request, 30, "01WEF-C8CKB"),
            (Scope::Session, 60, "43RVM-XYEC0"),
            (Scope::Session, 1440, "6T0KC-W7E0Q"),
        ],
    ),
];

#[test]
fn the_documented_vectors_hold() {
    for (device, uid, nonce, challenge_text, responses) in VECTORS {
        let challenge = Challenge {
            device: device_key(device),
            uid: *uid,
            nonce: *nonce,
        };
        assert_eq!(challenge.encode(), *challenge_text, "{device}");
        assert_eq!(Challenge::parse(challenge_text), Ok(challenge));
        for (scope, minutes, response_text) in responses {
            let response = challenge.respond(&SECRET, *scope, *minutes).unwrap();
            assert_eq!(
                response.encode(),
                *response_text,
                "{device} {scope:?} {minutes}"
            );
            let typed = Response::parse(response_text).unwrap();
            assert_eq!(typed, response);
            assert!(challenge.verify(&SECRET, &typed));
        }
    }
}

/// (challenge, share, minutes, response): break-glass shares (docs/offline-codes.md).
const SHARES: &[(&str, u8, u16, &str)] = &[
    ("7CJYF-67C00-00Z91-38NKR-9", 1, 60, "83SYD-SAX2M"),
    ("7CJYF-67C00-00Z91-38NKR-9", 2, 60, "83SG4-KF5WK"),
    ("7CJYF-67C00-00Z91-38NKR-9", 3, 240, "8F1X1-2T5CC"),
    ("7CS37-M8W00-00Z80-00000-2", 1, 60, "83SW4-9JKA1"),
    ("7CS37-M8W00-00Z80-00000-2", 2, 60, "83SR4-DKDA5"),
    ("7CS37-M8W00-00Z80-00000-2", 3, 240, "8F0GC-61E03"),
];

#[test]
fn the_documented_break_glass_vectors_hold_and_name_their_share() {
    for (challenge_text, share, minutes, response_text) in SHARES {
        let challenge = Challenge::parse(challenge_text).unwrap();
        let response = challenge.respond_share(&SECRET, *share, *minutes).unwrap();
        assert_eq!(
            response.encode(),
            *response_text,
            "{challenge_text} {share}"
        );
        let typed = Response::parse(response_text).unwrap();
        assert_eq!(typed, response);
        assert_eq!(typed.scope, Scope::BreakGlass);
        assert_eq!(challenge.share_of(&SECRET, &typed), Some(*share));
        assert!(
            !challenge.verify(&SECRET, &typed),
            "a share alone answers nothing"
        );
        // Not for another challenge, and not under another secret.
        let other = Challenge::parse("4MHWV-B9FZZ-ZZZYZ-ZZZZZ-Z").unwrap();
        assert_eq!(other.share_of(&SECRET, &typed), None);
        assert_eq!(challenge.share_of(&[9; 32], &typed), None);
    }
    // A share is never a session code, nor a session code a share.
    let challenge = Challenge::parse("7CJYF-67C00-00Z91-38NKR-9").unwrap();
    let session = challenge.respond(&SECRET, Scope::Session, 60).unwrap();
    assert_eq!(challenge.share_of(&SECRET, &session), None);
    let share = challenge.respond_share(&SECRET, 1, 60).unwrap();
    let as_session = Response {
        scope: Scope::Session,
        ..share
    };
    assert!(!challenge.verify(&SECRET, &as_session));
    assert_eq!(
        challenge.respond(&SECRET, Scope::BreakGlass, 60),
        Err(CodeError::Share)
    );
    assert_eq!(
        challenge.respond_share(&SECRET, MAX_SHARES + 1, 60),
        Err(CodeError::Share)
    );
    assert_eq!(
        challenge.respond_share(&SECRET, 0, 60),
        Err(CodeError::Share)
    );
}

#[test]
fn a_response_fits_only_its_challenge_device_scope_and_duration() {
    let challenge = Challenge::parse("7CJYF-67C00-00Z91-38NKR-9").unwrap();
    let response = Response::parse("01XQ3-K8JR1").unwrap();
    assert!(challenge.verify(&SECRET, &response));
    // Another device's secret.
    let mut other_secret = SECRET;
    other_secret[0] ^= 1;
    assert!(!challenge.verify(&other_secret, &response));
    // Another challenge (nonce, user or device).
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
    ] {
        assert!(!other.verify(&SECRET, &response));
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
        assert!(!challenge.verify(&SECRET, &forged));
    }
    assert_eq!(
        challenge.respond(&SECRET, Scope::Request, 0),
        Err(CodeError::Duration)
    );
    assert_eq!(
        challenge.respond(&SECRET, Scope::Request, MAX_MINUTES + 1),
        Err(CodeError::Duration)
    );
}

#[test]
fn typing_is_forgiving_but_misreadings_are_caught() {
    let challenge = Challenge::parse("7CJYF-67C00-00Z91-38NKR-9").unwrap();
    // Lower case, spaces, O for 0: the same challenge.
    assert_eq!(Challenge::parse("7cjyf 67coo ooz91 38nkr 9"), Ok(challenge));
    // Every single misread character is caught by the check character.
    let text: Vec<char> = "01XQ3K8JR1".chars().collect();
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
        Response::parse("01XQ3-K8JR"),
        Err(CodeError::Length {
            want: 10,
            got: 9,
            ..
        })
    ));
    assert_eq!(
        Response::parse("01XQ3-K8JU1"),
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
