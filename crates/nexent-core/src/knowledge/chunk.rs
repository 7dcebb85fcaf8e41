//! The chunk: one indexed piece of a document, with Nexent's fields (nexent-api.md §3.1), and how a
//! Data Process result (`{text, metadata, source, source_type}`) becomes one (§3.2).

use serde_json::Value;

/// A chunk as stored and returned (never with its embedding).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Chunk {
    pub id: String,
    pub title: String,
    pub filename: String,
    pub path_or_url: String,
    pub source_type: String,
    pub language: String,
    pub author: String,
    pub date: String,
    pub content: String,
    pub process_source: String,
    pub embedding_model_name: String,
    pub file_size: u64,
    pub create_time: String,
    pub languages: Vec<String>,
}

/// What the chunk was processed by when the result does not say.
pub const DEFAULT_PROCESS_SOURCE: &str = "Nexent Local";

/// Builds chunk `index` of task `task_id` from a Data Process result, with Nexent's defaults.
/// `now` is the ISO timestamp (`YYYY-mm-ddTHH:MM:SS`) used where the metadata gives no date.
pub fn chunk_from_result(task_id: &str, index: usize, result: &Value, embedding_model_name: &str, now: &str) -> Chunk {
    let metadata = result.get("metadata").and_then(Value::as_object);
    let meta_text = |key: &str| {
        metadata.and_then(|metadata| metadata.get(key)).and_then(|value| match value {
            Value::String(text) if !text.is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        })
    };
    let source = result.get("source").and_then(Value::as_str).unwrap_or("").to_owned();
    let path_or_url = meta_text("path_or_url").unwrap_or_else(|| source.clone());
    let filename = meta_text("filename")
        .or_else(|| {
            let base = path_or_url.rsplit(['/', '\\']).next().unwrap_or("");
            (!base.is_empty()).then(|| base.to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let languages: Vec<String> = metadata
        .and_then(|metadata| metadata.get("languages"))
        .and_then(Value::as_array)
        .map(|items| items.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default();
    let file_size = metadata
        .and_then(|metadata| metadata.get("file_size"))
        .and_then(|value| {
            value
                .as_u64()
                .or_else(|| value.as_f64().map(|size| size.max(0.0) as u64))
                .or_else(|| value.as_str()?.parse().ok())
        })
        .unwrap_or(0);
    let create_time = match metadata.and_then(|metadata| metadata.get("creation_date")) {
        Some(Value::Number(seconds)) => {
            seconds.as_f64().and_then(epoch_seconds_to_iso).unwrap_or_else(|| now.to_owned())
        }
        Some(Value::String(text)) if !text.is_empty() => text.clone(),
        _ => now.to_owned(),
    };
    Chunk {
        id: format!("{task_id}_{index}"),
        title: meta_text("title").unwrap_or_else(|| filename.clone()),
        filename,
        path_or_url,
        source_type: result.get("source_type").and_then(Value::as_str).unwrap_or("file").to_owned(),
        language: languages.first().cloned().unwrap_or_else(|| "null".to_owned()),
        author: meta_text("author").unwrap_or_else(|| "null".to_owned()),
        date: meta_text("date").unwrap_or_else(|| now.to_owned()),
        content: result.get("text").and_then(Value::as_str).unwrap_or("").to_owned(),
        process_source: meta_text("process_source").unwrap_or_else(|| DEFAULT_PROCESS_SOURCE.to_owned()),
        embedding_model_name: embedding_model_name.to_owned(),
        file_size,
        create_time,
        languages,
    }
}

fn epoch_seconds_to_iso(seconds: f64) -> Option<String> {
    let datetime = chrono::DateTime::from_timestamp(seconds as i64, 0)?;
    Some(datetime.format("%Y-%m-%dT%H:%M:%S").to_string())
}

/// Now as Nexent writes dates: `YYYY-mm-ddTHH:MM:SS`, UTC.
pub fn now_iso() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn follows_nexents_defaults() {
        let chunk = chunk_from_result(
            "t1",
            3,
            &json!({"text": "body", "source": "/docs/a.txt"}),
            "minilm",
            "2025-01-01T00:00:00",
        );
        assert_eq!(chunk.id, "t1_3");
        assert_eq!(chunk.filename, "a.txt");
        assert_eq!(chunk.title, "a.txt");
        assert_eq!(chunk.path_or_url, "/docs/a.txt");
        assert_eq!((chunk.language.as_str(), chunk.author.as_str()), ("null", "null"));
        assert_eq!(chunk.source_type, "file");
        assert_eq!(chunk.create_time, "2025-01-01T00:00:00");
    }

    #[test]
    fn metadata_wins_over_defaults() {
        let result = json!({"text": "x", "source": "s", "source_type": "url", "metadata": {
            "title": "T", "filename": "f.pdf", "languages": ["en"], "author": "A", "file_size": 2048,
            "creation_date": 1_700_000_000, "date": "2024-01-02"}});
        let chunk = chunk_from_result("t", 0, &result, "m", "now");
        assert_eq!((chunk.title.as_str(), chunk.filename.as_str(), chunk.language.as_str()), ("T", "f.pdf", "en"));
        assert_eq!(chunk.file_size, 2048);
        assert_eq!(chunk.create_time, "2023-11-14T22:13:20");
        assert_eq!(chunk.source_type, "url");
    }
}
