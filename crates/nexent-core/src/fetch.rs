//! An HTTP(S) fetcher for URLs that come from requests, safe against server-side request forgery.
//!
//! Every hop is checked: the scheme must be http or https; a literal IP must be public; a host name is
//! resolved by our own resolver, which hands the connector only public addresses, so the address that is
//! checked is the address that is connected (no DNS-rebinding window). Redirects are followed by hand, at
//! most [`FetchPolicy::max_redirects`] times, each new URL checked again. Bodies are streamed and capped.
//! `allow_private_targets` lifts the address check (tests, or a user who wants intranet images).
//!
//! Servers the user configured (chat and embedding models, a ModelEngine hub) may be on this machine or the
//! local network, so they are reached with plain clients; those clients still follow redirects only within
//! the same host ([`same_host_redirects`]) and read answers up to a cap ([`read_capped`]), so a model server
//! can neither bounce our requests (and the user's data in them) to another host nor exhaust our memory.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::Url;

#[derive(Debug, Clone)]
pub struct FetchPolicy {
    pub allow_private_targets: bool,
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    pub max_redirects: usize,
    pub max_body_bytes: u64,
}

impl Default for FetchPolicy {
    fn default() -> Self {
        Self {
            allow_private_targets: false,
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(20),
            max_redirects: 5,
            max_body_bytes: 10 * 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    #[error("only http and https URLs can be fetched, not {0}")]
    UnsupportedScheme(String),
    #[error("refusing to fetch {0}: it is a loopback, private, link-local or otherwise non-public address")]
    ForbiddenAddress(String),
    #[error("too many redirects (more than {0})")]
    TooManyRedirects(usize),
    #[error("the response is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("the server answered with HTTP status {0}")]
    Status(u16),
    #[error("timed out")]
    Timeout,
    #[error("network error: {0}")]
    Network(String),
}

/// A fetched response body.
#[derive(Debug, Clone)]
pub struct FetchedBody {
    pub final_url: Url,
    pub content_type: Option<String>,
    pub bytes: Vec<u8>,
}

#[derive(Clone)]
pub struct SafeFetcher {
    client: reqwest::Client,
    policy: FetchPolicy,
}

impl SafeFetcher {
    pub fn new(policy: FetchPolicy) -> Result<Self, FetchError> {
        let resolver = Arc::new(PublicOnlyResolver { allow_private_targets: policy.allow_private_targets });
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(resolver)
            .no_proxy()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.total_timeout)
            .user_agent(concat!("nexent-local/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| FetchError::Network(error.to_string()))?;
        Ok(Self { client, policy })
    }

    pub fn policy(&self) -> &FetchPolicy {
        &self.policy
    }

    /// GETs `url`, following checked redirects, and returns the body if its status is 2xx.
    pub async fn get(&self, url: &str, accept: &str) -> Result<FetchedBody, FetchError> {
        let mut current = Url::parse(url).map_err(|error| FetchError::InvalidUrl(format!("{url}: {error}")))?;
        for _hop in 0..=self.policy.max_redirects {
            self.check_url(&current)?;
            let response = self
                .client
                .get(current.clone())
                .header(reqwest::header::ACCEPT, accept)
                .send()
                .await
                .map_err(classify_reqwest_error)?;
            let status = response.status();
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(reqwest::header::LOCATION)
                    .and_then(|value| value.to_str().ok())
                    .ok_or(FetchError::Status(status.as_u16()))?;
                current = current
                    .join(location)
                    .map_err(|error| FetchError::InvalidUrl(format!("redirect to {location}: {error}")))?;
                continue;
            }
            if !status.is_success() {
                return Err(FetchError::Status(status.as_u16()));
            }
            let limit = self.policy.max_body_bytes;
            if response.content_length().is_some_and(|length| length > limit) {
                return Err(FetchError::TooLarge(limit));
            }
            let content_type = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned);
            let mut bytes = Vec::new();
            let mut stream = response.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(classify_reqwest_error)?;
                if bytes.len() as u64 + chunk.len() as u64 > limit {
                    return Err(FetchError::TooLarge(limit));
                }
                bytes.extend_from_slice(&chunk);
            }
            return Ok(FetchedBody { final_url: current, content_type, bytes });
        }
        Err(FetchError::TooManyRedirects(self.policy.max_redirects))
    }

    fn check_url(&self, url: &Url) -> Result<(), FetchError> {
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(FetchError::UnsupportedScheme(url.scheme().to_owned()));
        }
        match url.host() {
            None => Err(FetchError::InvalidUrl(format!("{url}: no host"))),
            Some(url::Host::Ipv4(address)) => self.check_address(IpAddr::V4(address)),
            Some(url::Host::Ipv6(address)) => self.check_address(IpAddr::V6(address)),
            // Names are checked by the resolver, on the addresses actually connected to.
            Some(url::Host::Domain(_)) => Ok(()),
        }
    }

    fn check_address(&self, address: IpAddr) -> Result<(), FetchError> {
        if self.policy.allow_private_targets || is_public_address(address) {
            Ok(())
        } else {
            Err(FetchError::ForbiddenAddress(address.to_string()))
        }
    }
}

/// Redirects for configured servers: at most 5, each to the same host and port as the URL that redirected
/// (or an upgrade from http to https on default ports); anything else fails the request.
pub fn same_host_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        if attempt.previous().len() > 5 {
            return attempt.error("too many redirects");
        }
        let allowed = attempt.previous().last().is_some_and(|from| same_host_redirect(from, attempt.url()));
        if allowed {
            attempt.follow()
        } else {
            let host = attempt.url().host_str().unwrap_or("?").to_owned();
            attempt.error(format!("refusing a redirect to another host ({host})"))
        }
    })
}

fn same_host_redirect(from: &Url, to: &Url) -> bool {
    if from.host_str() != to.host_str() {
        return false;
    }
    match (from.scheme(), to.scheme()) {
        (before, after) if before == after => from.port_or_known_default() == to.port_or_known_default(),
        ("http", "https") => from.port().is_none() && to.port().is_none(),
        _ => false,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the answer is larger than the limit of {0} bytes")]
    TooLarge(u64),
    /// The connection failed while reading (the URL left out: it may carry a key).
    #[error("{message}")]
    Transport { message: String, timeout: bool },
}

impl BodyError {
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Transport { timeout: true, .. })
    }
}

/// Reads a response body of at most `limit` bytes (streamed, so a larger one is never held whole).
pub async fn read_capped(response: reqwest::Response, limit: u64) -> Result<Vec<u8>, BodyError> {
    if response.content_length().is_some_and(|length| length > limit) {
        return Err(BodyError::TooLarge(limit));
    }
    let mut bytes = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|error| BodyError::Transport {
            timeout: error.is_timeout(),
            message: error.without_url().to_string(),
        })?;
        if bytes.len() as u64 + chunk.len() as u64 > limit {
            return Err(BodyError::TooLarge(limit));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

fn classify_reqwest_error(error: reqwest::Error) -> FetchError {
    if error.is_timeout() {
        return FetchError::Timeout;
    }
    // A refusal from our resolver travels inside reqwest's error chain; surface it as such.
    let mut source: Option<&dyn std::error::Error> = Some(&error);
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<ForbiddenResolution>() {
            return FetchError::ForbiddenAddress(refused.0.clone());
        }
        source = cause.source();
    }
    FetchError::Network(error.without_url().to_string())
}

#[derive(Debug)]
struct ForbiddenResolution(String);

impl std::fmt::Display for ForbiddenResolution {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "{} resolves only to non-public addresses", self.0)
    }
}

impl std::error::Error for ForbiddenResolution {}

struct PublicOnlyResolver {
    allow_private_targets: bool,
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private_targets = self.allow_private_targets;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let resolved: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|address| allow_private_targets || is_public_address(address.ip()))
                .collect();
            if allowed.is_empty() {
                return Err(Box::new(ForbiddenResolution(host)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// True for addresses on the public internet: not loopback, private, link-local, shared (CGNAT),
/// unspecified, broadcast, multicast, documentation or reserved; IPv6 forms that embed IPv4 are judged
/// by the IPv4 address inside.
pub fn is_public_address(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    !(address.is_loopback()
        || address.is_private()
        || address.is_link_local()
        || address.is_unspecified()
        || address.is_broadcast()
        || address.is_multicast()
        || address.is_documentation()
        || a == 0
        || (a == 100 && (64..=127).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    if let Some(v4) = address.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = address.segments();
    // NAT64 (64:ff9b::/96) and IPv4-compatible (::a.b.c.d) addresses carry an IPv4 address.
    if (segments[0] == 0x64 && segments[1] == 0xff9b && segments[2..6] == [0; 4]) || segments[0..6] == [0; 6] {
        let v4 =
            Ipv4Addr::new((segments[6] >> 8) as u8, segments[6] as u8, (segments[7] >> 8) as u8, segments[7] as u8);
        return !address.is_loopback() && !address.is_unspecified() && is_public_v4(v4);
    }
    !(address.is_loopback()
        || address.is_unspecified()
        || address.is_multicast()
        || (segments[0] & 0xfe00) == 0xfc00
        || (segments[0] & 0xffc0) == 0xfe80
        || (segments[0] & 0xffc0) == 0xfec0
        || (segments[0] == 0x2001 && segments[1] == 0x0db8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_addresses() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "2001:db8::1",
            "224.0.0.1",
        ] {
            assert!(!is_public_address(private.parse().expect("ip")), "{private} should be refused");
        }
        for public in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"] {
            assert!(is_public_address(public.parse().expect("ip")), "{public} should be allowed");
        }
    }

    #[test]
    fn configured_servers_redirect_only_within_their_host() {
        let url = |text: &str| Url::parse(text).expect("url");
        assert!(same_host_redirect(&url("http://models.lan:8000/v1/x"), &url("http://models.lan:8000/v2/x")));
        assert!(same_host_redirect(&url("http://models.lan/v1"), &url("https://models.lan/v1")));
        assert!(!same_host_redirect(&url("http://models.lan:8000/v1"), &url("http://evil.example:8000/v1")));
        assert!(!same_host_redirect(&url("http://127.0.0.1:8000/v1"), &url("http://localhost:8000/v1")));
        assert!(!same_host_redirect(&url("http://models.lan:8000/v1"), &url("http://models.lan:22/")));
        assert!(!same_host_redirect(&url("https://models.lan/v1"), &url("http://models.lan/v1")));
    }

    #[tokio::test]
    async fn refuses_bad_schemes_and_private_literals_before_connecting() {
        let fetcher = SafeFetcher::new(FetchPolicy::default()).expect("fetcher");
        assert!(matches!(fetcher.get("file:///etc/passwd", "*/*").await, Err(FetchError::UnsupportedScheme(_))));
        assert!(matches!(fetcher.get("/etc/passwd", "*/*").await, Err(FetchError::InvalidUrl(_))));
        assert!(matches!(fetcher.get("http://127.0.0.1:9/", "*/*").await, Err(FetchError::ForbiddenAddress(_))));
        assert!(matches!(fetcher.get("http://[::1]:9/", "*/*").await, Err(FetchError::ForbiddenAddress(_))));
        assert!(matches!(fetcher.get("http://localhost:9/", "*/*").await, Err(FetchError::ForbiddenAddress(_))));
    }
}
