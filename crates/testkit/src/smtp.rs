//! A real SMTP sink on loopback that keeps the mail it is sent, decoded.
//!
//! Must never: listen beyond loopback.

use super::*;

/// One message an `SmtpSink` accepted.
#[derive(Debug, Clone)]
pub struct Mailed {
    pub from: String,
    pub to: Vec<String>,
    /// The message as sent (headers and body, CRLF line ends, dot-stuffing undone).
    pub data: String,
}

impl Mailed {
    /// A header's value (first occurrence, unfolded).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next()?;
        let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
        unfolded.split("\r\n").find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    /// The decoded bodies of the parts with this content type (quoted-printable, base64 or
    /// plain), e.g. `text/plain`.
    pub fn parts(&self, content_type: &str) -> Vec<String> {
        let mut out = Vec::new();
        for chunk in self.data.split("\r\n--") {
            let Some((head, body)) = chunk.split_once("\r\n\r\n") else {
                continue;
            };
            let head_l = head.to_ascii_lowercase();
            if !head_l.contains(&format!("content-type: {content_type}")) {
                continue;
            }
            let body = body.trim_end_matches("\r\n");
            let decoded = if head_l.contains("content-transfer-encoding: quoted-printable") {
                quoted_printable(body)
            } else if head_l.contains("content-transfer-encoding: base64") {
                use base64::Engine as _;
                let joined: String = body.split_whitespace().collect();
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(joined)
                        .expect("base64 body"),
                )
                .expect("UTF-8 body")
            } else {
                body.to_string()
            };
            out.push(decoded);
        }
        out
    }
}

fn quoted_printable(body: &str) -> String {
    let bytes = body.replace("=\r\n", "").into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).expect("UTF-8 after quoted-printable")
}

/// A real SMTP server on loopback that accepts every message and keeps it (RFC 5321: EHLO,
/// MAIL, RCPT, DATA with dot-stuffing, RSET, NOOP, QUIT).
#[derive(Debug)]
pub struct SmtpSink {
    pub addr: std::net::SocketAddr,
    pub mailed: Arc<std::sync::Mutex<Vec<Mailed>>>,
    task: tokio::task::JoinHandle<()>,
}

impl SmtpSink {
    pub async fn start() -> SmtpSink {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let mailed: Arc<std::sync::Mutex<Vec<Mailed>>> = Arc::default();
        let keep = mailed.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read);
                    let _ = write.write_all(b"220 sink.test ESMTP\r\n").await;
                    let (mut from, mut to) = (String::new(), Vec::new());
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let command = line.trim_end().to_string();
                        let upper = command.to_ascii_uppercase();
                        let answer: &[u8] = if upper.starts_with("EHLO") {
                            b"250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n"
                        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
                            b"250 ok\r\n"
                        } else if upper.starts_with("MAIL FROM:") {
                            from = command[10..].trim().to_string();
                            to.clear();
                            b"250 ok\r\n"
                        } else if upper.starts_with("RCPT TO:") {
                            to.push(command[8..].trim().trim_matches(['<', '>']).to_string());
                            b"250 ok\r\n"
                        } else if upper.starts_with("RSET") {
                            from.clear();
                            to.clear();
                            b"250 ok\r\n"
                        } else if upper == "DATA" {
                            let _ = write.write_all(b"354 go ahead\r\n").await;
                            let mut data = String::new();
                            loop {
                                line.clear();
                                if lines.read_line(&mut line).await.unwrap_or(0) == 0 {
                                    return;
                                }
                                if line == ".\r\n" {
                                    break;
                                }
                                data.push_str(line.strip_prefix('.').unwrap_or(&line));
                            }
                            keep.lock().unwrap().push(Mailed {
                                from: from.clone(),
                                to: to.clone(),
                                data,
                            });
                            b"250 queued\r\n"
                        } else if upper == "QUIT" {
                            let _ = write.write_all(b"221 bye\r\n").await;
                            return;
                        } else {
                            b"502 not implemented\r\n"
                        };
                        if write.write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        SmtpSink { addr, mailed, task }
    }

    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// The server's e-mail settings for sending here from `from`, with requesters reached at
    /// `<login>@example.com`.
    pub fn email_config(&self, from: &str) -> elevate_server::integrations::email::EmailConfig {
        elevate_server::integrations::email::EmailConfig {
            smtp_url: self.url(),
            user: None,
            password: None,
            from: elevate_server::integrations::email::parse_address(from).expect("a valid sender"),
            requester_domain: Some("example.com".into()),
        }
    }

    /// Waits (up to 30 s) until `n` messages have arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Mailed> {
        for _ in 0..300 {
            let got = self.mailed.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "{n} messages did not arrive; got {:?}",
            self.mailed.lock().unwrap()
        );
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}
