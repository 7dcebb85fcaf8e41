//! A GBNF grammar (llama.cpp's grammar format) for one call of the given tools:
//! `{"name": "<one of the tools>", "arguments": <an object that fits that tool's JSON Schema>}`.
//!
//! The engine switches to it the moment the model starts a call, so a small model cannot name a tool that
//! does not exist, misspell `arguments`, leave out a required parameter or write broken JSON. The schema
//! subset covers what tool definitions use: objects with properties (required ones in order, optional ones
//! after), strings (with `enum`), numbers, integers, booleans, null, arrays, `anyOf`/`oneOf`, `const`;
//! anything else is any JSON value. Whitespace and strings (256 characters) are bounded so a small model
//! cannot spin on newlines or ramble inside an argument.

use std::collections::BTreeMap;
use std::fmt::Write;

use nexent_core::chat::ToolDefinition;
use serde_json::Value;

/// The grammar of one call of any of `tools`; its root rule is `root`.
pub fn tool_call_grammar(tools: &[ToolDefinition]) -> String {
    let mut builder = Builder::default();
    let alternatives: Vec<String> = tools
        .iter()
        .enumerate()
        .map(|(index, tool)| {
            let arguments = builder.schema(&format!("tool{index}-args"), &tool.parameters, 0);
            format!(
                "{} space \",\" space \"\\\"arguments\\\"\" space \":\" space {arguments}",
                literal(&Value::String(tool.name.clone()).to_string())
            )
        })
        .collect();
    let mut grammar = String::new();
    let _ = writeln!(grammar, "root ::= \"{{\" space \"\\\"name\\\"\" space \":\" space call-body space \"}}\"");
    let _ = writeln!(
        grammar,
        "call-body ::= {}",
        if alternatives.is_empty() { "\"\\\"\\\"\"".into() } else { alternatives.join(" | ") }
    );
    for (name, body) in &builder.rules {
        let _ = writeln!(grammar, "{name} ::= {body}");
    }
    grammar.push_str(COMMON_RULES);
    grammar
}

const COMMON_RULES: &str = r#"space ::= | " " | "\n" [ \t]{0,12}
string ::= "\"" char{0,256} "\""
char ::= [^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
integer ::= "-"? ("0" | [1-9] [0-9]{0,15})
number ::= integer ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,4})?
boolean ::= "true" | "false"
null ::= "null"
value ::= object | array | string | number | boolean | null
object ::= "{" space (string space ":" space value (space "," space string space ":" space value)*)? space "}"
array ::= "[" space (value (space "," space value)*)? space "]"
"#;

/// Nesting deeper than this is any JSON value: tool schemas are shallow, and recursion must end.
const MAX_DEPTH: usize = 6;

#[derive(Default)]
struct Builder {
    rules: BTreeMap<String, String>,
}

impl Builder {
    /// Returns a grammar expression for values of `schema`, adding the rules it needs under `name`.
    fn schema(&mut self, name: &str, schema: &Value, depth: usize) -> String {
        if depth > MAX_DEPTH {
            return "value".into();
        }
        let Some(object) = schema.as_object() else { return "value".into() };
        if let Some(constant) = object.get("const") {
            return literal(&constant.to_string());
        }
        if let Some(Value::Array(choices)) =
            object.get("enum").filter(|choices| choices.as_array().is_some_and(|c| !c.is_empty()))
        {
            return self
                .rule(name, choices.iter().map(|choice| literal(&choice.to_string())).collect::<Vec<_>>().join(" | "));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(options)) = object.get(key) {
                let alternatives: Vec<String> = options
                    .iter()
                    .enumerate()
                    .map(|(index, option)| self.schema(&format!("{name}-{index}"), option, depth + 1))
                    .collect();
                if !alternatives.is_empty() {
                    return self.rule(name, alternatives.join(" | "));
                }
            }
        }
        match object.get("type") {
            Some(Value::String(kind)) => self.typed(name, kind, object, depth),
            // `"type": ["string", "null"]`
            Some(Value::Array(kinds)) => {
                let alternatives: Vec<String> = kinds
                    .iter()
                    .filter_map(Value::as_str)
                    .enumerate()
                    .map(|(index, kind)| self.typed(&format!("{name}-{index}"), kind, object, depth))
                    .collect();
                if alternatives.is_empty() { "value".into() } else { self.rule(name, alternatives.join(" | ")) }
            }
            _ if object.contains_key("properties") => self.typed(name, "object", object, depth),
            _ => "value".into(),
        }
    }

    fn typed(&mut self, name: &str, kind: &str, schema: &serde_json::Map<String, Value>, depth: usize) -> String {
        match kind {
            "string" => "string".into(),
            "integer" => "integer".into(),
            "number" => "number".into(),
            "boolean" => "boolean".into(),
            "null" => "null".into(),
            "array" => {
                let item = match schema.get("items") {
                    Some(items) => self.schema(&format!("{name}-item"), items, depth + 1),
                    None => "value".into(),
                };
                self.rule(name, format!("\"[\" space ({item} (space \",\" space {item})*)? space \"]\""))
            }
            "object" => self.object(name, schema, depth),
            _ => "value".into(),
        }
    }

    fn object(&mut self, name: &str, schema: &serde_json::Map<String, Value>, depth: usize) -> String {
        let Some(Value::Object(properties)) = schema.get("properties") else { return "object".into() };
        if properties.is_empty() {
            return self.rule(name, "\"{\" space \"}\"".into());
        }
        let required: Vec<&str> = match schema.get("required") {
            Some(Value::Array(names)) => {
                let mut required: Vec<&str> = Vec::new();
                for key in names.iter().filter_map(Value::as_str).filter(|key| properties.contains_key(*key)) {
                    // A name listed twice must not make the key appear twice.
                    if !required.contains(&key) {
                        required.push(key);
                    }
                }
                required
            }
            _ => Vec::new(),
        };
        let mut pairs: Vec<(String, bool)> = Vec::new();
        for (index, (key, property)) in properties.iter().enumerate() {
            let value = self.schema(&format!("{name}-p{index}"), property, depth + 1);
            let pair = format!("{} space \":\" space {value}", literal(&Value::String(key.clone()).to_string()));
            pairs.push((self.rule(&format!("{name}-kv{index}"), pair), required.contains(&key.as_str())));
        }
        // Required properties in order, then any optional ones.
        let mut required_pairs: Vec<&str> = Vec::new();
        for key in &required {
            let index = properties.keys().position(|candidate| candidate == key).unwrap_or_default();
            required_pairs.push(&pairs[index].0);
        }
        let optional: Vec<&str> =
            pairs.iter().filter(|(_, required)| !required).map(|(rule, _)| rule.as_str()).collect();
        let optional_choice = (!optional.is_empty()).then(|| format!("({})", optional.join(" | ")));
        let body = match (required_pairs.is_empty(), optional_choice) {
            (false, None) => required_pairs.join(" space \",\" space "),
            (false, Some(choice)) => {
                format!("{} (space \",\" space {choice})*", required_pairs.join(" space \",\" space "))
            }
            (true, Some(choice)) => format!("({choice} (space \",\" space {choice})*)?"),
            (true, None) => String::new(),
        };
        self.rule(name, format!("\"{{\" space {body} space \"}}\""))
    }

    fn rule(&mut self, name: &str, body: String) -> String {
        let name = sanitize(name);
        self.rules.insert(name.clone(), body);
        name
    }
}

/// A GBNF string literal matching `text` exactly.
fn literal(text: &str) -> String {
    let mut quoted = String::from("\"");
    for character in text.chars() {
        match character {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            '\r' => quoted.push_str("\\r"),
            '\t' => quoted.push_str("\\t"),
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// Rule names are letters, digits and dashes.
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|character| if character.is_ascii_alphanumeric() { character.to_ascii_lowercase() } else { '-' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str, parameters: Value) -> ToolDefinition {
        ToolDefinition { name: name.into(), description: String::new(), parameters }
    }

    #[test]
    fn names_every_tool_and_requires_its_parameters() {
        let grammar = tool_call_grammar(&[
            tool(
                "knowledge_base_search",
                serde_json::json!({"type": "object", "properties": {"query": {"type": "string"}, "top_k": {"type": "integer"}}, "required": ["query"]}),
            ),
            tool("weather", serde_json::json!({"type": "object", "properties": {"unit": {"enum": ["c", "f"]}}})),
        ]);
        assert!(grammar.contains(r#""\"knowledge_base_search\"" space "," space "\"arguments\"""#), "{grammar}");
        assert!(grammar.contains(r#"tool0-args-kv0 ::= "\"query\"" space ":" space string"#), "{grammar}");
        assert!(
            grammar
                .contains(r#"tool0-args ::= "{" space tool0-args-kv0 (space "," space (tool0-args-kv1))* space "}""#),
            "{grammar}"
        );
        assert!(grammar.contains(r#"tool1-args-p0 ::= "\"c\"" | "\"f\"""#), "{grammar}");
        assert!(grammar.starts_with("root ::= "));
    }

    #[test]
    fn unusual_schemas_fall_back_to_any_value() {
        let grammar = tool_call_grammar(&[tool(
            "odd",
            serde_json::json!({"type": "object", "properties": {"x": {"type": ["string", "null"]}, "y": {}, "z": {"type": "array", "items": {"type": "number"}}}}),
        )]);
        assert!(grammar.contains("tool0-args-p0 ::= string | null"), "{grammar}");
        assert!(grammar.contains(r#"tool0-args-kv1 ::= "\"y\"" space ":" space value"#), "{grammar}");
        assert!(
            grammar.contains(r#"tool0-args-p2 ::= "[" space (number (space "," space number)*)? space "]""#),
            "{grammar}"
        );
        let deep = (0..20).fold(
            serde_json::json!({"type": "string"}),
            |inner, _| serde_json::json!({"type": "object", "properties": {"a": inner}, "required": ["a"]}),
        );
        assert!(tool_call_grammar(&[tool("deep", deep)]).contains("value"));
    }
}
