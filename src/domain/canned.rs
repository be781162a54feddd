//! Canned texts agents pick instead of typing: why a ticket is rejected, and what is
//! wrong with a label photo. Each has the text agents read in the console (English, the
//! console's language) and one per language customers read; a customer reads their own.

use std::fmt;

use crate::i18n::Lang;

/// What a canned text is picked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CannedKind {
    /// A rejection's reason, mailed and shown on the status page.
    Reject,
    /// What a new label photo must fix, mailed with the request for it.
    Photo,
}

impl CannedKind {
    pub const ALL: [Self; 2] = [Self::Reject, Self::Photo];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reject => "reject",
            Self::Photo => "photo",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == raw)
    }
}

impl fmt::Display for CannedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One canned text as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannedText {
    pub id: i64,
    pub kind: CannedKind,
    /// What agents read, in the console's language ([`Lang::En`]).
    pub text: String,
    /// The text in each other language there is one for.
    pub translations: Vec<(Lang, String)>,
}

impl CannedText {
    /// The text in `language`; the console's text where no one has written that
    /// language's yet (the reasons page shows which are missing).
    pub fn in_language(&self, language: Lang) -> &str {
        if language == Lang::En {
            return &self.text;
        }
        self.translations
            .iter()
            .find(|(lang, _)| *lang == language)
            .map_or(self.text.as_str(), |(_, text)| text.as_str())
    }

    /// The languages customers speak that this text has no translation for.
    pub fn missing_languages(&self) -> Vec<Lang> {
        Lang::ALL
            .into_iter()
            .filter(|lang| *lang != Lang::En && !self.translations.iter().any(|(l, _)| l == lang))
            .collect()
    }
}

/// The words of a canned text as a supervisor writes them: the console's text and the
/// other languages' texts, each already checked as plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CannedWords {
    pub text: String,
    pub translations: Vec<(Lang, String)>,
}

impl CannedWords {
    /// Every language's words on one line, as the audit log keeps them.
    pub fn audited(&self) -> String {
        let mut line = format!("en: {}", self.text);
        for (lang, text) in &self.translations {
            line.push_str(&format!(" | {}: {text}", lang.code()));
        }
        line
    }
}

impl CannedText {
    pub fn words(&self) -> CannedWords {
        CannedWords {
            text: self.text.clone(),
            translations: self.translations.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_reads_their_own_language_or_the_consoles() {
        let text = CannedText {
            id: 1,
            kind: CannedKind::Reject,
            text: "The label photo is unreadable.".to_owned(),
            translations: vec![(Lang::Es, "No se puede leer la foto.".to_owned())],
        };
        assert_eq!(text.in_language(Lang::En), "The label photo is unreadable.");
        assert_eq!(text.in_language(Lang::Es), "No se puede leer la foto.");
        assert!(text.missing_languages().is_empty());
        let untranslated = CannedText {
            translations: Vec::new(),
            ..text
        };
        assert_eq!(
            untranslated.in_language(Lang::Es),
            "The label photo is unreadable."
        );
        assert_eq!(untranslated.missing_languages(), [Lang::Es]);
        assert_eq!(CannedKind::parse("photo"), Some(CannedKind::Photo));
        assert_eq!(CannedKind::parse("other"), None);
    }
}
