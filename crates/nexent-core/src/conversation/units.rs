//! Turning an agent's stream of `{type, content}` messages into what a saved assistant message holds
//! (nexent-api.md §2.4): consecutive messages of one type merge into a unit; `search_content` and
//! `picture_web` become source rows; `final_answer` (or `string`) becomes the message's content.
//!
//! Pure logic, no database: [`super::ConversationStore`] persists what [`split_assistant_stream`] returns.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One message of an agent run as streamed to the client: Nexent's `{"type", "content"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamUnit {
    #[serde(rename = "type")]
    pub kind: String,
    pub content: String,
}

impl StreamUnit {
    pub fn new(kind: impl Into<String>, content: impl Into<String>) -> Self {
        Self { kind: kind.into(), content: content.into() }
    }
}

/// Unit types that carry the answer itself rather than a step of the run.
pub const FINAL_ANSWER_TYPE: &str = "final_answer";
pub const PLAIN_STRING_TYPE: &str = "string";
pub const SEARCH_CONTENT_TYPE: &str = "search_content";
pub const PICTURE_WEB_TYPE: &str = "picture_web";

/// A search result cited by a message (a row of `conversation_source_search`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SearchSource {
    pub title: Option<String>,
    pub text: Option<String>,
    pub source_type: Option<String>,
    pub url: Option<String>,
    pub published_date: Option<String>,
    pub score_overall: Option<f64>,
    pub score_accurate: Option<f64>,
    pub score_semantic: Option<f64>,
    pub cite_index: Option<i64>,
    pub search_type: Option<String>,
    pub tool_sign: Option<String>,
}

/// An image cited by a message (a row of `conversation_source_image`).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageSource {
    pub url: String,
    pub cite_index: Option<i64>,
    pub search_type: Option<String>,
}

/// What an assistant message is stored as.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AssistantRecord {
    /// The final answer (content of the last `final_answer`/`string` unit), empty when the run produced none.
    pub content: String,
    /// Step units in stream order, merged, without the answer and source units.
    pub units: Vec<StreamUnit>,
    pub searches: Vec<SearchSource>,
    pub images: Vec<ImageSource>,
}

/// Merges consecutive messages of the same type by concatenating their contents.
pub fn merge_consecutive_units(stream: impl IntoIterator<Item = StreamUnit>) -> Vec<StreamUnit> {
    let mut merged: Vec<StreamUnit> = Vec::new();
    for unit in stream {
        match merged.last_mut() {
            Some(last) if last.kind == unit.kind => last.content.push_str(&unit.content),
            _ => merged.push(unit),
        }
    }
    merged
}

/// Splits an agent stream into the stored form of an assistant message.
///
/// A `search_content` or `picture_web` unit whose content is not the JSON Nexent's tools emit is kept as an
/// ordinary unit, so nothing the client saw is lost.
pub fn split_assistant_stream(stream: impl IntoIterator<Item = StreamUnit>) -> AssistantRecord {
    let mut record = AssistantRecord::default();
    for unit in merge_consecutive_units(stream) {
        match unit.kind.as_str() {
            FINAL_ANSWER_TYPE | PLAIN_STRING_TYPE => record.content = unit.content,
            // Merging may have concatenated several JSON lists; parse them one after another.
            SEARCH_CONTENT_TYPE => match parse_search_results(&unit.content) {
                Some(searches) => record.searches.extend(searches),
                None => record.units.push(unit),
            },
            PICTURE_WEB_TYPE => match parse_picture_urls(&unit.content) {
                Some(images) => record.images.extend(images),
                None => record.units.push(unit),
            },
            _ => record.units.push(unit),
        }
    }
    record
}

fn parse_json_values(content: &str) -> Option<Vec<Value>> {
    let values: Result<Vec<Value>, _> = serde_json::Deserializer::from_str(content).into_iter::<Value>().collect();
    values.ok().filter(|values| !values.is_empty())
}

fn parse_search_results(content: &str) -> Option<Vec<SearchSource>> {
    let mut searches = Vec::new();
    for value in parse_json_values(content)? {
        let items = match value {
            Value::Array(items) => items,
            object @ Value::Object(_) => vec![object],
            _ => return None,
        };
        for item in items {
            searches.push(search_source_from_json(&item)?);
        }
    }
    Some(searches)
}

fn search_source_from_json(item: &Value) -> Option<SearchSource> {
    let object = item.as_object()?;
    let text_field = |key: &str| object.get(key).and_then(value_as_text);
    let details = object.get("score_details").and_then(Value::as_object);
    let detail = |keys: &[&str]| {
        details.and_then(|details| keys.iter().find_map(|key| details.get(*key).and_then(value_as_number)))
    };
    Some(SearchSource {
        title: text_field("title"),
        text: text_field("text"),
        source_type: text_field("source_type"),
        url: text_field("url"),
        published_date: text_field("published_date"),
        score_overall: object.get("score").and_then(value_as_number),
        // Nexent's KB tool writes `accurate` but its saver read `accuracy` and lost the score: accept both.
        score_accurate: detail(&["accurate", "accuracy"]),
        score_semantic: detail(&["semantic"]),
        cite_index: object.get("cite_index").and_then(value_as_number).map(|index| index as i64),
        search_type: text_field("search_type"),
        tool_sign: text_field("tool_sign"),
    })
}

fn parse_picture_urls(content: &str) -> Option<Vec<ImageSource>> {
    let mut images = Vec::new();
    for value in parse_json_values(content)? {
        let urls = value.get("images_url")?.as_array()?;
        for url in urls {
            images.push(ImageSource { url: url.as_str()?.to_owned(), cite_index: None, search_type: None });
        }
    }
    Some(images)
}

fn value_as_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(text) => Some(text.clone()),
        other => Some(other.to_string()),
    }
}

fn value_as_number(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_only_consecutive_units_of_one_type() {
        let merged = merge_consecutive_units([
            StreamUnit::new("model_output_thinking", "Hel"),
            StreamUnit::new("model_output_thinking", "lo"),
            StreamUnit::new("step_count", "1"),
            StreamUnit::new("model_output_thinking", "!"),
        ]);
        assert_eq!(
            merged,
            vec![
                StreamUnit::new("model_output_thinking", "Hello"),
                StreamUnit::new("step_count", "1"),
                StreamUnit::new("model_output_thinking", "!"),
            ]
        );
    }

    #[test]
    fn splits_answer_sources_and_steps() {
        let search = r#"[{"title":"Doc","text":"body","source_type":"file","url":"/a.txt","score":0.9,
            "score_details":{"accurate":0.5,"semantic":0.8},"cite_index":0,"search_type":"knowledge_base_search","tool_sign":"a"}]"#;
        let record = split_assistant_stream([
            StreamUnit::new("step_count", "\n**Step 1** \n"),
            StreamUnit::new("search_content", search),
            StreamUnit::new("picture_web", r#"{"images_url":["https://example.com/a.png"]}"#),
            StreamUnit::new("final_answer", "\nThe answer"),
            StreamUnit::new("final_answer", " [[a0]]"),
        ]);
        assert_eq!(record.content, "\nThe answer [[a0]]");
        assert_eq!(record.units, vec![StreamUnit::new("step_count", "\n**Step 1** \n")]);
        assert_eq!(record.searches.len(), 1);
        let source = &record.searches[0];
        assert_eq!(source.score_accurate, Some(0.5));
        assert_eq!(source.score_semantic, Some(0.8));
        assert_eq!(source.cite_index, Some(0));
        assert_eq!(source.tool_sign.as_deref(), Some("a"));
        assert_eq!(record.images[0].url, "https://example.com/a.png");
    }

    #[test]
    fn two_search_lists_in_a_row_both_become_sources() {
        let record = split_assistant_stream([
            StreamUnit::new("search_content", r#"[{"title":"A","score":""}]"#),
            StreamUnit::new("search_content", r#"[{"title":"B","score_details":{"accuracy":"0.25"}}]"#),
        ]);
        let titles: Vec<_> = record.searches.iter().map(|s| s.title.clone().unwrap_or_default()).collect();
        assert_eq!(titles, ["A", "B"]);
        assert_eq!(record.searches[0].score_overall, None);
        assert_eq!(record.searches[1].score_accurate, Some(0.25));
    }

    #[test]
    fn malformed_source_json_is_kept_as_a_unit() {
        let record = split_assistant_stream([StreamUnit::new("search_content", "not json")]);
        assert!(record.searches.is_empty());
        assert_eq!(record.units, vec![StreamUnit::new("search_content", "not json")]);
    }
}
