//! Certificates for https tests, made with the openssl command as an administrator would: a CA
//! of the test's own and a server certificate for 127.0.0.1 it issued.
//!
//! Must never: be used outside tests (the keys sit in a temporary folder).

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

/// A certificate for 127.0.0.1 issued by a CA made here, its key, and the CA's certificate (what
/// clients trust), in a fresh folder.
pub fn tls_certificate() -> (std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let dir = std::env::temp_dir().join(format!("elevate-tls-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let openssl = |args: &[&str]| {
        let made = Command::new("openssl")
            .current_dir(&dir)
            .args(args)
            .output()
            .expect("openssl runs (apt-get install openssl)");
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-days", "2", "-subj", "/CN=elevate test CA"],
            &["-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    );
    openssl(
        &[
            &["req"][..],
            &ec,
            &["-subj", "/CN=elevate-test", "-keyout", "key.pem"],
            &["-out", "leaf.csr"],
        ]
        .concat(),
    );
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    let key = dir.join("key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    (dir.join("cert.pem"), key, ca)
}
