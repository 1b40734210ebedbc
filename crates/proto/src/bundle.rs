//! Signed policy bundles: the server signs the policy text with its Ed25519 key; agents and
//! `elevatectl` verify the signature over the exact payload bytes before parsing anything.
//!
//! Must never: parse or trust a payload whose signature has not been verified.

use ed25519_dalek::{Signature, Signer};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// What the server vouches for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BundlePayload {
    /// Policy version number.
    pub version: u64,
    /// Lower-case hex SHA-256 of `policy`.
    pub sha256: String,
    /// When the server issued this bundle (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub issued_at: jiff::Timestamp,
    /// The policy document (TOML).
    pub policy: String,
    /// When the policy names frequency segments: the segment (`low`, `moderate`, `high`) of
    /// each login on this device that is a person's, as the server measured it.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub segments: std::collections::BTreeMap<String, String>,
}

/// A bundle as sent over the wire: the payload as JSON text, and a signature over its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignedBundle {
    /// JSON text of a `BundlePayload`; the signature covers exactly these bytes.
    pub payload: String,
    /// Hex Ed25519 signature over `payload`.
    pub signature: String,
    /// Hex Ed25519 public key of the signer, for key identification only (trust the enrolled key).
    pub key: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BundleError {
    #[error("the bundle signature is not valid hex of 64 bytes")]
    MalformedSignature,
    #[error("the bundle was not signed by this server's policy key: refusing it")]
    BadSignature,
    #[error("the bundle payload is not valid: {0}")]
    MalformedPayload(String),
    #[error("the bundle's policy text does not match its sha256")]
    DigestMismatch,
}

/// Hex SHA-256 of a text.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

impl SignedBundle {
    /// Signs a payload.
    pub fn sign(payload: &BundlePayload, key: &SigningKey) -> SignedBundle {
        let text = serde_json::to_string(payload).expect("a bundle payload always serialises");
        let signature = key.sign(text.as_bytes());
        SignedBundle {
            payload: text,
            signature: hex::encode(signature.to_bytes()),
            key: hex::encode(key.verifying_key().to_bytes()),
        }
    }

    /// Verifies the signature with the trusted key, then parses and checks the payload.
    pub fn verify(&self, trusted: &VerifyingKey) -> Result<BundlePayload, BundleError> {
        verify_signature(trusted, self.payload.as_bytes(), &self.signature)?;
        let payload: BundlePayload = serde_json::from_str(&self.payload)
            .map_err(|e| BundleError::MalformedPayload(e.to_string()))?;
        if sha256_hex(&payload.policy) != payload.sha256 {
            return Err(BundleError::DigestMismatch);
        }
        Ok(payload)
    }
}

/// Checks a hex Ed25519 signature over `message` strictly (no malleable or small-order forms).
pub fn verify_signature(
    trusted: &VerifyingKey,
    message: &[u8],
    signature_hex: &str,
) -> Result<(), BundleError> {
    let bytes: [u8; 64] = hex::decode(signature_hex)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or(BundleError::MalformedSignature)?;
    trusted
        .verify_strict(message, &Signature::from_bytes(&bytes))
        .map_err(|_| BundleError::BadSignature)
}

/// Parses a hex Ed25519 public key.
pub fn parse_public_key(hex_key: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload() -> BundlePayload {
        let policy = "version = 1\n".to_string();
        BundlePayload {
            segments: Default::default(),
            version: 3,
            sha256: sha256_hex(&policy),
            issued_at: jiff::Timestamp::from_second(1_800_000_000).unwrap(),
            policy,
        }
    }

    #[test]
    fn signed_bundle_verifies_and_tampering_is_refused() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let bundle = SignedBundle::sign(&payload(), &key);
        assert_eq!(bundle.verify(&key.verifying_key()), Ok(payload()));
        assert_eq!(
            bundle.verify(&other.verifying_key()),
            Err(BundleError::BadSignature)
        );
        let mut tampered = bundle.clone();
        tampered.payload = tampered.payload.replace("version = 1", "version = 2");
        assert_eq!(
            tampered.verify(&key.verifying_key()),
            Err(BundleError::BadSignature)
        );
        let mut garbled = bundle.clone();
        garbled.signature = "zz".into();
        assert_eq!(
            garbled.verify(&key.verifying_key()),
            Err(BundleError::MalformedSignature)
        );
        // A correctly signed payload whose digest lies is still refused.
        let mut lying = payload();
        lying.sha256 = sha256_hex("something else");
        let signed = SignedBundle::sign(&lying, &key);
        assert_eq!(
            signed.verify(&key.verifying_key()),
            Err(BundleError::DigestMismatch)
        );
    }

    /// Wycheproof's Ed25519 vectors (shared/testdata): every valid signature verifies and every
    /// invalid one (malleability, non-canonical encodings, wrong lengths) is refused.
    #[test]
    fn wycheproof_ed25519_vectors() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/testdata/crypto/ed25519_test.json"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            assert!(std::env::var("CI").is_err(), "{path} is missing in CI");
            eprintln!(
                "SKIPPED: {path} not found (the shared folder sits beside the project in CI)"
            );
            return;
        };
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut checked = 0;
        for group in doc["testGroups"].as_array().unwrap() {
            let Some(key) = parse_public_key(group["publicKey"]["pk"].as_str().unwrap()) else {
                continue;
            };
            for case in group["tests"].as_array().unwrap() {
                let msg = hex::decode(case["msg"].as_str().unwrap()).unwrap();
                let verdict = verify_signature(&key, &msg, case["sig"].as_str().unwrap());
                let valid = case["result"] == "valid";
                assert_eq!(
                    verdict.is_ok(),
                    valid,
                    "tcId {}: {}",
                    case["tcId"],
                    case["comment"]
                );
                checked += 1;
            }
        }
        assert!(checked > 100, "only {checked} vectors were read");
    }

    #[test]
    fn public_keys_parse() {
        let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
        assert_eq!(parse_public_key(&hex::encode(key.to_bytes())), Some(key));
        assert_eq!(parse_public_key("00"), None);
    }
}
