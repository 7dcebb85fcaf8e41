//! Which language a text is in, as far as this product needs to know: Chinese or not. The agent answers
//! in the question's language, speech picks a voice per sentence, the agent's quotes are matched by
//! character pairs in Chinese.

/// A Chinese (CJK unified) character, of the basic block or extension A.
pub fn is_cjk(character: char) -> bool {
    matches!(character, '\u{4e00}'..='\u{9fff}' | '\u{3400}'..='\u{4dbf}')
}

/// Chinese when it has at least as many Chinese characters as words in other scripts (a Chinese sentence
/// often names English products; a Chinese character is about a word's worth of meaning); a text
/// without Chinese characters is not.
pub fn is_chinese(text: &str) -> bool {
    let chinese = text.chars().filter(|&character| is_cjk(character)).count();
    let other_words = text
        .split(|character: char| !character.is_alphabetic() || is_cjk(character))
        .filter(|word| !word.is_empty())
        .count();
    chinese > 0 && chinese >= other_words
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_is_chinese_when_its_chinese_characters_outnumber_its_other_words() {
        assert!(is_chinese("青禾电动自行车的电池保修多久？"));
        assert!(is_chinese("MapleCI 的 pipeline 怎么配置缓存？"));
        assert!(!is_chinese("How long is the warranty of 青禾 bikes?"));
        assert!(!is_chinese("2024?"), "no letters");
        assert!(!is_chinese(""));
    }
}
