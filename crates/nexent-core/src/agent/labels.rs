//! The text of the agent's step messages, in Nexent's templates (nexent-api.md §2.2), in English by default
//! and in Chinese when configured.

/// The language of step labels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Language {
    #[default]
    English,
    Chinese,
}

impl Language {
    /// The language a text is written in ([`crate::language::is_chinese`]).
    pub fn of_text(text: &str) -> Self {
        if crate::language::is_chinese(text) { Self::Chinese } else { Self::English }
    }

    /// `zh`, `zh-CN`, `chinese`, `中文` → Chinese; anything else English.
    pub fn parse(value: &str) -> Self {
        let value = value.trim().to_lowercase();
        if value.starts_with("zh") || value == "chinese" || value == "中文" { Self::Chinese } else { Self::English }
    }

    pub(crate) fn step_count(self, step: usize) -> String {
        match self {
            Self::English => format!("\n**Step {step}** \n"),
            Self::Chinese => format!("\n**步骤 {step}** \n"),
        }
    }

    pub(crate) fn used_tool(self, name: &str, arguments: &str) -> String {
        match self {
            Self::English => format!("\n🛠️ Used tool {name}\n```json\n{arguments}\n```\n"),
            Self::Chinese => format!("\n🛠️ 使用工具 {name}\n```json\n{arguments}\n```\n"),
        }
    }

    pub(crate) fn execution_logs(self, logs: &str) -> String {
        match self {
            Self::English => format!("\n📝 Execution Logs\n```bash\n{logs}\n```\n"),
            Self::Chinese => format!("\n📝 执行结果\n```bash\n{logs}\n```\n"),
        }
    }

    pub(crate) fn duration(self, seconds: f64) -> String {
        let seconds = (seconds * 100.0).round() / 100.0;
        match self {
            Self::English => format!("<span style=\"color: #bbbbc2; font-size: 12px;\">Duration:{seconds}</span> "),
            Self::Chinese => format!("<span style=\"color: #bbbbc2; font-size: 12px;\">步骤耗时：{seconds}</span> "),
        }
    }

    pub(crate) fn error(self, message: &str) -> String {
        match self {
            Self::English => format!("\n💥 Error\n{message}\n"),
            Self::Chinese => format!("\n💥 运行出错\n{message}\n"),
        }
    }

    pub(crate) fn stopped(self) -> &'static str {
        match self {
            Self::English => "Agent run stopped by the user",
            Self::Chinese => "Agent运行被用户中断",
        }
    }

    pub(crate) fn searching(self) -> &'static str {
        match self {
            Self::English => "Searching the knowledge base...",
            Self::Chinese => "知识库检索中...",
        }
    }

    pub(crate) fn reading(self) -> &'static str {
        match self {
            Self::English => "Reading the attached files...",
            Self::Chinese => "正在读取附件...",
        }
    }

    pub(crate) fn calling(self, name: &str) -> String {
        match self {
            Self::English => format!("Calling {name}..."),
            Self::Chinese => format!("正在调用 {name}..."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_follow_nexents_templates() {
        assert_eq!(Language::English.step_count(2), "\n**Step 2** \n");
        assert_eq!(Language::Chinese.step_count(1), "\n**步骤 1** \n");
        assert_eq!(
            Language::English.duration(1.23456),
            "<span style=\"color: #bbbbc2; font-size: 12px;\">Duration:1.23</span> "
        );
        assert_eq!(Language::Chinese.error("x"), "\n💥 运行出错\nx\n");
        assert_eq!(Language::parse("zh-CN"), Language::Chinese);
        assert_eq!(Language::parse("en"), Language::English);
    }
}
