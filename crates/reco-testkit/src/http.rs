//! A minimal HTTP/1.1 client for tests that talk to a real `reco` process over a socket.

use std::collections::HashMap;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, client::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

/// Sends one request to `addr` (`host:port`); `body` is sent as `application/json`.
pub async fn request(addr: &str, method: &str, path: &str, body: Option<String>) -> std::io::Result<HttpResponse> {
    request_with(addr, method, path, &[], body).await
}

/// [`request`] with extra headers (which override the JSON content type).
pub async fn request_with(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<String>,
) -> std::io::Result<HttpResponse> {
    let io_err = |e: hyper::Error| std::io::Error::other(e.to_string());
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await.map_err(io_err)?;
    tokio::spawn(connection);
    let mut builder = Request::builder().method(method).uri(path).header("host", addr);
    if body.is_some() && !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("content-type")) {
        builder = builder.header("content-type", "application/json");
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let request = builder
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let response = sender.send_request(request).await.map_err(io_err)?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let body = response.into_body().collect().await.map_err(io_err)?.to_bytes().to_vec();
    Ok(HttpResponse { status, headers, body })
}

pub async fn get(addr: &str, path: &str) -> std::io::Result<HttpResponse> {
    request(addr, "GET", path, None).await
}

pub async fn post_json(addr: &str, path: &str, body: &serde_json::Value) -> std::io::Result<HttpResponse> {
    request(addr, "POST", path, Some(body.to_string())).await
}
