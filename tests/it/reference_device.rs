//! The reset loop with the real binary: provision → export → respond → import, and every
//! refusal a device gives, each produced by a real scenario.

use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::support::Sandbox;

const SERIAL: &str = "DS-7608NI-K2/8P0820231115CCRRJ12345678";
const T0: &str = "2026-11-24T10:00:00Z";

/// A sandbox with keys and one provisioned NVR.
fn provisioned() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.run(&["keys", "init"]).ok();
    sandbox
        .run(&[
            "device",
            "provision",
            "--serial",
            SERIAL,
            "--model",
            "DS-7608NI-K2",
            "--firmware",
            "V4.30.085",
            "--state",
            "nvr.json",
        ])
        .ok();
    sandbox
}

fn export(sandbox: &Sandbox, format: &str, out: &str, now: &str) {
    sandbox
        .run(&[
            "device", "export", "--state", "nvr.json", "--format", format, "--out", out, "--now",
            now,
        ])
        .ok();
}

fn respond(sandbox: &Sandbox, request: &str, out_dir: &str, now: &str) {
    sandbox
        .run(&[
            "respond",
            "--request",
            request,
            "--out-dir",
            out_dir,
            "--now",
            now,
        ])
        .ok();
}

/// The typed key for `serial` from a `keys.txt` written by `respond`.
fn key_from(sandbox: &Sandbox, out_dir: &str, serial: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = sandbox.path(out_dir).join("keys.txt");
    // The keys reset the devices: their file is its owner's alone.
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let keys = fs::read_to_string(&path).unwrap();
    keys.lines()
        .find(|line| line.starts_with(serial))
        .and_then(|line| line.split_whitespace().nth(1))
        .unwrap_or_else(|| panic!("no key for {serial} in {keys}"))
        .to_owned()
}

fn import_response(sandbox: &Sandbox, out_dir: &str, now: &str) -> crate::support::Run {
    let response = format!("{out_dir}/response.xml");
    sandbox.run(&[
        "device",
        "import",
        "--state",
        "nvr.json",
        "--response",
        &response,
        "--new-password",
        "correct horse battery",
        "--now",
        now,
    ])
}

fn import_key(sandbox: &Sandbox, key: &str, now: &str) -> crate::support::Run {
    sandbox.run(&[
        "device",
        "import",
        "--state",
        "nvr.json",
        "--key",
        key,
        "--new-password",
        "correct horse battery",
        "--now",
        now,
    ])
}

#[test]
fn every_export_form_round_trips_through_respond_and_import() {
    for format in ["xml", "string", "qr"] {
        let sandbox = provisioned();
        let export_file = format!("export.{format}");
        export(&sandbox, format, &export_file, T0);
        respond(&sandbox, &export_file, "answer", "2026-11-24T10:05:00Z");
        let run = import_response(&sandbox, "answer", "2026-11-24T11:00:00Z").ok();
        assert!(
            run.stdout.contains("password set"),
            "{format}: {}",
            run.stdout
        );

        // The same export form, answered with the typed key this time.
        export(&sandbox, format, &export_file, T0);
        respond(&sandbox, &export_file, "answer2", "2026-11-24T10:05:00Z");
        let key = key_from(&sandbox, "answer2", SERIAL);
        let run = import_key(&sandbox, &key.to_lowercase(), "2026-11-24T11:00:00Z").ok();
        assert!(
            run.stdout.contains("password set"),
            "{format}: {}",
            run.stdout
        );
    }
}

#[test]
fn nvr_export_covers_its_cameras() {
    let sandbox = provisioned();
    sandbox
        .run(&[
            "device",
            "export",
            "--state",
            "nvr.json",
            "--format",
            "xml",
            "--out",
            "nvr.xml",
            "--with-cameras",
            "2",
            "--now",
            T0,
        ])
        .ok();
    let xml = fs::read_to_string(sandbox.path("nvr.xml")).unwrap();
    assert_eq!(xml.matches("<Device>").count(), 3);
    let run = sandbox
        .run(&[
            "respond",
            "--request",
            "nvr.xml",
            "--out-dir",
            "answer",
            "--now",
            T0,
        ])
        .ok();
    assert_eq!(
        run.stdout
            .matches("valid until 2026-11-26T10:00:00Z")
            .count(),
        3,
        "{}",
        run.stdout
    );
    let run = import_response(&sandbox, "answer", T0).ok();
    assert_eq!(
        run.stdout.matches(": password set").count(),
        3,
        "{}",
        run.stdout
    );

    // A camera's key typed into the camera.
    sandbox
        .run(&[
            "device",
            "export",
            "--state",
            "nvr.json",
            "--format",
            "string",
            "--out",
            "nvr.txt",
            "--with-cameras",
            "2",
            "--now",
            T0,
        ])
        .ok();
    respond(&sandbox, "nvr.txt", "answer2", T0);
    let keys = fs::read_to_string(sandbox.path("answer2/keys.txt")).unwrap();
    let camera_line = keys
        .lines()
        .find(|l| l.starts_with("DS-2CD2043G2-I"))
        .unwrap();
    let mut fields = camera_line.split_whitespace();
    let (camera, key) = (fields.next().unwrap(), fields.next().unwrap());
    sandbox
        .run(&[
            "device",
            "import",
            "--state",
            "nvr.json",
            "--key",
            key,
            "--serial",
            camera,
            "--new-password",
            "correct horse battery",
            "--now",
            T0,
        ])
        .ok();
}

#[test]
fn a_response_dies_when_the_device_exports_again() {
    let sandbox = provisioned();
    export(&sandbox, "xml", "first.xml", T0);
    respond(&sandbox, "first.xml", "answer", T0);
    export(&sandbox, "xml", "second.xml", "2026-11-24T10:10:00Z");
    import_response(&sandbox, "answer", "2026-11-24T10:20:00Z").refused(
        11,
        "challenge no longer current: the device exported a new reset request",
    );
}

#[test]
fn a_response_dies_when_the_device_reboots() {
    let sandbox = provisioned();
    export(&sandbox, "xml", "export.xml", T0);
    respond(&sandbox, "export.xml", "answer", T0);
    sandbox
        .run(&["device", "reboot", "--state", "nvr.json"])
        .ok();
    import_response(&sandbox, "answer", T0).refused(11, "rebooted");
    let key = key_from(&sandbox, "answer", SERIAL);
    import_key(&sandbox, &key, T0).refused(11, "rebooted");
}

#[test]
fn a_response_expires_after_48_hours() {
    let sandbox = provisioned();
    export(&sandbox, "xml", "export.xml", T0);
    respond(&sandbox, "export.xml", "answer", T0);
    let key = key_from(&sandbox, "answer", SERIAL);
    import_key(&sandbox, &key, "2026-11-26T09:59:59Z").ok();

    export(&sandbox, "xml", "export.xml", T0);
    respond(&sandbox, "export.xml", "answer", T0);
    let key = key_from(&sandbox, "answer", SERIAL);
    import_response(&sandbox, "answer", "2026-11-26T11:00:00Z")
        .refused(12, "expired at 2026-11-26T10:00:00Z");
    import_key(&sandbox, &key, "2026-11-26T11:00:00Z").refused(11, "has expired");
}

#[test]
fn the_desk_refuses_an_export_older_than_48_hours() {
    let sandbox = provisioned();
    export(&sandbox, "xml", "export.xml", T0);
    sandbox
        .run(&[
            "respond",
            "--request",
            "export.xml",
            "--out-dir",
            "answer",
            "--now",
            "2026-11-26T11:00:00Z",
        ])
        .refused(1, "expired at 2026-11-26T10:00:00Z");
    assert!(
        !sandbox.path("answer").exists(),
        "nothing is written for a refused export"
    );
}

#[test]
fn a_flipped_byte_in_the_response_is_a_bad_signature() {
    let sandbox = provisioned();
    export(&sandbox, "xml", "export.xml", T0);
    respond(&sandbox, "export.xml", "answer", T0);
    let path = sandbox.path("answer/response.xml");
    let xml = fs::read_to_string(&path).unwrap();
    let start = xml.find("<Signature>").unwrap() + "<Signature>".len() + 10;
    let mut bytes = xml.into_bytes();
    bytes[start] = if bytes[start] == b'0' { b'1' } else { b'0' };
    fs::write(&path, bytes).unwrap();
    import_response(&sandbox, "answer", T0).refused(15, "bad signature");

    // An altered expiry is caught the same way.
    respond(&sandbox, "export.xml", "answer2", T0);
    let path = sandbox.path("answer2/response.xml");
    let xml = fs::read_to_string(&path)
        .unwrap()
        .replace("2026-11-26T10:00:00Z", "2026-12-26T10:00:00Z");
    fs::write(&path, xml).unwrap();
    import_response(&sandbox, "answer2", T0).refused(15, "bad signature");
}

#[test]
fn a_response_for_another_serial_is_the_wrong_device() {
    let sandbox = provisioned();
    sandbox
        .run(&[
            "device",
            "provision",
            "--serial",
            "DS-2CD2143G2-I20231115AAWRJ99999999",
            "--model",
            "DS-2CD2143G2-I",
            "--state",
            "other.json",
        ])
        .ok();
    sandbox
        .run(&[
            "device",
            "export",
            "--state",
            "other.json",
            "--format",
            "xml",
            "--out",
            "other.xml",
            "--now",
            T0,
        ])
        .ok();
    export(&sandbox, "xml", "export.xml", T0);
    respond(&sandbox, "other.xml", "answer", T0);
    import_response(&sandbox, "answer", T0).refused(10, "wrong device");
}

#[test]
fn a_response_signed_by_an_untrusted_key_is_refused() {
    let sandbox = provisioned();
    // The firmware was built trusting only the first key; the vendor then rotates.
    sandbox.run(&["keys", "rotate"]).ok();
    let list = sandbox.run(&["keys", "list"]).ok();
    assert_eq!(
        list.stdout.matches("verify-only").count(),
        1,
        "{}",
        list.stdout
    );
    assert_eq!(list.stdout.matches("active").count(), 1, "{}", list.stdout);
    export(&sandbox, "xml", "export.xml", T0);
    respond(&sandbox, "export.xml", "answer", T0);
    import_response(&sandbox, "answer", T0).refused(14, "unknown key id");

    // A device built after the rotation trusts both keys and accepts the response.
    sandbox
        .run(&["keys", "export-public", "--out", "public.json"])
        .ok();
    let public = fs::read_to_string(sandbox.path("public.json")).unwrap();
    assert_eq!(public.matches("\"id\"").count(), 2);
    sandbox
        .run(&[
            "device",
            "provision",
            "--serial",
            "DS-2CD2143G2-I20231115AAWRJ77777777",
            "--model",
            "DS-2CD2143G2-I",
            "--trust",
            "public.json",
            "--state",
            "new.json",
        ])
        .ok();
    sandbox
        .run(&[
            "device", "export", "--state", "new.json", "--format", "qr", "--out", "new.png",
            "--now", T0,
        ])
        .ok();
    respond(&sandbox, "new.png", "answer2", T0);
    sandbox
        .run(&[
            "device",
            "import",
            "--state",
            "new.json",
            "--response",
            "answer2/response.xml",
            "--new-password",
            "correct horse battery",
            "--now",
            T0,
        ])
        .ok();
}

#[test]
fn five_wrong_keys_end_the_challenge() {
    let sandbox = provisioned();
    export(&sandbox, "string", "export.txt", T0);
    respond(&sandbox, "export.txt", "answer", T0);
    let right = key_from(&sandbox, "answer", SERIAL);
    let wrong = if right.starts_with('0') {
        "1111-1111"
    } else {
        "0000-0000"
    };
    for left in (1..=4).rev() {
        import_key(&sandbox, wrong, T0).refused(16, &format!("{left} attempts left"));
    }
    import_key(&sandbox, wrong, T0).refused(16, "last attempt");
    import_key(&sandbox, &right, T0).refused(13, "too many attempts");
    import_response(&sandbox, "answer", T0).refused(11, "too many wrong answers");
}

#[test]
fn a_used_response_cannot_be_replayed() {
    let sandbox = provisioned();
    export(&sandbox, "xml", "export.xml", T0);
    respond(&sandbox, "export.xml", "answer", T0);
    import_response(&sandbox, "answer", T0).ok();
    import_response(&sandbox, "answer", T0).refused(11, "already used");
}

#[test]
fn malformed_input_is_named() {
    let sandbox = provisioned();
    export(&sandbox, "xml", "export.xml", T0);
    fs::create_dir_all(sandbox.path("junk")).unwrap();
    fs::write(sandbox.path("junk/response.xml"), "this is not xml").unwrap();
    import_response(&sandbox, "junk", T0).refused(17, "malformed");
    import_key(&sandbox, "ABCD-EFG", T0).refused(17, "8 characters");
    import_key(&sandbox, "ABCD-EFGU", T0).refused(17, "\'U\' at position 9");

    fs::write(sandbox.path("typo.txt"), "RD1-0000-U").unwrap();
    sandbox
        .run(&[
            "respond",
            "--request",
            "typo.txt",
            "--out-dir",
            "x",
            "--now",
            T0,
        ])
        .refused(1, "cannot appear in it");
    let xml = fs::read_to_string(sandbox.path("export.xml")).unwrap();
    let with_doctype = xml.replacen(
        "<ResetRequest",
        "<!DOCTYPE x [<!ENTITY e SYSTEM \"file:///etc/passwd\">]><ResetRequest",
        1,
    );
    fs::write(sandbox.path("evil.xml"), with_doctype).unwrap();
    sandbox
        .run(&[
            "respond",
            "--request",
            "evil.xml",
            "--out-dir",
            "x",
            "--now",
            T0,
        ])
        .refused(1, "DOCTYPE declarations are not allowed");
    let forged = xml.replace("V4.30.085", "V4.30.086");
    fs::write(sandbox.path("forged.xml"), forged).unwrap();
    sandbox
        .run(&[
            "respond",
            "--request",
            "forged.xml",
            "--out-dir",
            "x",
            "--now",
            T0,
        ])
        .refused(1, "authentication code is wrong");
}

#[test]
fn keys_are_private_and_never_printed() {
    let sandbox = Sandbox::new();
    let init = sandbox.run(&["keys", "init"]).ok();
    let master = fs::read_to_string(sandbox.path("keys/factory-master.key")).unwrap();
    assert!(!init.stdout.contains(master.trim()) && !init.stderr.contains(master.trim()));
    for entry in walk(&sandbox.path("keys")) {
        let mode = fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
        let expected = if entry.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, expected, "{}", entry.display());
    }
    sandbox
        .run(&["keys", "init"])
        .refused(1, "refusing to overwrite");

    fs::set_permissions(
        sandbox.path("keys/factory-master.key"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    sandbox
        .run(&[
            "device",
            "provision",
            "--serial",
            SERIAL,
            "--model",
            "DS-7608NI-K2",
            "--state",
            "nvr.json",
        ])
        .refused(1, "chmod 600");
    assert!(!sandbox.path("nvr.json").exists());

    let empty = Sandbox::new();
    empty
        .run(&["keys", "list"])
        .refused(1, "run `resetdesk keys init`");
}

#[test]
fn bad_arguments_name_the_problem() {
    let sandbox = Sandbox::new();
    sandbox.run(&["keys", "init"]).ok();
    sandbox
        .run(&[
            "device",
            "provision",
            "--serial",
            "ds-lower",
            "--model",
            "M",
            "--state",
            "s.json",
        ])
        .refused(2, "serial has a character that is not allowed");
    sandbox
        .run(&[
            "device",
            "export",
            "--state",
            "missing.json",
            "--format",
            "xml",
            "--out",
            "x.xml",
        ])
        .refused(1, "missing.json");
    sandbox
        .run(&[
            "device",
            "provision",
            "--serial",
            SERIAL,
            "--model",
            "M",
            "--state",
            "s.json",
        ])
        .ok();
    sandbox
        .run(&[
            "device",
            "provision",
            "--serial",
            SERIAL,
            "--model",
            "M",
            "--state",
            "s.json",
        ])
        .refused(1, "already provisioned");
    sandbox
        .run(&[
            "device",
            "import",
            "--state",
            "s.json",
            "--key",
            "0000-0000",
            "--new-password",
            "short",
        ])
        .refused(18, "at least 8 characters");
    sandbox
        .run(&[
            "device",
            "import",
            "--state",
            "s.json",
            "--key",
            "0000-0000",
            "--new-password",
            "long enough",
        ])
        .refused(11, "no reset in progress");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        }
        out.push(path);
    }
    out
}
