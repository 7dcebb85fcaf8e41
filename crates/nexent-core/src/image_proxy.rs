//! The Proxy App's logic (nexent-api.md §8): load an image for the browser from a URL (through the
//! [`SafeFetcher`]) or a `data:` URI, check that it really is a raster image, and return its bytes with
//! the content type of the format found in them. SVG (which can carry script) and local paths are refused.

use std::io::Cursor;

use base64::Engine;

use crate::fetch::{FetchError, SafeFetcher};

const IMAGE_ACCEPT: &str = "image/avif,image/webp,image/apng,image/png,image/jpeg,image/gif,image/*;q=0.8";

#[derive(Debug, thiserror::Error)]
pub enum ImageProxyError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("SVG images are not supported")]
    Svg,
    #[error("invalid data URI: {0}")]
    InvalidDataUri(String),
    #[error("the content is not a supported image: {0}")]
    NotAnImage(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedImage {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

impl ProxiedImage {
    pub fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.bytes)
    }
}

#[derive(Clone)]
pub struct ImageProxy {
    fetcher: SafeFetcher,
}

impl ImageProxy {
    pub fn new(fetcher: SafeFetcher) -> Self {
        Self { fetcher }
    }

    pub async fn load(&self, url: &str) -> Result<ProxiedImage, ImageProxyError> {
        let url = decode_again_if_encoded(url.trim());
        let bytes = if let Some(data_uri) = url.strip_prefix("data:") {
            decode_data_uri(data_uri, self.fetcher.policy().max_body_bytes)?
        } else {
            if url_path_is_svg(&url) {
                return Err(ImageProxyError::Svg);
            }
            let body = self.fetcher.get(&url, IMAGE_ACCEPT).await?;
            if body.content_type.as_deref().is_some_and(|value| value.to_ascii_lowercase().contains("svg")) {
                return Err(ImageProxyError::Svg);
            }
            body.bytes
        };
        tokio::task::spawn_blocking(move || verify_image(bytes))
            .await
            .map_err(|error| ImageProxyError::NotAnImage(format!("decoder failed: {error}")))?
    }
}

/// Nexent's clients sometimes encode the URL twice; Nexent decodes again, and so do we.
fn decode_again_if_encoded(url: &str) -> String {
    let lower = url.to_ascii_lowercase();
    if ["http%3a", "https%3a", "data%3a"].iter().any(|prefix| lower.starts_with(prefix)) {
        url::form_urlencoded::parse(format!("u={url}").as_bytes())
            .next()
            .map(|(_, value)| value.into_owned())
            .unwrap_or_else(|| url.to_owned())
    } else {
        url.to_owned()
    }
}

fn url_path_is_svg(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|parsed| parsed.path().to_ascii_lowercase().ends_with(".svg"))
}

fn decode_data_uri(rest: &str, max_bytes: u64) -> Result<Vec<u8>, ImageProxyError> {
    let (header, payload) =
        rest.split_once(',').ok_or_else(|| ImageProxyError::InvalidDataUri("missing ','".into()))?;
    let header = header.to_ascii_lowercase();
    if !header.starts_with("image/") {
        return Err(ImageProxyError::InvalidDataUri("not an image media type".into()));
    }
    if header.contains("svg") {
        return Err(ImageProxyError::Svg);
    }
    if !header.ends_with(";base64") {
        return Err(ImageProxyError::InvalidDataUri("only base64 data URIs are supported".into()));
    }
    if payload.len() as u64 / 4 * 3 > max_bytes {
        return Err(ImageProxyError::Fetch(FetchError::TooLarge(max_bytes)));
    }
    base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|error| ImageProxyError::InvalidDataUri(error.to_string()))
}

/// Decodes the whole image (with limits against decompression bombs) to prove it is one.
fn verify_image(bytes: Vec<u8>) -> Result<ProxiedImage, ImageProxyError> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(256)]).to_ascii_lowercase();
    if head.contains("<svg") {
        return Err(ImageProxyError::Svg);
    }
    let mut reader = image::ImageReader::new(Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|error| ImageProxyError::NotAnImage(error.to_string()))?;
    let format = reader.format().ok_or_else(|| ImageProxyError::NotAnImage("unknown format".into()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(16_384);
    limits.max_image_height = Some(16_384);
    limits.max_alloc = Some(512 * 1024 * 1024);
    reader.limits(limits);
    reader.decode().map_err(|error| ImageProxyError::NotAnImage(error.to_string()))?;
    Ok(ProxiedImage { content_type: format.to_mime_type().to_owned(), bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_png() -> Vec<u8> {
        let mut bytes = Vec::new();
        image::RgbImage::from_pixel(3, 2, image::Rgb([200, 10, 10]))
            .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
            .expect("encode");
        bytes
    }

    #[test]
    fn verifies_real_images_and_refuses_others() {
        let png = verify_image(tiny_png()).expect("png");
        assert_eq!(png.content_type, "image/png");
        assert!(matches!(verify_image(b"hello".to_vec()), Err(ImageProxyError::NotAnImage(_))));
        assert!(matches!(verify_image(b"<svg xmlns='x'></svg>".to_vec()), Err(ImageProxyError::Svg)));
        let mut truncated = tiny_png();
        truncated.truncate(truncated.len() / 2);
        assert!(verify_image(truncated).is_err());
    }

    #[test]
    fn decodes_data_uris() {
        let encoded = base64::engine::general_purpose::STANDARD.encode(tiny_png());
        let bytes = decode_data_uri(&format!("image/png;base64,{encoded}"), 1 << 20).expect("decode");
        assert_eq!(bytes, tiny_png());
        assert!(matches!(decode_data_uri("image/svg+xml;base64,AAAA", 1 << 20), Err(ImageProxyError::Svg)));
        assert!(decode_data_uri("text/plain;base64,AAAA", 1 << 20).is_err());
    }

    #[test]
    fn decodes_twice_encoded_urls() {
        assert_eq!(decode_again_if_encoded("https%3A%2F%2Fa.example%2Fx.png"), "https://a.example/x.png");
        assert_eq!(decode_again_if_encoded("https://a.example/x%20y.png"), "https://a.example/x%20y.png");
    }
}
