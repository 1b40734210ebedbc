//! A blocking client for API v1, used by `elevatectl` (and later by the agent's upstream link).
//!
//! Must never: log or print the bearer token.

use serde::{de::DeserializeOwned, Serialize};

use crate::v1::ErrorBody;

/// An API call that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error.
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
        details: Option<serde_json::Value>,
    },
    /// The server could not be reached or answered nonsense.
    #[error("cannot reach the Elevate server at {url}: {source}")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
}

/// Blocking API client with an optional bearer token.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    http: reqwest::blocking::Client,
}

impl Client {
    pub fn new(base_url: &str, token: Option<String>) -> Client {
        let http = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .expect("the HTTP client builds with static settings");
        Client {
            base: base_url.trim_end_matches('/').to_string(),
            token,
            http,
        }
    }

    /// The same client, also trusting the certificate authorities in `ca_pem` (an
    /// organisation's own CA); why not, when the PEM holds none.
    pub fn trusting(self, ca_pem: &str) -> Result<Client, String> {
        let authorities = reqwest::Certificate::from_pem_bundle(ca_pem.as_bytes())
            .map_err(|e| format!("the CA file is not PEM certificates: {e}"))?;
        if authorities.is_empty() {
            return Err("the CA file holds no certificate".into());
        }
        let mut builder =
            reqwest::blocking::Client::builder().timeout(std::time::Duration::from_secs(120));
        for ca in authorities {
            builder = builder.add_root_certificate(ca);
        }
        let http = builder.build().map_err(|e| e.to_string())?;
        Ok(Client { http, ..self })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.http.get(self.url(path)), path)
    }

    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let url = self.url(path);
        let response = self
            .authorize(self.http.get(&url))
            .send()
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        let response = Self::check(response, &url)?;
        response
            .text()
            .map_err(|source| ClientError::Transport { url, source })
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.http.post(self.url(path)).json(body), path)
    }

    pub fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.http.put(self.url(path)).json(body), path)
    }

    /// A DELETE whose answer has no body (`204 No Content`).
    pub fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.without_body(self.http.delete(self.url(path)), path)
    }

    /// A POST without a body whose answer has none either (`204 No Content`).
    pub fn post_empty(&self, path: &str) -> Result<(), ClientError> {
        self.without_body(self.http.post(self.url(path)), path)
    }

    /// Sends a request with no body and checks that its answer is a success (which has none).
    fn without_body(
        &self,
        rb: reqwest::blocking::RequestBuilder,
        path: &str,
    ) -> Result<(), ClientError> {
        let url = self.url(path);
        let response = self
            .authorize(rb)
            .send()
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        Self::check(response, &url)?;
        Ok(())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn authorize(
        &self,
        rb: reqwest::blocking::RequestBuilder,
    ) -> reqwest::blocking::RequestBuilder {
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    fn send<T: DeserializeOwned>(
        &self,
        rb: reqwest::blocking::RequestBuilder,
        path: &str,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let response = self
            .authorize(rb)
            .send()
            .map_err(|source| ClientError::Transport {
                url: url.clone(),
                source,
            })?;
        let response = Self::check(response, &url)?;
        response
            .json()
            .map_err(|source| ClientError::Transport { url, source })
    }

    fn check(
        response: reqwest::blocking::Response,
        url: &str,
    ) -> Result<reqwest::blocking::Response, ClientError> {
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().unwrap_or_default();
        let body: ErrorBody = serde_json::from_str(&text).unwrap_or(ErrorBody {
            error: "http_error".into(),
            message: format!("{url} answered {status}: {}", text.trim()),
            details: None,
        });
        Err(ClientError::Api {
            status: status.as_u16(),
            code: body.error,
            message: body.message,
            details: body.details,
        })
    }
}
