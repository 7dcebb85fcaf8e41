//! Config Sync: save, restart, load; the dotenv file uses Nexent's variable names; reload_config re-reads
//! a hand-edited file.

use nexent_e2e::NexentServer;
use serde_json::json;

fn sample_config() -> serde_json::Value {
    json!({
        "app": {"appName": "Lab Assistant", "appDescription": "Answers from our lab notes", "iconType": "custom",
                "customIconUrl": "https://icons.example/lab.png", "avatarUri": null},
        "models": {
            "llm": {"modelName": "Qwen/Qwen2.5-Coder-0.5B-Instruct", "displayName": "Qwen small",
                    "apiConfig": {"apiKey": "sk-local", "modelUrl": "http://127.0.0.1:5010/v1"}},
            "llmSecondary": {"modelName": "", "displayName": "", "apiConfig": null},
            "embedding": {"modelName": "all-MiniLM-L6-v2", "displayName": "MiniLM", "apiConfig": null, "dimension": 384},
            "rerank": {"modelName": "", "displayName": ""},
            "vlm": {"modelName": "", "displayName": ""},
            "stt": {"modelName": "whisper-tiny.en", "displayName": "Whisper"},
            "tts": {"modelName": "piper-joe", "displayName": "Joe"}
        },
        "data": {"selectedKbNames": ["lab notes", "manuals"], "selectedKbModels": ["all-MiniLM-L6-v2"], "selectedKbSources": ["local"]}
    })
}

#[tokio::test]
async fn saved_config_survives_a_restart() -> anyhow::Result<()> {
    let mut server = NexentServer::start()?;
    let (status, body) = server.post_json("/api/config/save_config", &sample_config()).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"message": "Configuration saved successfully", "status": "saved"}));

    let dotenv = std::fs::read_to_string(server.data_dir().join(".env"))?;
    for line in [
        "APP_NAME=\"Lab Assistant\"",
        "LLM_MODEL_NAME=\"Qwen/Qwen2.5-Coder-0.5B-Instruct\"",
        "EMBEDDING_DIMENSION=\"384\"",
        "SELECTED_KB_NAMES=\"[\\\"lab notes\\\",\\\"manuals\\\"]\"",
    ] {
        assert!(dotenv.contains(line), "{line} not in:\n{dotenv}");
    }

    server.restart()?;
    let (status, loaded) = server.get_json("/api/config/load_config").await?;
    assert_eq!(status, 200);
    let config = &loaded["config"];
    assert_eq!(config["app"]["name"], "Lab Assistant");
    assert_eq!(config["app"]["description"], "Answers from our lab notes");
    assert_eq!(config["app"]["icon"]["type"], "custom");
    assert_eq!(config["app"]["icon"]["customUrl"], "https://icons.example/lab.png");
    assert_eq!(config["models"]["llm"]["name"], "Qwen/Qwen2.5-Coder-0.5B-Instruct");
    assert_eq!(config["models"]["llm"]["modelName"], "Qwen/Qwen2.5-Coder-0.5B-Instruct");
    assert_eq!(config["models"]["llm"]["displayName"], "Qwen small");
    // Keys leave the server masked ("sk-local" is short enough to be all stars); the file keeps it.
    assert_eq!(config["models"]["llm"]["apiConfig"]["apiKey"], "********");
    assert!(!loaded.to_string().contains("sk-local"), "the key left the server: {loaded}");
    // Saving back what was loaded keeps the stored key.
    let (status, body) = server.post_json("/api/config/save_config", &config.clone()).await?;
    assert_eq!(status, 200, "{body}");
    assert!(std::fs::read_to_string(server.data_dir().join(".env"))?.contains("LLM_API_KEY=\"sk-local\""));
    assert_eq!(config["models"]["llm"]["apiConfig"]["modelUrl"], "http://127.0.0.1:5010/v1");
    assert_eq!(config["models"]["embedding"]["dimension"], 384);
    assert_eq!(config["models"]["secondaryLlm"], config["models"]["llmSecondary"]);
    assert_eq!(config["models"]["tts"]["displayName"], "Joe");
    assert_eq!(config["data"]["selectedKbNames"], json!(["lab notes", "manuals"]));
    assert_eq!(config["data"]["selectedKbSources"], json!(["local"]));

    let (_, selected) = server.get_json("/api/config/get_config/selected_knowledge_base").await?;
    assert_eq!(selected, json!({"kb_names": ["lab notes", "manuals"]}));

    // What load_config returns can be saved back as it is (it carries both spellings of some fields), as
    // the UI does when it changes one setting.
    let (_, loaded) = server.get_json("/api/config/load_config").await?;
    let mut config = loaded["config"].clone();
    config["data"]["selectedKbNames"] = json!(["manuals"]);
    let (status, body) = server.post_json("/api/config/save_config", &config).await?;
    assert_eq!(status, 200, "{body}");
    let (_, reloaded) = server.get_json("/api/config/load_config").await?;
    assert_eq!(reloaded["config"]["models"], loaded["config"]["models"], "the models are kept");
    assert_eq!(reloaded["config"]["data"]["selectedKbNames"], json!(["manuals"]));
    Ok(())
}

#[tokio::test]
async fn defaults_before_anything_is_saved() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let (status, loaded) = server.get_json("/api/config/load_config").await?;
    assert_eq!(status, 200);
    assert_eq!(loaded["config"]["app"]["name"], "Nexent Local");
    assert_eq!(loaded["config"]["data"]["selectedKbNames"], json!([]));
    Ok(())
}

#[tokio::test]
async fn an_incomplete_config_is_422_and_changes_nothing() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    let (status, body) = server.post_json("/api/config/save_config", &json!({"app": {"appName": "x"}})).await?;
    assert_eq!(status, 422, "{body}");
    assert!(!server.data_dir().join(".env").exists());
    Ok(())
}

#[tokio::test]
async fn reload_config_reads_a_hand_edited_file() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    std::fs::write(server.data_dir().join(".env"), "APP_NAME='Edited by hand'\nSELECTED_KB_NAMES='[\"kb\"]'\n")?;
    let (status, body) = server.post_json("/api/agent/reload_config", &json!({})).await?;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"status": "success", "message": "Configuration reloaded"}));
    let (_, loaded) = server.get_json("/api/config/load_config").await?;
    assert_eq!(loaded["config"]["app"]["name"], "Edited by hand");
    assert_eq!(loaded["config"]["data"]["selectedKbNames"], json!(["kb"]));
    Ok(())
}

#[tokio::test]
async fn the_seed_documents_spelling_round_trips_too() -> anyhow::Result<()> {
    let server = NexentServer::start()?;
    // save_config as the seed document writes it: `name`, `description`, `icon: {type, avatarUri, customUrl}`.
    let seed = json!({
        "app": {"name": "Seed Assistant", "description": "From the seed's example",
                "icon": {"type": "custom", "avatarUri": "avatar-1", "customUrl": "https://icons.example/seed.png"}},
        "models": {"llm": {"name": "Qwen/Qwen2.5", "displayName": "Qwen", "apiConfig": {"apiKey": "", "modelUrl": ""}}},
        "data": {"selectedKbNames": ["seed kb"], "selectedKbModels": [], "selectedKbSources": []}
    });
    let (status, body) = server.post_json("/api/config/save_config", &seed).await?;
    assert_eq!(status, 200, "{body}");
    let (_, loaded) = server.get_json("/api/config/load_config").await?;
    let app = &loaded["config"]["app"];
    for (seed_field, client_field, value) in [
        (&app["name"], &app["appName"], "Seed Assistant"),
        (&app["description"], &app["appDescription"], "From the seed's example"),
        (&app["icon"]["type"], &app["iconType"], "custom"),
        (&app["icon"]["customUrl"], &app["customIconUrl"], "https://icons.example/seed.png"),
        (&app["icon"]["avatarUri"], &app["avatarUri"], "avatar-1"),
    ] {
        assert_eq!((seed_field, client_field), (&json!(value), &json!(value)), "{app}");
    }
    assert_eq!(loaded["config"]["models"]["llm"]["modelName"], "Qwen/Qwen2.5");
    // Neither spelling of the name: 422, nothing changed.
    let (status, body) = server
        .post_json("/api/config/save_config", &json!({"app": {"description": "x"}, "models": {}, "data": {}}))
        .await?;
    assert_eq!(status, 422, "{body}");
    let (_, again) = server.get_json("/api/config/load_config").await?;
    assert_eq!(again["config"]["app"]["name"], "Seed Assistant");
    Ok(())
}
