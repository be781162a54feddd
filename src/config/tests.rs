use super::*;

#[test]
fn staff_and_watched_domains_are_lists_of_domains() {
    let settings = Settings::load_from(
        None,
        &env(&[
            (
                "RESETDESK_STAFF_DOMAINS",
                "Vendor.example, @support.vendor.example",
            ),
            ("RESETDESK_WATCH_DOMAINS", "suspicious.test"),
        ]),
    )
    .unwrap();
    assert_eq!(
        settings.four_eyes.staff_domains,
        ["vendor.example", "support.vendor.example"]
    );
    assert_eq!(settings.four_eyes.watch_domains, ["suspicious.test"]);
    let err =
        Settings::load_from(None, &env(&[("RESETDESK_STAFF_DOMAINS", "localhost")])).unwrap_err();
    assert!(err.to_string().contains("staff_domains"), "{err}");
}

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_then_file_then_environment() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resetdesk.toml");
    std::fs::write(&file, "listen = \"0.0.0.0:9000\"\nmax_label_photo_bytes = 1_000\nmail_from = \"Desk <desk@example.com>\"\n").unwrap();
    let settings = Settings::load_from(
        Some(&file),
        &env(&[
            ("RESETDESK_LISTEN", "127.0.0.1:9100"),
            ("RESETDESK_DATA_DIR", "/srv/desk"),
        ]),
    )
    .unwrap();
    assert_eq!(settings.http.listen.port(), 9100);
    assert_eq!(settings.intake.max_label_photo_bytes, 1000);
    assert_eq!(settings.mail.from, "Desk <desk@example.com>");
    assert_eq!(settings.http.public_url, "http://127.0.0.1:9100");
    assert_eq!(
        settings.storage.database_url(),
        "sqlite:///srv/desk/resetdesk.db"
    );
}

#[test]
fn unknown_and_invalid_settings_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "lisen = \"x\"\n").unwrap();
    let err = Settings::load_from(Some(&file), &BTreeMap::new()).unwrap_err();
    assert!(err.to_string().contains("\"lisen\""), "{err}");
    let err = Settings::load_from(
        None,
        &env(&[("RESETDESK_SMTP_URL", "http://user:hunter2@x")]),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("smtp_url") && !err.to_string().contains("hunter2"),
        "{err}"
    );
}

#[test]
fn the_minimum_upload_rate_is_a_setting_that_can_be_turned_off() {
    let defaults = Settings::default();
    assert_eq!(
        (
            defaults.uploads.min_bytes_per_sec,
            defaults.uploads.min_rate_grace_secs
        ),
        (8192, 10)
    );
    let settings = Settings::load_from(
        None,
        &env(&[
            ("RESETDESK_UPLOAD_MIN_BYTES_PER_SEC", "0"),
            ("RESETDESK_UPLOAD_MIN_RATE_GRACE_SECS", "30"),
        ]),
    )
    .unwrap();
    assert_eq!(settings.uploads.min_bytes_per_sec, 0);
    assert_eq!(settings.uploads.min_rate_grace_secs, 30);
    let err = Settings::load_from(None, &env(&[("RESETDESK_UPLOAD_MIN_RATE_GRACE_SECS", "0")]))
        .unwrap_err();
    assert!(
        err.to_string().contains("upload_min_rate_grace_secs"),
        "{err}"
    );
}

#[test]
fn smtp_credentials_are_redacted_in_debug() {
    let settings = Settings::load_from(
        None,
        &env(&[("RESETDESK_SMTP_URL", "smtp://u:hunter2@mail:25")]),
    )
    .unwrap();
    assert!(!format!("{settings:?}").contains("hunter2"));
    assert_eq!(
        settings.mail.smtp_url.unwrap().expose(),
        "smtp://u:hunter2@mail:25"
    );
}

/// The README's configuration table is where operators find the names: each one must be
/// a setting, in the file and in the environment.
#[test]
fn every_setting_the_readme_names_is_known() {
    let readme = include_str!("../../README.md");
    let section = readme.split("## Configuration").nth(1).unwrap();
    let names: Vec<&str> = section
        .lines()
        .take_while(|line| !line.starts_with("## "))
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|row| row.split(" |").next())
        .flat_map(|names| names.split(", "))
        .map(|name| name.trim_matches('`'))
        .collect();
    assert!(names.len() > 30, "{names:?}");
    for name in names {
        let refused = Settings::default().set(name, "");
        assert!(
            !matches!(refused, Err(ConfigError::Unknown(_))),
            "{name} is in the README but no setting"
        );
    }
}

#[test]
fn a_refused_secret_is_never_repeated() {
    let err = Settings::load_from(None, &env(&[("RESETDESK_METRICS_TOKEN", "short-hunter2")]))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("metrics_token") && !text.contains("hunter2"),
        "{text}"
    );
}
