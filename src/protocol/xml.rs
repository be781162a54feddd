//! A strict reader and writer for the two XML documents of the protocol, which share
//! one shape: a versioned root holding `<Device>` records of text-only fields.
//!
//! The reader treats input as hostile. It refuses a DOCTYPE (so no DTD, no entity
//! declarations and no external entities exist to expand), entity and character
//! references, CDATA and processing instructions; it refuses any element that is not
//! part of the schema, which also bounds nesting at three levels; and it reads at most
//! [`MAX_XML_BYTES`]. Comments and whitespace are the only extras it accepts.

use quick_xml::Reader;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

/// The largest XML document the protocol reads: 64 devices need about 50 KiB.
pub const MAX_XML_BYTES: usize = 256 * 1024;

/// The shape of one document type.
pub(crate) struct Schema {
    pub root: &'static str,
    pub namespace: &'static str,
    pub record: &'static str,
    pub fields: &'static [&'static str],
    pub max_records: usize,
}

/// A structural problem with an XML document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("the file is larger than {max} bytes, far more than any export needs")]
    TooLarge { max: usize },
    #[error("the file is not UTF-8 text (an export is UTF-8 XML)")]
    NotUtf8,
    #[error("the file declares encoding {0:?}; only UTF-8 is accepted")]
    WrongEncoding(String),
    #[error("the file is empty")]
    Empty,
    #[error("DOCTYPE declarations are not allowed (they can define entities)")]
    Doctype,
    #[error("entity and character references such as &name; are not allowed")]
    EntityReference,
    #[error("CDATA sections are not allowed")]
    Cdata,
    #[error("processing instructions are not allowed")]
    ProcessingInstruction,
    #[error("expected a <{expected}> document, found <{found}>")]
    WrongRoot {
        expected: &'static str,
        found: String,
    },
    #[error("the <{root}> element has no version attribute")]
    MissingVersion { root: &'static str },
    #[error("unsupported format version {found:?} (this desk reads versions {supported})")]
    UnsupportedVersion {
        found: String,
        supported: &'static str,
    },
    #[error("the namespace {found:?} is not {expected:?}")]
    WrongNamespace {
        found: String,
        expected: &'static str,
    },
    #[error("unexpected attribute {name:?} on <{element}>")]
    UnexpectedAttribute { name: String, element: String },
    #[error("unexpected element <{name}> inside <{inside}>")]
    UnexpectedElement { name: String, inside: String },
    #[error("unexpected text inside <{inside}>")]
    UnexpectedText { inside: String },
    #[error("device {record}: <{field}> appears more than once")]
    DuplicateField { record: usize, field: &'static str },
    #[error("device {record}: <{field}> is missing")]
    MissingField { record: usize, field: &'static str },
    #[error("the document lists no devices")]
    NoRecords,
    #[error("the document lists more than {max} devices")]
    TooManyRecords { max: usize },
    #[error("the document ends before its root element is closed")]
    Truncated,
    #[error("there is content after the root element")]
    TrailingContent,
    #[error("the XML is not well-formed: {0}")]
    Syntax(String),
}

/// One `<Device>` record: field name and trimmed text, in document order.
#[derive(Debug, Default)]
pub(crate) struct Record {
    pub index: usize,
    fields: Vec<(&'static str, String)>,
}

impl Record {
    pub fn optional(&self, field: &'static str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, value)| value.as_str())
    }

    pub fn required(&self, field: &'static str) -> Result<&str, XmlError> {
        self.optional(field).ok_or(XmlError::MissingField {
            record: self.index,
            field,
        })
    }
}

enum Place {
    BeforeRoot,
    InRoot,
    InRecord(Record),
    InField(Record, &'static str, String),
    AfterRoot,
}

fn name_of(start: &BytesStart<'_>) -> String {
    start.name().as_ref().to_owned()
}

/// The format versions the reader accepts, and how an error names them.
pub(crate) struct Versions {
    pub known: &'static [u8],
    pub named: &'static str,
}

/// Reads a document of `schema` in one of the `versions`, returning the version it
/// declares and its records. Fields a version does not define are the caller's to
/// refuse: the schema lists the fields of every version.
pub(crate) fn read(
    schema: &Schema,
    versions: &Versions,
    bytes: &[u8],
) -> Result<(u8, Vec<Record>), XmlError> {
    if bytes.len() > MAX_XML_BYTES {
        return Err(XmlError::TooLarge { max: MAX_XML_BYTES });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| XmlError::NotUtf8)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(XmlError::Empty);
    }
    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(true);
    let mut records = Vec::new();
    let mut version = 0;
    let mut place = Place::BeforeRoot;
    loop {
        let event = reader.read_event().map_err(|e| {
            XmlError::Syntax(format!("{e} (near byte {})", reader.error_position()))
        })?;
        place = match (place, event) {
            (_, Event::DocType(_)) => return Err(XmlError::Doctype),
            (_, Event::GeneralRef(_)) => return Err(XmlError::EntityReference),
            (_, Event::CData(_)) => return Err(XmlError::Cdata),
            (_, Event::PI(_)) => return Err(XmlError::ProcessingInstruction),
            (place, Event::Comment(_)) => place,
            (Place::BeforeRoot, Event::Decl(decl)) => {
                check_declaration(&decl)?;
                Place::BeforeRoot
            }
            (Place::BeforeRoot, Event::Start(start)) => {
                version = check_root(schema, versions, &start)?;
                Place::InRoot
            }
            (Place::BeforeRoot, Event::Empty(start)) => {
                check_root(schema, versions, &start)?;
                return Err(XmlError::NoRecords);
            }
            (Place::InRoot, Event::Start(start)) if start.name().as_ref() == schema.record => {
                no_attributes(&start)?;
                if records.len() == schema.max_records {
                    return Err(XmlError::TooManyRecords {
                        max: schema.max_records,
                    });
                }
                Place::InRecord(Record {
                    index: records.len() + 1,
                    fields: Vec::new(),
                })
            }
            (Place::InRoot, Event::Empty(start)) if start.name().as_ref() == schema.record => {
                // An empty <Device/> has every required field missing; say which first.
                let record = Record {
                    index: records.len() + 1,
                    fields: Vec::new(),
                };
                let first = schema.fields.first().copied().unwrap_or("Device");
                return Err(XmlError::MissingField {
                    record: record.index,
                    field: first,
                });
            }
            (Place::InRoot, Event::End(_)) => Place::AfterRoot,
            (Place::InRecord(record), Event::Start(start)) => {
                let field = field_named(schema, &start, &record)?;
                Place::InField(record, field, String::new())
            }
            (Place::InRecord(mut record), Event::Empty(start)) => {
                let field = field_named(schema, &start, &record)?;
                record.fields.push((field, String::new()));
                Place::InRecord(record)
            }
            (Place::InRecord(record), Event::End(_)) => {
                records.push(record);
                Place::InRoot
            }
            (Place::InField(record, field, mut value), Event::Text(text)) => {
                value.push_str(&text.xml10_content());
                Place::InField(record, field, value)
            }
            (Place::InField(mut record, field, value), Event::End(_)) => {
                record.fields.push((field, value.trim().to_owned()));
                Place::InRecord(record)
            }
            (Place::InField(_, field, _), Event::Start(start) | Event::Empty(start)) => {
                return Err(XmlError::UnexpectedElement {
                    name: name_of(&start),
                    inside: field.to_owned(),
                });
            }
            (Place::InRoot, Event::Start(start) | Event::Empty(start)) => {
                return Err(XmlError::UnexpectedElement {
                    name: name_of(&start),
                    inside: schema.root.to_owned(),
                });
            }
            (Place::AfterRoot, Event::Eof) => break,
            (_, Event::Eof) => return Err(XmlError::Truncated),
            (Place::AfterRoot, _) => return Err(XmlError::TrailingContent),
            (Place::InRoot, Event::Text(_)) => {
                return Err(XmlError::UnexpectedText {
                    inside: schema.root.to_owned(),
                });
            }
            (Place::InRecord(_), Event::Text(_)) => {
                return Err(XmlError::UnexpectedText {
                    inside: schema.record.to_owned(),
                });
            }
            (Place::BeforeRoot, _) => {
                return Err(XmlError::Syntax(
                    "the document does not start with an element".to_owned(),
                ));
            }
            (_, other) => {
                return Err(XmlError::Syntax(format!("unexpected {other:?}")));
            }
        };
    }
    if records.is_empty() {
        return Err(XmlError::NoRecords);
    }
    Ok((version, records))
}

fn check_declaration(decl: &BytesDecl<'_>) -> Result<(), XmlError> {
    if let Some(encoding) = decl.encoding() {
        let encoding = encoding.map_err(|e| XmlError::Syntax(e.to_string()))?;
        if !encoding.eq_ignore_ascii_case("utf-8") {
            return Err(XmlError::WrongEncoding(encoding.into_owned()));
        }
    }
    Ok(())
}

fn check_root(
    schema: &Schema,
    versions: &Versions,
    start: &BytesStart<'_>,
) -> Result<u8, XmlError> {
    if start.name().as_ref() != schema.root {
        return Err(XmlError::WrongRoot {
            expected: schema.root,
            found: name_of(start),
        });
    }
    let mut found_version = None;
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| XmlError::Syntax(e.to_string()))?;
        if attribute.value.contains('&') {
            return Err(XmlError::EntityReference);
        }
        let value = attribute.value.clone().into_owned();
        match attribute.key.as_ref() {
            "version" => found_version = Some(value),
            "xmlns" if value == schema.namespace => {}
            "xmlns" => {
                return Err(XmlError::WrongNamespace {
                    found: value,
                    expected: schema.namespace,
                });
            }
            other => {
                return Err(XmlError::UnexpectedAttribute {
                    name: other.to_owned(),
                    element: schema.root.to_owned(),
                });
            }
        }
    }
    let found = found_version.ok_or(XmlError::MissingVersion { root: schema.root })?;
    versions
        .known
        .iter()
        .copied()
        .find(|version| found == version.to_string())
        .ok_or(XmlError::UnsupportedVersion {
            found,
            supported: versions.named,
        })
}

fn no_attributes(start: &BytesStart<'_>) -> Result<(), XmlError> {
    if let Some(attribute) = start.attributes().next() {
        let name = match attribute {
            Ok(attribute) => attribute.key.as_ref().to_owned(),
            Err(e) => return Err(XmlError::Syntax(e.to_string())),
        };
        return Err(XmlError::UnexpectedAttribute {
            name,
            element: name_of(start),
        });
    }
    Ok(())
}

fn field_named(
    schema: &Schema,
    start: &BytesStart<'_>,
    record: &Record,
) -> Result<&'static str, XmlError> {
    let field = schema
        .fields
        .iter()
        .find(|field| start.name().as_ref() == **field)
        .ok_or_else(|| XmlError::UnexpectedElement {
            name: name_of(start),
            inside: schema.record.to_owned(),
        })?;
    no_attributes(start)?;
    if record.optional(field).is_some() {
        return Err(XmlError::DuplicateField {
            record: record.index,
            field,
        });
    }
    Ok(field)
}

/// Writes a document of `schema`; each record lists (field, text) in the order to write.
pub(crate) fn write(
    schema: &Schema,
    version: u8,
    records: &[Vec<(&'static str, String)>],
) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    let version_text = version.to_string();
    let root = BytesStart::new(schema.root).with_attributes([
        ("xmlns", schema.namespace),
        ("version", version_text.as_str()),
    ]);
    // Writing into a Vec cannot fail; the results are checked only to satisfy the API.
    let result: std::io::Result<()> = (|| {
        writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        writer.write_event(Event::Start(root))?;
        for record in records {
            writer.write_event(Event::Start(BytesStart::new(schema.record)))?;
            for (field, value) in record {
                writer
                    .create_element(*field)
                    .write_text_content(BytesText::new(value))?;
            }
            writer.write_event(Event::End(BytesEnd::new(schema.record)))?;
        }
        writer.write_event(Event::End(BytesEnd::new(schema.root)))?;
        Ok(())
    })();
    debug_assert!(result.is_ok());
    let mut text = String::from_utf8(writer.into_inner()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: Schema = Schema {
        root: "Doc",
        namespace: "urn:test",
        record: "Device",
        fields: &["A", "B"],
        max_records: 2,
    };

    const ONE: Versions = Versions {
        known: &[1],
        named: "1",
    };

    fn read_doc(text: &str) -> Result<Vec<Record>, XmlError> {
        read(&SCHEMA, &ONE, text.as_bytes()).map(|(_, records)| records)
    }

    #[test]
    fn writes_what_it_reads() {
        let text = write(
            &SCHEMA,
            1,
            &[vec![("A", "one".to_owned()), ("B", "two".to_owned())]],
        );
        let records = read_doc(&text).unwrap();
        assert_eq!(records[0].required("A"), Ok("one"));
        assert_eq!(records[0].required("B"), Ok("two"));
    }

    #[test]
    fn escaped_values_are_written_safely_but_never_read_back() {
        // The writer escapes; the reader refuses references. So a value needing escapes
        // cannot round-trip, which is why no protocol field allows < or &.
        let text = write(&SCHEMA, 1, &[vec![("A", "x<y&z".to_owned())]]);
        assert!(text.contains("x&lt;y&amp;z"));
        assert_eq!(read_doc(&text).unwrap_err(), XmlError::EntityReference);
    }

    #[test]
    fn refuses_doctype_and_entities() {
        let doctype = r#"<?xml version="1.0"?><!DOCTYPE Doc [<!ENTITY x SYSTEM "file:///etc/passwd">]><Doc version="1"><Device><A>&x;</A></Device></Doc>"#;
        assert_eq!(read_doc(doctype).unwrap_err(), XmlError::Doctype);
        let reference = r#"<Doc version="1"><Device><A>&amp;</A></Device></Doc>"#;
        assert_eq!(read_doc(reference).unwrap_err(), XmlError::EntityReference);
        let char_ref = r#"<Doc version="1"><Device><A>&#65;</A></Device></Doc>"#;
        assert_eq!(read_doc(char_ref).unwrap_err(), XmlError::EntityReference);
    }

    #[test]
    fn refuses_deep_nesting_at_the_third_level() {
        let deep = format!(
            r#"<Doc version="1"><Device><A>{}</A></Device></Doc>"#,
            "<A>".repeat(10_000)
        );
        assert!(matches!(
            read_doc(&deep).unwrap_err(),
            XmlError::UnexpectedElement { .. }
        ));
    }

    #[test]
    fn names_structural_problems() {
        assert!(matches!(
            read_doc(r#"<Doc version="2"><Device/></Doc>"#),
            Err(XmlError::UnsupportedVersion { .. })
        ));
        assert_eq!(
            read_doc(r#"<Doc><Device/></Doc>"#).unwrap_err(),
            XmlError::MissingVersion { root: "Doc" }
        );
        assert_eq!(
            read_doc(r#"<Doc version="1"><Device><A>1</A><A>2</A></Device></Doc>"#).unwrap_err(),
            XmlError::DuplicateField {
                record: 1,
                field: "A"
            }
        );
        assert_eq!(
            read_doc(r#"<Doc version="1"></Doc>"#).unwrap_err(),
            XmlError::NoRecords
        );
        assert_eq!(
            read_doc(r#"<Doc version="1"><Device><A>1</A></Device>"#).unwrap_err(),
            XmlError::Truncated
        );
        assert_eq!(
            read_doc(r#"<Doc version="1"><Device><A>1</A></Device><Device/><Device/></Doc>"#)
                .unwrap_err(),
            XmlError::MissingField {
                record: 2,
                field: "A"
            }
        );
        assert!(matches!(
            read_doc(r#"<Other version="1"/>"#),
            Err(XmlError::WrongRoot { .. })
        ));
        assert_eq!(
            read(&SCHEMA, &ONE, b"\xff\xfe<\x00").unwrap_err(),
            XmlError::NotUtf8
        );
        assert!(matches!(
            read_doc("not xml at all"),
            Err(XmlError::Syntax(_))
        ));
        assert_eq!(
            read_doc(r#"<Doc version="1"><Device><A>1</A></Device></Doc><Doc/>"#).unwrap_err(),
            XmlError::TrailingContent
        );
    }

    #[test]
    fn refuses_oversized_input_before_parsing() {
        let huge = " ".repeat(MAX_XML_BYTES + 1);
        assert_eq!(
            read(&SCHEMA, &ONE, huge.as_bytes()).unwrap_err(),
            XmlError::TooLarge { max: MAX_XML_BYTES }
        );
    }

    #[test]
    fn accepts_crlf_comments_and_bom() {
        let text = "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<!-- exported -->\r\n<Doc version=\"1\">\r\n <Device>\r\n  <A> one </A>\r\n </Device>\r\n</Doc>\r\n";
        let records = read_doc(text).unwrap();
        assert_eq!(records[0].required("A"), Ok("one"));
        assert_eq!(records[0].optional("B"), None);
    }
}
