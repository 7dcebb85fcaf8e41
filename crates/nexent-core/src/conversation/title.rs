//! Conversation titles from the chat model (Nexent's `generate_title`): its prompt (English, with the rule
//! that the title's language follows the conversation's), then the reply cleaned into one short line.
//! Like Nexent's later versions, the title is made from the first question: small local models asked to
//! title a whole exchange tend to repeat its answer instead. Decoding is greedy, so a title is reproducible.

use crate::chat::{ChatError, ChatMessage, ChatModel, ChatRequest, Role, collect};

/// Longest title kept (Nexent's column is varchar(100)).
pub const MAX_TITLE_CHARS: usize = 100;

const SYSTEM_PROMPT: &str = "You generate a concise, accurate title for a conversation, no more than 12 words, \
that highlights its core theme. For a question, summarise its essence (\"How to solve XX issue?\"); for \
knowledge sharing, highlight the key point. Avoid generic words such as \"Q&A\" or \"Consultation\". The title \
must be in the same language as the conversation: a Chinese conversation gets a Chinese title. Examples: a \
question about removing duplicates from a Python list → \"Python List Deduplication Techniques\"; \"你好\" → \
\"你好\". Output only the title.";

/// The first question under Nexent's heading.
pub fn title_prompt(history: &[(String, String)]) -> String {
    let question =
        history.iter().find(|(role, text)| role == "user" && !text.trim().is_empty()).map(|(_, text)| text.as_str());
    format!(
        "Please generate a concise title based on the following question:\n\n### User Question：\n{}\n\nTitle：",
        question.unwrap_or_default()
    )
}

/// The first line of the reply without quotes, a "Title:" prefix or trailing punctuation, capped.
pub fn clean_title(reply: &str) -> String {
    let line = reply.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or_default();
    let mut title = line;
    for prefix in ["Title:", "Title：", "title:", "标题：", "标题:"] {
        title = title.strip_prefix(prefix).unwrap_or(title).trim();
    }
    let quote = |c: char| matches!(c, '"' | '\'' | '“' | '”' | '《' | '》' | '*' | '#' | '`') || c.is_whitespace();
    // A full stop ends a sentence, not a title (".NET" keeps its leading dot).
    let title = title.trim_start_matches(quote).trim_end_matches(|c: char| quote(c) || matches!(c, '.' | '。'));
    title.chars().take(MAX_TITLE_CHARS).collect()
}

/// A title for `history` (`(role, content)` pairs); falls back to the first question when the model's reply
/// is empty.
pub async fn generate_title(chat: &dyn ChatModel, history: &[(String, String)]) -> Result<String, ChatError> {
    let mut request = ChatRequest::new(vec![
        ChatMessage::new(Role::System, SYSTEM_PROMPT),
        ChatMessage::new(Role::User, title_prompt(history)),
    ]);
    request.max_tokens = Some(24);
    request.temperature = Some(0.0);
    request.top_p = Some(0.95);
    request.stop = vec!["\n\n".into()];
    let answer = collect(chat.chat(request)?).await?;
    let title = clean_title(&answer.text);
    if !title.is_empty() {
        return Ok(title);
    }
    let question = history.iter().find(|(role, _)| role == "user").map(|(_, text)| text.as_str()).unwrap_or("");
    Ok(clean_title(question))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_follows_nexent_and_replies_are_cleaned() {
        let history = vec![
            ("user".to_owned(), "How do I dedupe a list?".to_owned()),
            ("assistant".to_owned(), "Use set().".to_owned()),
        ];
        let prompt = title_prompt(&history);
        assert!(prompt.contains("\n### User Question：\nHow do I dedupe a list?\n"));
        assert!(!prompt.contains("Use set()") && prompt.ends_with("Title："));
        assert_eq!(clean_title("Title: \"Python List Deduplication\".\nMore"), "Python List Deduplication");
        assert_eq!(clean_title("\n  《列表去重》。"), "列表去重");
        assert_eq!(clean_title(&"x".repeat(300)).len(), MAX_TITLE_CHARS);
    }
}
