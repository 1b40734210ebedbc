//! Offline challenge–response codes (DESIGN "Offline codes"; the exact encoding, with test
//! vectors, is in `docs/offline-codes.md`).
//!
//! A device that cannot reach the server shows a **challenge** a person reads over the phone:
//! which device (a 35-bit key derived from its id), which user (uid), a fresh 30-bit nonce
//! that names the pending request on the device, and 20 bits of the command's digest (path,
//! SHA-256, arguments). The helpdesk enters it with the command as the caller reads it, chooses
//! the scope (this request, or an admin session) and a duration, and reads back a **response**:
//! the scope and duration, and an HMAC-SHA-256 under the device's secret over all of it (for
//! one request, the whole command digest too), truncated as in RFC 4226. Both are Crockford base32 in groups, with a Luhn mod 32 check character, so a
//! mistyped character is caught before it counts as a wrong attempt.
//!
//! Must never: accept a response for another challenge, device, command, scope or duration;
//! compare MACs
//! in a way that leaks timing; read a clock or draw randomness (the nonce is passed in).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Crockford's base32 alphabet: no I, L, O, U.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Bumped when the encoding changes (3 bits). Version 2 added the command.
pub const VERSION: u8 = 2;
/// The longest duration a response can carry, in minutes (one day).
pub const MAX_MINUTES: u16 = 1440;
/// The most break-glass shares a challenge can have (one per helpdesk member who answers it).
pub const MAX_SHARES: u8 = 7;
const DOMAIN: &[u8] = b"elevate-offline-v2\0";
const COMMAND_DOMAIN: &[u8] = b"elevate-command-v1\0";
/// How many bits of the command's digest a challenge carries.
pub const COMMAND_BITS: u32 = 20;

/// What the helpdesk grants with a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The one pending request the challenge names, once.
    Request,
    /// An admin session of the duration.
    Session,
    /// One helpdesk member's share of an emergency admin session: the device needs shares
    /// from as many different members as its policy says (`break_glass_codes`).
    BreakGlass,
}

impl Scope {
    /// The scope's byte in the MAC's message.
    fn byte(self) -> u8 {
        match self {
            Scope::Request => 0,
            Scope::Session => 1,
            Scope::BreakGlass => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Request => "request",
            Scope::Session => "session",
            Scope::BreakGlass => "break-glass",
        }
    }
}

/// A challenge: device key, user, nonce, command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Challenge {
    /// The low 35 bits of SHA-256 of the device id (see [`device_key`]).
    pub device: u64,
    pub uid: u32,
    /// 30 random bits from the device, naming the pending request there.
    pub nonce: u32,
    /// The first 20 bits of the command's digest ([`command_digest`], [`command_bits`]); 0
    /// when what is asked for is not a command (an admin session, break glass).
    pub command: u32,
}

/// The digest of a command as the device will run it: its path, the SHA-256 of its bytes (64
/// lowercase hex digits) and its arguments. A response for one request covers all of it.
pub fn command_digest(path: &str, sha256: &str, args: &[String]) -> [u8; 32] {
    use sha2::Digest;
    let mut d = Sha256::new();
    d.update(COMMAND_DOMAIN);
    for part in [path, &sha256.to_ascii_lowercase()]
        .into_iter()
        .chain(args.iter().map(String::as_str))
    {
        d.update((part.len() as u64).to_be_bytes());
        d.update(part.as_bytes());
    }
    d.finalize().into()
}

/// The first [`COMMAND_BITS`] bits of a command digest, as a challenge carries them.
pub fn command_bits(digest: &[u8; 32]) -> u32 {
    u32::from_be_bytes(digest[..4].try_into().expect("4 bytes")) >> (32 - COMMAND_BITS)
}

/// A response: what was granted and the MAC over it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Response {
    pub scope: Scope,
    /// Minutes, 1 to [`MAX_MINUTES`].
    pub minutes: u16,
    /// 31 bits (RFC 4226 dynamic truncation).
    pub mac: u32,
}

/// Why a typed code is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("the code has {got} characters; a {what} has {want} (dashes and spaces do not count)")]
    Length {
        what: &'static str,
        got: usize,
        want: usize,
    },
    #[error("`{0}` cannot be in a code (letters and digits only; I, L, O and U are not used)")]
    Character(char),
    #[error("the code does not add up (its last character is a check): a character was misread; read it again")]
    Check,
    #[error("the code was made for another version of Elevate ({0}); ask for a new one")]
    Version(u8),
    #[error("a duration must be between 1 and {MAX_MINUTES} minutes")]
    Duration,
    #[error("a break-glass share is numbered 1 to {MAX_SHARES}")]
    Share,
    #[error("the challenge is for another command (or for no command at all): ask the caller to read the command again, exactly as the device shows it")]
    Command,
}

/// The 35-bit key of a device id, as the challenge carries it.
pub fn device_key(device_id: &str) -> u64 {
    use sha2::Digest;
    let digest = Sha256::digest(device_id.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().expect("8 bytes")) & ((1 << 35) - 1)
}

impl Challenge {
    /// The 120-bit value: version (3) | device (35) | uid (32) | nonce (30) | command (20).
    fn value(&self) -> u128 {
        (u128::from(VERSION) << 117)
            | (u128::from(self.device & ((1 << 35) - 1)) << 82)
            | (u128::from(self.uid) << 50)
            | (u128::from(self.nonce & ((1 << 30) - 1)) << 20)
            | u128::from(self.command & ((1 << COMMAND_BITS) - 1))
    }

    /// `XXXXX-XXXXX-XXXXX-XXXXX-XXXXC`: 24 characters and the check.
    pub fn encode(&self) -> String {
        let digits = to_digits(self.value(), 24);
        group(&with_check(digits))
    }

    /// Whether a command with this digest is the one the challenge names (by its 20 bits: a
    /// check for the helpdesk's typing; the response's MAC covers the whole digest).
    pub fn names(&self, digest: &[u8; 32]) -> bool {
        self.command == command_bits(digest)
    }

    /// Reads a challenge as a person typed it (case, dashes, spaces, I/L for 1 and O for 0 are
    /// forgiven).
    pub fn parse(text: &str) -> Result<Challenge, CodeError> {
        let digits = checked_digits(text, 24, "challenge")?;
        let v = from_digits(&digits);
        let version = (v >> 117) as u8;
        if version != VERSION {
            return Err(CodeError::Version(version));
        }
        Ok(Challenge {
            device: ((v >> 82) as u64) & ((1 << 35) - 1),
            uid: (v >> 50) as u32,
            nonce: ((v >> 20) as u32) & ((1 << 30) - 1),
            command: (v as u32) & ((1 << COMMAND_BITS) - 1),
        })
    }

    /// The message the response's MAC covers; for a break-glass share its number and how
    /// many shares the server's policy needs (`extra`), for one request the command's whole
    /// digest.
    fn message(&self, scope: Scope, minutes: u16, extra: Extra) -> Vec<u8> {
        let mut m = DOMAIN.to_vec();
        m.extend_from_slice(&self.value().to_be_bytes()[1..]); // 15 bytes hold 120 bits
        m.push(scope.byte());
        m.extend_from_slice(&minutes.to_be_bytes());
        match (scope, extra) {
            (Scope::BreakGlass, Extra::Share { share, needed }) => {
                m.extend_from_slice(&[share, needed])
            }
            (Scope::Request, Extra::Command(digest)) => m.extend_from_slice(digest),
            _ => {}
        }
        m
    }

    fn mac(&self, secret: &[u8], scope: Scope, minutes: u16, extra: Extra) -> u32 {
        truncate(&hmac_sha256(secret, &self.message(scope, minutes, extra)))
    }

    /// An admin session's response, under the device's secret (one request is
    /// [`Challenge::respond_request`], break glass [`Challenge::respond_share`]).
    pub fn respond_session(&self, secret: &[u8], minutes: u16) -> Result<Response, CodeError> {
        if minutes == 0 || minutes > MAX_MINUTES {
            return Err(CodeError::Duration);
        }
        Ok(Response {
            scope: Scope::Session,
            minutes,
            mac: self.mac(secret, Scope::Session, minutes, Extra::None),
        })
    }

    /// The response for the one request the challenge names, for the command with `digest`
    /// ([`command_digest`]): refused when the challenge names another command.
    pub fn respond_request(
        &self,
        secret: &[u8],
        minutes: u16,
        digest: &[u8; 32],
    ) -> Result<Response, CodeError> {
        if minutes == 0 || minutes > MAX_MINUTES {
            return Err(CodeError::Duration);
        }
        if self.command == 0 || !self.names(digest) {
            return Err(CodeError::Command);
        }
        Ok(Response {
            scope: Scope::Request,
            minutes,
            mac: self.mac(secret, Scope::Request, minutes, Extra::Command(digest)),
        })
    }

    /// Helpdesk member number `share`'s break-glass code for this challenge, where the server's
    /// policy needs `needed` members' codes (the device asks for at least as many).
    pub fn respond_share(
        &self,
        secret: &[u8],
        share: u8,
        needed: u8,
        minutes: u16,
    ) -> Result<Response, CodeError> {
        if minutes == 0 || minutes > MAX_MINUTES {
            return Err(CodeError::Duration);
        }
        if !(1..=MAX_SHARES).contains(&share) || !(2..=MAX_SHARES).contains(&needed) {
            return Err(CodeError::Share);
        }
        Ok(Response {
            scope: Scope::BreakGlass,
            minutes,
            mac: self.mac(
                secret,
                Scope::BreakGlass,
                minutes,
                Extra::Share { share, needed },
            ),
        })
    }

    /// Whether a request or session `response` was made for this challenge under `secret`; a
    /// request's for the command with `digest` (what the device is about to run; `None` when
    /// what is asked for is not a command). A break-glass share is never a whole answer: see
    /// [`Challenge::share_of`].
    pub fn verify(&self, secret: &[u8], response: &Response, digest: Option<&[u8; 32]>) -> bool {
        match (response.scope, digest) {
            (Scope::BreakGlass, _) | (Scope::Request, None) => false,
            (Scope::Request, Some(d)) => {
                self.names(d) && self.fits(secret, response, Extra::Command(d))
            }
            (Scope::Session, _) => self.fits(secret, response, Extra::None),
        }
    }

    /// Which helpdesk member's share a break-glass `response` is, and how many shares the
    /// server's policy needed when it was issued (neither is in the code: the device tries
    /// each number, and each count from `at_least`, its own policy's, up), or `None` when it is
    /// not one for this challenge. A count below the device's own is never tried, so a policy
    /// that asks for more shares holds on a device that has not heard of it yet, and one that
    /// asks for fewer waits until the device has.
    pub fn share_of(&self, secret: &[u8], response: &Response, at_least: u8) -> Option<Share> {
        if response.scope != Scope::BreakGlass {
            return None;
        }
        (at_least.max(2)..=MAX_SHARES).find_map(|needed| {
            (1..=MAX_SHARES)
                .find(|share| {
                    self.fits(
                        secret,
                        response,
                        Extra::Share {
                            share: *share,
                            needed,
                        },
                    )
                })
                .map(|number| Share { number, needed })
        })
    }

    fn fits(&self, secret: &[u8], response: &Response, extra: Extra) -> bool {
        if response.minutes == 0 || response.minutes > MAX_MINUTES {
            return false;
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key");
        mac.update(&self.message(response.scope, response.minutes, extra));
        let expected = truncate(&mac.finalize().into_bytes());
        // Constant time over the 31 bits.
        let diff = expected ^ response.mac;
        diff == 0
    }
}

/// What follows the common part of a MAC's message.
#[derive(Clone, Copy)]
enum Extra<'a> {
    None,
    Share { share: u8, needed: u8 },
    Command(&'a [u8; 32]),
}

/// A break-glass share as the device reads it from a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// The helpdesk member's number (1 to 7).
    pub number: u8,
    /// How many members' shares the server's policy needed.
    pub needed: u8,
}

impl Response {
    /// 45 bits: kind (2: 0 request or session, 1 break-glass share) | scope (1: session) |
    /// minutes (11) | mac (31).
    fn value(&self) -> u128 {
        let head: u128 = match self.scope {
            Scope::Request => 0,
            Scope::Session => 1,
            Scope::BreakGlass => 0b10,
        };
        (head << 42) | (u128::from(self.minutes & 0x7ff) << 31) | u128::from(self.mac & 0x7fff_ffff)
    }

    /// `XXXXX-XXXXX`: 9 characters and the check.
    pub fn encode(&self) -> String {
        group(&with_check(to_digits(self.value(), 9)))
    }

    pub fn parse(text: &str) -> Result<Response, CodeError> {
        let digits = checked_digits(text, 9, "response")?;
        let v = from_digits(&digits);
        let scope = match v >> 42 {
            0 => Scope::Request,
            1 => Scope::Session,
            0b10 => Scope::BreakGlass,
            _ => return Err(CodeError::Version((v >> 43) as u8)),
        };
        let minutes = ((v >> 31) & 0x7ff) as u16;
        if minutes == 0 || minutes > MAX_MINUTES {
            return Err(CodeError::Duration);
        }
        Ok(Response {
            scope,
            minutes,
            mac: (v & 0x7fff_ffff) as u32,
        })
    }
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 4226 section 5.3 dynamic truncation: 31 bits at the offset the last byte's low nibble
/// names. (Defined there for HMAC-SHA-1's 20 bytes; on HMAC-SHA-256's 32 the offset stays
/// below 16, as in RFC 6238's SHA-256 mode.)
pub fn truncate(hmac: &[u8]) -> u32 {
    let offset = usize::from(hmac[hmac.len() - 1] & 0x0f);
    u32::from_be_bytes(hmac[offset..offset + 4].try_into().expect("4 bytes")) & 0x7fff_ffff
}

fn to_digits(mut value: u128, count: usize) -> Vec<u8> {
    let mut digits = vec![0u8; count];
    for d in digits.iter_mut().rev() {
        *d = (value & 31) as u8;
        value >>= 5;
    }
    digits
}

fn from_digits(digits: &[u8]) -> u128 {
    digits.iter().fold(0u128, |v, d| (v << 5) | u128::from(*d))
}

/// Luhn mod 32 check digit: every single misread character is caught, and most swaps of
/// neighbours.
fn check_digit(digits: &[u8]) -> u8 {
    let n = 32u32;
    let mut sum = 0u32;
    let mut factor = 2u32;
    for d in digits.iter().rev() {
        let addend = factor * u32::from(*d);
        sum += addend / n + addend % n;
        factor = if factor == 2 { 1 } else { 2 };
    }
    ((n - sum % n) % n) as u8
}

fn with_check(mut digits: Vec<u8>) -> Vec<u8> {
    let c = check_digit(&digits);
    digits.push(c);
    digits
}

fn group(digits: &[u8]) -> String {
    let chars: Vec<char> = digits
        .iter()
        .map(|d| ALPHABET[usize::from(*d)] as char)
        .collect();
    chars
        .chunks(5)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// The typed text as digits, the check removed after it has been checked.
fn checked_digits(text: &str, want: usize, what: &'static str) -> Result<Vec<u8>, CodeError> {
    let mut digits = Vec::with_capacity(want + 1);
    for c in text.chars() {
        if c == '-' || c.is_whitespace() {
            continue;
        }
        let c = match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        };
        let d = ALPHABET
            .iter()
            .position(|a| *a as char == c)
            .ok_or(CodeError::Character(c))?;
        digits.push(d as u8);
    }
    if digits.len() != want + 1 {
        return Err(CodeError::Length {
            what,
            got: digits.len(),
            want: want + 1,
        });
    }
    let check = digits.pop().expect("not empty");
    if check_digit(&digits) != check {
        return Err(CodeError::Check);
    }
    Ok(digits)
}

#[cfg(test)]
mod tests;
