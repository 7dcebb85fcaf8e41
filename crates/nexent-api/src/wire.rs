//! Lenient readers for the loosely typed fields of Nexent's API. The seed document writes ids as
//! `"string"` and Nexent's backend (pydantic) coerces `"12"` and `12.0` to `12`; scripts written from
//! either send them that way. A value that is not a whole number is still refused, with its field named.

use serde::Deserialize;
use serde::de::{Deserializer, Error};
use serde_json::Value;

/// A whole number from a JSON integer, a whole float (`7.0`) or a string of digits (`"7"`).
fn whole_number<E: Error>(value: &Value) -> Result<i64, E> {
    let refused = || E::custom(format!("expected a whole number, got {value}"));
    match value {
        Value::Number(number) => match number.as_i64() {
            Some(integer) => Ok(integer),
            None => number
                .as_f64()
                .filter(|float| float.fract() == 0.0 && float.abs() < 9.0e15)
                .map(|float| float as i64)
                .ok_or_else(refused),
        },
        Value::String(text) => text.trim().parse::<i64>().map_err(|_| refused()),
        _ => Err(refused()),
    }
}

/// `#[serde(deserialize_with = "wire::integer")]`
pub fn integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    whole_number(&Value::deserialize(deserializer)?)
}

/// `#[serde(default, deserialize_with = "wire::optional_integer")]`: null and `""` are absent.
pub fn optional_integer<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(text) if text.trim().is_empty() => Ok(None),
        value => whole_number(&value).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(deserialize_with = "integer")]
        id: i64,
        #[serde(default, deserialize_with = "optional_integer")]
        other: Option<i64>,
    }

    fn read(text: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn integers_come_as_numbers_whole_floats_or_digit_strings() {
        for text in [r#"{"id": 12}"#, r#"{"id": 12.0}"#, r#"{"id": "12"}"#, r#"{"id": " 12 "}"#] {
            assert_eq!(read(text).expect(text).id, 12, "{text}");
        }
        assert_eq!(read(r#"{"id": 1, "other": "7"}"#).expect("other").other, Some(7));
        assert_eq!(read(r#"{"id": 1, "other": null}"#).expect("null").other, None);
        assert_eq!(read(r#"{"id": 1, "other": ""}"#).expect("empty").other, None);
        assert_eq!(read(r#"{"id": 1}"#).expect("absent").other, None);
    }

    #[test]
    fn anything_else_is_refused_with_the_value() {
        for text in [r#"{"id": 1.5}"#, r#"{"id": "twelve"}"#, r#"{"id": true}"#, r#"{"id": [1]}"#, r#"{"id": 1e300}"#] {
            let error = read(text).expect_err(text).to_string();
            assert!(error.contains("whole number"), "{text}: {error}");
        }
    }
}
