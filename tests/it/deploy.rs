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
