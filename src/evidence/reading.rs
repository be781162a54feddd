//! Reading a label photo in a process of its own, which the desk can kill.
//!
//! A photo is hostile input, and reading it is the most work the desk does on anything a
//! customer sends: a full decode, rxing's search for codes, a strict decode, previews. A
//! thread cannot be stopped, and a photo crafted to keep rxing's finder-pattern search
//! busy (a 2,000 px picture tiled with 15,000 finder patterns: 32 s of a core in a test
//! build) would hold a picture thread and a core long after its job gave up. So the
//! evidence worker starts `resetdesk evidence read` for each photo ([`read_in_child`]):
//! the child limits its own CPU time, address space and core dumps before it reads a byte
//! ([`limit_this_process`]), gets no environment (no SMTP password, no database URL),
//! reads the photo from stdin and answers on stdout; the worker kills it at its deadline
//! and waits for it, so a stalled photo costs its deadline and nothing after.
//!
//! The answer is one JSON line ([`Answer`]) followed by the preview's and the thumbnail's
//! bytes, as many as the line says.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{CodeFormat, ReadCode, read_codes};
use crate::i18n::Message;
use crate::intake::photo::{self, InspectedPhoto};

/// The longest side of the console's preview of a label photo.
pub const PREVIEW_SIDE: u32 = 1_600;
/// The longest side of the queue's thumbnail.
pub const THUMBNAIL_SIDE: u32 = 240;

/// The most the answer's JSON line may hold: 16 codes of a few KB each fit many times.
const MAX_ANSWER_LINE: usize = 1 << 20;
/// The most preview and thumbnail bytes the worker takes from a child: a 1,600 px JPEG
/// at quality 85 is well under a megabyte.
const MAX_PREVIEW_BYTES: usize = 16 << 20;
/// What the worker keeps of a child's stderr for its log (a panic's message).
const MAX_STDERR: usize = 2 << 10;
/// Room the child needs beside the pictures: its stack, the allocator's bookkeeping,
/// rxing's tables, the buffers of stdin and stdout.
const CHILD_HEADROOM: u64 = 128 << 20;

/// What reading a photo found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhotoReading {
    /// Every code read, each text once, in the order found.
    pub codes: Vec<ReadCode>,
    /// No code was read and the picture data is damaged: the customer must send another.
    pub damaged: bool,
    /// The preview and the thumbnail as JPEG, when asked for and the photo could be scaled.
    pub previews: Option<(Vec<u8>, Vec<u8>)>,
}

/// The answer's first line, as the child writes it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    pub codes: Vec<AnsweredCode>,
    pub damaged: bool,
    /// Bytes of the preview that follow the line; 0 when there is none.
    pub preview_bytes: usize,
    /// Bytes of the thumbnail that follow the preview.
    pub thumbnail_bytes: usize,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AnsweredCode {
    pub format: String,
    pub text: String,
}

/// Memory one reading of this photo may take, in bytes: the photo, the decode for the
/// codes (`reading_memory`), and the photo in colour (RGB, or RGBA for a PNG) for the
/// previews. The worker reserves it in the picture work's budget; the child's decoders
/// are held to their parts of it.
pub fn memory_needed(photo_len: usize, inspected: &InspectedPhoto) -> u64 {
    let declared = inspected.declared();
    photo_len as u64 + declared.reading_memory() + colour_memory(inspected)
}

fn colour_memory(inspected: &InspectedPhoto) -> u64 {
    let declared = inspected.declared();
    4 * u64::from(declared.width) * u64::from(declared.height)
}

/// Reads `bytes` (a label photo intake accepted): its codes; when none could be read,
/// whether the picture data is damaged; and the previews when `with_previews`. What a
/// photo that does not pass intake's structure checks (under `max_pixels`) gets is the
/// refusal intake would give.
pub fn read_photo(
    bytes: &[u8],
    max_pixels: u64,
    with_previews: bool,
) -> Result<PhotoReading, Message> {
    let inspected = photo::inspect_label_photo(bytes, max_pixels)?;
    let Ok(grey) = photo::read_label_pixels(bytes, &inspected) else {
        return Ok(PhotoReading {
            codes: Vec::new(),
            damaged: true,
            previews: None,
        });
    };
    let codes = read_codes(&image::DynamicImage::ImageLuma8(grey));
    // A photo whose codes read served its purpose, whatever a strict decoder thinks of
    // it; one with none is damaged if a strict decode fails.
    let damaged = codes.is_empty() && !photo::decodes_strictly(bytes, &inspected);
    let previews = if with_previews && !damaged {
        let colour = colour_memory(&inspected);
        previews(bytes, colour + colour / 2)
    } else {
        None
    };
    Ok(PhotoReading {
        codes,
        damaged,
        previews,
    })
}

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

/// A plain grey photo that passes intake's checks: what `serve` has its reader read
/// before it starts, to know the reader works.
pub fn sample_photo() -> Vec<u8> {
    let side = photo::MIN_SIDE;
    let picture = image::GrayImage::from_pixel(side, side, image::Luma([200]));
    let mut out = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("a PNG is written to memory");
    out
}

/// Writes `reading` as the child answers: the JSON line, then the previews' bytes.
pub fn write_answer(reading: &PhotoReading, out: &mut impl Write) -> std::io::Result<()> {
    let (preview, thumbnail) = match &reading.previews {
        Some((preview, thumbnail)) => (preview.as_slice(), thumbnail.as_slice()),
        None => (&[][..], &[][..]),
    };
    let answer = Answer {
        codes: reading
            .codes
            .iter()
            .map(|code| AnsweredCode {
                format: code.format.as_str().to_owned(),
                text: code.text.clone(),
            })
            .collect(),
        damaged: reading.damaged,
        preview_bytes: preview.len(),
        thumbnail_bytes: thumbnail.len(),
    };
    serde_json::to_writer(&mut *out, &answer)?;
    out.write_all(b"\n")?;
    out.write_all(preview)?;
    out.write_all(thumbnail)?;
    out.flush()
}

/// Reads a child's answer back; `None` for anything that is not one.
fn parse_answer(output: &[u8]) -> Option<PhotoReading> {
    let end = output.iter().position(|&b| b == b'\n')?;
    if end > MAX_ANSWER_LINE {
        return None;
    }
    let answer: Answer = serde_json::from_slice(&output[..end]).ok()?;
    let rest = &output[end + 1..];
    let previews_len = answer.preview_bytes.checked_add(answer.thumbnail_bytes)?;
    if rest.len() != previews_len || previews_len > MAX_PREVIEW_BYTES {
        return None;
    }
    let previews = (answer.preview_bytes > 0 && answer.thumbnail_bytes > 0).then(|| {
        let (preview, thumbnail) = rest.split_at(answer.preview_bytes);
        (preview.to_vec(), thumbnail.to_vec())
    });
    let codes = answer
        .codes
        .into_iter()
        .map(|code| {
            Some(ReadCode {
                format: CodeFormat::parse(&code.format)?,
                text: code.text,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(PhotoReading {
        codes,
        damaged: answer.damaged,
        previews,
    })
}

/// The bounds a child reads one photo within.
#[derive(Debug, Clone, Copy)]
pub struct ChildLimits {
    /// Pixels a photo may declare (`max_label_pixels`).
    pub max_pixels: u64,
    /// Bytes a photo may have (`max_label_photo_bytes`).
    pub max_bytes: u64,
    /// What the reading may allocate beyond the child's own start-up ([`memory_needed`]).
    pub memory_bytes: u64,
    /// Wall-clock time from start to answer; also the child's CPU time limit.
    pub deadline: Duration,
    /// The program is this desk's own binary, started directly: it is told the desk's
    /// process id (`--parent-pid`) and ends if its parent is another by the time it runs.
    /// A configured `evidence_reader` may be a wrapper that forks, or an older version
    /// that knows no such flag, so it is not told.
    pub own_program: bool,
}

/// How `resetdesk evidence read` ends when it gives no answer: the photo refused (its
/// structure, its size), or the child could not set itself up (its limits). Any other
/// failure (a panic, a limit reached, a signal) ends it otherwise.
pub const EXIT_PHOTO_REFUSED: u8 = 2;
pub const EXIT_CANNOT_START: u8 = 3;

/// How long the pipes may stay open once the child has ended: only something the child
/// left behind holds them (a wrapper's leftover process), which is then killed.
const PIPE_GRACE: Duration = Duration::from_secs(1);

/// Why a child gave no reading.
#[derive(Debug, thiserror::Error)]
pub enum ChildFailure {
    /// The desk's fault, not the photo's: the reader program is missing or not executable.
    #[error("the photo reader {program} could not be started: {error}")]
    Start {
        program: String,
        error: std::io::Error,
    },
    /// The desk's fault: the reader could not set its limits (a service's hard limits
    /// lower than `evidence_read_timeout_secs`, say).
    #[error("the photo reader could not set itself up: {stderr}")]
    Setup { stderr: String },
    /// The desk's fault: the program ran and ended well, but what it wrote is not an
    /// answer (`evidence_reader` names something other than resetdesk).
    #[error("the photo reader {program} did not answer as `resetdesk evidence read` does")]
    Garbled { program: String },
    /// Killed at its deadline: a photo that keeps a decoder busy.
    #[error("the photo reader was stopped after {0:?}")]
    TimedOut(Duration),
    /// It ended without an answer: the photo refused, a decoder's panic, a memory or CPU
    /// limit reached.
    #[error("the photo reader failed ({status}): {stderr}")]
    Crashed { status: String, stderr: String },
}

impl ChildFailure {
    /// Whether the photo may be to blame (so its job gives up), rather than the desk
    /// (so the job goes back and the operator is told).
    pub fn is_the_photos(&self) -> bool {
        matches!(self, Self::TimedOut(_) | Self::Crashed { .. })
    }
}

/// Reads `photo` with `program evidence read` in a child process, killed at
/// `limits.deadline`. Blocks the calling thread (a picture work thread) until the child
/// has ended and been waited for.
pub fn read_in_child(
    program: &Path,
    photo: Vec<u8>,
    limits: ChildLimits,
) -> Result<PhotoReading, ChildFailure> {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let started = Instant::now();
    let seconds = limits.deadline.as_secs().max(1);
    let mut child = Command::new(program)
        .args(["evidence", "read", "--previews"])
        .arg("--max-pixels")
        .arg(limits.max_pixels.to_string())
        .arg("--max-bytes")
        .arg(limits.max_bytes.to_string())
        .arg("--max-seconds")
        .arg(seconds.to_string())
        .arg("--max-memory-mib")
        .arg(limits.memory_bytes.div_ceil(1 << 20).to_string())
        // So it can tell whether the desk died before it asked to die with it.
        .args(
            limits
                .own_program
                .then(|| ["--parent-pid".to_owned(), std::process::id().to_string()])
                .into_iter()
                .flatten(),
        )
        // Nothing of the desk's: its variables hold the database URL and SMTP password.
        .env_clear()
        .current_dir("/")
        // A group of its own, so whatever it starts goes with it at the deadline.
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| ChildFailure::Start {
            program: program.display().to_string(),
            error,
        })?;
    let group = rustix::process::Pid::from_child(&child);
    let kill_group = || {
        let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    };
    // Each pipe has a thread, so a child that never reads its input, or writes more than
    // a pipe holds before it ends, cannot block the worker past the deadline. The writer
    // ends when the child closes its end (it read all, or it ended).
    let mut stdin = child.stdin.take().expect("stdin is piped");
    std::thread::spawn(move || {
        let _ = stdin.write_all(&photo);
    });
    let output = drain(child.stdout.take().expect("stdout is piped"), {
        (MAX_ANSWER_LINE + MAX_PREVIEW_BYTES + 1) as u64
    });
    let errors = drain(
        child.stderr.take().expect("stderr is piped"),
        MAX_STDERR as u64,
    );
    let deadline = started + limits.deadline;
    // Until the child ends or its deadline passes; what it wrote is taken as it arrives.
    let mut answered = None;
    let status = loop {
        if answered.is_none() {
            answered = output.try_recv().ok();
        }
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            _ => break None,
        }
    };
    let Some(status) = status else {
        // Past the deadline: the group killed, the child waited for so it leaves no zombie.
        kill_group();
        let _ = child.kill();
        let _ = child.wait();
        return Err(ChildFailure::TimedOut(limits.deadline));
    };
    let mut left_behind = false;
    let mut collect = |pipe: std::sync::mpsc::Receiver<Vec<u8>>| {
        pipe.recv_timeout(PIPE_GRACE).unwrap_or_else(|_| {
            // Something the child started still holds the pipe: it goes (its group id
            // cannot be reused while a member lives), and what was read so far is dropped.
            left_behind = true;
            kill_group();
            Vec::new()
        })
    };
    let output = match answered {
        Some(output) => output,
        None => collect(output),
    };
    let stderr = collect(errors);
    let stderr = String::from_utf8_lossy(&stderr).trim().to_owned();
    if status.code() == Some(i32::from(EXIT_CANNOT_START)) {
        return Err(ChildFailure::Setup { stderr });
    }
    if !status.success() || left_behind {
        let status = match status.signal() {
            Some(signal) => format!("signal {signal}"),
            None => status.to_string(),
        };
        return Err(ChildFailure::Crashed { status, stderr });
    }
    parse_answer(&output).ok_or_else(|| ChildFailure::Garbled {
        program: program.display().to_string(),
    })
}

/// Reads `pipe` to its end (at most `limit` bytes) on a thread of its own; the bytes
/// arrive on the returned channel.
fn drain(pipe: impl Read + Send + 'static, limit: u64) -> std::sync::mpsc::Receiver<Vec<u8>> {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.take(limit).read_to_end(&mut bytes);
        let _ = sender.send(bytes);
    });
    receiver
}

/// In the child, before it reads a byte: at most `cpu_seconds` of CPU (then the kernel
/// ends it), at most `memory_bytes` more address space than it has now, no core dump (a
/// dump would hold the customer's photo), and killed with the desk that started it (a
/// desk killed mid-read leaves no reader behind).
///
/// `started_by` is that desk's process id, when it gave it: the death signal is asked
/// for only once the child runs, and a desk that died before then has no death left to
/// signal. A child whose parent is no longer `started_by` (it was handed to init or a
/// subreaper) stops here, instead of reading on as an orphan.
pub fn limit_this_process(
    cpu_seconds: u64,
    memory_bytes: u64,
    started_by: Option<u32>,
) -> std::io::Result<()> {
    use rustix::process::{
        Resource, Rlimit, Signal, getppid, set_parent_process_death_signal, setrlimit,
    };
    set_parent_process_death_signal(Some(Signal::KILL))?;
    if let Some(desk) = started_by {
        let parent = getppid().map_or(0, |pid| pid.as_raw_nonzero().get().unsigned_abs());
        if parent != desk {
            return Err(std::io::Error::other(format!(
                "the desk that started this reader (process {desk}) has ended"
            )));
        }
    }
    let limit = |resource, value: u64| {
        setrlimit(
            resource,
            Rlimit {
                current: Some(value),
                maximum: Some(value),
            },
        )
    };
    limit(Resource::Core, 0)?;
    // The soft limit sends SIGXCPU; a second later the hard one SIGKILL.
    setrlimit(
        Resource::Cpu,
        Rlimit {
            current: Some(cpu_seconds),
            maximum: Some(cpu_seconds + 1),
        },
    )?;
    // What the process has mapped already (its binary, its libraries, a debug build's
    // symbols) plus what reading may take.
    if let Some(mapped) = address_space_now() {
        limit(
            Resource::As,
            mapped
                .saturating_add(memory_bytes)
                .saturating_add(CHILD_HEADROOM),
        )?;
    }
    Ok(())
}

/// This process's address space in bytes (`VmSize`), where /proc says.
fn address_space_now() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmSize:"))?;
    let kib: u64 = line
        .trim_start_matches("VmSize:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
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

    /// A reader program that is this shell script.
    fn script(dir: &tempfile::TempDir, body: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.path().join("reader");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700)).unwrap();
        path
    }

    fn limits(seconds: u64) -> ChildLimits {
        ChildLimits {
            max_pixels: 1_000_000,
            max_bytes: 1 << 20,
            memory_bytes: 1 << 20,
            deadline: Duration::from_secs(seconds),
            own_program: true,
        }
    }

    #[test]
    fn how_a_reader_ends_says_whose_fault_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let photo = || vec![0; 200_000];
        let answer = r#"echo '{"codes":[],"damaged":false,"preview_bytes":0,"thumbnail_bytes":0}'"#;
        let read =
            |body: &str, seconds| read_in_child(&script(&dir, body), photo(), limits(seconds));
        assert_eq!(
            read(answer, 5).unwrap(),
            PhotoReading {
                codes: Vec::new(),
                damaged: false,
                previews: None,
            }
        );
        let failure = read("sleep 30", 1).unwrap_err();
        assert!(matches!(failure, ChildFailure::TimedOut(_)), "{failure}");
        assert!(failure.is_the_photos());
        let failure = read("echo 'running 0 tests'", 5).unwrap_err();
        assert!(matches!(failure, ChildFailure::Garbled { .. }), "{failure}");
        assert!(
            !failure.is_the_photos(),
            "the wrong program is the desk's fault"
        );
        let failure = read("echo 'cannot limit' >&2; exit 3", 5).unwrap_err();
        assert!(matches!(failure, ChildFailure::Setup { ref stderr } if stderr == "cannot limit"));
        assert!(!failure.is_the_photos());
        let failure = read("exit 2", 5).unwrap_err();
        assert!(matches!(failure, ChildFailure::Crashed { .. }), "{failure}");
        assert!(failure.is_the_photos(), "a refused photo");
        let missing = read_in_child(&dir.path().join("nothing"), photo(), limits(5)).unwrap_err();
        assert!(matches!(missing, ChildFailure::Start { .. }), "{missing}");
    }

    /// The desk tells its own reader who started it, so a reader whose desk died before
    /// it asked to die with it can tell.
    #[test]
    fn a_reader_is_told_which_desk_started_it() {
        let dir = tempfile::tempdir().unwrap();
        let body = r#"case " $* " in
  *" --parent-pid $PPID "*) echo '{"codes":[],"damaged":false,"preview_bytes":0,"thumbnail_bytes":0}' ;;
  *) echo "no --parent-pid $PPID in: $*" >&2; exit 3 ;;
esac"#;
        let read = read_in_child(&script(&dir, body), vec![0; 16], limits(10));
        assert!(read.is_ok(), "{read:?}");
        // A configured reader may be a wrapper that forks: it is not told.
        let body = r#"case " $* " in
  *" --parent-pid "*) echo "told: $*" >&2; exit 3 ;;
  *) echo '{"codes":[],"damaged":false,"preview_bytes":0,"thumbnail_bytes":0}' ;;
esac"#;
        let configured = ChildLimits {
            own_program: false,
            ..limits(10)
        };
        let read = read_in_child(&script(&dir, body), vec![0; 16], configured);
        assert!(read.is_ok(), "{read:?}");
    }

    /// A reader that answers but leaves a process holding its pipes (a wrapper's
    /// leftover) does not hold the worker: the leftover goes with the reader's group.
    #[test]
    fn what_a_reader_leaves_behind_goes_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let body = r#"sleep 30 &
echo '{"codes":[],"damaged":false,"preview_bytes":0,"thumbnail_bytes":0}'"#;
        let failure = read_in_child(&script(&dir, body), vec![0; 16], limits(10)).unwrap_err();
        assert!(
            matches!(failure, ChildFailure::Crashed { .. }),
            "not taken as an answer: {failure}"
        );
    }

    #[test]
    fn an_answer_reads_back_as_written() {
        let reading = PhotoReading {
            codes: vec![
                ReadCode {
                    format: CodeFormat::Qr,
                    text: "SN:DS-1\nline two".to_owned(),
                },
                ReadCode {
                    format: CodeFormat::Code128,
                    text: "DS-1".to_owned(),
                },
            ],
            damaged: false,
            previews: Some((vec![1, 2, 3], vec![4, 5])),
        };
        let mut written = Vec::new();
        write_answer(&reading, &mut written).unwrap();
        assert_eq!(parse_answer(&written), Some(reading));
    }

    #[test]
    fn what_is_not_an_answer_is_refused() {
        let reading = PhotoReading {
            codes: Vec::new(),
            damaged: true,
            previews: Some((vec![1, 2, 3], vec![4, 5])),
        };
        let mut written = Vec::new();
        write_answer(&reading, &mut written).unwrap();
        assert!(
            parse_answer(&written[..written.len() - 1]).is_none(),
            "cut short"
        );
        let mut longer = written.clone();
        longer.push(0);
        assert!(
            parse_answer(&longer).is_none(),
            "bytes beyond what it declared"
        );
        assert!(
            parse_answer(b"running 0 tests\n").is_none(),
            "a test harness"
        );
        assert!(parse_answer(b"").is_none());
        let unknown = br#"{"codes":[{"format":"aztec","text":"x"}],"damaged":false,"preview_bytes":0,"thumbnail_bytes":0}"#;
        let mut unknown = unknown.to_vec();
        unknown.push(b'\n');
        assert!(parse_answer(&unknown).is_none(), "a format we do not read");
    }
}
