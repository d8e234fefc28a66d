//! Bearer-token authentication of `POST /events` (and, optionally, `GET /trending`).
//!
//! Tokens come from a file of `name:token` lines. Requests are counted by token *name* (a
//! bounded set the operator chose), never by the token. A presented token is hashed (SHA-256)
//! and compared with every known token's hash in constant time, without stopping at the first
//! match, so neither the timing nor the position of a match tells an attacker anything.
//! The file is re-read on demand ([`Tokens::reload`]; `reco serve` does so on SIGHUP): a file
//! that no longer parses leaves the previous set in force.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use axum::{
    extract::{Query, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{ApiError, AppState};

/// Shorter tokens are refused when the file is read: they can be guessed.
pub const MIN_TOKEN_BYTES: usize = 16;

/// Why a token file cannot be used; names the file and the line.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TokenFileError {
    pub path: String,
    pub message: String,
}

/// The caller a request was authenticated as: the token's name. Handlers and the rate limit
/// read it from the request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller(pub Arc<str>);

#[derive(Debug)]
struct Entry {
    name: Arc<str>,
    hash: [u8; 32],
}

/// The accepted tokens, replaceable at run time.
#[derive(Debug)]
pub struct Tokens {
    file: Option<PathBuf>,
    entries: RwLock<Arc<Vec<Entry>>>,
}

impl Tokens {
    /// Reads `name:token` lines from `path` (`#` comments and blank lines skipped).
    pub fn from_file(path: &Path) -> Result<Tokens, TokenFileError> {
        let entries = read_file(path)?;
        Ok(Tokens { file: Some(path.to_path_buf()), entries: RwLock::new(Arc::new(entries)) })
    }

    /// Tokens given directly (tests, embedding); `reload` keeps them.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Tokens, TokenFileError> {
        let text: String = pairs.into_iter().map(|(n, t)| format!("{n}:{t}\n")).collect();
        let entries = parse(&text).map_err(|message| TokenFileError { path: "(given tokens)".into(), message })?;
        Ok(Tokens { file: None, entries: RwLock::new(Arc::new(entries)) })
    }

    /// Re-reads the file. On error the previous tokens stay in force and the error is returned.
    pub fn reload(&self) -> Result<usize, TokenFileError> {
        let Some(path) = &self.file else { return Ok(self.names().len()) };
        let entries = read_file(path)?;
        let n = entries.len();
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(entries);
        Ok(n)
    }

    /// The token names, in file order (metric label values).
    pub fn names(&self) -> Vec<String> {
        self.current().iter().map(|e| e.name.to_string()).collect()
    }

    /// The name of the token `presented`, if it is one of ours.
    pub fn verify(&self, presented: &str) -> Option<Caller> {
        let hash: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found: Option<Arc<str>> = None;
        // Every entry is compared, a match or not, so the time taken says nothing.
        for entry in self.current().iter() {
            if bool::from(entry.hash.ct_eq(&hash)) {
                found = Some(entry.name.clone());
            }
        }
        found.map(Caller)
    }

    fn current(&self) -> Arc<Vec<Entry>> {
        self.entries.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn read_file(path: &Path) -> Result<Vec<Entry>, TokenFileError> {
    let error = |message: String| TokenFileError { path: path.display().to_string(), message };
    let text = std::fs::read_to_string(path).map_err(|e| error(format!("cannot read the token file: {e}")))?;
    parse(&text).map_err(error)
}

fn parse(text: &str) -> Result<Vec<Entry>, String> {
    let mut entries: Vec<Entry> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |m: &str| format!("line {}: {m}", n + 1);
        let Some((name, token)) = line.split_once(':') else {
            return Err(at("expected `name:token`"));
        };
        let (name, token) = (name.trim(), token.trim());
        let name_ok = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !name_ok {
            return Err(at(&format!("token name {name:?} must be 1-64 of A-Z a-z 0-9 - _ .")));
        }
        if token.len() < MIN_TOKEN_BYTES || !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(at(&format!(
                "the token of {name:?} must be at least {MIN_TOKEN_BYTES} visible ASCII characters \
                 (e.g. `openssl rand -hex 32`)"
            )));
        }
        if entries.iter().any(|e| &*e.name == name) {
            return Err(at(&format!("token name {name:?} appears twice")));
        }
        entries.push(Entry { name: name.into(), hash: Sha256::digest(token.as_bytes()).into() });
    }
    if entries.is_empty() {
        return Err("no tokens (lines of `name:token`)".into());
    }
    Ok(entries)
}

/// Which endpoint a guard protects: ingest refusals are counted with the other refusals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Guarded {
    Ingest,
    Read,
}

/// Middleware: lets the request through with its [`Caller`] when it carries a known token.
pub(crate) async fn require_token(
    State((state, guarded)): State<(AppState, Guarded)>,
    mut req: Request,
    next: Next,
) -> Response {
    let Some(tokens) = &state.config.tokens else { return next.run(req).await };
    let header_token = req.headers().get(header::AUTHORIZATION).map(|v| {
        v.to_str().ok().and_then(|s| {
            let (scheme, token) = s.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_owned())
        })
    });
    // `navigator.sendBeacon` cannot set headers: with beacons enabled, the RFC 6750 query
    // parameter is the one way a page can authenticate.
    let query_token = if state.config.text_plain && guarded == Guarded::Ingest {
        let pairs = Query::<Vec<(String, String)>>::try_from_uri(req.uri()).map(|q| q.0).unwrap_or_default();
        pairs.into_iter().find_map(|(k, v)| (k == "access_token").then_some(v))
    } else {
        None
    };
    let presented = match (header_token, query_token) {
        (Some(Some(token)), _) => Some(token),
        (Some(None), _) => return refuse(&state, guarded, "invalid_request", "Authorization must be `Bearer <token>`"),
        (None, token) => token,
    };
    let Some(presented) = presented else {
        return refuse(&state, guarded, "", "this endpoint requires `Authorization: Bearer <token>`");
    };
    match tokens.verify(&presented) {
        Some(caller) => {
            state.telemetry.ingest.authenticated(&caller.0);
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        None => refuse(&state, guarded, "invalid_token", "the bearer token is not valid"),
    }
}

/// 401 in the one error shape, with the RFC 6750 challenge; `error` empty when no credentials
/// were sent (the RFC says not to name an error then).
fn refuse(state: &AppState, guarded: Guarded, error: &str, message: &str) -> Response {
    if guarded == Guarded::Ingest {
        state.telemetry.ingest.rejected("unauthorized");
    }
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
    let challenge = if error.is_empty() {
        "Bearer realm=\"reco\"".to_owned()
    } else {
        format!("Bearer realm=\"reco\", error=\"{error}\"")
    };
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_refuses_weak_or_malformed_lines() {
        let t = Tokens::from_pairs([("web", "0123456789abcdef"), ("app-2", "fedcba9876543210fedc")]).unwrap();
        assert_eq!(t.names(), ["web", "app-2"]);
        assert_eq!(t.verify("0123456789abcdef"), Some(Caller("web".into())));
        assert_eq!(t.verify("fedcba9876543210fedc"), Some(Caller("app-2".into())));
        assert_eq!(t.verify("0123456789abcdeF"), None);
        assert_eq!(t.verify(""), None);

        for (text, needle) in [
            ("web 0123456789abcdef\n", "line 1: expected `name:token`"),
            ("# c\n\nweb:short\n", "line 3: the token of \"web\" must be at least 16"),
            ("w e b:0123456789abcdef\n", "token name \"w e b\""),
            ("a:0123456789abcdef\na:0123456789abcdeg\n", "line 2: token name \"a\" appears twice"),
            ("# only comments\n", "no tokens"),
        ] {
            let e = parse(text).err().unwrap_or_else(|| panic!("{text:?} is refused"));
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn reload_keeps_the_old_tokens_when_the_new_file_is_broken() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "web:0123456789abcdef\n").unwrap();
        let t = Tokens::from_file(&path).unwrap();
        std::fs::write(&path, "web:0123456789abcdef\napp:aaaaaaaaaaaaaaaaaaaa\n").unwrap();
        assert_eq!(t.reload().unwrap(), 2);
        assert!(t.verify("aaaaaaaaaaaaaaaaaaaa").is_some());
        std::fs::write(&path, "app:short\n").unwrap();
        let e = t.reload().unwrap_err().to_string();
        assert!(e.contains("line 1") && e.contains(&path.display().to_string()), "{e}");
        assert!(t.verify("aaaaaaaaaaaaaaaaaaaa").is_some(), "the previous set stays in force");
    }
}
