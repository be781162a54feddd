//! The deployment files that can be checked on this machine.

use std::process::Command;

/// `systemd-analyze verify` on the unit, with ExecStart pointed at the built binary
/// (verify checks that it exists). Any warning, such as a misspelt sandboxing option that
/// systemd would silently ignore, fails the test.
#[test]
fn the_systemd_unit_verifies_cleanly() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/resetdesk.service"
    ))
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("resetdesk.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/resetdesk", env!("CARGO_BIN_EXE_resetdesk")),
    )
    .unwrap();
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze is installed (.ci/run installs systemd)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("resetdesk.service"))
        .collect();
    assert!(
        complaints.is_empty(),
        "systemd complains about the unit:\n{stderr}"
    );
    for option in [
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
        "UMask=0077",
    ] {
        assert!(unit.contains(option), "the unit keeps {option}");
    }
}

/// The compose file parses as YAML and wires what deploy/README.md promises: the desk on
/// PostgreSQL with a mail catcher, data and keys on volumes, no privileges. (No container
/// engine or compose tool runs here, so this is a structural check.)
#[test]
fn the_compose_file_wires_desk_database_and_mail() {
    let script = r#"
import json, sys, yaml
c = yaml.safe_load(open(sys.argv[1]))
print(json.dumps(c))
"#;
    let output = Command::new("python3")
        .args([
            "-c",
            script,
            concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/compose.yaml"),
        ])
        .output()
        .expect("python3 with PyYAML is installed (.ci/run installs it)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let compose: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let services = &compose["services"];
    for name in ["resetdesk", "postgres", "mailpit"] {
        assert!(services[name].is_object(), "service {name}");
    }
    let desk = &services["resetdesk"];
    assert!(
        desk["environment"]["RESETDESK_DATABASE_URL"]
            .as_str()
            .unwrap()
            .starts_with("postgres://")
    );
    assert_eq!(
        desk["environment"]["RESETDESK_SMTP_URL"],
        "smtp://mailpit:1025"
    );
    assert_eq!(desk["build"]["dockerfile"], "deploy/Dockerfile");
    assert_eq!(desk["cap_drop"][0], "ALL");
    let volumes: Vec<&str> = desk["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(
        volumes.contains(&"data:/var/lib/resetdesk/data")
            && volumes.contains(&"keys:/var/lib/resetdesk/keys")
    );
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("USER resetdesk"),
        "the image runs as a non-root user"
    );
    assert!(
        dockerfile.contains("VOLUME [\"/var/lib/resetdesk/data\", \"/var/lib/resetdesk/keys\"]")
    );
}
