//! A real HTTP server on loopback that records what it is sent (webhooks, chat, cards).
//!
//! Must never: listen beyond loopback.

use super::*;

/// One HTTP request a `Receiver` got.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: std::collections::BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body is JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// How a `Receiver` answers.
#[derive(Debug, Clone)]
pub struct Behaviour {
    /// The `WebHook-Allowed-Origin` it answers an `OPTIONS` with (`None`: 405, no handshake).
    pub allow_origin: Option<String>,
    /// The status of every other request.
    pub status: u16,
    /// The body of every other request's answer (JSON when it starts with `{`).
    pub body: String,
    /// Hold every answer but the handshake's this long (a receiver that hangs).
    pub delay: std::time::Duration,
}

impl Default for Behaviour {
    /// Allows any origin, answers 200 with no body.
    fn default() -> Self {
        Behaviour {
            allow_origin: Some("*".into()),
            status: 200,
            body: String::new(),
            delay: std::time::Duration::ZERO,
        }
    }
}

/// A real HTTP server on loopback that records what it is sent (webhooks, chat and card
/// posts). Every answer closes its connection, so `stop` really makes it unreachable.
#[derive(Debug)]
pub struct Receiver {
    pub addr: std::net::SocketAddr,
    pub received: Arc<std::sync::Mutex<Vec<Received>>>,
    pub behaviour: Arc<std::sync::Mutex<Behaviour>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// Starts on a free port, or on `port` (to come back where it was).
    pub async fn start(port: u16, behaviour: Behaviour) -> Receiver {
        Self::start_sharing(
            port,
            Arc::new(std::sync::Mutex::new(behaviour)),
            Arc::default(),
        )
        .await
    }

    async fn start_sharing(
        port: u16,
        behaviour: Arc<std::sync::Mutex<Behaviour>>,
        received: Arc<std::sync::Mutex<Vec<Received>>>,
    ) -> Receiver {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the receiver's port is free");
        let addr = listener.local_addr().expect("bound");
        let (b, r) = (behaviour.clone(), received.clone());
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let (b, r) = (b.clone(), r.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 16 << 20)
                    .await
                    .map(|b| b.to_vec())
                    .unwrap_or_default();
                r.lock().unwrap().push(Received {
                    method: parts.method.to_string(),
                    path: parts.uri.to_string(),
                    headers: parts
                        .headers
                        .iter()
                        .map(|(k, v)| {
                            (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())
                        })
                        .collect(),
                    body,
                });
                let behaviour = b.lock().unwrap().clone();
                if parts.method != axum::http::Method::OPTIONS {
                    tokio::time::sleep(behaviour.delay).await;
                }
                let mut answer = axum::http::Response::builder().header("connection", "close");
                if parts.method == axum::http::Method::OPTIONS {
                    answer = match behaviour.allow_origin {
                        Some(origin) => answer
                            .status(200)
                            .header("WebHook-Allowed-Origin", origin)
                            .header("Allow", "POST"),
                        None => answer.status(405),
                    };
                } else {
                    answer = answer.status(behaviour.status);
                    if behaviour.body.starts_with('{') {
                        answer = answer.header("content-type", "application/json");
                    }
                    return answer
                        .body(axum::body::Body::from(behaviour.body))
                        .expect("a valid response");
                }
                answer
                    .body(axum::body::Body::empty())
                    .expect("a valid response")
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            addr,
            received,
            behaviour,
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops listening; connections are refused until `restart`.
    pub async fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }

    /// Listens again on the same port, keeping what was received.
    pub async fn restart(&mut self) {
        self.stop().await;
        let again = Self::start_sharing(
            self.addr.port(),
            self.behaviour.clone(),
            self.received.clone(),
        )
        .await;
        *self = again;
    }

    /// What was received so far with `method`.
    pub fn requests(&self, method: &str) -> Vec<Received> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.method == method)
            .cloned()
            .collect()
    }

    /// Waits (up to 30 s) until `n` requests with `method` have arrived.
    pub async fn wait_for(&self, method: &str, n: usize) -> Vec<Received> {
        for _ in 0..300 {
            let got = self.requests(method);
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "{n} {method} requests did not arrive; got {:?}",
            self.requests(method)
        );
    }
}

/// How an `Interceptor` changes one answer: (method, path, the answer's JSON).
pub type Rewrite = Arc<dyn Fn(&str, &str, &mut Value) + Send + Sync>;

/// A man in the middle on loopback: forwards every request to `upstream` unchanged and lets
/// `rewrite` change JSON answers, as a TLS-terminating proxy (or anyone holding a stolen
/// credential) could.
#[derive(Debug)]
pub struct Interceptor {
    pub url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Interceptor {
    pub async fn start(upstream: &str, rewrite: Rewrite) -> Interceptor {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("a free port");
        let url = format!("http://{}", listener.local_addr().expect("bound"));
        let upstream = upstream.trim_end_matches('/').to_owned();
        let http = reqwest::Client::new();
        let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
            let (http, upstream, rewrite) = (http.clone(), upstream.clone(), rewrite.clone());
            async move {
                let (parts, body) = request.into_parts();
                let body = axum::body::to_bytes(body, 16 << 20)
                    .await
                    .unwrap_or_default();
                let mut out = http
                    .request(parts.method.clone(), format!("{upstream}{}", parts.uri))
                    .body(body);
                for (name, value) in &parts.headers {
                    if name != "host" && name != "content-length" {
                        out = out.header(name, value);
                    }
                }
                let answer = out.send().await.expect("the upstream answers");
                let status = answer.status();
                let mut bytes = answer.bytes().await.unwrap_or_default().to_vec();
                if let Ok(mut json) = serde_json::from_slice::<Value>(&bytes) {
                    rewrite(parts.method.as_str(), parts.uri.path(), &mut json);
                    bytes = serde_json::to_vec(&json).expect("JSON");
                }
                axum::http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(bytes))
                    .expect("a valid response")
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Interceptor { url, task }
    }
}

impl Drop for Interceptor {
    fn drop(&mut self) {
        self.task.abort();
    }
}
