//! Issue #7, parts 4 and 7: the console's pages at a million tickets, and a cold start
//! on that database.
//!
//! For each size the desk first creates its database (one start, so its own migrations
//! run), stops; the bulk loader below then writes tickets straight into the tables in
//! large transactions of multi-row INSERTs, and the desk starts again on the result. A
//! signed-in agent then asks for the queue page, a search by serial and ticket pages.
//! The same is done at a small size, so the ratio shows what the size alone costs.
//!
//! `--runs N` measures each size N times, each time on a newly started desk, and reports
//! the medians. The database is loaded once per size: the loader is deterministic (a
//! fixed seed), so loading again would write the same rows and only cost minutes.
//!
//! For looking into a plan by hand: `RESETDESK_BENCH_SCALE_BACKENDS=postgres` measures
//! only that backend (`sqlite`, `postgres` or both, comma-separated), and
//! `RESETDESK_BENCH_KEEP_DATABASES=1` leaves the PostgreSQL databases
//! (`resetdesk_bench_scale_<size>`) in place afterwards.

mod loader;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use resetdesk::domain::{EmailAddress, Role, Roles, Secret, Timestamp};
use serde_json::{Value, json};
use sqlx::Connection;

use crate::{Server, percentile, postgres_database, run_database, start_desk};
use loader::{Chunk, Maker, Rng};

/// The small size the large one is compared with.
pub const SMALL: usize = 10_000;
const BENCH_PASSWORD: &str = "a long bench password for the console";
const AGENT: &str = "agent0@desk.example";
/// Tickets written per transaction.
const CHUNK: usize = 10_000;
/// Bind parameters per statement: under SQLite's 32766 and PostgreSQL's 65535.
const MAX_BINDS: usize = 30_000;

/// Latencies of one kind of request, as the client saw them and as the desk reported
/// them in `Server-Timing`.
#[derive(Debug, Clone, Copy)]
pub struct Latency {
    client_p50: f64,
    client_p99: f64,
    server_p50: f64,
    server_p99: f64,
    errors: usize,
}

/// One measurement of the three pages, on one start of the desk.
struct Round {
    queue: Latency,
    search: Latency,
    search_part: Latency,
    ticket: Latency,
}

/// One backend at one size: the medians over its rounds.
pub struct SizeRun {
    tickets: usize,
    rows: usize,
    load_secs: f64,
    rounds: usize,
    queue: Latency,
    search: Latency,
    /// Part of a serial, a customer's first name (one ticket in sixteen has it) or the
    /// start of a ticket number, in turn.
    search_part: Latency,
    ticket: Latency,
    /// Spawn to `/readyz` answering 200, one figure per start.
    cold_starts_ms: Vec<f64>,
}

impl Latency {
    /// Each figure's median over the rounds; errors are summed, since any is one too many.
    fn median_of(rounds: &[Latency]) -> Latency {
        let of = |f: fn(&Latency) -> f64| median(&rounds.iter().map(f).collect::<Vec<_>>());
        Latency {
            client_p50: of(|l| l.client_p50),
            client_p99: of(|l| l.client_p99),
            server_p50: of(|l| l.server_p50),
            server_p99: of(|l| l.server_p99),
            errors: rounds.iter().map(|l| l.errors).sum(),
        }
    }
}

/// What the scale phase adds to the report: table lines and a JSON object.
pub struct Report {
    pub table: Vec<String>,
    pub json: Value,
}

/// Runs the phase on SQLite and, when `postgres` (an admin URL) answers, on PostgreSQL:
/// `tickets` and [`SMALL`] tickets, `requests` of each kind in each of `rounds` rounds,
/// and at least `starts` cold starts.
pub async fn run(
    tickets: usize,
    requests: usize,
    starts: usize,
    rounds: usize,
    postgres: Option<&str>,
) -> Report {
    let wanted = std::env::var("RESETDESK_BENCH_SCALE_BACKENDS")
        .unwrap_or_else(|_| "sqlite,postgres".to_owned());
    for name in wanted.split(',').map(str::trim) {
        assert!(
            matches!(name, "sqlite" | "postgres"),
            "RESETDESK_BENCH_SCALE_BACKENDS: {name:?} is not a backend (sqlite, postgres)"
        );
    }
    let wants = |name: &str| wanted.split(',').any(|w| w.trim() == name);
    let keep = std::env::var("RESETDESK_BENCH_KEEP_DATABASES").is_ok_and(|v| v == "1");
    let mut backends: Vec<(&str, Option<&str>)> = Vec::new();
    if wants("sqlite") {
        backends.push(("sqlite", None));
    }
    if let Some(admin) = postgres.filter(|_| wants("postgres")) {
        if postgres_database(admin, "resetdesk_bench_probe")
            .await
            .is_some()
        {
            backends.push(("postgres", Some(admin)));
        } else {
            println!("PostgreSQL at {admin} is not reachable: the scale phase runs on SQLite only");
        }
    }
    let mut table = Vec::new();
    let mut json = serde_json::Map::new();
    for (name, admin) in backends {
        let mut runs = Vec::new();
        for size in [SMALL.min(tickets), tickets] {
            let database = run_database(admin, &format!("resetdesk_bench_scale_{size}")).await;
            runs.push(size_run(size, requests, starts, rounds, database).await);
            if let Some(admin) = admin.filter(|_| !keep) {
                drop_database(admin, &format!("resetdesk_bench_scale_{size}")).await;
            }
        }
        let (small, large) = (&runs[0], &runs[1]);
        for run in &runs {
            table.extend(lines(name, run));
        }
        let ratio = |f: fn(&Latency) -> f64| {
            [
                ("queue", f(&large.queue) / f(&small.queue)),
                ("search", f(&large.search) / f(&small.search)),
                ("search_part", f(&large.search_part) / f(&small.search_part)),
                ("ticket", f(&large.ticket) / f(&small.ticket)),
            ]
        };
        let (p50, p99) = (ratio(|l| l.server_p50), ratio(|l| l.server_p99));
        table.push(format!(
            "  {} / {} server p99 ratio: queue {:.2}  search {:.2}  search by part {:.2}  ticket {:.2}   (p50: {:.2} {:.2} {:.2} {:.2})   target <= 1.5",
            large.tickets,
            small.tickets,
            p99[0].1,
            p99[1].1,
            p99[2].1,
            p99[3].1,
            p50[0].1,
            p50[1].1,
            p50[2].1,
            p50[3].1
        ));
        let ratios = |r: [(&str, f64); 4]| {
            Value::Object(
                r.iter()
                    .map(|(k, v)| ((*k).to_owned(), json!(round(*v, 3))))
                    .collect(),
            )
        };
        json.insert(
            name.to_owned(),
            json!({
                "runs": runs.iter().map(run_json).collect::<Vec<_>>(),
                "server_p99_ratio": ratios(p99),
                "server_p50_ratio": ratios(p50),
            }),
        );
    }
    Report {
        table,
        json: Value::Object(json),
    }
}

fn round(value: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places);
    (value * scale).round() / scale
}

fn latency_json(l: &Latency) -> Value {
    json!({
        "client_p50_ms": round(l.client_p50, 2), "client_p99_ms": round(l.client_p99, 2),
        "server_p50_ms": round(l.server_p50, 2), "server_p99_ms": round(l.server_p99, 2),
        "errors": l.errors,
    })
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

fn run_json(run: &SizeRun) -> Value {
    json!({
        "tickets": run.tickets,
        "rows_loaded": run.rows,
        "load_secs": round(run.load_secs, 1),
        "load_tickets_per_sec": round(run.tickets as f64 / run.load_secs, 0),
        "load_rows_per_sec": round(run.rows as f64 / run.load_secs, 0),
        "rounds": run.rounds,
        "queue_page": latency_json(&run.queue),
        "search_by_serial": latency_json(&run.search),
        "search_by_part": latency_json(&run.search_part),
        "ticket_page": latency_json(&run.ticket),
        "cold_start_to_ready_ms": run.cold_starts_ms.iter().map(|m| round(*m, 1)).collect::<Vec<_>>(),
        "cold_start_to_ready_median_ms": round(median(&run.cold_starts_ms), 1),
    })
}

fn lines(backend: &str, run: &SizeRun) -> Vec<String> {
    let row = |what: &str, l: &Latency| {
        format!(
            "  {what:<18} server p50 {:>6.2} ms p99 {:>6.2} ms   client p50 {:>6.2} ms p99 {:>6.2} ms   errors {}   (target p99 <= 30 ms)",
            l.server_p50, l.server_p99, l.client_p50, l.client_p99, l.errors
        )
    };
    vec![
        format!(
            "queue at scale {backend:<8} {} tickets (medians of {} rounds): loaded {} rows in {:.1} s ({:.0} tickets/s); cold start to ready: median {:.0} ms of {}",
            run.tickets,
            run.rounds,
            run.rows,
            run.load_secs,
            run.tickets as f64 / run.load_secs,
            median(&run.cold_starts_ms),
            run.cold_starts_ms.len()
        ),
        row("queue page", &run.queue),
        row("search by serial", &run.search),
        row("search by part", &run.search_part),
        row("ticket page", &run.ticket),
    ]
}

async fn drop_database(admin: &str, name: &str) {
    if let Ok(mut connection) = sqlx::PgConnection::connect(admin).await {
        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        let _ = sqlx::query(sqlx::AssertSqlSafe(drop))
            .execute(&mut connection)
            .await;
    }
}

/// One size on one backend: create, load, cold-start, then `rounds` times start, sign
/// in (once: sessions live in the database) and measure.
async fn size_run(
    tickets: usize,
    requests: usize,
    starts: usize,
    rounds: usize,
    database: Option<String>,
) -> SizeRun {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = database.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            dir.path().join("data/resetdesk.db").display()
        )
    });
    // The desk creates its own database: the schema is what its migrations make.
    drop(start_desk(dir.path(), database.as_deref()));

    let (agents, seed) = create_agents(&url, &dir.path().join("keys")).await;
    let samples = sample_indices(tickets, requests);
    let started = Instant::now();
    let (rows, picked) = load(&url, tickets, agents, &samples).await;
    let load_secs = started.elapsed().as_secs_f64();

    let rounds = rounds.max(1);
    let mut cold_starts_ms = Vec::new();
    for _ in rounds..starts {
        let (desk, ready) = start_until_ready(dir.path(), database.as_deref()).await;
        cold_starts_ms.push(ready.as_secs_f64() * 1000.0);
        drop(desk);
    }
    let mut agent = None;
    let mut measured = Vec::new();
    for _ in 0..rounds {
        let (desk, ready) = start_until_ready(dir.path(), database.as_deref()).await;
        cold_starts_ms.push(ready.as_secs_f64() * 1000.0);
        let base = format!("http://127.0.0.1:{}", desk.port);
        // A second sign-in within the same 30-second step would be refused as a replayed
        // code, as it should be; the session cookie outlives a restart instead.
        if agent.is_none() {
            agent = Some(sign_in(&base, &seed).await);
        }
        let agent = agent.as_ref().expect("signed in");
        let queue = measure(agent, requests, |_| {
            (format!("{base}/console"), "/console/tickets/RQ-".to_owned())
        })
        .await;
        let search = measure(agent, requests, |i| {
            let (number, serial) = &picked[i % picked.len()];
            (
                format!("{base}/console?status=all&q={serial}"),
                number.clone(),
            )
        })
        .await;
        // The end of a serial, a first name many customers share, the start of a number.
        let search_part = measure(agent, requests, |i| {
            let (number, serial) = &picked[i % picked.len()];
            match i % 3 {
                // Its last ten characters: the loader's serials count up from zeros, so
                // a shorter end is a part of many others' (as "00001234" is of
                // "0000012345") and its ticket may not be among the newest hundred.
                0 => (
                    format!(
                        "{base}/console?status=all&q={}",
                        &serial[serial.len() - 10..]
                    ),
                    number.clone(),
                ),
                1 => (
                    format!(
                        "{base}/console?status=all&q={}",
                        loader::FIRST[i / 3 % loader::FIRST.len()]
                    ),
                    "/console/tickets/RQ-".to_owned(),
                ),
                _ => (
                    format!("{base}/console?status=all&q={}", &number[..7]),
                    number.clone(),
                ),
            }
        })
        .await;
        let ticket = measure(agent, requests, |i| {
            let (number, serial) = &picked[(i * 7 + 3) % picked.len()];
            (format!("{base}/console/tickets/{number}"), serial.clone())
        })
        .await;
        drop(desk);
        measured.push(Round {
            queue,
            search,
            search_part,
            ticket,
        });
    }
    let of =
        |f: fn(&Round) -> Latency| Latency::median_of(&measured.iter().map(f).collect::<Vec<_>>());
    SizeRun {
        tickets,
        rows,
        load_secs,
        rounds,
        queue: of(|r| r.queue),
        search: of(|r| r.search),
        search_part: of(|r| r.search_part),
        ticket: of(|r| r.ticket),
        cold_starts_ms,
    }
}

/// Starts the desk and waits for `/readyz` to answer 200: the time from spawning the
/// binary to a load balancer's first "ready".
async fn start_until_ready(dir: &Path, database: Option<&str>) -> (Server, Duration) {
    let started = Instant::now();
    let (desk, _) = start_desk(dir, database);
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{}/readyz", desk.port);
    loop {
        if let Ok(response) = client.get(&url).send().await
            && response.status() == 200
        {
            return (desk, started.elapsed());
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "the desk did not become ready within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The agents tickets are claimed and decided by; the first one, the bench's, signs in
/// with a password and an enrolled second factor as production requires.
async fn create_agents(url: &str, keys_dir: &Path) -> (Vec<(i64, String)>, Secret) {
    let store = resetdesk::store::connect(url).await.expect("the store");
    let hash = resetdesk::auth::hash_password(BENCH_PASSWORD).expect("a hash");
    let mut agents = Vec::new();
    for n in 0..8 {
        let roles = if n < 2 {
            [Role::Agent, Role::Supervisor].as_slice()
        } else {
            [Role::Agent].as_slice()
        };
        let email = EmailAddress::parse(&format!("agent{n}@desk.example")).expect("an address");
        let id = store
            .create_user(
                &email,
                &hash,
                Roles::of(roles).expect("roles"),
                "bench",
                Timestamp::now(),
            )
            .await
            .expect("a user");
        agents.push((id.0, email.to_string()));
    }
    let id = resetdesk::store::UserId(agents[0].0);
    let seed = resetdesk::auth::totp::new_seed();
    // Sealed with the desk's seal key, which its first start created.
    let sealed = resetdesk::crypto::KeyStore::new(keys_dir)
        .seal_keys()
        .expect("the desk's seal keys")
        .seal_totp_seed(id.0, &seed);
    store
        .begin_totp_enrolment(id, &sealed)
        .await
        .expect("enrolment");
    // Enrolled at step 0, so the first real code is a new one.
    store
        .confirm_totp_enrolment(id, 0, &[], Timestamp::now())
        .await
        .expect("enrolled");
    (agents, seed)
}

fn csrf(page: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let start = page.find(marker).expect("a CSRF field") + marker.len();
    page[start..]
        .split('"')
        .next()
        .expect("a CSRF token")
        .to_owned()
}

/// Password, then the authenticator's code: the agent's signed-in browser.
async fn sign_in(base: &str, seed: &Secret) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let form = client
        .get(format!("{base}/console/login"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("the sign-in page")
        .text()
        .await
        .expect("its text");
    let response = client
        .post(format!("{base}/console/login"))
        .form(&[
            ("csrf", csrf(&form).as_str()),
            ("email", AGENT),
            ("password", BENCH_PASSWORD),
        ])
        .send()
        .await
        .expect("the sign-in answers");
    assert_eq!(response.status(), 303, "the password is accepted");
    let page = client
        .get(format!("{base}/console/login/code"))
        .send()
        .await
        .and_then(|r| r.error_for_status())
        .expect("the code page")
        .text()
        .await
        .expect("its text");
    let code = resetdesk::auth::totp::code_at(seed, Timestamp::now()).expect("a code");
    let response = client
        .post(format!("{base}/console/login/code"))
        .form(&[("csrf", csrf(&page).as_str()), ("code", code.as_str())])
        .send()
        .await
        .expect("the code step answers");
    assert_eq!(response.status(), 303, "the second factor is accepted");
    client
}

fn server_ms(response: &reqwest::Response) -> Option<f64> {
    let value = response.headers().get("server-timing")?.to_str().ok()?;
    value
        .split("dur=")
        .nth(1)?
        .split([',', ';'])
        .next()?
        .parse()
        .ok()
}

/// `requests` GETs one after another (after a few to warm up), each made by `make(i)`
/// as (URL, text the page must contain); one the desk answers wrongly is an error.
async fn measure(
    agent: &reqwest::Client,
    requests: usize,
    make: impl Fn(usize) -> (String, String),
) -> Latency {
    let warm_up = 20;
    let (mut client, mut server, mut errors) = (Vec::new(), Vec::new(), 0);
    for i in 0..requests + warm_up {
        let (url, expected) = make(i);
        let started = Instant::now();
        let Ok(response) = agent.get(&url).send().await else {
            errors += 1;
            continue;
        };
        let status = response.status();
        let desk_ms = server_ms(&response);
        let body = response.text().await.unwrap_or_default();
        let elapsed = started.elapsed();
        if status != 200 || !body.contains(&expected) {
            errors += 1;
            continue;
        }
        if i >= warm_up {
            client.push(elapsed);
            server.push(Duration::from_secs_f64(
                desk_ms.unwrap_or(f64::NAN) / 1000.0,
            ));
        }
    }
    client.sort_unstable();
    server.sort_unstable();
    Latency {
        client_p50: percentile(&client, 0.50),
        client_p99: percentile(&client, 0.99),
        server_p50: percentile(&server, 0.50),
        server_p99: percentile(&server, 0.99),
        errors,
    }
}

/// Which tickets the searches and ticket pages ask for: spread over the whole range.
fn sample_indices(tickets: usize, count: usize) -> Vec<usize> {
    let mut rng = Rng(0x05EE_D0F5_CA1E);
    let mut picked: Vec<usize> = (0..count.max(1))
        .map(|_| (rng.next() % tickets as u64) as usize)
        .collect();
    picked.sort_unstable();
    picked.dedup();
    picked
}

/// Writes `tickets` tickets, with their devices, history, approvals, responses and
/// mail, and returns the rows written and (number, first serial) of each sampled ticket.
/// Rows are made on a thread of their own while the database takes the previous chunk.
async fn load(
    url: &str,
    tickets: usize,
    agents: Vec<(i64, String)>,
    samples: &[usize],
) -> (usize, Vec<(String, String)>) {
    let (sender, mut receiver) = tokio::sync::mpsc::channel::<Chunk>(2);
    let wanted = samples.to_vec();
    let maker = std::thread::spawn(move || {
        let mut maker = Maker::new(tickets, agents, MAX_BINDS, &wanted);
        while let Some(chunk) = maker.chunk(CHUNK) {
            if sender.blocking_send(chunk).is_err() {
                break;
            }
        }
        maker.into_samples()
    });
    let mut progress = Progress::new(tickets);
    let mut rows = 0;
    if url.starts_with("sqlite:") {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteSynchronous};
        use std::str::FromStr;
        // Synchronous off: a crash mid-load means loading again, nothing is lost.
        // Foreign keys off: on a multi-row INSERT into tickets, SQLite looks for child
        // rows of every new ticket, and outbox.ticket_id and tickets.superseded_by have
        // no index, so each chunk scanned whole tables and the load slowed as it grew.
        // `foreign_key_check` below proves the rows consistent once, at the end.
        let options = SqliteConnectOptions::from_str(url)
            .expect("a SQLite URL")
            .foreign_keys(false)
            .synchronous(SqliteSynchronous::Off)
            .pragma("cache_size", "-1000000");
        let mut connection = sqlx::SqliteConnection::connect_with(&options)
            .await
            .expect("the database");
        while let Some(chunk) = receiver.recv().await {
            let mut tx = connection.begin().await.expect("a transaction");
            for statement in &chunk.statements {
                statement
                    .query::<sqlx::Sqlite>()
                    .build()
                    .execute(&mut *tx)
                    .await
                    .expect("rows written");
            }
            tx.commit().await.expect("committed");
            rows += chunk.rows;
            progress.update(chunk.tickets);
        }
        let orphans: Vec<(String,)> = sqlx::query_as("PRAGMA foreign_key_check")
            .fetch_all(&mut connection)
            .await
            .expect("the foreign key check");
        assert!(orphans.is_empty(), "rows refer to nothing: {orphans:?}");
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut connection)
            .await
            .expect("checkpoint");
    } else {
        let mut connection = sqlx::PgConnection::connect(url)
            .await
            .expect("the database");
        while let Some(chunk) = receiver.recv().await {
            let mut tx = connection.begin().await.expect("a transaction");
            for statement in &chunk.statements {
                statement
                    .query::<sqlx::Postgres>()
                    .build()
                    .execute(&mut *tx)
                    .await
                    .expect("rows written");
            }
            tx.commit().await.expect("committed");
            rows += chunk.rows;
            progress.update(chunk.tickets);
        }
        // Ids were given explicitly: the desk's next ticket must not take one of them.
        // VACUUM ANALYZE is what autovacuum does after a load this size anyway (it also
        // merges the trigram index's pending list into the index proper); doing it now
        // keeps the figures from depending on when it gets round to it.
        for statement in [
            "SELECT setval(pg_get_serial_sequence('tickets', 'id'), (SELECT MAX(id) FROM tickets))",
            "VACUUM ANALYZE",
        ] {
            sqlx::query(statement)
                .execute(&mut connection)
                .await
                .expect("the load is finished");
        }
    }
    progress.finish();
    let samples = maker.join().expect("the row maker");
    (rows, samples)
}

/// A line on stderr, rewritten in place: tickets written, rate, time left.
struct Progress {
    total: usize,
    done: usize,
    started: Instant,
    shown: Instant,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self {
            total,
            done: 0,
            started: Instant::now(),
            shown: Instant::now(),
        }
    }

    fn update(&mut self, tickets: usize) {
        self.done += tickets;
        if self.shown.elapsed() >= Duration::from_millis(250) || self.done == self.total {
            self.shown = Instant::now();
            self.show();
        }
    }

    fn show(&self) {
        let secs = self.started.elapsed().as_secs_f64();
        let rate = self.done as f64 / secs.max(1e-9);
        let left = (self.total - self.done) as f64 / rate.max(1e-9);
        let width = 30;
        let filled = width * self.done / self.total.max(1);
        eprint!(
            "\r  loading [{}{}] {:>9}/{} tickets {:>3}%  {:>7.0}/s  {:>5.0} s elapsed  ETA {:>4.0} s ",
            "#".repeat(filled),
            " ".repeat(width - filled),
            self.done,
            self.total,
            100 * self.done / self.total.max(1),
            rate,
            secs,
            left
        );
        let _ = std::io::stderr().flush();
    }

    fn finish(&self) {
        self.show();
        eprintln!();
    }
}
