//! Part 6: the desk's peak memory while 200 clients upload a 10 MB label photo each, all
//! at once. Read from the kernel's high-water mark of the process's resident set
//! (`VmHWM` in /proc/PID/status), so nothing that happened between samples is missed.

use std::io::Cursor;

use bytes::Bytes;
use resetdesk::crypto::KeyStore;

use super::{closed_loop, start_desk, submission, uploads};

#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryRun {
    pub idle_rss_mb: f64,
    pub peak_rss_mb: f64,
    pub requests_per_sec: f64,
    pub errors: usize,
}

/// A phone-like photo of about `target` bytes: a noisy picture, sized to hit the mark.
pub fn big_photo(target: usize) -> Bytes {
    let (mut width, mut height) = (4000u32, 3000u32);
    let mut best = Vec::new();
    for _ in 0..4 {
        let image = super::textured_picture(width, height, 8, 4, 0x2545_F491_4F6C_DD1D);
        best.clear();
        image::codecs::jpeg::JpegEncoder::new_with_quality(Cursor::new(&mut best), 90)
            .encode_image(&image)
            .expect("a JPEG");
        let scale = (target as f64 / best.len() as f64).sqrt();
        if (0.97..=1.03).contains(&scale) {
            break;
        }
        width = (f64::from(width) * scale) as u32;
        height = (f64::from(height) * scale) as u32;
    }
    Bytes::from(best)
}

fn rss_mb(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

pub async fn memory_run(photo: &Bytes, clients: usize, run: usize) -> MemoryRun {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (desk, _) = start_desk(dir.path(), None);
    let keys = &KeyStore::new(dir.path().join("keys"));
    let pid = desk.child.id();
    let url = format!("http://127.0.0.1:{}/api/v1/requests", desk.port);
    // Warm up with a few ordinary requests, so the idle figure is a desk that has worked.
    let warm = closed_loop(
        &url,
        uploads(8, &super::label_photo(), |i| {
            submission(keys, &format!("WARM-{run}-{i:04}"), i)
        }),
        2,
    )
    .await;
    assert_eq!(warm.errors, 0, "the warm-up failed");
    let idle_rss_mb = rss_mb(pid, "VmRSS:");
    let load = closed_loop(
        &url,
        uploads(clients, photo, |i| {
            submission(keys, &format!("BIG-{run}-{i:04}"), i)
        }),
        clients,
    )
    .await;
    MemoryRun {
        idle_rss_mb,
        peak_rss_mb: rss_mb(pid, "VmHWM:"),
        requests_per_sec: load.requests_per_sec,
        errors: load.errors,
    }
}
