//! The languages customers read: every page, e-mail and form error a customer sees comes
//! from a message catalogue (`en.toml`, `es.toml` beside this file), never from a string
//! in a template or in code. The console is for the vendor's own agents and stays in
//! English.
//!
//! A message is plain text with `{name}` placeholders and two marks: `**strong**` and
//! `*emphasis*`. [`Lang::text`] and [`Fill`] give plain text (marks left out) for
//! askama to escape, or for text e-mails; [`Lang::html`] and [`Fill::html`] give HTML
//! with every character of the message and its values escaped, and only the marks
//! turned into tags.

use std::collections::HashMap;
use std::fmt::{self, Display};
use std::sync::LazyLock;

/// A language the desk speaks to customers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    #[default]
    En,
    Es,
}

struct Catalogue {
    messages: HashMap<String, String>,
}

static CATALOGUES: LazyLock<[Catalogue; 2]> = LazyLock::new(|| {
    [Lang::En, Lang::Es].map(|lang| match parse_catalogue(lang.source()) {
        Ok(messages) => Catalogue { messages },
        // Both files are compiled in and checked by this module's tests.
        Err(error) => panic!("the {} message catalogue is broken: {error}", lang.code()),
    })
});

/// Flattens `[section] key = "text"` into `section.key`.
fn parse_catalogue(source: &str) -> Result<HashMap<String, String>, String> {
    fn walk(
        prefix: &str,
        table: &toml::Table,
        out: &mut HashMap<String, String>,
    ) -> Result<(), String> {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::String(text) => {
                    out.insert(path, text.clone());
                }
                toml::Value::Table(inner) => walk(&path, inner, out)?,
                _ => return Err(format!("{path} is not text")),
            }
        }
        Ok(())
    }
    let table: toml::Table = source.parse().map_err(|e| format!("{e}"))?;
    let mut out = HashMap::new();
    walk("", &table, &mut out)?;
    Ok(out)
}

impl Lang {
    pub const ALL: [Self; 2] = [Self::En, Self::Es];

    /// The language's code, as in `<html lang>`, Accept-Language and the `lang` cookie.
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Es => "es",
        }
    }

    fn source(self) -> &'static str {
        match self {
            Self::En => include_str!("en.toml"),
            Self::Es => include_str!("es.toml"),
        }
    }

    fn catalogue(self) -> &'static Catalogue {
        &CATALOGUES[self as usize]
    }

    /// A language code or tag (`es`, `es-MX`, `ES_es`): its primary language, if spoken.
    pub fn parse(raw: &str) -> Option<Self> {
        let primary = raw.trim().split(['-', '_']).next()?;
        Self::ALL
            .into_iter()
            .find(|lang| lang.code().eq_ignore_ascii_case(primary))
    }

    /// The language the browser prefers most among those the desk speaks (RFC 9110
    /// `Accept-Language`, with q-values; a tie goes to the one listed first).
    pub fn from_accept_language(header: &str) -> Option<Self> {
        let mut best: Option<(Self, f32)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let Some(lang) = parts.next().and_then(Self::parse) else {
                continue;
            };
            let quality = match parts.find_map(|p| p.trim().strip_prefix("q=")) {
                None => 1.0,
                Some(q) => match q.trim().parse::<f32>() {
                    Ok(q) if (0.0..=1.0).contains(&q) => q,
                    _ => continue,
                },
            };
            if quality > 0.0 && best.is_none_or(|(_, q)| quality > q) {
                best = Some((lang, quality));
            }
        }
        best.map(|(lang, _)| lang)
    }

    /// The language's own name, as the switch offers it ("Español").
    pub fn name(self) -> &'static str {
        self.raw("language.name")
    }

    /// The language's name in English, as the console (which is in English) names it.
    pub fn english_name(self) -> &'static str {
        match self {
            Self::En => "English",
            Self::Es => "Spanish",
        }
    }

    /// The other language, which the page's switch offers.
    pub fn other(self) -> Self {
        match self {
            Self::En => Self::Es,
            Self::Es => Self::En,
        }
    }

    /// The message as written in the catalogue. A key missing here falls back to
    /// English, then to the key itself; the catalogue tests make both impossible.
    fn raw(self, key: &str) -> &'static str {
        if let Some(text) = self.catalogue().messages.get(key) {
            return text;
        }
        tracing::error!(
            key,
            language = self.code(),
            "a message is missing from the catalogue"
        );
        Lang::En
            .catalogue()
            .messages
            .get(key)
            .map_or("", String::as_str)
    }

    /// Plain text, for askama to escape or for a text e-mail.
    pub fn text(self, key: &str) -> String {
        render(self.raw(key), &[], Output::Plain)
    }

    /// HTML: the message escaped, its marks turned into `<strong>` and `<em>`. For a
    /// template's `|safe`.
    pub fn html(self, key: &str) -> String {
        render(self.raw(key), &[], Output::Html)
    }

    /// A message with placeholders to fill: `t.fill("key").with("name", value)`.
    pub fn fill(self, key: &'static str) -> Fill {
        Fill {
            lang: self,
            message: Message::new(key),
        }
    }

    /// A message made elsewhere (an intake problem, say), in this language.
    pub fn message(self, message: &Message) -> String {
        let args = self.resolve(&message.args);
        if message.key == UNTRANSLATED {
            return args.into_iter().map(|(_, text)| text).collect();
        }
        render(self.raw(message.key), &args, Output::Plain)
    }
}

impl Lang {
    fn resolve(self, args: &[(&'static str, Arg)]) -> Vec<(&'static str, String)> {
        args.iter()
            .map(|(name, arg)| {
                let value = match arg {
                    Arg::Text(text) => text.clone(),
                    Arg::Message(key) => self.text(key),
                };
                (*name, value)
            })
            .collect()
    }
}

impl Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A message chosen by the code that knows what happened, shown later in whatever
/// language the reader has: a form error is made once and shown in Spanish on the form
/// and in English in the API's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    key: &'static str,
    args: Vec<(&'static str, Arg)>,
}

/// A placeholder's value: text as it is, or another message of the same catalogue
/// ("this file is *a PDF document*"), read in the same language.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Text(String),
    Message(&'static str),
}

/// The key of an [`Message::untranslated`] text, which no catalogue has.
const UNTRANSLATED: &str = "";

impl Message {
    pub fn new(key: &'static str) -> Self {
        Self {
            key,
            args: Vec::new(),
        }
    }

    /// English that only agents and API clients read (a console action that failed,
    /// an API token refused), never a customer's page: shown as it is in every language.
    pub fn untranslated(text: impl Into<String>) -> Self {
        Self {
            key: UNTRANSLATED,
            args: vec![("", Arg::Text(text.into()))],
        }
    }

    #[must_use]
    pub fn with(mut self, name: &'static str, value: impl Display) -> Self {
        self.args.push((name, Arg::Text(value.to_string())));
        self
    }

    /// A placeholder filled with another message of the catalogue, by its key.
    #[must_use]
    pub fn with_message(mut self, name: &'static str, key: &'static str) -> Self {
        self.args.push((name, Arg::Message(key)));
        self
    }

    pub fn key(&self) -> &'static str {
        self.key
    }

    /// In English: what the API answers, and what logs say.
    pub fn english(&self) -> String {
        Lang::En.message(self)
    }
}

impl Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.english())
    }
}

/// A message being filled in for a page; shows as plain text, or as HTML through
/// [`Fill::html`].
pub struct Fill {
    lang: Lang,
    message: Message,
}

impl Fill {
    #[must_use]
    pub fn with(mut self, name: &'static str, value: impl Display) -> Self {
        self.message = self.message.with(name, value);
        self
    }

    pub fn html(&self) -> String {
        render(
            self.lang.raw(self.message.key),
            &self.lang.resolve(&self.message.args),
            Output::Html,
        )
    }
}

impl Display for Fill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.lang.message(&self.message))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Plain,
    Html,
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            other => out.push(other),
        }
    }
}

/// Fills the placeholders and turns the marks into tags (HTML) or drops them (plain).
/// Values are inserted as they are: a `*` or `{` in a value is text, not a mark.
fn render(template: &str, args: &[(&str, String)], output: Output) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut strong = false;
    let mut em = false;
    let mut rest = template;
    while let Some(at) = rest.find(['*', '{']) {
        let (before, from) = rest.split_at(at);
        push_text(&mut out, before, output);
        if let Some(after) = from.strip_prefix("**") {
            if output == Output::Html {
                out.push_str(if strong { "</strong>" } else { "<strong>" });
            }
            strong = !strong;
            rest = after;
        } else if let Some(after) = from.strip_prefix('*') {
            if output == Output::Html {
                out.push_str(if em { "</em>" } else { "<em>" });
            }
            em = !em;
            rest = after;
        } else {
            let Some(end) = from.find('}') else {
                push_text(&mut out, from, output);
                rest = "";
                break;
            };
            let name = &from[1..end];
            match args.iter().find(|(n, _)| *n == name) {
                Some((_, value)) => push_text(&mut out, value, output),
                None => {
                    tracing::error!(placeholder = name, "a message placeholder was not filled");
                    push_text(&mut out, &from[..=end], output);
                }
            }
            rest = &from[end + 1..];
        }
    }
    push_text(&mut out, rest, output);
    out
}

fn push_text(out: &mut String, text: &str, output: Output) {
    match output {
        Output::Plain => out.push_str(text),
        Output::Html => escape_into(out, text),
    }
}

/// Every key of a catalogue, for the checks that all catalogues agree.
pub fn keys(lang: Lang) -> Vec<&'static str> {
    let mut keys: Vec<&'static str> = lang
        .catalogue()
        .messages
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// The `{names}` a message uses, sorted.
fn placeholders(text: &str) -> Vec<&str> {
    let mut names: Vec<&str> = text
        .split('{')
        .skip(1)
        .filter_map(|part| part.split_once('}').map(|(name, _)| name))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// What is wrong with the catalogues, one line each; empty when every catalogue has
/// every English key with the same placeholders and balanced marks.
pub fn catalogue_problems() -> Vec<String> {
    let mut problems = Vec::new();
    let english = &Lang::En.catalogue().messages;
    for lang in Lang::ALL {
        let messages = &lang.catalogue().messages;
        for (key, text) in messages {
            let Some(original) = english.get(key) else {
                problems.push(format!("{lang}: {key} is not in the English catalogue"));
                continue;
            };
            if placeholders(text) != placeholders(original) {
                problems.push(format!(
                    "{lang}: {key} has placeholders {:?}, English has {:?}",
                    placeholders(text),
                    placeholders(original)
                ));
            }
            let strong = text.matches("**").count();
            let em = text.replace("**", "").matches('*').count();
            if strong % 2 != 0 || em % 2 != 0 {
                problems.push(format!("{lang}: {key} has an unclosed * or ** mark"));
            }
            if text.trim().is_empty() {
                problems.push(format!("{lang}: {key} is empty"));
            }
        }
        for key in english.keys() {
            if !messages.contains_key(key) {
                problems.push(format!("{lang}: {key} is missing"));
            }
        }
    }
    problems.sort();
    problems
}

/// The languages by code, for messages that name them: "en, es".
pub fn language_list() -> String {
    Lang::ALL.map(Lang::code).join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalogue_has_every_message_with_the_same_placeholders() {
        let problems = catalogue_problems();
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn the_catalogues_are_different_languages() {
        assert_eq!(Lang::En.name(), "English");
        assert_eq!(Lang::Es.name(), "Español");
        assert_ne!(Lang::En.text("form.send"), Lang::Es.text("form.send"));
    }

    #[test]
    fn accept_language_picks_the_most_preferred_spoken_language() {
        let pick = Lang::from_accept_language;
        assert_eq!(pick("es-MX,es;q=0.9,en;q=0.8"), Some(Lang::Es));
        assert_eq!(pick("fr-FR, es;q=0.5, en;q=0.7"), Some(Lang::En));
        assert_eq!(pick("de, fr;q=0.9"), None);
        assert_eq!(pick("en;q=0, ES"), Some(Lang::Es));
        assert_eq!(pick("*"), None);
        assert_eq!(pick(""), None);
        assert_eq!(pick("es;q=abc, en;q=0.1"), Some(Lang::En));
        // A tie goes to the first listed.
        assert_eq!(pick("es, en"), Some(Lang::Es));
        assert_eq!(pick("en;q=0.5, es;q=0.5"), Some(Lang::En));
    }

    #[test]
    fn marks_become_tags_and_values_are_escaped() {
        let args = [("name", "<b>Ana & *co*</b>".to_owned())];
        assert_eq!(
            render("Hi **{name}**, see *this*", &args, Output::Html),
            "Hi <strong>&lt;b&gt;Ana &amp; *co*&lt;/b&gt;</strong>, see <em>this</em>"
        );
        assert_eq!(
            render("Hi **{name}**, see *this*", &args, Output::Plain),
            "Hi <b>Ana & *co*</b>, see this"
        );
    }

    #[test]
    fn a_placeholder_without_a_value_stays_visible() {
        assert_eq!(render("a {x} b", &[], Output::Plain), "a {x} b");
        assert_eq!(render("a {x b", &[], Output::Plain), "a {x b");
    }

    #[test]
    fn a_message_is_chosen_once_and_read_in_any_language() {
        let message = Message::new("problem.qr_several_codes").with("count", 3);
        assert!(message.english().contains("shows 3 QR codes"), "{message}");
        let spanish = Lang::Es.message(&message);
        assert!(
            spanish.contains('3') && spanish != message.english(),
            "{spanish}"
        );
    }

    /// A literal the code or a template hands to something that takes a message key.
    const TAKES_A_KEY: [&str; 9] = [
        "text(",
        "html(",
        "fill(",
        "Message::new(",
        "with_message(\"kind\", ",
        "=>",
        "label:",
        "hint: Some(",
        "_key(",
    ];

    /// Every `"section.key"`-shaped literal in the code and the templates, and whether
    /// it is written where a key is taken.
    fn literals_in_sources() -> Vec<(String, bool)> {
        fn walk(dir: &std::path::Path, out: &mut Vec<(String, bool)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, out);
                    continue;
                }
                if !path
                    .extension()
                    .is_some_and(|e| e == "rs" || e == "html" || e == "txt")
                {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                let mut offset = 0;
                let mut pieces = text.split('"');
                offset += pieces.next().map_or(0, |p| p.len() + 1);
                for piece in pieces {
                    // Made only of letters, `_` and `.`: `"form.send"`.
                    if piece.contains('.')
                        && piece
                            .chars()
                            .all(|c| c.is_ascii_alphabetic() || c == '_' || c == '.')
                    {
                        let before = text[..offset - 1].trim_end();
                        let takes_a_key = TAKES_A_KEY.iter().any(|call| before.ends_with(call));
                        out.push((piece.to_owned(), takes_a_key));
                    }
                    offset += piece.len() + 1;
                }
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut out = Vec::new();
        walk(&root.join("src"), &mut out);
        walk(&root.join("templates"), &mut out);
        out
    }

    #[test]
    fn every_key_written_exists_and_every_message_is_used() {
        let keys = keys(Lang::En);
        let literals = literals_in_sources();
        let missing: Vec<&String> = literals
            .iter()
            .filter(|(literal, takes_a_key)| *takes_a_key && !keys.contains(&literal.as_str()))
            .map(|(literal, _)| literal)
            .collect();
        assert!(missing.is_empty(), "keys not in the catalogue: {missing:?}");
        assert!(
            literals.iter().filter(|(_, takes)| *takes).count() > 100,
            "the scan finds the keys the code hands out"
        );
        // Country names are looked up as `country.XX` from the form's list of codes.
        let unused: Vec<&&str> = keys
            .iter()
            .filter(|k| !k.starts_with("country."))
            .filter(|k| !literals.iter().any(|(literal, _)| literal == *k))
            .collect();
        assert!(unused.is_empty(), "messages nothing shows: {unused:?}");
    }

    #[test]
    fn language_tags_parse_by_their_primary_language() {
        assert_eq!(Lang::parse("es-419"), Some(Lang::Es));
        assert_eq!(Lang::parse("EN_gb"), Some(Lang::En));
        assert_eq!(Lang::parse("e"), None);
        assert_eq!(Lang::parse("eng"), None);
    }
}
