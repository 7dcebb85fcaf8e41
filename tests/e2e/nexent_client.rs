//! Nexent's own v0.1.0 web client, replayed: every call sequence of nexent-api.md §13 goes through a small
//! reverse proxy that behaves as the client's `server.js` does (it forwards the browser's
//! `Host: localhost:<its port>` unchanged, and the browser's `Origin: http://localhost:<its port>` on the
//! calls a browser sends one with), and each answer is read the way the client's TypeScript reads it
//! (issue 16). With the flag the README documents every sequence works; with no flag the read-only calls
//! still work and a state-changing call is refused with a message that names the flag.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures::TryStreamExt;
use nexent_e2e::{AgentStreamParser, NexentServer, ServerOptions, read_json};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use serde_json::{Value, json};

/// The proxy of Nexent's `server.js`: `/api/*` to the backend with the request's own Host header (as
/// `http-proxy` does without `changeOrigin`), bodies streamed both ways.
#[derive(Clone)]
struct ClientProxy {
    backend: String,
    host: String,
    client: reqwest::Client,
}

async fn forward(State(proxy): State<ClientProxy>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |value| value.as_str());
    let mut outbound = proxy.client.request(parts.method.clone(), format!("{}{path}", proxy.backend));
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            outbound = outbound.header(name, value);
        }
    }
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let outbound = outbound.header(header::HOST, &proxy.host).body(reqwest::Body::wrap_stream(stream));
    match outbound.send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if name != header::CONTENT_LENGTH && name != header::TRANSFER_ENCODING {
                    response = response.header(name, value);
                }
            }
            response
                .body(Body::from_stream(answer.bytes_stream()))
                .unwrap_or_else(|_| Response::new(Body::from("bad answer")))
        }
        Err(error) => {
            let mut response = Response::new(Body::from(format!("proxy error: {error}")));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}

/// Nexent's client in a browser: it addresses the proxy as `http://localhost:<port>`, so the proxy is
/// the page's origin. Chromium sends `Origin` on every non-GET request, also same-origin ones, and
/// `Sec-Fetch-Site: same-origin` on all of them.
struct NexentClient {
    server: NexentServer,
    proxy_url: String,
    origin: String,
    http: reqwest::Client,
}

impl NexentClient {
    /// Starts the proxy on a free port, then the server with `flags` (which may name the proxy's
    /// origin through `{origin}`).
    async fn start(flags: &[&str]) -> anyhow::Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let origin = format!("http://localhost:{port}");
        let mut options = ServerOptions::default().arg("--llm-threads").arg("1");
        for flag in flags {
            options = options.arg(flag.replace("{origin}", &origin));
        }
        let server = NexentServer::start_with(options)?;
        let proxy = ClientProxy {
            backend: server.base_url.clone(),
            host: format!("localhost:{port}"),
            client: reqwest::Client::builder().no_proxy().redirect(reqwest::redirect::Policy::none()).build()?,
        };
        let app = Router::new().fallback(forward).with_state(proxy);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(300)).build()?;
        Ok(Self { server, proxy_url: format!("http://127.0.0.1:{port}"), origin, http })
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method.clone(), format!("{}{path}", self.proxy_url));
        let builder = builder.header("sec-fetch-site", "same-origin").header("sec-fetch-mode", "cors");
        if method == Method::GET || method == Method::HEAD { builder } else { builder.header("origin", &self.origin) }
    }

    async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = read_json(self.request(Method::GET, path).send().await?).await?;
        anyhow::ensure!(status == 200, "GET {path}: {status} {body}");
        Ok(body)
    }

    async fn send(&self, method: Method, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        read_json(self.request(method, path).json(body).send().await?).await
    }

    async fn ok(&self, method: Method, path: &str, body: &Value) -> anyhow::Result<Value> {
        let (status, answer) = self.send(method.clone(), path, body).await?;
        anyhow::ensure!((200..300).contains(&status), "{method} {path}: {status} {answer}");
        Ok(answer)
    }

    async fn multipart(&self, path: &str, form: Form) -> anyhow::Result<(u16, Value)> {
        read_json(self.request(Method::POST, path).multipart(form).send().await?).await
    }

    /// The chat page's conversation list, read as `conversationService.getList` reads it.
    async fn conversation_list(&self) -> anyhow::Result<Vec<Value>> {
        let list = self.get("/api/conversation/list").await?;
        assert_eq!(list["code"], 0, "{list}");
        Ok(list["data"].as_array().expect("data is the list").clone())
    }

    /// `PUT /api/conversation/create` with `{}`: the client keeps `data.conversation_id`.
    async fn create_conversation(&self) -> anyhow::Result<i64> {
        let created = self.ok(Method::PUT, "/api/conversation/create", &json!({})).await?;
        assert_eq!(created["code"], 0, "{created}");
        assert!(created["data"]["conversation_title"].is_string(), "{created}");
        Ok(created["data"]["conversation_id"].as_i64().expect("conversation_id is a number"))
    }

    /// `POST /api/agent/run`, read as the client's chatStreamHandler reads it; returns the final answer.
    async fn run_agent(&self, body: &Value) -> anyhow::Result<String> {
        let response = self.request(Method::POST, "/api/agent/run").json(body).send().await?;
        assert_eq!(response.status(), 200);
        let content_type = response.headers()[header::CONTENT_TYPE].to_str()?.to_owned();
        assert!(content_type.starts_with("text/event-stream"), "{content_type}");
        let messages = AgentStreamParser::read_all(response).await?;
        let answer: String =
            messages.iter().filter(|(kind, _)| kind == "final_answer").map(|(_, text)| text.as_str()).collect();
        assert!(!answer.trim().is_empty(), "a final answer: {messages:?}");
        Ok(answer)
    }

    /// `POST /api/conversation/generate_title` after the first answer: `data` is the title.
    async fn generate_title(&self, conversation_id: i64, question: &str, answer: &str) -> anyhow::Result<String> {
        let history = json!([{"role": "user", "content": question}, {"role": "assistant", "content": answer}]);
        let titled = self
            .ok(
                Method::POST,
                "/api/conversation/generate_title",
                &json!({"conversation_id": conversation_id, "history": history}),
            )
            .await?;
        assert_eq!(titled["code"], 0, "{titled}");
        Ok(titled["data"].as_str().expect("data is the title").to_owned())
    }
}

/// Open the chat, send a first message, send one with an attachment, re-open both conversations and
/// like an answer, with the README's flag.
#[tokio::test]
async fn nexent_clients_chat_sequences_through_its_proxy() -> anyhow::Result<()> {
    let client = NexentClient::start(&["--allowed-origins", "{origin}"]).await?;

    // Open the chat page: the list and the saved configuration, read as `{config}`.
    assert!(client.conversation_list().await?.is_empty());
    let loaded = client.get("/api/config/load_config").await?;
    assert!(loaded["config"]["app"].is_object() && loaded["config"]["models"].is_object(), "{loaded}");

    // Send the first message.
    let question = "Say hello in one short sentence.";
    let conversation_id = client.create_conversation().await?;
    let listed = client.conversation_list().await?;
    assert!(listed.iter().any(|item| item["conversation_id"] == conversation_id), "{listed:?}");
    let answer = client
        .run_agent(&json!({
            "query": question, "conversation_id": conversation_id, "is_set": false,
            "history": [], "minio_files": null
        }))
        .await?;
    let title = client.generate_title(conversation_id, question, &answer).await?;
    assert!(!title.trim().is_empty());
    let listed = client.conversation_list().await?;
    let entry = listed.iter().find(|item| item["conversation_id"] == conversation_id).expect("listed");
    assert_eq!(entry["conversation_title"], title.as_str(), "the generated title names the conversation");

    // Send a message with an attachment: store it, then preprocess it, then run with `minio_files`.
    let note = b"The lighthouse keeper's cat is called Biscuit.".to_vec();
    let form = Form::new()
        .text("folder", "attachments")
        .part("files", Part::bytes(note.clone()).file_name("note.txt").mime_str("text/plain")?);
    let (status, stored) = client.multipart("/api/file/storage", form).await?;
    assert_eq!(status, 200, "{stored}");
    let stored_file = &stored["results"][0];
    assert_eq!(stored_file["success"], true, "{stored}");
    let object_name = stored_file["object_name"].as_str().expect("object_name").to_owned();
    assert!(object_name.starts_with("attachments/"), "{object_name}");
    let second_id = client.create_conversation().await?;
    client.conversation_list().await?;
    let form = Form::new()
        .text("query", "What is the cat called?")
        .part("files", Part::bytes(note.clone()).file_name("note.txt").mime_str("text/plain")?);
    let response = client.request(Method::POST, "/api/file/preprocess").multipart(form).send().await?;
    assert_eq!(response.status(), 200);
    let events: Vec<Value> = response
        .text()
        .await?
        .split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let kinds: Vec<&str> = events.iter().filter_map(|event| event["type"].as_str()).collect();
    assert_eq!(kinds, ["progress", "file_processed", "complete"], "{events:?}");
    let description = events[1]["description"].as_str().expect("file_processed carries the description");
    assert!(description.contains("Biscuit"), "{description}");
    assert!(events[2]["final_query"].as_str().is_some_and(|query| query.contains("What is the cat called?")));
    let minio_file = json!({
        "object_name": object_name, "name": "note.txt", "type": "text/plain", "size": note.len(),
        "url": stored_file["url"], "description": description
    });
    let answer = client
        .run_agent(&json!({
            "query": "What is the cat called?", "conversation_id": second_id, "is_set": false,
            "history": [], "minio_files": [minio_file]
        }))
        .await?;
    client.generate_title(second_id, "What is the cat called?", &answer).await?;
    client.conversation_list().await?;

    // Re-open the first conversation: `data[0].message`, the id as a string, user text as a string,
    // assistant units ending in `final_answer`; then like the answer by the id the reload gave.
    let history = client.get(&format!("/api/conversation/{conversation_id}")).await?;
    assert_eq!(history["code"], 0, "{history}");
    let record = &history["data"][0];
    assert_eq!(record["conversation_id"], conversation_id.to_string(), "{history}");
    assert!(record["create_time"].is_i64(), "{history}");
    let messages = record["message"].as_array().expect("data[0].message");
    assert_eq!(messages.len(), 2, "{history}");
    assert_eq!((messages[0]["role"].as_str(), messages[0]["message"].as_str()), (Some("user"), Some(question)));
    assert_eq!(messages[1]["role"], "assistant");
    let units = messages[1]["message"].as_array().expect("assistant units");
    assert_eq!(units.last().map(|unit| &unit["type"]), Some(&json!("final_answer")), "{history}");
    let message_id = messages[1]["message_id"].as_i64().expect("message_id");
    let liked = client
        .ok(
            Method::POST,
            "/api/conversation/message/update_opinion",
            &json!({"message_id": message_id, "opinion": "Y"}),
        )
        .await?;
    assert_eq!((liked["code"].as_i64(), liked["data"].as_bool()), (Some(0), Some(true)), "{liked}");
    let history = client.get(&format!("/api/conversation/{conversation_id}")).await?;
    assert_eq!(history["data"][0]["message"][1]["opinion_flag"], "Y");

    // Re-open the second: the user message keeps its attachment, whose link the client then asks for.
    let history = client.get(&format!("/api/conversation/{second_id}")).await?;
    let user = &history["data"][0]["message"][0];
    let attachments = user["minio_files"].as_array().expect("minio_files on the user message");
    assert_eq!(attachments[0]["object_name"], object_name.as_str(), "{history}");
    let link = client.get(&format!("/api/file/storage/{object_name}")).await?;
    assert_eq!(link["success"], true, "{link}");
    let url = link["url"].as_str().expect("url");
    let url = if url.starts_with('/') { format!("{}{url}", client.proxy_url) } else { url.to_owned() };
    let downloaded = client.http.get(url).send().await?;
    assert_eq!(downloaded.status(), 200);
    assert_eq!(downloaded.bytes().await?.as_ref(), note.as_slice());
    Ok(())
}

/// The model settings page, the knowledge base page, creating a base and uploading into it, with the
/// README's flag.
#[tokio::test]
async fn nexent_clients_settings_and_knowledge_sequences_through_its_proxy() -> anyhow::Result<()> {
    let client = NexentClient::start(&["--allowed-origins", "{origin}"]).await?;

    // Model settings page.
    let engine = client.get("/api/me/healthcheck").await?;
    assert_eq!((engine["code"].as_i64(), engine["data"]["status"].as_str()), (Some(200), Some("Connected")));
    let indices = client.get("/api/indices?include_stats=true").await?;
    assert!(indices["indices_info"].is_array(), "{indices}");
    let official = client.get("/api/me/model/list").await?;
    assert_eq!(official["code"], 200, "{official}");
    for item in official["data"].as_array().expect("data") {
        assert!(item["id"].is_string() && item["type"].is_string(), "the client reads id and type: {item}");
    }
    let custom = client.get("/api/model/list").await?;
    assert_eq!(custom["code"], 200, "{custom}");
    let models = custom["data"].as_array().expect("data");
    let nexent_statuses = ["未检测", "检测中", "可用", "不可用"];
    for model in models {
        let status = model["connect_status"].as_str().unwrap_or_default();
        assert!(nexent_statuses.contains(&status), "the client colours only its own constants: {model}");
    }
    let llm = models.iter().find(|model| model["model_type"] == "llm").expect("a chat model is listed");
    let llm_name = llm["model_name"].as_str().expect("model_name");
    // The check button: the client sends POST (Nexent's backend answered GET only); both work here.
    for method in [Method::GET, Method::POST] {
        let path = format!("/api/model/healthcheck?model_name={}", urlencode(llm_name));
        let (status, checked) = client.send(method.clone(), &path, &json!({})).await?;
        assert_eq!((status, checked["code"].as_i64()), (200, Some(200)), "{method}: {checked}");
        assert_eq!(checked["data"]["connect_status"], "可用", "{checked}");
        assert_eq!(checked["data"]["connectivity"], true, "{checked}");
    }
    let updated = client
        .ok(
            Method::POST,
            "/api/model/update_connect_status",
            &json!({"model_name": llm_name, "connect_status": "可用"}),
        )
        .await?;
    assert_eq!((updated["code"].as_i64(), updated["data"]["connect_status"].as_str()), (Some(200), Some("可用")));
    // Next: the client saves its whole configuration, in its own spelling.
    let config = json!({
        "app": {"appName": "Orchard", "appDescription": "Apples", "iconType": "preset",
                "customIconUrl": null, "avatarUri": null},
        "models": {
            "llm": {"modelName": llm_name, "displayName": llm["display_name"], "apiConfig": {"apiKey": "", "modelUrl": ""}},
            "llmSecondary": {"modelName": "", "displayName": "", "apiConfig": {"apiKey": "", "modelUrl": ""}},
            "embedding": {"modelName": "", "displayName": "", "apiConfig": {"apiKey": "", "modelUrl": ""}},
            "rerank": {"modelName": "", "displayName": ""},
            "vlm": {"modelName": "", "displayName": ""},
            "stt": {"modelName": "", "displayName": ""},
            "tts": {"modelName": "", "displayName": ""}
        },
        "data": {"selectedKbNames": [], "selectedKbModels": [], "selectedKbSources": []}
    });
    let saved = client.ok(Method::POST, "/api/config/save_config", &config).await?;
    assert_eq!(saved["status"], "saved", "{saved}");
    let loaded = client.get("/api/config/load_config").await?;
    assert_eq!(loaded["config"]["app"]["appName"], "Orchard", "{loaded}");
    assert_eq!(loaded["config"]["models"]["llm"]["modelName"], llm_name, "{loaded}");

    // Knowledge base page, then creating a base as its form does.
    client.get("/api/me/healthcheck").await?;
    let created = client
        .ok(
            Method::POST,
            "/api/indices/orchard",
            &json!({"name": "orchard", "description": "Apple notes", "embeddingModel": ""}),
        )
        .await?;
    assert_eq!(created["success"], true, "createKnowledgeBase reads success: {created}");

    // Upload into it, one request per file, then health, the list and the base's files until done.
    let form = Form::new()
        .text("index_name", "orchard")
        .part("file", Part::bytes(b"Bramley apples are best for baking.".to_vec()).file_name("apples.txt"));
    let (status, uploaded) = client.multipart("/api/file/upload", form).await?;
    assert_eq!(status, 201, "{uploaded}");
    assert_eq!(uploaded["uploaded_files"], json!(["apples.txt"]), "{uploaded}");
    let health = client.get("/api/indices/health").await?;
    assert_eq!((health["status"].as_str(), health["elasticsearch"].as_str()), (Some("healthy"), Some("connected")));
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let file = loop {
        let info = client.get("/api/indices/orchard/info?include_files=true").await?;
        let file = info["files"].as_array().and_then(|files| files.first()).cloned().unwrap_or(Value::Null);
        if file["status"] == "COMPLETED" {
            break file;
        }
        assert!(std::time::Instant::now() < deadline, "not indexed: {info}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(file["path_or_url"].is_string() && file["file"] == "apples.txt", "{file}");
    let indices = client.get("/api/indices?include_stats=true").await?;
    let entry = indices["indices_info"]
        .as_array()
        .and_then(|infos| infos.iter().find(|info| info["name"] == "orchard"))
        .cloned()
        .expect("orchard is listed");
    let base_info = &entry["stats"]["base_info"];
    assert_eq!(base_info["doc_count"], 1, "{entry}");
    assert!(base_info["chunk_count"].as_i64().is_some_and(|count| count >= 1), "{entry}");
    assert!(base_info["creation_date"].is_string() && base_info["embedding_model"].is_string(), "{entry}");

    // Deleting the document, then the base, as the page's buttons do.
    let path_or_url = urlencode(file["path_or_url"].as_str().unwrap_or_default());
    let deleted = client
        .ok(Method::DELETE, &format!("/api/indices/orchard/documents?path_or_url={path_or_url}"), &json!({}))
        .await?;
    assert_eq!(deleted["status"], "success", "{deleted}");
    let deleted = client.ok(Method::DELETE, "/api/indices/orchard", &json!({})).await?;
    assert_eq!(deleted["status"], "success", "deleteKnowledgeBase reads status: {deleted}");
    Ok(())
}

/// No flags: every read-only call of the sequences works through the proxy (the browser sends no Origin
/// on same-origin GETs), and a state-changing call is refused with a message naming the flag.
#[tokio::test]
async fn nexent_clients_read_only_calls_need_no_flag() -> anyhow::Result<()> {
    let client = NexentClient::start(&[]).await?;
    let conversation_id = {
        let (_, created) = client.server.send_json(Method::PUT, "/api/conversation/create", &json!({})).await?;
        created["data"]["conversation_id"].as_i64().expect("id")
    };
    for path in [
        "/api/conversation/list".to_owned(),
        "/api/config/load_config".to_owned(),
        format!("/api/conversation/{conversation_id}"),
        "/api/me/healthcheck".to_owned(),
        "/api/indices?include_stats=true".to_owned(),
        "/api/me/model/list".to_owned(),
        "/api/model/list".to_owned(),
        "/api/indices/health".to_owned(),
        "/api/file/storage?prefix=&limit=100".to_owned(),
    ] {
        client.get(&path).await?;
    }
    let (status, refused) = client.send(Method::PUT, "/api/conversation/create", &json!({})).await?;
    assert_eq!(status, 403, "{refused}");
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(message.contains(&format!("--allowed-origins {}", client.origin)), "{message}");
    Ok(())
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}
