//! What may import what (docs/ARCHITECTURE.md, "What may import what"), checked on the
//! source itself: an import across a boundary fails here, naming its file and line,
//! instead of waiting for a reviewer to notice a new circle.

use std::path::{Path, PathBuf};

/// Everything that makes up the server: what the core must never name.
const SERVER_MODULES: &[&str] = &[
    "store", "routes", "review", "intake", "mail", "desk", "auth",
];

/// The core: the device's side, built without the server too.
const CORE_FOLDERS: &[&str] = &["domain", "protocol", "crypto", "device", "i18n"];

#[test]
fn only_the_routes_and_startup_name_the_routes() {
    let breaches = breaches(
        |file| !file.starts_with("routes/") && file != "startup.rs",
        &["routes"],
    );
    assert!(
        breaches.is_empty(),
        "the routes are the top: only src/routes/ and src/startup.rs may name them, \
         and these do:\n{}",
        breaches.join("\n")
    );
}

#[test]
fn the_core_imports_nothing_of_the_server() {
    let breaches = breaches(
        |file| {
            CORE_FOLDERS
                .iter()
                .any(|folder| file.starts_with(&format!("{folder}/")))
        },
        SERVER_MODULES,
    );
    assert!(
        breaches.is_empty(),
        "{CORE_FOLDERS:?} build without the server and must not name {SERVER_MODULES:?}, \
         and these do:\n{}",
        breaches.join("\n")
    );
}

#[test]
fn reading_a_label_is_pure() {
    let found = breaches(
        |file| {
            file.starts_with("evidence/")
                && file != "evidence/worker.rs"
                && file != "evidence/reading.rs"
        },
        SERVER_MODULES,
    );
    assert!(
        found.is_empty(),
        "evidence/ (but its worker and the photo reader) reads a picture and nothing else, \
         and these name the server:\n{}",
        found.join("\n")
    );
    // The photo reader runs in a child process with no store, no mail and no network:
    // intake's bounded decoders are all of the server it may use.
    let reader = breaches(
        |file| file == "evidence/reading.rs",
        &SERVER_MODULES
            .iter()
            .copied()
            .filter(|module| *module != "intake")
            .collect::<Vec<_>>(),
    );
    assert!(
        reader.is_empty(),
        "evidence/reading.rs names the server beyond intake's decoders:\n{}",
        reader.join("\n")
    );
}

/// `file:line: code` for each line of a covered file (its path relative to src/) that
/// names one of `modules` through `crate::`.
fn breaches(covers: impl Fn(&str) -> bool, modules: &[&str]) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for path in rust_files(&src) {
        let file = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if !covers(&file) {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        for (number, line) in code_lines(&source) {
            if crate_paths(&line).any(|named| modules.contains(&named)) {
                found.push(format!("src/{file}:{number}: {}", line.trim()));
            }
        }
    }
    found
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Each line's code without its `//` comment (a doc comment may name any module), with
/// its 1-based number. A `use crate::{...}` group spanning lines is joined into its first
/// line, so a module named inside it is reported where the `use` starts.
fn code_lines(source: &str) -> Vec<(usize, String)> {
    let mut lines: Vec<(usize, String)> = Vec::new();
    let mut open_group = false;
    for (index, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        match lines.last_mut() {
            Some((_, joined)) if open_group => joined.push_str(code),
            _ => lines.push((index + 1, code.to_owned())),
        }
        let (_, current) = lines.last().unwrap();
        open_group = current.contains("crate::{") && !current.contains("};");
    }
    lines
}

/// The first module after each `crate::` on a line, and each one of a `crate::{...}`
/// group.
fn crate_paths(line: &str) -> impl Iterator<Item = &str> {
    line.split("crate::").skip(1).flat_map(|rest| {
        let group = rest
            .strip_prefix('{')
            .map(|inner| inner.split('}').next().unwrap_or_default());
        let names: Vec<&str> = match group {
            Some(inner) => inner
                .split(',')
                .map(first_segment)
                .filter(|name| !name.is_empty())
                .collect(),
            None => vec![first_segment(rest)],
        };
        names
    })
}

fn first_segment(path: &str) -> &str {
    let path = path.trim_start();
    let end = path
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(path.len());
    &path[..end]
}

#[test]
fn the_checks_see_imports_in_each_form_they_are_written() {
    let source = "use crate::routes::ApiError;\n\
                  // crate::routes in a comment is no import\n\
                  let page = crate::routes::message_page(x);\n\
                  use crate::{\n    domain::Serial,\n    store::Store,\n};\n";
    let named: Vec<(usize, Vec<String>)> = code_lines(source)
        .into_iter()
        .map(|(number, line)| {
            let names: Vec<String> = crate_paths(&line).map(str::to_owned).collect();
            (number, names)
        })
        .filter(|(_, names)| !names.is_empty())
        .collect();
    assert_eq!(
        named,
        vec![
            (1, vec!["routes".to_owned()]),
            (3, vec!["routes".to_owned()]),
            (4, vec!["domain".to_owned(), "store".to_owned()]),
        ]
    );
}
