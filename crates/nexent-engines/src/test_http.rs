//! A loopback HTTP/1.1 server for the unit tests of the remote engines: it answers every request with one
//! canned response (status line, headers and body as raw bytes) and counts the requests it read.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub struct CannedServer {
    /// `http://127.0.0.1:<port>`
    pub url: String,
    pub port: u16,
    hits: Arc<AtomicUsize>,
}

impl CannedServer {
    /// Serves `response` to every connection until the test ends.
    pub async fn start(response: Vec<u8>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        let response = Arc::new(response);
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (counter, response) = (counter.clone(), response.clone());
                tokio::spawn(async move {
                    if read_request(&mut socket).await {
                        counter.fetch_add(1, Ordering::SeqCst);
                        let _ = socket.write_all(&response).await;
                        let _ = socket.shutdown().await;
                    }
                });
            }
        });
        Self { url: format!("http://127.0.0.1:{port}"), port, hits }
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

/// Reads one request (headers, then a body of its Content-Length); false if the client hung up first.
async fn read_request(socket: &mut tokio::net::TcpStream) -> bool {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    loop {
        let Ok(read) = socket.read(&mut buffer).await else { return false };
        if read == 0 {
            return false;
        }
        received.extend_from_slice(&buffer[..read]);
        let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") else { continue };
        let headers = String::from_utf8_lossy(&received[..end]).to_ascii_lowercase();
        let length: usize = headers
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        while received.len() < end + 4 + length {
            match socket.read(&mut buffer).await {
                Ok(0) | Err(_) => return false,
                Ok(read) => received.extend_from_slice(&buffer[..read]),
            }
        }
        return true;
    }
}

/// A complete response with `status` (e.g. `200 OK`), extra header lines and `body` (with its
/// Content-Length unless `headers` declare one).
pub fn response(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let declared = headers.iter().any(|header| header.to_ascii_lowercase().starts_with("content-length"));
    let length = format!("Content-Length: {}", body.len());
    let mut all: Vec<&str> = headers.to_vec();
    if !declared {
        all.push(&length);
    }
    response_until_close(status, &all, body)
}

/// A response whose body ends when the connection closes (no length announced, so only a streaming
/// reader's own cap can stop it).
pub fn response_until_close(status: &str, headers: &[&str], body: &[u8]) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
    for header in headers {
        text.push_str(header);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}
