//! Registered installers (issue 20): the vendor's partners, whose requests for their
//! own devices the installer track answers (`review::automatic`). The rules the CLI, the
//! admin pages and the installers' API share: adding one, their tokens, and their
//! devices, from a distributor's sales records (a CSV with a `serial` column) or
//! registered by the installer.

use crate::desk::Desk;
use crate::domain::{DeviceSerial, EmailAddress, PlainText, Timestamp};
use crate::store::{DeviceSource, Installer, InstallerId, Registered, Store, StoreError};

/// Devices registered in one call or one file: a distributor's yearly sales to one
/// installer fit, and a list that does not is an error, not an afternoon's work.
pub const MAX_DEVICES_AT_ONCE: usize = 10_000;

/// The largest CSV file read (a serial is at most 64 characters).
pub const MAX_CSV_BYTES: usize = 2 * 1024 * 1024;

/// The longest company name.
const MAX_COMPANY_CHARS: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum InstallerError {
    /// What was sent is wrong; every problem, each naming where.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    #[error("there is no installer {0}: add one with `resetdesk installer add`")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Adds an installer.
pub async fn add(
    store: &dyn Store,
    email: &EmailAddress,
    company: &str,
    actor: &str,
    now: Timestamp,
) -> Result<InstallerId, InstallerError> {
    let company = PlainText::parse(company, MAX_COMPANY_CHARS)
        .map_err(|e| InstallerError::Invalid(vec![format!("the company {e}")]))?;
    Ok(store
        .add_installer(email, company.as_str(), actor, now)
        .await?)
}

pub async fn find(store: &dyn Store, email: &EmailAddress) -> Result<Installer, InstallerError> {
    match store.installer_by_email(email).await {
        Ok(installer) => Ok(installer),
        Err(StoreError::NotFound) => Err(InstallerError::NotFound(email.to_string())),
        Err(other) => Err(other.into()),
    }
}

/// A new token (scope `submit`) for the installer: the plain text, shown once.
pub async fn new_token(
    store: &dyn Store,
    installer: &Installer,
    actor: &str,
    now: Timestamp,
) -> Result<String, InstallerError> {
    // A suspension revoked their tokens; a new one would undo it behind the admins'
    // backs (devices registered meanwhile would wait out their hold, unseen).
    if installer.suspended.is_some() {
        return Err(InstallerError::Invalid(vec![format!(
            "{} is suspended: resume the installer first (`resetdesk installer resume`), then make their token",
            installer.email
        )]));
    }
    let (plain, hash) = crate::auth::new_installer_token();
    store
        .create_installer_token(installer.id, &hash, actor, now)
        .await?;
    Ok(plain)
}

/// The installer a bearer token belongs to; `None` for a token that is not one.
pub async fn by_token(desk: &Desk, token: &str) -> Result<Option<Installer>, StoreError> {
    let hash = crate::auth::api_token_hash(token);
    match desk.store.installer_by_token(&hash, desk.clock.now()).await {
        Ok(installer) => Ok(Some(installer)),
        Err(StoreError::NotFound) => Ok(None),
        Err(other) => Err(other),
    }
}

/// Serials as sent, each checked: every problem at once, each naming where (`where_`
/// says how: "line 4", "serials[3]"); at most [`MAX_DEVICES_AT_ONCE`]; a serial twice
/// counts once.
pub fn serials<'a>(
    sent: impl IntoIterator<Item = (String, &'a str)>,
) -> Result<Vec<DeviceSerial>, InstallerError> {
    let mut serials: Vec<DeviceSerial> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut problems = Vec::new();
    for (place, raw) in sent {
        match DeviceSerial::parse(raw.trim()) {
            Ok(serial) if seen.insert(serial.as_str().to_owned()) => serials.push(serial),
            Ok(_) => {}
            Err(e) => problems.push(format!("{place}: the serial {:?} {e}", raw.trim())),
        }
        if problems.len() >= 20 {
            problems.push("(and maybe more: fix these first)".to_owned());
            break;
        }
        if serials.len() > MAX_DEVICES_AT_ONCE {
            problems.push(format!(
                "at most {MAX_DEVICES_AT_ONCE} devices at once: split the list"
            ));
            break;
        }
    }
    if serials.is_empty() && problems.is_empty() {
        problems.push("no serial to register".to_owned());
    }
    if problems.is_empty() {
        Ok(serials)
    } else {
        Err(InstallerError::Invalid(problems))
    }
}

/// The serials of a CSV file with a header row naming a `serial` column (any case; other
/// columns are ignored), as distributors' sales records come. Quoted fields are read as
/// RFC 4180 says; blank lines are skipped.
pub fn serials_from_csv(bytes: &[u8]) -> Result<Vec<DeviceSerial>, InstallerError> {
    let invalid = |said: String| InstallerError::Invalid(vec![said]);
    if bytes.len() > MAX_CSV_BYTES {
        return Err(invalid(format!(
            "the file is {} bytes; at most {MAX_CSV_BYTES} are read: split it",
            bytes.len()
        )));
    }
    let text = std::str::from_utf8(bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes))
        .map_err(|_| invalid("the file is not UTF-8 text: save it as CSV (UTF-8)".to_owned()))?;
    let mut rows = csv_rows(text).map_err(invalid)?.into_iter();
    let Some((_, header)) = rows.next() else {
        return Err(invalid(
            "the file is empty: it needs a header row with a serial column".to_owned(),
        ));
    };
    let column = header
        .iter()
        .position(|name| name.trim().eq_ignore_ascii_case("serial"))
        .ok_or_else(|| {
            invalid(format!(
                "the header row has no serial column (it has: {})",
                header.join(", ")
            ))
        })?;
    let cells: Vec<(usize, String)> = rows
        .filter(|(_, row)| row.iter().any(|cell| !cell.trim().is_empty()))
        .map(|(line, row)| (line, row.get(column).cloned().unwrap_or_default()))
        .collect();
    serials(
        cells
            .iter()
            .map(|(line, cell)| (format!("line {line}"), cell.as_str())),
    )
}

/// RFC 4180 rows (comma-separated; `"` quotes, `""` inside quotes), each with the line
/// it starts on.
fn csv_rows(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut rows = Vec::new();
    let (mut row, mut cell) = (Vec::new(), String::new());
    let (mut line, mut row_line) = (1, 1);
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push((row_line, std::mem::take(&mut row)));
                line += 1;
                row_line = line;
            }
            (_, '\n') => {
                line += 1;
                cell.push('\n');
            }
            (_, c) => cell.push(c),
        }
    }
    if quoted {
        return Err(format!("line {row_line}: a quote is never closed"));
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push((row_line, row));
    }
    Ok(rows)
}

/// How the audit log names an installer acting with their token: not an address alone,
/// which a console user's could be.
pub fn actor(installer: &Installer) -> String {
    format!("installer:{}", installer.email)
}

/// Registers devices to an installer: imported by the vendor (count at once) or
/// registered by the installer (count after the hold).
pub async fn register(
    store: &dyn Store,
    installer: &Installer,
    serials: &[DeviceSerial],
    source: DeviceSource,
    actor: &str,
    now: Timestamp,
) -> Result<Registered, InstallerError> {
    Ok(store
        .register_installer_devices(installer.id, serials, source, actor, now)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sales_record_gives_its_serial_column() {
        let csv = "\u{FEFF}Invoice,Serial,Model\r\n1001,DS-7608NI-K2/AB123456,NVR\r\n\r\n1002,\"DS-2CD2143G2-I/CD654321\",\"Dome, 4 MP\"\n1003,DS-7608NI-K2/AB123456,NVR";
        let serials = serials_from_csv(csv.as_bytes()).unwrap();
        assert_eq!(
            serials.iter().map(DeviceSerial::as_str).collect::<Vec<_>>(),
            ["DS-7608NI-K2/AB123456", "DS-2CD2143G2-I/CD654321"],
            "blank lines skipped, a serial twice counted once"
        );
    }

    #[test]
    fn a_bad_file_says_every_line_that_is_wrong() {
        let Err(InstallerError::Invalid(problems)) =
            serials_from_csv(b"serial\nGOOD-SERIAL-01\nbad serial!\n\nx\n")
        else {
            panic!("refused");
        };
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("line 3:"), "{problems:?}");
        assert!(problems[1].starts_with("line 5:"), "{problems:?}");
        let Err(InstallerError::Invalid(problems)) = serials_from_csv(b"invoice,model\n1,x\n")
        else {
            panic!("refused");
        };
        assert!(problems[0].contains("no serial column"), "{problems:?}");
        assert!(serials_from_csv(b"serial\n\"open").is_err());
        assert!(serials_from_csv(b"serial\n").is_err(), "no serial at all");
        assert!(serials_from_csv(&[0xff, 0xfe]).is_err());
    }
}
