//! The agent's link to the server: API v1 with the device credential. A transport failure is
//! reported as `Unreachable` so callers can treat "offline" as a state, not a crash.
//!
//! Must never: log the credential.

use std::time::Duration;

use elevate_proto::v1::{
    AuditBatch, AuditEventIn, ErrorBody, Finished, IngestResult, NewRequest, RequestView, Verdict,
};
use elevate_proto::SignedBundle;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a call to the server did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("the Elevate server at {server} cannot be reached: {message}")]
    Unreachable { server: String, message: String },
    #[error("the server refused: {message} (HTTP {status})")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

/// A client bound to one server and device credential.
#[derive(Clone)]
pub struct Upstream {
    server: String,
    credential: String,
    http: reqwest::Client,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// A client for `server`; `ca_pem`: the organisation's own certificate authority, besides
    /// the web's.
    pub fn new(server: &str, credential: &str, ca_pem: Option<&str>) -> anyhow::Result<Upstream> {
        let builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(90));
        Ok(Upstream {
            server: server.trim_end_matches('/').to_string(),
            credential: credential.to_string(),
            http: crate::enrolment::http_client(builder, ca_pem)?,
        })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    async fn call<T: DeserializeOwned>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<T, UpstreamError> {
        let unreachable = |e: reqwest::Error| UpstreamError::Unreachable {
            server: self.server.clone(),
            message: e.to_string(),
        };
        let response = rb
            .bearer_auth(&self.credential)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            let body: ErrorBody = response.json().await.unwrap_or(ErrorBody {
                error: "http".into(),
                message: format!("HTTP {status}"),
                details: None,
            });
            return Err(UpstreamError::Refused {
                status: status.as_u16(),
                code: body.error,
                message: body.message,
            });
        }
        // The server answered: a body that does not read is a refusal, not an absence (it must
        // never push the device into its offline ways).
        response.json().await.map_err(|e| UpstreamError::Refused {
            status: status.as_u16(),
            code: "bad_answer".into(),
            message: format!("the server's answer could not be read ({e})"),
        })
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, UpstreamError> {
        self.call(self.http.post(format!("{}{path}", self.server)).json(body))
            .await
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, UpstreamError> {
        self.call(self.http.get(format!("{}{path}", self.server)))
            .await
    }

    /// The check-in: this device's human logins.
    pub async fn report_users(
        &self,
        users: &elevate_proto::v1::DeviceUsersIn,
    ) -> Result<elevate_proto::v1::DeviceUsersOut, UpstreamError> {
        self.call(
            self.http
                .put(format!("{}/v1/device-users", self.server))
                .json(users),
        )
        .await
    }

    pub async fn bundle(&self) -> Result<SignedBundle, UpstreamError> {
        self.get("/v1/policy-bundle").await
    }

    pub async fn create_request(&self, r: &NewRequest) -> Result<RequestView, UpstreamError> {
        self.post("/v1/requests", r).await
    }

    /// Long-poll: returns when the request leaves `pending`, or after `timeout_secs`.
    pub async fn wait(&self, id: &str, timeout_secs: u64) -> Result<RequestView, UpstreamError> {
        self.get(&format!(
            "/v1/requests/{id}/wait?timeout_secs={timeout_secs}"
        ))
        .await
    }

    pub async fn cancel(&self, id: &str) -> Result<RequestView, UpstreamError> {
        self.post(&format!("/v1/requests/{id}/cancel"), &Verdict::default())
            .await
    }

    pub async fn start(&self, id: &str) -> Result<RequestView, UpstreamError> {
        self.post(&format!("/v1/requests/{id}/start"), &Verdict::default())
            .await
    }

    pub async fn finish(&self, id: &str, exit_code: i32) -> Result<RequestView, UpstreamError> {
        self.post(
            &format!("/v1/requests/{id}/finish"),
            &Finished { exit_code },
        )
        .await
    }

    /// Requests of one user on this device, newest first.
    pub async fn requests(
        &self,
        user: &str,
        state: Option<&str>,
    ) -> Result<Vec<RequestView>, UpstreamError> {
        let mut query = vec![("user", user), ("limit", "50")];
        if let Some(s) = state {
            query.push(("state", s));
        }
        self.call(
            self.http
                .get(format!("{}/v1/requests", self.server))
                .query(&query),
        )
        .await
    }

    pub async fn ingest(&self, events: &[AuditEventIn]) -> Result<IngestResult, UpstreamError> {
        self.post(
            "/v1/audit/events",
            &AuditBatch {
                events: events.to_vec(),
            },
        )
        .await
    }
}
