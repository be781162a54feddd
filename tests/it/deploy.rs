//! The deployment files that can be checked on this machine.

use std::process::Command;

/// `systemd-analyze verify` on the unit, with ExecStart pointed at the built binary
/// (verify checks that it exists). Any warning, such as a misspelt sandboxing option that
/// systemd would silently ignore, fails the test.
#[test]
fn the_systemd_unit_verifies_cleanly() {
    verifies_cleanly("resetdesk.service");
}

/// The signer's unit (issue 22) verifies as the desk's does, runs as its own user with no
/// network, and the desk's drop-in points the desk at the socket it listens on.
#[test]
fn the_signers_unit_verifies_and_the_desk_is_pointed_at_it() {
    let unit = verifies_cleanly("resetdesk-signer.service");
    for option in [
        "User=resetdesk-signer",
        "PrivateNetwork=yes",
        "RestrictAddressFamilies=AF_UNIX",
        "--desk-uid resetdesk",
        "StateDirectoryMode=0700",
    ] {
        assert!(unit.contains(option), "the signer's unit has {option}");
    }
    let socket = unit
        .split_whitespace()
        .skip_while(|word| *word != "--socket")
        .nth(1)
        .expect("the signer's socket");
    let drop_in = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/resetdesk.service.d/signer.conf"
    ))
    .unwrap();
    assert!(
        drop_in.contains(&format!("RESETDESK_SIGNER_URL=unix:{socket}")),
        "{drop_in}"
    );
    assert!(drop_in.contains("SupplementaryGroups=resetdesk-signer"));
    assert!(drop_in.contains("Requires=resetdesk-signer.service"));
}

/// `systemd-analyze verify` on `deploy/NAME`; the unit's text.
fn verifies_cleanly(name: &str) -> String {
    let unit =
        std::fs::read_to_string(format!("{}/deploy/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
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
    let complaints: Vec<&str> = stderr.lines().filter(|l| l.contains(name)).collect();
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
    unit
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
    // The keys in a container of their own: no network, another uid, its own volume;
    // the desk reaches its socket and answers no longer need the desk to hold a key.
    let signer = &services["signer"];
    assert_eq!(signer["network_mode"], "none");
    assert_eq!(signer["user"], "10002:10002");
    assert_eq!(signer["cap_drop"][0], "ALL");
    let command: Vec<&str> = signer["command"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    let socket = command[command.iter().position(|a| *a == "--socket").unwrap() + 1];
    assert_eq!(
        desk["environment"]["RESETDESK_SIGNER_URL"],
        format!("unix:{socket}")
    );
    assert!(
        command.windows(2).any(|w| w == ["--desk-uid", "10001"]),
        "{command:?}"
    );
    assert!(
        !volumes.iter().any(|v| v.starts_with("signer-keys")),
        "the desk never mounts the signer's keys"
    );
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/Dockerfile")).unwrap();
    assert!(dockerfile.contains("--uid 10001") && dockerfile.contains("--uid 10002"));
    assert!(
        dockerfile.contains("USER resetdesk"),
        "the image runs as a non-root user"
    );
    assert!(
        dockerfile.contains("VOLUME [\"/var/lib/resetdesk/data\", \"/var/lib/resetdesk/keys\"]")
    );
}
