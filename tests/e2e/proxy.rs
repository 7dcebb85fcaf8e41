//! Image proxy: real images from a local test server come back as base64; everything that is not a
//! raster image, too large, private (unless allowed) or not http(s) is refused with `success: false`.

use std::io::Cursor;

use axum::Router;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use nexent_e2e::{NexentServer, ServerOptions};
use serde_json::json;

fn png_bytes() -> Vec<u8> {
    let mut bytes = Vec::new();
    image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 128]))
        .write_to(&mut Cursor::new(&mut bytes), image::ImageFormat::Png)
        .expect("encode png");
    bytes
}

/// A local web server with good and bad images; returns its base URL.
async fn start_image_server() -> anyhow::Result<String> {
    let png = png_bytes();
    let app = Router::new()
        .route(
            "/photo.png",
            get(move || {
                let png = png.clone();
                async move { ([(header::CONTENT_TYPE, "image/png")], png) }
            }),
        )
        .route(
            "/drawing.svg",
            get(|| async { ([(header::CONTENT_TYPE, "image/svg+xml")], "<svg xmlns='http://www.w3.org/2000/svg'/>") }),
        )
        .route(
            "/sneaky",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "image/png")],
                    "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
                )
            }),
        )
        .route("/page.html", get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html>not an image</html>") }))
        .route(
            "/huge.png",
            get(|| async { ([(header::CONTENT_TYPE, "image/png")], vec![0u8; 11 * 1024 * 1024]).into_response() }),
        )
        .route("/hop", get(|| async { Redirect::temporary("/photo.png") }))
        .route("/loop", get(|| async { Redirect::temporary("/loop") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{address}"))
}

async fn proxy(server: &NexentServer, url: &str) -> anyhow::Result<serde_json::Value> {
    let response = server.client.get(server.url("/api/proxy/image")).query(&[("url", url)]).send().await?;
    let (status, body) = nexent_e2e::read_json(response).await?;
    assert_eq!(status, 200, "{body}");
    Ok(body)
}

fn allowing_private_targets() -> ServerOptions {
    ServerOptions::default().arg("--allow-private-fetch").arg("true")
}

#[tokio::test]
async fn a_png_comes_back_as_base64_with_its_type() -> anyhow::Result<()> {
    let images = start_image_server().await?;
    let server = NexentServer::start_with(allowing_private_targets())?;
    let body = proxy(&server, &format!("{images}/photo.png")).await?;
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["content_type"], "image/png");
    assert_eq!(BASE64.decode(body["base64"].as_str().expect("base64"))?, png_bytes());

    let redirected = proxy(&server, &format!("{images}/hop")).await?;
    assert_eq!(redirected["success"], true, "one redirect is followed: {redirected}");

    // The URL may also come in a JSON body, as the seed document shows it.
    let response = server
        .client
        .get(server.url("/api/proxy/image"))
        .json(&json!({"url": format!("{images}/photo.png")}))
        .send()
        .await?;
    let (_, body) = nexent_e2e::read_json(response).await?;
    assert_eq!(body["success"], true, "{body}");
    Ok(())
}

#[tokio::test]
async fn non_images_oversized_bodies_and_redirect_loops_are_refused() -> anyhow::Result<()> {
    let images = start_image_server().await?;
    let server = NexentServer::start_with(allowing_private_targets())?;
    for path in ["/drawing.svg", "/sneaky", "/page.html", "/huge.png", "/loop", "/missing"] {
        let body = proxy(&server, &format!("{images}{path}")).await?;
        assert_eq!(body["success"], false, "{path}: {body}");
        assert!(body["error"].as_str().is_some_and(|error| !error.is_empty()), "{path}: {body}");
    }
    let svg = proxy(&server, &format!("{images}/drawing.svg")).await?;
    assert!(svg["error"].as_str().unwrap_or("").contains("SVG"), "{svg}");
    let huge = proxy(&server, &format!("{images}/huge.png")).await?;
    assert!(huge["error"].as_str().unwrap_or("").contains("larger"), "{huge}");
    Ok(())
}

#[tokio::test]
async fn private_addresses_and_local_files_are_refused_by_default() -> anyhow::Result<()> {
    let images = start_image_server().await?;
    let server = NexentServer::start()?;
    for url in [
        format!("{images}/photo.png"),
        "http://127.0.0.1/".to_owned(),
        "http://localhost:1/x.png".to_owned(),
        "http://[::1]/x.png".to_owned(),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://10.0.0.1/x.png".to_owned(),
        "file:///etc/passwd".to_owned(),
        "/etc/passwd".to_owned(),
    ] {
        let body = proxy(&server, &url).await?;
        assert_eq!(body["success"], false, "{url}: {body}");
    }
    let body = proxy(&server, "file:///etc/passwd").await?;
    assert!(body["error"].as_str().unwrap_or("").contains("http"), "{body}");
    let body = proxy(&server, "http://127.0.0.1/").await?;
    assert!(body["error"].as_str().unwrap_or("").contains("refusing"), "{body}");
    Ok(())
}

#[tokio::test]
async fn data_uris_are_decoded_and_checked() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let png = png_bytes();
    let encoded = BASE64.encode(png);
    let body = proxy(&server, &format!("data:image/png;base64,{encoded}")).await?;
    assert_eq!(body["success"], true, "{body}");
    let body = proxy(&server, "data:image/png;base64,aGVsbG8=").await?;
    assert_eq!(body["success"], false);
    let (status, body) = server.get_json("/api/proxy/image").await?;
    assert_eq!(status, 422, "no url: {body}");
    Ok(())
}
