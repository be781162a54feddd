//! The desk's pages read as a browser reads them: parsed, with CSS selectors, instead of
//! cutting strings at markers. A test then says which element it means (`#status-link`,
//! `input[name=csrf]`), survives an attribute moving or a wrapper appearing, and gets
//! values with their character references decoded (`&amp;` is `&`), as a browser would
//! send them back.

use scraper::{ElementRef, Html, Node, Selector};

fn selector(css: &str) -> Selector {
    Selector::parse(css).unwrap_or_else(|error| panic!("{css:?} is not a selector: {error}"))
}

fn first<'a>(page: &'a Html, css: &str, html: &str) -> ElementRef<'a> {
    page.select(&selector(css))
        .next()
        .unwrap_or_else(|| panic!("nothing matches {css:?} in the page:\n{html}"))
}

/// `attribute` of the first element `css` selects.
pub fn select_attr(html: &str, css: &str, attribute: &str) -> String {
    let page = Html::parse_document(html);
    first(&page, css, html)
        .attr(attribute)
        .unwrap_or_else(|| panic!("the first {css:?} has no {attribute:?} in the page:\n{html}"))
        .to_owned()
}

/// `attribute` of every element `css` selects that has it, in the page's order.
pub fn select_attrs(html: &str, css: &str, attribute: &str) -> Vec<String> {
    let page = Html::parse_document(html);
    page.select(&selector(css))
        .filter_map(|element| element.attr(attribute))
        .map(str::to_owned)
        .collect()
}

/// The text of the first element `css` selects, as a browser's `textContent`.
pub fn text(html: &str, css: &str) -> String {
    let page = Html::parse_document(html);
    first(&page, css, html).text().collect()
}

/// The text of every element `css` selects, in the page's order.
pub fn texts(html: &str, css: &str) -> Vec<String> {
    let page = Html::parse_document(html);
    page.select(&selector(css))
        .map(|element| element.text().collect())
        .collect()
}

/// The value of the option `css` selects whose text shows `needle`.
pub fn option_value(page: &str, css: &str, needle: &str) -> String {
    let texts = texts(page, css);
    let values = select_attrs(page, css, "value");
    texts
        .iter()
        .zip(values)
        .find(|(text, _)| text.contains(needle))
        .map(|(_, value)| value)
        .unwrap_or_else(|| panic!("no {css:?} shows {needle:?}: {texts:?}"))
}

/// `attribute` of the first `inner` element inside the first `css` element whose text
/// shows `needle`: a table row found by what it shows, then a link or form in it.
pub fn select_attr_where(
    html: &str,
    css: &str,
    needle: &str,
    inner: &str,
    attribute: &str,
) -> String {
    let page = Html::parse_document(html);
    let outer = page
        .select(&selector(css))
        .find(|element| element.text().any(|text| text.contains(needle)))
        .unwrap_or_else(|| panic!("no {css:?} shows {needle:?} in the page:\n{html}"));
    outer
        .select(&selector(inner))
        .next()
        .and_then(|element| element.attr(attribute))
        .unwrap_or_else(|| {
            panic!("no {inner:?} with {attribute:?} in the {css:?} showing {needle:?}")
        })
        .to_owned()
}

/// What each element `css` selects shows a person, in the page's order: its texts set
/// apart from one another and its whitespace collapsed, on one line. For "does the page
/// say ...", and for messages in test failures.
pub fn visible_texts(html: &str, css: &str) -> Vec<String> {
    let page = Html::parse_document(html);
    page.select(&selector(css))
        .map(|element| {
            element
                .text()
                .flat_map(str::split_whitespace)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// What the page's body shows a person (see [`visible_texts`]).
pub fn visible_text(html: &str) -> String {
    visible_texts(html, "body").join(" ")
}

/// Whether the page shows `needle`, in a text or an attribute's value, decoded: the
/// proof that escaped input still reaches the reader.
pub fn shows(html: &str, needle: &str) -> bool {
    Html::parse_document(html)
        .tree
        .values()
        .any(|node| match node {
            Node::Text(text) => text.contains(needle),
            Node::Element(element) => element.attrs().any(|(_, value)| value.contains(needle)),
            _ => false,
        })
}
