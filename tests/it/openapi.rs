//! Issue 20: the API installers build on. `GET /api/v1/openapi.json` is an OpenAPI 3.1
//! document of every `/api/v1` route the code registers (checked against the source, so
//! a route added without its document fails here), and the running desk keeps to it:
//! schemathesis (PyPI) sends what the document allows and more, and every answer must be
//! one the document names, in its schema, never a 5xx.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::desk_support::{TestApp, spawn_app_with};

/// Every `(method, path)` a handler under src/routes/ registers for `/api/v1`, read from
/// its `#[get("…")]`/`#[post("…")]` attribute.
fn routes_in_source() -> BTreeSet<(String, String)> {
    fn walk(dir: &Path, found: &mut BTreeSet<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, found);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for method in ["get", "post", "put", "patch", "delete"] {
                let attribute = format!("#[{method}(\"/api/v1");
                for (at, _) in text.match_indices(&attribute) {
                    let start = at + attribute.len() - "/api/v1".len();
                    let end = start + text[start..].find('"').unwrap();
                    found.insert((method.to_owned(), text[start..end].to_owned()));
                }
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/routes"),
        &mut found,
    );
    found
}

async fn document(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/api/v1/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_document_names_every_api_route() {
    let app = spawn_app_with(|_| {}).await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let documented: BTreeSet<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, operations)| {
            operations
                .as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.clone(), path.clone()))
        })
        .collect();
    let registered = routes_in_source();
    assert!(registered.len() >= 10, "{registered:?}");
    assert_eq!(documented, registered, "documented vs registered");
    // Every operation says who may call it and what it answers, errors included.
    for (method, path) in &registered {
        let operation = &doc["paths"][path][method];
        let statuses = operation["responses"].as_object().unwrap();
        assert!(
            statuses.keys().any(|s| s.starts_with('2')),
            "{method} {path}"
        );
        if path != "/api/v1/openapi.json" {
            assert!(
                statuses.keys().any(|s| s.starts_with('4')),
                "{method} {path}"
            );
        }
    }
    // The request form's parts are the form's own names (what `routes::upload` reads).
    let form = &doc["components"]["schemas"]["RequestForm"]["properties"];
    let parts: BTreeSet<&str> = form
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = resetdesk::intake::SubmissionField::ALL
        .iter()
        .map(|f| f.as_str())
        .filter(|name| !name.starts_with("kept_"))
        .collect();
    assert_eq!(parts, expected);
    for scheme in ["agent_token", "installer_token"] {
        assert_eq!(
            doc["components"]["securitySchemes"][scheme]["scheme"],
            "bearer"
        );
    }
}

/// The schemathesis command (`st`), if this machine has it; CI installs it
/// (`.ci/run`) and sets `RESETDESK_TEST_SCHEMATHESIS_REQUIRED=1`.
fn schemathesis() -> Option<String> {
    let configured = std::env::var("RESETDESK_TEST_SCHEMATHESIS").ok();
    let program = configured.unwrap_or_else(|| {
        let home = std::env::var("HOME").unwrap_or_default();
        format!("{home}/.cache/resetdesk/schemathesis/bin/st")
    });
    if Path::new(&program).exists() {
        return Some(program);
    }
    assert!(
        std::env::var("RESETDESK_TEST_SCHEMATHESIS_REQUIRED").is_err(),
        "schemathesis is required here but {program} is missing (see .ci/run)"
    );
    eprintln!("skipped: schemathesis is not installed ({program})");
    None
}

/// Runs schemathesis over the operations tagged `tag`, with `token` as the bearer. With
/// `ticket`, every `{id}` is that real ticket, so the decisions reach it (claims,
/// approvals, conflicts); without, the ids are made up (404s, malformed numbers).
fn fuzz(program: &str, app: &TestApp, tag: &str, token: Option<&str>, ticket: Option<&str>) {
    let config = app
        .dir
        .path()
        .join(format!("schemathesis-{}.toml", ticket.is_some()));
    let parameters = match ticket {
        Some(_) => "[parameters]\n\"path.id\" = \"${RESETDESK_ST_TICKET}\"\n",
        None => "",
    };
    std::fs::write(&config, parameters).unwrap();
    let mut command = Command::new(program);
    command
        // Its cache (`.schemathesis/`) goes with the test's directory, not the tree's.
        .current_dir(app.dir.path())
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .env("RESETDESK_ST_TICKET", ticket.unwrap_or_default())
        .arg(app.url("/api/v1/openapi.json"))
        .args(["--url", &app.base])
        .args(["--include-tag", tag])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--phases", "examples,coverage,fuzzing"])
        .args(["--max-examples", "30", "--workers", "1", "--request-timeout", "30"])
        .args(["--suppress-health-check", "all"])
        .env("SCHEMATHESIS_HOOKS", "")
        .env("NO_COLOR", "1");
    if let Some(token) = token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = command.output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "schemathesis on {tag}:\n{said}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_running_desk_keeps_to_its_document() {
    let Some(program) = schemathesis() else {
        return;
    };
    let app = spawn_app_with(|_| {}).await;
    let agent = app.agent_token("agent@vendor.test").await;
    let store = app.desk.store.as_ref();
    let installer_email = resetdesk::domain::EmailAddress::parse("ops@installer.example").unwrap();
    resetdesk::installers::add(store, &installer_email, "Instalaciones", "test", app.now())
        .await
        .unwrap();
    let installer = resetdesk::installers::find(store, &installer_email)
        .await
        .unwrap();
    let installer_token = resetdesk::installers::new_token(store, &installer, "test", app.now())
        .await
        .unwrap();
    // Something to read: a ticket in the queue.
    let mut device = app.device("DS-7608NI-K2/OPENAPI00001", "DS-7608NI-K2");
    let request = app.export(&mut device, 0, app.now());
    let (ticket, _) = app
        .submit_form(
            crate::desk_support::export_part(
                crate::desk_support::customer_form("ana@example.com"),
                &request,
                "xml",
            )
            .part(
                "label_photo",
                crate::desk_support::file_part(
                    crate::desk_support::label_photo(),
                    "label.jpg",
                    "image/jpeg",
                ),
            ),
        )
        .await;
    let base = app.base.clone();
    let runs = tokio::task::spawn_blocking(move || {
        let app_ref = &app;
        fuzz(&program, app_ref, "agents", Some(&agent), None);
        fuzz(&program, app_ref, "agents", Some(&agent), Some(&ticket));
        fuzz(
            &program,
            app_ref,
            "installers",
            Some(&installer_token),
            None,
        );
        fuzz(&program, app_ref, "requests", None, None);
        fuzz(&program, app_ref, "meta", None, None);
        app
    });
    let app = runs.await.unwrap_or_else(|e| panic!("against {base}: {e}"));
    drop(app);
}
