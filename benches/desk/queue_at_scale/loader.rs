//! The rows of a desk that has seen many tickets, made in chunks for the bulk loader.
//!
//! Each ticket is what the desk itself would have written over its life: the ticket,
//! its devices, its history, the agents' approvals, the signed responses and the mail
//! (all handed off, so the outbox worker finds nothing to do). Statuses are mixed so that
//! about a tenth of the tickets wait in the queue; serials are distinct except where a
//! newer export supersedes a ticket, so a search by serial finds one or two tickets.
//! Not written: the audit log (a hash chain the measured pages never read).

use resetdesk::domain::{TicketNumber, TicketSearchText};
use sqlx::query_builder::Separated;
use sqlx::{Database, Encode, QueryBuilder, Type};

/// One bound value.
pub enum V {
    Int(i64),
    OptInt(Option<i64>),
    Text(String),
    OptText(Option<String>),
    Static(&'static str),
    Blob(Option<Vec<u8>>),
}

/// A multi-row INSERT: its head (`INSERT INTO t (cols) `) and its rows.
pub struct Statement {
    pub head: &'static str,
    pub rows: Vec<Vec<V>>,
}

impl Statement {
    pub fn query<DB: Database>(&self) -> QueryBuilder<DB>
    where
        <DB as Database>::Arguments: Default,
        for<'t> i64: Encode<'t, DB> + Type<DB>,
        for<'t> Option<i64>: Encode<'t, DB> + Type<DB>,
        for<'t> &'t str: Encode<'t, DB> + Type<DB>,
        for<'t> Option<&'t str>: Encode<'t, DB> + Type<DB>,
        for<'t> Option<&'t [u8]>: Encode<'t, DB> + Type<DB>,
    {
        let mut query = QueryBuilder::<DB>::new(self.head);
        query.push_values(&self.rows, |mut b: Separated<'_, DB, &'static str>, row| {
            for value in row {
                match value {
                    V::Int(v) => b.push_bind(*v),
                    V::OptInt(v) => b.push_bind(*v),
                    V::Text(v) => b.push_bind(v.as_str()),
                    V::OptText(v) => b.push_bind(v.as_deref()),
                    V::Static(v) => b.push_bind(*v),
                    V::Blob(v) => b.push_bind(v.as_deref()),
                };
            }
        });
        query
    }
}

/// The rows of `tickets` consecutive tickets, for one transaction.
pub struct Chunk {
    pub statements: Vec<Statement>,
    pub rows: usize,
    pub tickets: usize,
}

const TICKETS: &str = "INSERT INTO tickets (id, number, status, customer_name, customer_email, customer_phone, \
     customer_company, customer_country, customer_role, purchase_channel, export_form, export_blob, export_bytes, label_blob, \
     label_media_type, claimed_by, claimed_at, decided_by, decided_at, decision_reason, superseded_by, flags, \
     created_at, updated_at, export_expires_at, search_text) ";
const DEVICES: &str = "INSERT INTO ticket_devices (ticket_id, position, model, serial, firmware, mac_address, \
     reserved_email, nonce, issued_at, tag) ";
const EVENTS: &str = "INSERT INTO ticket_events (ticket_id, at, actor, kind, detail) ";
const APPROVALS: &str = "INSERT INTO approvals (ticket_id, user_id, as_role, note, at) ";
const RESPONSES: &str = "INSERT INTO responses (ticket_id, position, serial, nonce, key_id, expires_at, \
     signature, created_at) ";
const OUTBOX: &str = "INSERT INTO outbox (message_id, ticket_id, kind, recipient, subject, body_text, body_html, \
     attachment_name, attachment_type, attachment, status, attempts, next_attempt_at, last_error, created_at, \
     sent_at) ";

pub const FIRST: [&str; 16] = [
    "Ana", "Luis", "Marta", "Jorge", "Emma", "Noah", "Olga", "Piotr", "Chen", "Aiko", "Omar",
    "Lena", "Ravi", "Sara", "Tom", "Ines",
];
const LAST: [&str; 16] = [
    "Garcia", "Muller", "Rossi", "Novak", "Smith", "Kowalski", "Silva", "Dubois", "Jensen",
    "Tanaka", "Haddad", "Larsen", "Patel", "Moreau", "Young", "Costa",
];
const DOMAINS: [&str; 6] = [
    "example.com",
    "example.org",
    "example.net",
    "mail.example",
    "installers.example",
    "cctv.example",
];
const COUNTRIES: [&str; 10] = ["ES", "DE", "FR", "IT", "PL", "GB", "US", "BR", "IN", "JP"];
const ROLES: [&str; 4] = ["end_user", "installer", "reseller", "distributor"];
const RECORDERS: [(&str, &str); 3] = [
    ("DS-7608NI-K2", "NVRK2"),
    ("DS-7616NXI-I2", "NVRI2"),
    ("DS-7104NI-Q1", "NVRQ1"),
];
const CAMERAS: [(&str, &str); 4] = [
    ("DS-2CD2143G2-I", "CAMG2"),
    ("DS-2CD2387G2-LU", "CAMLU"),
    ("DS-2DE4425IW-DE", "PTZDE"),
    ("DS-2CD1023G0E-I", "CAMG0"),
];
const FIRMWARE: [&str; 4] = [
    "V4.30.085 build 220323",
    "V5.7.3 build 230218",
    "V4.62.210 build 211015",
    "V5.5.800 build 210628",
];
const REASONS: [&str; 4] = [
    "The label photo does not show the same serial number as the export.",
    "The label photo is unreadable.",
    "The device is registered to another owner.",
    "The export was made on a device we cannot verify.",
];
const KEY_IDS: [&str; 2] = ["3f9a1c0d5e7b2a41", "a07c55e1d29b8f36"];
const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Two years of tickets, the newest about now.
const SPAN_SECS: i64 = 2 * 365 * 24 * 3600;

/// A ticket number for index `i`: a bijection of 40-bit numbers, so every index has
/// its own number and consecutive tickets' numbers look unrelated, as the desk's are.
pub fn ticket_number(i: usize) -> String {
    let mask = (1u64 << 40) - 1;
    let mut x = (i as u64).wrapping_mul(0x9E_3779_B97F) & mask;
    x ^= x >> 21;
    x = x.wrapping_mul(0x2545_F491) & mask;
    let symbols: String = (0..8)
        .rev()
        .map(|k| CROCKFORD[((x >> (k * 5)) & 31) as usize] as char)
        .collect();
    format!("RQ-{}-{}", &symbols[..4], &symbols[4..])
}

/// Makes the tickets in order, a chunk at a time.
pub struct Maker {
    tickets: usize,
    next: usize,
    /// Bench users: (id, e-mail); the first two are supervisors.
    agents: Vec<(i64, String)>,
    max_binds: usize,
    start: i64,
    /// The first device of the ticket before, when that ticket is superseded by this one.
    carried: Option<(String, String, String)>,
    /// Whether the ticket before this one was superseded (by this one).
    last_superseded: bool,
    next_extra_serial: u64,
    wanted: std::collections::BTreeSet<usize>,
    samples: Vec<(String, String)>,
}

struct Rows {
    tickets: Vec<Vec<V>>,
    /// Where the ticket rows may be split between statements: a superseded ticket refers
    /// to the next one, which must be in the same statement for its foreign key.
    cuttable: Vec<bool>,
    devices: Vec<Vec<V>>,
    events: Vec<Vec<V>>,
    approvals: Vec<Vec<V>>,
    responses: Vec<Vec<V>>,
    outbox: Vec<Vec<V>>,
}

impl Maker {
    pub fn new(
        tickets: usize,
        agents: Vec<(i64, String)>,
        max_binds: usize,
        wanted: &[usize],
    ) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Self {
            tickets,
            next: 0,
            agents,
            max_binds,
            start: now - SPAN_SECS,
            carried: None,
            last_superseded: false,
            next_extra_serial: tickets as u64,
            wanted: wanted.iter().copied().collect(),
            samples: Vec::new(),
        }
    }

    /// (number, first serial) of each wanted ticket.
    pub fn into_samples(self) -> Vec<(String, String)> {
        self.samples
    }

    pub fn chunk(&mut self, size: usize) -> Option<Chunk> {
        if self.next >= self.tickets {
            return None;
        }
        let end = (self.next + size).min(self.tickets);
        let mut rows = Rows {
            tickets: Vec::new(),
            cuttable: Vec::new(),
            devices: Vec::new(),
            events: Vec::new(),
            approvals: Vec::new(),
            responses: Vec::new(),
            outbox: Vec::new(),
        };
        for i in self.next..end {
            // The last ticket of a chunk is never superseded: its successor would be in
            // the next transaction.
            self.ticket(i, i + 1 == end, &mut rows);
        }
        let tickets = end - self.next;
        self.next = end;
        let count = rows.tickets.len()
            + rows.devices.len()
            + rows.events.len()
            + rows.approvals.len()
            + rows.responses.len()
            + rows.outbox.len();
        let mut statements = split(TICKETS, rows.tickets, &rows.cuttable, self.max_binds);
        for (head, table) in [
            (DEVICES, rows.devices),
            (EVENTS, rows.events),
            (APPROVALS, rows.approvals),
            (RESPONSES, rows.responses),
            (OUTBOX, rows.outbox),
        ] {
            let cuttable = vec![true; table.len()];
            statements.extend(split(head, table, &cuttable, self.max_binds));
        }
        Some(Chunk {
            statements,
            rows: count,
            tickets,
        })
    }

    fn ticket(&mut self, i: usize, last_of_chunk: bool, rows: &mut Rows) {
        let mut rng = Rng(0xDE5C_0000_0000 ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let supersedes = std::mem::take(&mut self.last_superseded);
        let id = i as i64 + 1;
        let number = ticket_number(i);
        let created = self.start + (i as i64 * SPAN_SECS) / self.tickets.max(1) as i64;
        let status = match rng.below(1000) {
            0..80 => "open",
            80..100 => "awaiting_photo",
            100..700 => "approved",
            700..900 => "rejected",
            _ if last_of_chunk => "approved",
            _ => "superseded",
        };
        let (first, last) = (FIRST[rng.below(16) as usize], LAST[rng.below(16) as usize]);
        let email = format!(
            "{}.{}{}@{}",
            first.to_lowercase(),
            last.to_lowercase(),
            rng.below(100_000),
            DOMAINS[rng.below(6) as usize]
        );
        let form = match rng.below(10) {
            0..7 => "xml",
            7..9 => "reset_string",
            _ => "qr",
        };
        let flagged = rng.below(20) == 0;
        let (agent, agent_email) =
            self.agents[2 + rng.below(self.agents.len() as u64 - 2) as usize].clone();
        let claimed = created + 300 + rng.below(7200) as i64;
        let decided = claimed + 60 + rng.below(3600) as i64;
        let was_claimed = status != "open" || rng.below(10) < 3;
        let decided_now = matches!(status, "approved" | "rejected");
        let reason = (status == "rejected").then(|| REASONS[rng.below(4) as usize].to_owned());
        let updated = match status {
            "open" if was_claimed => claimed,
            "open" => created,
            "superseded" => created + 86_400,
            _ => decided,
        };

        // Devices: mostly one; a recorder with some of its cameras otherwise.
        let device_count = match rng.below(100) {
            0..85 => 1,
            85..95 => 2,
            95..99 => 3,
            _ => 4,
        };
        let mut devices = Vec::new();
        for position in 0..device_count {
            let carried = if position == 0 {
                self.carried.take()
            } else {
                None
            };
            let (model, serial, firmware) = carried.unwrap_or_else(|| {
                let (model, prefix) = if device_count > 1 && position == 0 {
                    RECORDERS[rng.below(3) as usize]
                } else if device_count > 1 {
                    CAMERAS[rng.below(4) as usize]
                } else if rng.below(2) == 0 {
                    RECORDERS[rng.below(3) as usize]
                } else {
                    CAMERAS[rng.below(4) as usize]
                };
                let serial_id = if position == 0 {
                    i as u64
                } else {
                    self.next_extra_serial += 1;
                    self.next_extra_serial
                };
                (
                    model.to_owned(),
                    format!("{prefix}{serial_id:010}"),
                    FIRMWARE[rng.below(4) as usize].to_owned(),
                )
            });
            devices.push((model, serial, firmware, rng.hex(16), rng.hex(32)));
        }
        if self.wanted.contains(&i) {
            self.samples.push((number.clone(), devices[0].1.clone()));
        }
        if status == "superseded" {
            let (model, serial, firmware, ..) = &devices[0];
            self.carried = Some((model.clone(), serial.clone(), firmware.clone()));
        }

        rows.cuttable.push(status != "superseded");
        // Made up to an hour before the ticket came in; the first to die sets its deadline.
        let issued: Vec<i64> = devices
            .iter()
            .map(|_| created - 60 - rng.below(3600) as i64)
            .collect();
        rows.tickets.push(vec![
            V::Int(id),
            V::Text(number.clone()),
            V::Static(status),
            V::Text(format!("{first} {last}")),
            V::Text(email.clone()),
            V::OptText((rng.below(10) < 6).then(|| format!("+34 6{:08}", rng.below(100_000_000)))),
            V::OptText((rng.below(10) < 4).then(|| format!("{last} Seguridad S.L."))),
            V::Static(COUNTRIES[rng.below(10) as usize]),
            V::Static(ROLES[rng.below(4) as usize]),
            V::OptText(
                (rng.below(2) == 0).then(|| "Distributor shop, invoice 2024-118".to_owned()),
            ),
            V::Static(form),
            // As the desk keeps them (migration 0018): an XML file or a reset string in
            // the row, which the ticket page shows; a QR picture in a blob of its own.
            {
                let blob = rng.hex(32);
                if form == "qr" {
                    V::Text(blob)
                } else {
                    V::Text(String::new())
                }
            },
            V::Blob((form != "qr").then(|| stand_in_export(form, &number))),
            V::Text(rng.hex(32)),
            V::Static(if rng.below(5) == 0 {
                "image/png"
            } else {
                "image/jpeg"
            }),
            V::OptInt(was_claimed.then_some(agent)),
            V::OptInt(was_claimed.then_some(claimed)),
            V::OptInt(decided_now.then_some(agent)),
            V::OptInt(decided_now.then_some(decided)),
            V::OptText(reason.clone()),
            V::OptInt((status == "superseded").then_some(id + 1)),
            V::Text(if flagged {
                "the same serial was submitted from 3 addresses within 24 hours".to_owned()
            } else {
                String::new()
            }),
            V::Int(created),
            V::Int(updated),
            V::Int(issued.iter().copied().min().unwrap_or(created) + 48 * 3600),
            // What the desk stores for its search, made by the desk's own code.
            V::Text(
                TicketSearchText::of(
                    &TicketNumber::parse(&number).expect("a ticket number"),
                    &format!("{first} {last}"),
                    &email,
                    devices.iter().map(|d| d.1.as_str()),
                )
                .as_str()
                .to_owned(),
            ),
        ]);
        for (position, (model, serial, firmware, nonce, tag)) in devices.iter().enumerate() {
            let mac = (form == "xml").then(|| {
                format!(
                    "A4:14:37:{:02X}:{:02X}:{:02X}",
                    rng.below(256),
                    rng.below(256),
                    rng.below(256)
                )
            });
            rows.devices.push(vec![
                V::Int(id),
                V::Int(position as i64),
                V::Text(model.clone()),
                V::Text(serial.clone()),
                V::Text(firmware.clone()),
                V::OptText(mac),
                V::OptText(None),
                V::Text(nonce.clone()),
                V::Int(issued[position]),
                V::Text(tag.clone()),
            ]);
        }

        let mut event = |at: i64, actor: &str, kind: &'static str, detail: String| {
            rows.events.push(vec![
                V::Int(id),
                V::Int(at),
                V::Text(actor.to_owned()),
                V::Static(kind),
                V::Text(detail),
            ]);
        };
        event(
            created,
            "customer",
            "submitted",
            format!("{device_count} device(s) by {form}"),
        );
        if supersedes {
            let serial = &devices[0].1;
            event(
                created,
                "customer",
                "supersedes",
                format!(
                    "replaces {} (an older export from {serial})",
                    ticket_number(i - 1)
                ),
            );
        }
        event(
            created + 5,
            "mailer",
            "mail_sent",
            "acknowledgment".to_owned(),
        );
        if was_claimed {
            event(claimed, &agent_email, "claimed", String::new());
        }
        match status {
            "approved" => {
                event(
                    decided,
                    &agent_email,
                    "approved",
                    format!("{device_count} device(s)"),
                );
                event(decided + 5, "mailer", "mail_sent", "approval".to_owned());
            }
            "rejected" => {
                event(
                    decided,
                    &agent_email,
                    "rejected",
                    reason.clone().unwrap_or_default(),
                );
                event(decided + 5, "mailer", "mail_sent", "rejection".to_owned());
            }
            "awaiting_photo" => {
                event(
                    decided,
                    &agent_email,
                    "photo_requested",
                    "The serial on the label is not readable; please send a sharper photo."
                        .to_owned(),
                );
                event(
                    decided + 5,
                    "mailer",
                    "mail_sent",
                    "photo_request".to_owned(),
                );
            }
            "superseded" => event(
                created + 86_400,
                "customer",
                "superseded",
                format!(
                    "replaced by {} (a newer export from {})",
                    ticket_number(i + 1),
                    devices[0].1
                ),
            ),
            _ => {}
        }

        if status == "approved" {
            if flagged {
                let (supervisor, _) = &self.agents[rng.below(2) as usize];
                rows.approvals.push(vec![
                    V::Int(id),
                    V::Int(*supervisor),
                    V::Static("supervisor"),
                    V::Static("serial history checked with the distributor"),
                    V::Int(decided - 600),
                ]);
            }
            rows.approvals.push(vec![
                V::Int(id),
                V::Int(agent),
                V::Static("agent"),
                V::Static(""),
                V::Int(decided),
            ]);
            for (position, (_, serial, _, nonce, _)) in devices.iter().enumerate() {
                rows.responses.push(vec![
                    V::Int(id),
                    V::Int(position as i64),
                    V::Text(serial.clone()),
                    V::Text(nonce.clone()),
                    V::Static(KEY_IDS[rng.below(2) as usize]),
                    V::Int(decided + 7 * 86_400),
                    V::Text(rng.hex(64)),
                    V::Int(decided),
                ]);
            }
        }
        let mut mail = |kind: &'static str, at: i64, attachment: Option<Vec<u8>>, dead: bool| {
            let subject = match kind {
                "acknowledgment" => format!("[{number}] We received your password reset request"),
                "approval" => format!("[{number}] Your password reset response"),
                "rejection" => format!("[{number}] We could not approve your request"),
                _ => format!("[{number}] Please send a new label photo"),
            };
            let text = format!(
                "Hello {first} {last},\n\n{subject}.\n\nTicket {number}\nYou can follow it at https://desk.example/status/{number}\n\n\
                 Keep this message: the ticket number is what our agents ask for if you write to us.\n\
                 Do not reply to this address; it is not read.\n\n-- The reset desk\n"
            );
            let html = format!(
                "<!doctype html><html><body style=\"font-family:sans-serif\"><p>Hello {first} {last},</p>\
                 <p>{subject}.</p><p>Ticket <strong>{number}</strong>. You can follow it \
                 <a href=\"https://desk.example/status/{number}\">on its status page</a>.</p>\
                 <p>Keep this message: the ticket number is what our agents ask for if you write to us.</p>\
                 <p>Do not reply to this address; it is not read.</p><p>&mdash; The reset desk</p></body></html>"
            );
            let with_file = attachment.is_some();
            rows.outbox.push(vec![
                V::Text(format!("<{number}.{kind}@desk.example>")),
                V::Int(id),
                V::Static(kind),
                V::Text(email.clone()),
                V::Text(subject),
                V::Text(text),
                V::Text(html),
                V::OptText(with_file.then(|| "response.xml".to_owned())),
                V::OptText(with_file.then(|| "application/xml".to_owned())),
                V::Blob(attachment),
                V::Static(if dead { "dead" } else { "sent" }),
                V::Int(if dead { 8 } else { 1 }),
                V::Int(at),
                V::OptText(dead.then(|| "550 5.1.1 mailbox unavailable".to_owned())),
                V::Int(at),
                V::OptInt((!dead).then_some(at + 5)),
            ]);
        };
        mail("acknowledgment", created, None, rng.below(1000) == 0);
        match status {
            "approved" => {
                let file = format!(
                    "<?xml version=\"1.0\"?><ResetResponse><Serial>{}</Serial><Nonce>{}</Nonce><Signature>{}</Signature></ResetResponse>",
                    devices[0].1,
                    devices[0].3,
                    rng.hex(64)
                );
                mail("approval", decided, Some(file.into_bytes()), false);
            }
            "rejected" => mail("rejection", decided, None, false),
            "awaiting_photo" => mail("photo_request", decided, None, false),
            _ => {}
        }
        self.last_superseded = status == "superseded";
    }
}

/// Splits rows into statements of at most `max_binds` parameters, cutting only after a
/// row marked cuttable.
fn split(
    head: &'static str,
    rows: Vec<Vec<V>>,
    cuttable: &[bool],
    max_binds: usize,
) -> Vec<Statement> {
    let Some(columns) = rows.first().map(Vec::len) else {
        return Vec::new();
    };
    let per_statement = (max_binds / columns).max(1);
    let mut statements = Vec::new();
    let mut current = Vec::new();
    for (index, row) in rows.into_iter().enumerate() {
        current.push(row);
        if current.len() >= per_statement && cuttable[index] {
            statements.push(Statement {
                head,
                rows: std::mem::take(&mut current),
            });
        }
    }
    if !current.is_empty() {
        statements.push(Statement {
            head,
            rows: current,
        });
    }
    statements
}

/// A small, fast, reproducible generator (splitmix64): the rows need to look varied,
/// not be unpredictable.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn hex(&mut self, bytes: usize) -> String {
        let mut out = String::with_capacity(bytes * 2 + 16);
        while out.len() < bytes * 2 {
            out.push_str(&format!("{:016x}", self.next()));
        }
        out.truncate(bytes * 2);
        out
    }
}

/// An export's text as the ticket page shows it: the size of a real one (an XML file of
/// a recorder with a camera is about 1.5 KB), not one a device would accept.
fn stand_in_export(form: &str, number: &str) -> Vec<u8> {
    if form == "reset_string" {
        return format!("RD2-{}-{}", number.replace('-', ""), "Q7K3".repeat(40)).into_bytes();
    }
    let mut xml =
        String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ResetRequest version=\"2\">\n");
    for i in 0..2 {
        xml.push_str(&format!(
            "  <Device position=\"{i}\"><Model>DS-7608NI-K2</Model><Serial>stand-in {number}</Serial>\n    <Nonce>{}</Nonce>\n    <Tag>{}</Tag>\n  </Device>\n",
            "0f".repeat(16),
            "a5".repeat(32)
        ));
    }
    xml.push_str(&format!(
        "  <Binding>{}</Binding>\n</ResetRequest>\n",
        "3c".repeat(300)
    ));
    xml.into_bytes()
}
