//! The label as a customer's phone shows it: a 12 MP picture of the label lying on a
//! desk, seen at a slant (perspective), turned up to ±15°, a little out of focus, lit
//! unevenly, with sensor noise. Deterministic from a seed, so a test's fixture is the
//! same picture on every run and machine.

use image::{GrayImage, RgbImage};

pub const PHOTO_WIDTH: u32 = 4000;
pub const PHOTO_HEIGHT: u32 = 3000;
const MAX_TURN_DEGREES: f64 = 15.0;
const PAPER: [f64; 3] = [238.0, 235.0, 226.0];
const INK: [f64; 3] = [28.0, 27.0, 32.0];
const DESK: [f64; 3] = [122.0, 98.0, 76.0];

/// SplitMix64: a few lines, and the same numbers everywhere.
struct Seeded(u64);

impl Seeded {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [low, high).
    fn between(&mut self, low: f64, high: f64) -> f64 {
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        low + unit * (high - low)
    }
}

/// The photo of `label` that `seed` describes.
pub fn photograph(label: &GrayImage, seed: u64) -> RgbImage {
    let mut random = Seeded(seed);
    let (label_width, label_height) = (f64::from(label.width()), f64::from(label.height()));
    let (width, height) = (f64::from(PHOTO_WIDTH), f64::from(PHOTO_HEIGHT));

    // Where the label lies: most of the frame, as people fill it with what they photograph.
    let scale = (random.between(0.58, 0.70) * width / label_width).min(0.6 * height / label_height);
    let turn = random
        .between(-MAX_TURN_DEGREES, MAX_TURN_DEGREES)
        .to_radians();
    let centre = (
        width * (0.5 + random.between(-0.04, 0.04)),
        height * (0.5 + random.between(-0.04, 0.04)),
    );
    // The slant: the far edge looks shorter, and each corner wanders a little.
    let far = random.between(0.86, 0.97);
    let (top, bottom) = if random.next().is_multiple_of(2) {
        (far, 1.0)
    } else {
        (1.0, far)
    };
    let (half_width, half_height) = (label_width * scale / 2.0, label_height * scale / 2.0);
    let mut corner = |x: f64, y: f64| {
        let x = x + random.between(-0.015, 0.015) * half_width;
        let y = y + random.between(-0.015, 0.015) * half_width;
        (
            centre.0 + x * turn.cos() - y * turn.sin(),
            centre.1 + x * turn.sin() + y * turn.cos(),
        )
    };
    let photo_corners = [
        corner(-half_width * top, -half_height),
        corner(half_width * top, -half_height),
        corner(half_width * bottom, half_height),
        corner(-half_width * bottom, half_height),
    ];
    let label_corners = [
        (0.0, 0.0),
        (label_width, 0.0),
        (label_width, label_height),
        (0.0, label_height),
    ];
    let to_label = homography(photo_corners, label_corners);

    // Light from one side, darker towards the corners.
    let slope = (random.between(-0.35, 0.35), random.between(-0.3, 0.3));
    let brightness = random.between(0.85, 1.0);
    let blur = random.between(1.2, 2.2) as f32;
    let mut noise = Seeded(random.next());

    let mut pixels = vec![0u8; (PHOTO_WIDTH * PHOTO_HEIGHT * 3) as usize];
    let source = label.as_raw();
    let stride = label.width() as usize;
    for (y, row) in pixels
        .chunks_exact_mut(PHOTO_WIDTH as usize * 3)
        .enumerate()
    {
        let y = y as f64;
        let dy = y / height - 0.5;
        for (x, pixel) in row.chunks_exact_mut(3).enumerate() {
            let x = x as f64;
            let dx = x / width - 0.5;
            let [h0, h1, h2, h3, h4, h5, h6, h7] = to_label;
            let w = h6 * x + h7 * y + 1.0;
            let (u, v) = ((h0 * x + h1 * y + h2) / w, (h3 * x + h4 * y + h5) / w);
            let colour = if u >= 0.0 && v >= 0.0 && u < label_width - 1.0 && v < label_height - 1.0
            {
                let ink = bilinear(source, stride, u, v) / 255.0;
                [0, 1, 2].map(|c| INK[c] + (PAPER[c] - INK[c]) * ink)
            } else {
                let grain = 10.0 * (y * 0.013 + 3.0 * (x * 0.0021).sin()).sin();
                DESK.map(|c| c + grain)
            };
            let light = brightness + slope.0 * dx + slope.1 * dy - 0.6 * (dx * dx + dy * dy);
            let bits = noise.next();
            for (c, out) in pixel.iter_mut().enumerate() {
                let jitter = ((bits >> (c * 8)) & 0x0F) as f64 - 7.5;
                *out = (colour[c] * light + jitter).clamp(0.0, 255.0) as u8;
            }
        }
    }
    let sharp = RgbImage::from_raw(PHOTO_WIDTH, PHOTO_HEIGHT, pixels)
        .unwrap_or_else(|| RgbImage::new(PHOTO_WIDTH, PHOTO_HEIGHT));
    image::imageops::fast_blur(&sharp, blur)
}

fn bilinear(source: &[u8], stride: usize, u: f64, v: f64) -> f64 {
    let (x, y) = (u.floor() as usize, v.floor() as usize);
    let (fx, fy) = (u - u.floor(), v - v.floor());
    let at = |x: usize, y: usize| f64::from(source[y * stride + x]);
    let top = at(x, y) * (1.0 - fx) + at(x + 1, y) * fx;
    let bottom = at(x, y + 1) * (1.0 - fx) + at(x + 1, y + 1) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// The projective map taking each `from` corner to its `to` corner, as the eight
/// coefficients h0..h7 of u = (h0·x + h1·y + h2) / (h6·x + h7·y + 1), v likewise with
/// h3..h5. Solved by Gaussian elimination with partial pivoting.
fn homography(from: [(f64, f64); 4], to: [(f64, f64); 4]) -> [f64; 8] {
    let mut rows = [[0.0f64; 9]; 8];
    for (i, ((x, y), (u, v))) in from.into_iter().zip(to).enumerate() {
        rows[2 * i] = [x, y, 1.0, 0.0, 0.0, 0.0, -u * x, -u * y, u];
        rows[2 * i + 1] = [0.0, 0.0, 0.0, x, y, 1.0, -v * x, -v * y, v];
    }
    for column in 0..8 {
        let pivot = (column..8)
            .max_by(|&a, &b| rows[a][column].abs().total_cmp(&rows[b][column].abs()))
            .unwrap_or(column);
        rows.swap(column, pivot);
        let pivot_row = rows[column];
        let lead = pivot_row[column];
        if lead.abs() < 1e-12 {
            continue;
        }
        for (index, row) in rows.iter_mut().enumerate() {
            if index != column {
                let factor = row[column] / lead;
                for (value, above) in row.iter_mut().zip(pivot_row).skip(column) {
                    *value -= factor * above;
                }
            }
        }
    }
    std::array::from_fn(|i| rows[i][8] / rows[i][i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_homography_takes_each_corner_to_its_corner() {
        let from = [(10.0, 20.0), (300.0, 5.0), (320.0, 250.0), (0.0, 240.0)];
        let to = [(0.0, 0.0), (100.0, 0.0), (100.0, 60.0), (0.0, 60.0)];
        let [h0, h1, h2, h3, h4, h5, h6, h7] = homography(from, to);
        for ((x, y), (u, v)) in from.into_iter().zip(to) {
            let w = h6 * x + h7 * y + 1.0;
            assert!(((h0 * x + h1 * y + h2) / w - u).abs() < 1e-6);
            assert!(((h3 * x + h4 * y + h5) / w - v).abs() < 1e-6);
        }
    }
}
