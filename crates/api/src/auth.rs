//! `POST /auth` and the `X-Registry-Auth` header: the Docker client's auth configs.
//!
//! The daemon stores no credentials: the client keeps them in its own `config.json` and sends
//! them with each request that needs them.

use std::sync::Arc;

use base64::Engine as _;
use hyper::body::Incoming;
use hyper::{HeaderMap, StatusCode};
use registry::{Client, Login, RegistryConfig};
use serde::Deserialize;
use serde_json::json;

use crate::body::{self, Response};
use crate::error::{ApiError, ApiResult};
use crate::state::{blocking, State};

const MAX_AUTH_BODY: usize = 64 << 10;

/// Docker's `AuthConfig` (registry/types); unknown fields ignored.
#[derive(Debug, Default, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// base64 of `user:password`, when sent instead of the two fields
    #[serde(default)]
    pub auth: String,
    #[serde(default)]
    pub serveraddress: String,
}

impl AuthConfig {
    /// The login it carries, if any.
    pub fn login(&self) -> Option<Login> {
        if !self.username.is_empty() {
            return Some(Login {
                username: self.username.clone(),
                password: self.password.clone(),
            });
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(self.auth.trim())
            .ok()?;
        let text = String::from_utf8(raw).ok()?;
        let (user, pass) = text.split_once(':')?;
        (!user.is_empty()).then(|| Login {
            username: user.to_string(),
            password: pass.to_string(),
        })
    }
}

/// The `X-Registry-Auth` header: base64url JSON (padded or not, either alphabet).
pub fn registry_auth(headers: &HeaderMap) -> ApiResult<Option<AuthConfig>> {
    let Some(value) = headers.get("x-registry-auth") else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .map_err(|_| ApiError::bad_request("invalid X-Registry-Auth header: not text"))?
        .trim();
    if text.is_empty() {
        return Ok(None);
    }
    let unpadded = text.trim_end_matches('=');
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(unpadded)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(unpadded))
        .map_err(|_| ApiError::bad_request("invalid X-Registry-Auth header: not base64"))?;
    let config: AuthConfig = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Auth header: {e}")))?;
    Ok(Some(config))
}

/// A registry client over the root's registry settings, with the request's login for
/// `server` when it carries one.
pub fn client(state: &State, auth: Option<&AuthConfig>, server: &str) -> ApiResult<Client> {
    let config = RegistryConfig::load(&state.root).map_err(|e| registry_error(&e))?;
    let client = Client::new(config, None);
    if let Some(login) = auth.and_then(AuthConfig::login) {
        client.use_login(server, login);
    }
    Ok(client)
}

/// The status a registry error answers with: 401 for refused credentials, 404 for what the
/// registry does not have, 400 for bad names, 500 otherwise.
pub fn registry_error(err: &registry::Error) -> ApiError {
    use registry::Error as E;
    let status = match err {
        E::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
        E::NameUnknown { .. } | E::ManifestUnknown { .. } | E::BlobUnknown { .. } => {
            StatusCode::NOT_FOUND
        }
        E::InvalidReference { .. } | E::NoDefaultRegistry { .. } | E::InvalidPlatform { .. } => {
            StatusCode::BAD_REQUEST
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    ApiError::new(status, err.to_string())
}

/// `POST /auth`: checks the login against the registry, as `docker login` asks the daemon to.
pub async fn login(state: Arc<State>, request: Incoming) -> ApiResult<Response> {
    let data = crate::containers::read_body(request, MAX_AUTH_BODY).await?;
    let auth: AuthConfig = serde_json::from_slice(&data)
        .map_err(|e| ApiError::bad_request(format!("invalid auth config: {e}")))?;
    let Some(login) = auth.login() else {
        return Err(ApiError::bad_request("a username is required to log in"));
    };
    blocking(move || {
        let config = RegistryConfig::load(&state.root).map_err(|e| registry_error(&e))?;
        let server = if auth.serveraddress.is_empty() {
            config.default_registry.clone().ok_or_else(|| {
                ApiError::bad_request(
                    "no registry given and no default registry is configured: \
                     name one or set \"default-registry\" in the root's config.json",
                )
            })?
        } else {
            auth.serveraddress.clone()
        };
        Client::new(config, None)
            .login(&server, login)
            .map_err(|e| registry_error(&e))
    })
    .await?;
    Ok(body::json(
        StatusCode::OK,
        &json!({ "Status": "Login Succeeded", "IdentityToken": "" }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn registry_auth_header_in_both_alphabets() {
        let mut headers = HeaderMap::new();
        assert!(registry_auth(&headers).unwrap().is_none());
        let json =
            br#"{"username":"alice","password":"s3cret?>>","serveraddress":"127.0.0.1:5000"}"#;
        for encoded in [
            base64::engine::general_purpose::URL_SAFE.encode(json),
            base64::engine::general_purpose::STANDARD.encode(json),
        ] {
            headers.insert("x-registry-auth", HeaderValue::from_str(&encoded).unwrap());
            let auth = registry_auth(&headers).unwrap().unwrap();
            assert_eq!(auth.serveraddress, "127.0.0.1:5000");
            let login = auth.login().unwrap();
            assert_eq!(
                (login.username.as_str(), login.password.as_str()),
                ("alice", "s3cret?>>")
            );
        }
        // `docker push` without a login sends an empty config.
        headers.insert("x-registry-auth", HeaderValue::from_static("e30="));
        assert!(registry_auth(&headers).unwrap().unwrap().login().is_none());
        headers.insert("x-registry-auth", HeaderValue::from_static("!!"));
        assert_eq!(
            registry_auth(&headers).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn auth_field_instead_of_username() {
        let auth = AuthConfig {
            auth: "YWxpY2U6czNjcmV0".into(),
            ..AuthConfig::default()
        };
        let login = auth.login().unwrap();
        assert_eq!(login.username, "alice");
        assert_eq!(login.password, "s3cret");
    }
}
