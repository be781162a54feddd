//! The support contact every customer page shows in its footer (`support_contact`): the
//! operator's free text, with `https:` and `mailto:` links made clickable and nothing
//! else. The text is the operator's, but a page is the customer's: it is escaped whole,
//! and a link in any other scheme (`javascript:`, `http:`, `data:`) stays plain text.

/// The contact as HTML: the text escaped, each word that is an `https://` or `mailto:`
/// address a link (a full stop or comma after it stays outside the link).
pub fn contact_html(text: &str) -> String {
    let mut out = String::new();
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let link = word.trim_end_matches(['.', ',', ';', ':', ')', '!', '?']);
        let trailing = &word[link.len()..];
        let shown = link.strip_prefix("mailto:").unwrap_or(link);
        let linkable = (link.starts_with("https://") && link.len() > "https://".len())
            || (link.starts_with("mailto:") && shown.contains('@'));
        if linkable {
            out.push_str(&format!(
                "<a href=\"{}\">{}</a>{}",
                escape(link),
                escape(shown),
                escape(trailing)
            ));
        } else {
            out.push_str(&escape(word));
        }
    }
    out
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
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
    out
}

#[cfg(test)]
mod tests {
    use super::contact_html;

    #[test]
    fn https_and_mailto_become_links_and_nothing_else_does() {
        assert_eq!(
            contact_html("Write to mailto:help@vendor.example or see https://vendor.example/help."),
            "Write to <a href=\"mailto:help@vendor.example\">help@vendor.example</a> or see <a href=\"https://vendor.example/help\">https://vendor.example/help</a>."
        );
        assert_eq!(
            contact_html("javascript:alert(1) http://plain.example <b>"),
            "javascript:alert(1) http://plain.example &lt;b&gt;"
        );
        assert_eq!(
            contact_html("https://x.example/?a=\"><script>"),
            "<a href=\"https://x.example/?a=&quot;&gt;&lt;script&gt;\">https://x.example/?a=&quot;&gt;&lt;script&gt;</a>"
        );
        assert_eq!(contact_html("Call +34 900 000 000"), "Call +34 900 000 000");
    }
}
