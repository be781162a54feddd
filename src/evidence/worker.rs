//! The evidence worker: reads each label photo off the request path (issue 18). Every
//! replica runs one. It leases due jobs from the store (a job is made with its photo, in
//! the photo's transaction), decodes the photo within the picture work's bounds, reads its
//! codes and records a finding per device of the export; a photo that cannot be decoded
//! sends an open ticket back to the customer, whose mail says so in their language.
//!
//! A worker killed mid-job holds a lease that runs out after [`LEASE_SECS`]; another
//! worker then takes the job. The store records a job's result once, and only while its
//! photo is still the ticket's, so a slow worker finishing late records nothing twice.

use std::time::Duration;

use actix_web::web;

use crate::blobs::BlobError;
use crate::desk::Desk;
use crate::evidence::reading;
use crate::i18n::Lang;
use crate::intake::photo;
use crate::intake::picture_work::{PictureJob, PictureWorkError};
use crate::mail::compose;
use crate::store::{
    EvidenceFailure, EvidenceJob, EvidenceReading, JobEnd, LabelCheck, LabelFinding, Previews,
    ReadCode, StoreError, TicketDetail, TicketId,
};

/// How long a job is leased unless `evidence_lease_secs` says otherwise: longer than the
/// longest wait for the picture work (120 s) and the work itself (20 s) together, so a
/// live worker keeps its job.
pub const LEASE_SECS: i64 = 300;

/// How long reading one photo may take unless `evidence_read_timeout_secs` says
/// otherwise: a 12 MP phone photo takes under half a second of a core in a release build,
/// a debug build's few seconds fit, and a photo crafted to keep rxing busy is stopped
/// well before the picture work's 20 s.
pub const READ_TIMEOUT_SECS: u64 = 15;

/// Jobs leased at a time: one, so a job never waits in a replica's hands behind another
/// (its lease must outlast the wait for the picture work, 120 s, and the work, 20 s) and
/// the replicas share a burst.
const BATCH: i64 = 1;

/// How long a job given back after a failure of the desk's own (the picture work busy,
/// the blob store or the reader failing) waits before it is due again, so the jobs behind
/// it are read meanwhile.
const RETRY_SECS: i64 = 30;

/// How often an idle worker looks for jobs another replica's intake made (its own
/// intake wakes it at once).
const POLL: Duration = Duration::from_secs(2);

/// Codes kept for agents per photo, and characters of each: a label carries a few short
/// codes, and a photo tiled with long ones (a QR holds 3 KB) must not fill the database
/// or the ticket page. Serials are taken from the whole codes before this cut.
const MAX_CODES_KEPT: usize = 16;
const MAX_CODE_CHARS_KEPT: usize = 256;

/// The per-address key the worker's picture work is counted under.
const WORKER_ADDRESS: &str = "evidence-worker";

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("the store failed")]
    Store(#[from] StoreError),
    #[error("the photo could not be fetched")]
    Blob(#[from] BlobError),
    #[error("the picture work is busy")]
    Busy,
    #[error("the customer's mail could not be rendered")]
    Mail(#[from] compose::RenderError),
    #[error(transparent)]
    Reader(reading::ChildFailure),
}

/// What one job came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Worked {
    /// Findings recorded.
    Read {
        findings: Vec<(String, LabelFinding)>,
    },
    /// The photo could not be decoded: the ticket waits for another (up to
    /// `MAX_UNREADABLE_SEND_BACKS` times a ticket; then it is left to an agent).
    Unreadable,
    /// Reading gave up (too slow, a decoder failure, the photo missing): left to an agent.
    GaveUp,
    /// The job ended without a result of its own: the photo was replaced, or another
    /// worker finished it first.
    Over(JobEnd),
}

/// What reading a photo gave, before it is compared with the export.
enum Reading {
    Codes {
        codes: Vec<crate::evidence::ReadCode>,
        /// The preview and the thumbnail as JPEG bytes, when the photo could be scaled.
        previews: Option<(Vec<u8>, Vec<u8>)>,
    },
    Damaged,
    /// Reading took too long, the decoder failed, or the job's readings were interrupted
    /// too often: the photo may be fine (or crafted to keep a decoder busy); it is left
    /// to an agent, with why, and the customer is not blamed.
    GaveUp(&'static str),
}

const TOO_SLOW: &str =
    "the label photo could not be read in time, or its decoder failed: look at it";
const MISSING: &str = "the label photo is missing from storage: look at the ticket's photo";
const OTHER_LIMITS: &str = "the label photo is over today's max_label_pixels (it was taken under other limits): look at it";
const DAMAGED: &str = "the label photo could not be decoded: its picture data is damaged";
const INTERRUPTED: &str =
    "reading the label photo was interrupted too often (the desk stopped mid-read): look at it";

/// One round: leases due jobs and works each. The jobs worked, for tests and the loop.
pub async fn work_once(desk: &Desk) -> Result<Vec<Worked>, EvidenceError> {
    let jobs = desk
        .store
        .claim_evidence_jobs(desk.clock.now(), lease_secs(desk), BATCH)
        .await?;
    let mut worked = Vec::with_capacity(jobs.len());
    for job in jobs {
        match work(desk, &job).await {
            Ok(done) => worked.push(done),
            Err(error) => {
                // Nothing against the photo: the job goes back, its attempt not counted,
                // due again in RETRY_SECS for this worker or another replica's.
                tracing::warn!(job = job.id, ticket = %job.ticket, error = %error, "an evidence job could not be worked; it is given back");
                desk.store
                    .release_evidence_job(job.id, desk.clock.now().plus_seconds(RETRY_SECS))
                    .await?;
                return Err(error);
            }
        }
    }
    Ok(worked)
}

/// What an approval found when it asked for its ticket's label check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelCheckWait {
    /// It had ended (or the ticket has none): nothing changed.
    NothingPending,
    /// It was pending and has ended now: the ticket may carry a new flag.
    Ended,
    /// Another worker is still reading the photo.
    StillPending,
}

/// How long an approval waits for its ticket's label check: a photo read here takes a
/// second or two; one another replica's worker is reading is stopped at its deadline
/// (`evidence_read_timeout_secs`, at most 20 s).
pub const DECISION_WAIT: Duration = Duration::from_secs(25);

/// Reads the ticket's label photo now if its check is still pending, so an approval is
/// never decided without the finding (another device's label needs four eyes: deciding
/// before it lands would skip them). A job another worker holds is waited for, up to
/// [`DECISION_WAIT`].
pub async fn read_before_deciding(
    desk: &Desk,
    ticket_id: TicketId,
) -> Result<LabelCheckWait, EvidenceError> {
    // Bounded as a whole: the reading's own wait for the picture work may be longer.
    tokio::time::timeout(DECISION_WAIT, read_or_wait(desk, ticket_id))
        .await
        .unwrap_or(Ok(LabelCheckWait::StillPending))
}

async fn read_or_wait(desk: &Desk, ticket_id: TicketId) -> Result<LabelCheckWait, EvidenceError> {
    let mut waited = LabelCheckWait::NothingPending;
    loop {
        // The queue's one-query check, not the whole evidence: every approval asks.
        let pending = desk.store.label_checks(&[ticket_id]).await?.get(&ticket_id)
            == Some(&LabelCheck::Pending);
        if !pending {
            return Ok(waited);
        }
        waited = LabelCheckWait::Ended;
        let now = desk.clock.now();
        let job = desk
            .store
            .claim_ticket_evidence_job(ticket_id, now, lease_secs(desk))
            .await?;
        if let Some(job) = job {
            let lease = GivenBackIfDropped {
                desk,
                job_id: job.id,
                done: false,
            };
            let worked = work(desk, &job).await;
            lease.end(worked.is_ok()).await?;
            worked?;
            continue;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A job an approval leased: given back if the approval is dropped mid-read (its client
/// went away, or it ran out of time) or the reading failed on the desk's side, so the job
/// is due again at once, its attempt not counted, instead of held for its whole lease.
struct GivenBackIfDropped<'a> {
    desk: &'a Desk,
    job_id: i64,
    done: bool,
}

impl GivenBackIfDropped<'_> {
    async fn end(mut self, worked: bool) -> Result<(), EvidenceError> {
        self.done = true;
        if !worked {
            let now = self.desk.clock.now();
            self.desk
                .store
                .release_evidence_job(self.job_id, now)
                .await?;
        }
        Ok(())
    }
}

impl Drop for GivenBackIfDropped<'_> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let (store, job_id, now) = (self.desk.store.clone(), self.job_id, self.desk.clock.now());
        // A job already recorded is not pending, and giving it back changes nothing.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(error) = store.release_evidence_job(job_id, now).await {
                    tracing::warn!(job = job_id, %error, "an evidence job an approval left was not given back; its lease will run out");
                }
            });
        }
    }
}

fn lease_secs(desk: &Desk) -> i64 {
    i64::try_from(desk.settings.evidence.lease_secs).unwrap_or(LEASE_SECS)
}

/// Rounds until no job is due: what `run` does between its waits, for tests and tools.
pub async fn work_until_idle(desk: &Desk) -> Result<Vec<Worked>, EvidenceError> {
    let mut worked = Vec::new();
    loop {
        let round = work_once(desk).await?;
        if round.is_empty() {
            return Ok(worked);
        }
        worked.extend(round);
    }
}

async fn work(desk: &Desk, job: &EvidenceJob) -> Result<Worked, EvidenceError> {
    let started = std::time::Instant::now();
    let ticket = desk.store.ticket(&job.ticket).await?;
    let reading = if job.exhausted() {
        // Not read once more: its readings never finished.
        Reading::GaveUp(INTERRUPTED)
    } else {
        match desk.blobs.get(&job.label_blob).await {
            Ok(bytes) => read(desk, bytes).await?,
            // Removed: the photo was replaced and its job superseded, which ending the job
            // finds out; a photo missing while it is still the ticket's is the storage's
            // fault, left to an agent.
            Err(error) if error.is_not_found() => Reading::GaveUp(MISSING),
            Err(other) => return Err(other.into()),
        }
    };
    let now = desk.clock.now();
    let worked = match reading {
        Reading::Codes { codes, previews } => {
            let (findings, other_serials) = findings(&ticket, &codes);
            let preview = match previews {
                Some((preview, thumbnail)) => stored_previews(desk, preview, thumbnail).await,
                None => None,
            };
            let reading = EvidenceReading {
                job_id: job.id,
                findings: findings.clone(),
                other_serials,
                codes: codes
                    .iter()
                    .take(MAX_CODES_KEPT)
                    .map(|code| ReadCode {
                        format: code.format.as_str().to_owned(),
                        text: code.text.chars().take(MAX_CODE_CHARS_KEPT).collect(),
                    })
                    .collect(),
                preview: preview.clone(),
                at: now,
            };
            match desk.store.finish_evidence_job(&reading).await? {
                JobEnd::Recorded => {
                    fast_tracks(desk, job).await;
                    Worked::Read { findings }
                }
                other => {
                    // Nobody will show them: the photo was replaced, or another worker's
                    // previews were kept. (Left behind, the sweeper would remove them.)
                    if let Some(previews) = preview {
                        remove(desk, &[&previews.preview_blob, &previews.thumbnail_blob]).await;
                    }
                    Worked::Over(other)
                }
            }
        }
        Reading::Damaged => fail(desk, job, &ticket, DAMAGED, true).await?,
        Reading::GaveUp(why) => fail(desk, job, &ticket, why, false).await?,
    };
    record_metrics(&worked, started.elapsed());
    Ok(worked)
}

/// With the label read, the fast tracks look at the ticket (`review::automatic`): the
/// first moment a decision can be as safe as an agent's. A failure here leaves the
/// ticket to agents, as a decline would; the reading stands.
async fn fast_tracks(desk: &Desk, job: &EvidenceJob) {
    let considered = match desk.store.ticket(&job.ticket).await {
        Ok(ticket) => crate::review::automatic::consider(desk, &ticket)
            .await
            .map(|_| ())
            .map_err(|e| format!("{e:?}")),
        Err(error) => Err(error.to_string()),
    };
    if let Err(error) = considered {
        tracing::warn!(ticket = %job.ticket, %error, "the fast tracks could not look at the ticket; it is left to agents");
    }
}

/// Records that the job's photo could not be read, `why`; a `damaged` one sends the
/// ticket back to the customer (the store decides whether it still may).
async fn fail(
    desk: &Desk,
    job: &EvidenceJob,
    ticket: &TicketDetail,
    why: &str,
    damaged: bool,
) -> Result<Worked, EvidenceError> {
    let failure = EvidenceFailure {
        job_id: job.id,
        error: why.to_owned(),
        mail: unreadable_mail(desk, ticket)?,
        damaged,
        at: desk.clock.now(),
    };
    Ok(match desk.store.fail_evidence_job(&failure).await? {
        JobEnd::Recorded if damaged => {
            desk.mail_queued.notify_one();
            Worked::Unreadable
        }
        JobEnd::Recorded => Worked::GaveUp,
        other => Worked::Over(other),
    })
}

/// Has the photo read in a child process (`evidence::reading`), holding a share of the
/// picture work's cores and memory while it runs, so a burst of photos queues there with
/// the QR pictures intake reads. The child is killed at `evidence_read_timeout_secs`.
async fn read(desk: &Desk, bytes: Vec<u8>) -> Result<Reading, EvidenceError> {
    let max_pixels = desk.settings.intake.max_label_pixels;
    let Ok(inspected) = photo::inspect_label_photo(&bytes, max_pixels) else {
        // Intake checked the structure; a stored photo that no longer passes was taken
        // under other limits (`max_label_pixels` lowered since): not the customer's fault.
        return Ok(Reading::GaveUp(OTHER_LIMITS));
    };
    let memory = reading::memory_needed(bytes.len(), &inspected);
    let limits = child_limits(desk, memory);
    let program = reader_program(desk)?;
    let outcome = desk
        .pictures
        .run(PictureJob::PhotoProof, WORKER_ADDRESS, memory, move || {
            reading::read_in_child(&program, bytes, limits)
        })
        .await;
    match outcome {
        Ok(Ok(found)) if found.damaged => Ok(Reading::Damaged),
        Ok(Ok(found)) => Ok(Reading::Codes {
            codes: found.codes,
            previews: found.previews,
        }),
        Ok(Err(failure)) if failure.is_the_photos() => {
            tracing::warn!(error = %failure, "a label photo could not be read; it is left to an agent");
            Ok(Reading::GaveUp(TOO_SLOW))
        }
        Ok(Err(failure)) => Err(EvidenceError::Reader(failure)),
        Err(PictureWorkError::Failed | PictureWorkError::TooSlow) => Ok(Reading::GaveUp(TOO_SLOW)),
        Err(PictureWorkError::Busy) => Err(EvidenceError::Busy),
    }
}

/// What a reader child of this desk may take: the desk's photo limits, `memory_bytes`,
/// and `evidence_read_timeout_secs`.
fn child_limits(desk: &Desk, memory_bytes: u64) -> reading::ChildLimits {
    reading::ChildLimits {
        max_pixels: desk.settings.intake.max_label_pixels,
        max_bytes: desk.settings.intake.max_label_photo_bytes,
        memory_bytes,
        deadline: Duration::from_secs(desk.settings.evidence.read_timeout_secs),
        own_program: desk.settings.evidence.reader.is_none(),
    }
}

/// The program that reads photos: `evidence_reader`, or this one. On Linux this one is
/// `/proc/self/exe`, which still runs after an upgrade replaced the file on disk (its old
/// path then names the new binary, or nothing).
fn reader_program(desk: &Desk) -> Result<std::path::PathBuf, EvidenceError> {
    const THIS_PROGRAM: &str = "/proc/self/exe";
    match &desk.settings.evidence.reader {
        Some(program) => Ok(program.clone()),
        None if std::path::Path::new(THIS_PROGRAM).exists() => Ok(THIS_PROGRAM.into()),
        None => std::env::current_exe().map_err(|error| {
            EvidenceError::Reader(reading::ChildFailure::Start {
                program: "this program".to_owned(),
                error,
            })
        }),
    }
}

/// Whether this desk's photo reader runs and answers: `serve` asks before it listens, so
/// a wrong `evidence_reader` stops the start instead of every label check.
pub async fn check_reader(desk: &Desk) -> Result<(), EvidenceError> {
    let program = reader_program(desk)?;
    let limits = child_limits(desk, 64 << 20);
    let photo = reading::sample_photo();
    tokio::task::spawn_blocking(move || reading::read_in_child(&program, photo, limits))
        .await
        .map_err(|_| EvidenceError::Busy)?
        .map(drop)
        .map_err(EvidenceError::Reader)
}

/// Stores a photo's preview and thumbnail; `None` when blob storage refuses them (a full
/// disk, an unreachable object store): the findings matter more than the previews, and
/// the console then shows the original.
async fn stored_previews(desk: &Desk, preview: Vec<u8>, thumbnail: Vec<u8>) -> Option<Previews> {
    let preview_blob = match desk.blobs.put(preview).await {
        Ok(name) => name,
        Err(error) => {
            tracing::warn!(error = %error, "a label photo's preview was not stored");
            return None;
        }
    };
    match desk.blobs.put(thumbnail).await {
        Ok(thumbnail_blob) => Some(Previews {
            preview_blob,
            thumbnail_blob,
        }),
        Err(error) => {
            tracing::warn!(error = %error, "a label photo's thumbnail was not stored");
            remove(desk, &[&preview_blob]).await;
            None
        }
    }
}

/// Removes blobs nobody will show; a failure leaves them to the sweeper.
async fn remove(desk: &Desk, names: &[&str]) {
    for name in names {
        if let Err(error) = desk.blobs.delete(name).await {
            tracing::warn!(blob = name, error = %error, "an unused preview was not removed; the sweeper will");
        }
    }
}

/// A finding per device of the export, by serial, and the serials the label names that
/// the export does not.
fn findings(
    ticket: &TicketDetail,
    codes: &[crate::evidence::ReadCode],
) -> (Vec<(String, LabelFinding)>, Vec<String>) {
    let export: Vec<_> = ticket
        .devices
        .iter()
        .map(|d| d.identity.serial.clone())
        .collect();
    // A barcode of the model or the MAC address parses as a serial too; on the export's
    // own label it is not another device.
    let printed_beside: Vec<String> = ticket
        .devices
        .iter()
        .flat_map(|d| {
            let mac = d.identity.mac_address.map(|m| m.to_string());
            [Some(d.identity.model.to_string()), mac]
        })
        .flatten()
        .map(|text| comparable(&text))
        .collect();
    let on_label: Vec<_> = crate::evidence::serials_in(codes)
        .into_iter()
        .filter(|serial| !printed_beside.contains(&comparable(serial.as_str())))
        .collect();
    let found = crate::evidence::label_findings(&export, &on_label, !codes.is_empty());
    let devices = found
        .devices
        .into_iter()
        .map(|(serial, finding)| (serial.to_string(), finding))
        .collect();
    let others = found
        .other_serials
        .iter()
        .map(ToString::to_string)
        .collect();
    (devices, others)
}

/// A model or MAC address as a barcode may spell it: without separators, in capitals.
fn comparable(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// "Please send a new photo": the photo request, with why in the customer's language.
fn unreadable_mail(
    desk: &Desk,
    ticket: &TicketDetail,
) -> Result<crate::store::NewMail, compose::RenderError> {
    let number = &ticket.summary.number;
    let t: Lang = ticket.customer.language;
    compose::photo_requested(
        &desk.mail,
        number,
        &desk.status_url(number),
        &desk.photo_url(number),
        &ticket.customer,
        &t.text("mail.photo_request.unreadable"),
    )
}

fn record_metrics(worked: &Worked, took: Duration) {
    if matches!(worked, Worked::Over(_)) {
        // Nothing of this job's was recorded: someone else's result stands.
        return;
    }
    ::metrics::histogram!("resetdesk_evidence_seconds").record(took.as_secs_f64());
    match worked {
        Worked::Read { findings } => {
            for (_, finding) in findings {
                ::metrics::counter!("resetdesk_evidence_findings_total", "finding" => finding.as_str())
                    .increment(1);
            }
        }
        Worked::Unreadable => {
            ::metrics::counter!("resetdesk_evidence_unreadable_total").increment(1);
        }
        Worked::GaveUp => ::metrics::counter!("resetdesk_evidence_gave_up_total").increment(1),
        Worked::Over(_) => {}
    }
}

/// Works jobs until `stopped`: at once when this replica's intake made one (`queued`),
/// and every [`POLL`] for the others'.
///
/// One photo at a time, at the desk's priority. Measured on 2 cores (bench `--only
/// intake`, 2026-12-05): a second reader beside it (a loop per core) doubled the rate
/// photos are read at, but raised intake's p99 at half of its peak from 8.5 ms to
/// 37–79 ms, with the readers at nice 10 or 19 alike: one core must be left to
/// requests. Lowering the reader's priority instead was dropped too: at nice 19 a busy
/// desk starves it past the picture work's deadline, and a photo "not read in time"
/// raises no flag, so keeping the cores busy would hide another device's label.
pub async fn run(
    desk: web::Data<Desk>,
    queued: std::sync::Arc<tokio::sync::Notify>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        // Asked before each job, so a stop (SIGTERM) waits for the job in hand only, not
        // for a backlog to drain: what is left stays due for the next start.
        if *stopped.borrow() {
            return;
        }
        let busy = match work_once(&desk).await {
            Ok(worked) => !worked.is_empty(),
            Err(error) => {
                tracing::warn!(error = %error, "the evidence worker could not work its jobs");
                false
            }
        };
        if let Ok((pending, failed)) = desk.store.evidence_counts().await {
            ::metrics::gauge!("resetdesk_evidence_jobs_pending").set(pending as f64);
            ::metrics::gauge!("resetdesk_evidence_jobs_failed").set(failed as f64);
        }
        if busy {
            continue;
        }
        tokio::select! {
            _ = queued.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stopped.changed() => return,
        }
        if *stopped.borrow() {
            return;
        }
    }
}
