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
use crate::i18n::Lang;
use crate::intake::photo;
use crate::intake::picture_work::{PictureJob, PictureWorkError};
use crate::mail::compose;
use crate::store::{
    EvidenceFailure, EvidenceJob, EvidenceReading, JobEnd, LabelFinding, Previews, ReadCode,
    StoreError, TicketDetail,
};

/// How long a job is leased unless `evidence_lease_secs` says otherwise: longer than the
/// longest wait for the picture work (120 s) and the work itself (20 s) together, so a
/// live worker keeps its job.
pub const LEASE_SECS: i64 = 300;

/// Jobs leased at a time: one, so a job never waits in a replica's hands behind another
/// (its lease must outlast the wait for the picture work, 120 s, and the work, 20 s) and
/// the replicas share a burst.
const BATCH: i64 = 1;

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
    /// Reading took too long or the decoder failed: the photo may be fine (or crafted to
    /// keep a decoder busy); it is left to an agent, and the customer is not blamed.
    GaveUp,
}

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
                // Nothing against the photo: the job goes back at once, its attempt not
                // counted, for this worker or another replica's.
                tracing::warn!(job = job.id, ticket = %job.ticket, error = %error, "an evidence job could not be worked; it is given back");
                desk.store.release_evidence_job(job.id).await?;
                return Err(error);
            }
        }
    }
    Ok(worked)
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
    let bytes = match desk.blobs.get(&job.label_blob).await {
        Ok(bytes) => Some(bytes),
        // Removed: the photo was replaced and its job superseded, which ending the job
        // finds out; a photo missing while it is still the ticket's is the storage's
        // fault, left to an agent.
        Err(error) if error.is_not_found() => None,
        Err(other) => return Err(other.into()),
    };
    let reading = match bytes {
        Some(bytes) => read(desk, bytes).await?,
        None => Reading::GaveUp,
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
                JobEnd::Recorded => Worked::Read { findings },
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
        Reading::Damaged | Reading::GaveUp => {
            let damaged = matches!(reading, Reading::Damaged);
            let error = if damaged {
                "the label photo could not be decoded: its picture data is damaged"
            } else {
                "the label photo could not be read in time, or its decoder failed: look at it"
            };
            let failure = EvidenceFailure {
                job_id: job.id,
                error: error.to_owned(),
                mail: unreadable_mail(desk, &ticket)?,
                damaged,
                at: now,
            };
            match desk.store.fail_evidence_job(&failure).await? {
                JobEnd::Recorded if damaged => {
                    desk.mail_queued.notify_one();
                    Worked::Unreadable
                }
                JobEnd::Recorded => Worked::GaveUp,
                other => Worked::Over(other),
            }
        }
    };
    record_metrics(&worked, started.elapsed());
    Ok(worked)
}

/// Decodes the photo and reads its codes on the picture work's threads, within its
/// memory and time bounds.
async fn read(desk: &Desk, bytes: Vec<u8>) -> Result<Reading, EvidenceError> {
    let max_pixels = desk.settings.intake.max_label_pixels;
    let Ok(inspected) = photo::inspect_label_photo(&bytes, max_pixels) else {
        // Intake checked the structure; a stored photo that no longer passes was taken
        // under other limits (`max_label_pixels` lowered since): not the customer's fault.
        return Ok(Reading::GaveUp);
    };
    let declared = inspected.declared();
    // Reading the codes, then the previews: the photo decoded in colour (RGB, or RGBA for
    // a PNG) beside what reading took.
    let colour = 4 * u64::from(declared.width) * u64::from(declared.height);
    let memory = bytes.len() as u64 + declared.reading_memory() + colour;
    let outcome = desk
        .pictures
        .run(PictureJob::PhotoProof, WORKER_ADDRESS, memory, move || {
            let grey = photo::read_label_pixels(&bytes, &inspected).ok()?;
            let codes = crate::evidence::read_codes(&image::DynamicImage::ImageLuma8(grey));
            // A photo whose codes read served its purpose, whatever a strict decoder
            // thinks of it; one with none is damaged if a strict decode fails.
            let damaged = codes.is_empty() && !photo::decodes_strictly(&bytes, &inspected);
            let previews = if damaged {
                None
            } else {
                previews(&bytes, colour + colour / 2)
            };
            Some((codes, damaged, previews))
        })
        .await;
    match outcome {
        Ok(Some((codes, false, previews))) => Ok(Reading::Codes { codes, previews }),
        Ok(Some((_, true, _)) | None) => Ok(Reading::Damaged),
        Err(PictureWorkError::Failed | PictureWorkError::TooSlow) => Ok(Reading::GaveUp),
        Err(PictureWorkError::Busy) => Err(EvidenceError::Busy),
    }
}

/// The longest side of the console's preview of a label photo.
pub const PREVIEW_SIDE: u32 = 1_600;
/// The longest side of the queue's thumbnail.
pub const THUMBNAIL_SIDE: u32 = 240;

/// The console's preview and the queue's thumbnail of a photo, as JPEG: upright (its
/// EXIF orientation applied) and without its metadata (location, camera, time), since they
/// are encoded anew. Decoded in colour within `max_alloc` bytes; `None` when the photo
/// cannot be decoded so (the console then shows the original).
fn previews(bytes: &[u8], max_alloc: u64) -> Option<(Vec<u8>, Vec<u8>)> {
    use image::ImageDecoder;
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .ok()?;
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_alloc);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().ok()?;
    let orientation = decoder.orientation().ok()?;
    let mut picture = image::DynamicImage::from_decoder(decoder).ok()?;
    picture.apply_orientation(orientation);
    let fit = |picture: &image::DynamicImage, side: u32| {
        if picture.width().max(picture.height()) > side {
            picture.thumbnail(side, side)
        } else {
            picture.clone()
        }
    };
    let preview = fit(&picture, PREVIEW_SIDE);
    let thumbnail = fit(&preview, THUMBNAIL_SIDE);
    Some((jpeg(&preview)?, jpeg(&thumbnail)?))
}

fn jpeg(picture: &image::DynamicImage) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 85);
    picture.to_rgb8().write_with_encoder(encoder).ok()?;
    Some(out)
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
pub async fn run(
    desk: web::Data<Desk>,
    queued: std::sync::Arc<tokio::sync::Notify>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    loop {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A `width`×`height` JPEG whose EXIF says to turn it a quarter clockwise (6), as a
    /// phone held upright writes it.
    fn turned_jpeg(width: u32, height: u32) -> Vec<u8> {
        let picture = image::RgbImage::from_fn(width, height, |x, _| image::Rgb([x as u8, 0, 0]));
        let mut plain = Vec::new();
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 90);
        picture.write_with_encoder(encoder).unwrap();
        // Big-endian TIFF, one IFD entry: Orientation (0x0112), SHORT, 1, value 6.
        let tiff: [u8; 26] = [
            b'M', b'M', 0, 42, 0, 0, 0, 8, 0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0,
            0,
        ];
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let length = (app1.len() + 2) as u16;
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE1];
        jpeg.extend_from_slice(&length.to_be_bytes());
        jpeg.extend_from_slice(&app1);
        jpeg.extend_from_slice(&plain[2..]);
        jpeg
    }

    #[test]
    fn previews_are_upright_small_and_without_metadata() {
        let (preview, thumbnail) = previews(&turned_jpeg(3_200, 800), 64 << 20).unwrap();
        let preview = image::load_from_memory(&preview).unwrap();
        assert_eq!(
            (preview.width(), preview.height()),
            (400, 1_600),
            "turned upright, then fitted in 1,600 px"
        );
        let thumbnail_bytes = thumbnail;
        let thumbnail = image::load_from_memory(&thumbnail_bytes).unwrap();
        assert_eq!((thumbnail.width(), thumbnail.height()), (60, 240));
        assert!(!thumbnail_bytes.windows(4).any(|w| w == b"Exif"));
    }
}
