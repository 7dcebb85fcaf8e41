//! Voice in the window. The page's dictation and read-aloud are the browser's (`getUserMedia`, Web Audio, an
//! `<audio>` element; ui/src/lib/voice.ts), so the shell only has to let WebKitGTK do them: its media stream
//! is off by default and it grants no capture permission unless the application answers its
//! `permission-request` signal. Here the media stream is switched on before the first page loads, and a
//! request is allowed only when it asks for the microphone alone and the page asking is our own server's
//! origin; everything else (camera, screen, geolocation, notifications, other origins) is denied.
//! WebKitGTK captures and plays through GStreamer (pulsesrc/pulsesink, or PipeWire's), so the microphone
//! and speakers are the desktop's defaults.

use tauri::{Url, WebviewWindow};

/// Whether a permission request is allowed: the microphone alone, asked by a page of `origin`.
/// `origin` is the serialised origin of our server (`http://127.0.0.1:5010`); an opaque origin
/// (`about:blank`, `data:`) serialises as `null` and never matches.
pub fn allowed(page: Option<&str>, origin: &str, audio: bool, video: bool) -> bool {
    let ours = page
        .and_then(|page| Url::parse(page).ok())
        .is_some_and(|page| page.origin().is_tuple() && page.origin().ascii_serialization() == origin);
    ours && audio && !video
}

/// Turns the media stream on with the permission policy above, then loads `page` in the window (which
/// was built on `about:blank`, so the page never starts without the setting).
#[cfg(target_os = "linux")]
pub fn enable_and_open(window: &WebviewWindow, page: Url) -> tauri::Result<()> {
    use webkit2gtk::glib::prelude::*;
    use webkit2gtk::{
        PermissionRequestExt, SettingsExt, UserMediaPermissionRequest, UserMediaPermissionRequestExt, WebViewExt,
    };

    let origin = page.origin().ascii_serialization();
    window.with_webview(move |platform| {
        let webview = platform.inner();
        if let Some(settings) = WebViewExt::settings(&webview) {
            settings.set_enable_media_stream(true);
            settings.set_enable_webaudio(true);
            settings.set_enable_mediasource(true);
        }
        webview.connect_permission_request(move |webview, request| {
            let (audio, video) = request
                .downcast_ref::<UserMediaPermissionRequest>()
                .map_or((false, false), |media| (media.is_for_audio_device(), media.is_for_video_device()));
            let uri = webview.uri();
            if allowed(uri.as_deref(), &origin, audio, video) {
                request.allow();
            } else {
                tracing::info!(uri = uri.as_deref().unwrap_or(""), audio, video, "a permission request was denied");
                request.deny();
            }
            true // handled: WebKitGTK shows no prompt of its own
        });
        webview.load_uri(page.as_str());
    })
}

/// Elsewhere the webview's own defaults stand; the page is loaded as it is.
#[cfg(not(target_os = "linux"))]
pub fn enable_and_open(window: &WebviewWindow, page: Url) -> tauri::Result<()> {
    window.navigate(page)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_microphone_of_our_own_origin_is_allowed() -> anyhow::Result<()> {
        let origin = Url::parse("http://127.0.0.1:5010/#/chat")?.origin().ascii_serialization();
        assert!(allowed(Some("http://127.0.0.1:5010/#/chat?token=x"), &origin, true, false));
        // The camera, the camera with the microphone, and a request for neither (the screen) are refused.
        assert!(!allowed(Some("http://127.0.0.1:5010/#/chat"), &origin, false, true));
        assert!(!allowed(Some("http://127.0.0.1:5010/#/chat"), &origin, true, true));
        assert!(!allowed(Some("http://127.0.0.1:5010/#/chat"), &origin, false, false));
        // Another port on loopback, another host, another scheme, no page at all.
        assert!(!allowed(Some("http://127.0.0.1:5011/"), &origin, true, false));
        assert!(!allowed(Some("http://localhost:5010/"), &origin, true, false));
        assert!(!allowed(Some("https://127.0.0.1:5010/"), &origin, true, false));
        assert!(!allowed(Some("about:blank"), &origin, true, false));
        assert!(!allowed(None, &origin, true, false));
        Ok(())
    }
}
