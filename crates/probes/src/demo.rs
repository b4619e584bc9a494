//! Small self-contained probe inputs for demos, recipes and tests: procedurally drawn PNGs (coloured
//! shapes on gradients), a pair file labelling which shapes each image holds, an image list, and
//! optionally perturbed copies of a checkpoint (so two checkpoints differ in every tensor).
//! Same seed → same bytes.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use sam3lab_util::rng::Rng;

use crate::{ProbeError, Result};
use crate::manifest::write_atomic;

/// The shapes drawn, with the phrase that names each.
pub const SHAPES: [(&str, [u8; 3]); 4] =
    [("a red circle", [220, 30, 40]), ("a blue square", [30, 60, 220]), ("a green stripe", [40, 190, 60]), ("a yellow triangle", [235, 210, 30])];

/// What [`write_demo_inputs`] wrote.
#[derive(Debug)]
pub struct DemoInputs {
    pub images: Vec<PathBuf>,
    /// `images.txt`: the images as a list file.
    pub image_list: PathBuf,
    /// `pairs.jsonl`: every (image, shape phrase) with pos when the image holds that shape.
    pub pairs: PathBuf,
    /// `shapes.txt`: the shape phrases, one per line.
    pub shapes: PathBuf,
}

/// Uniform in `lo..hi`.
fn range(rng: &mut Rng, lo: u32, hi: u32) -> u32 {
    lo + rng.below((hi - lo) as usize) as u32
}

fn draw(w: u32, h: u32, present: &[usize], rng: &mut Rng) -> RgbImage {
    let (c0, c1) = ([range(rng, 0, 120) as u8, range(rng, 0, 120) as u8, range(rng, 60, 200) as u8], range(rng, 80, 255) as u8);
    let mut img = RgbImage::from_fn(w, h, |x, y| {
        let t = (x + y) as f32 / (w + h) as f32;
        Rgb([c0[0], (c0[1] as f32 * (1.0 - t) + c1 as f32 * t) as u8, c0[2]])
    });
    for &s in present {
        let col = Rgb(SHAPES[s].1);
        let size = range(rng, h / 5, h / 3);
        let (cx, cy) = (range(rng, size, w - size), range(rng, size, h - size));
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = (x as i64 - cx as i64, y as i64 - cy as i64);
                let r = size as i64;
                let inside = match s {
                    0 => dx * dx + dy * dy <= r * r,
                    1 => dx.abs() <= r && dy.abs() <= r,
                    2 => dy.abs() <= r / 4,
                    _ => dy <= r && dy >= -r && dx.abs() * 2 <= dy + r,
                };
                if inside {
                    img.put_pixel(x, y, col);
                }
            }
        }
    }
    img
}

/// Write `n` images and the pair / list / phrase files into `out`.
pub fn write_demo_inputs(out: &Path, n: usize, seed: u64) -> Result<DemoInputs> {
    if n == 0 {
        return Err(ProbeError::Usage("--images must be ≥ 1".into()));
    }
    let img_dir = out.join("images");
    std::fs::create_dir_all(&img_dir).map_err(|e| ProbeError::io(&img_dir, e))?;
    let mut rng = Rng::new(seed);
    let mut images = Vec::new();
    let mut pairs = String::new();
    let mut list = String::new();
    for i in 0..n {
        let (w, h) = (range(&mut rng, 96, 161), range(&mut rng, 80, 129));
        // Each image holds one or two shapes; every shape is a positive somewhere when n ≥ 2.
        let first = i % SHAPES.len();
        let mut present = vec![first];
        if rng.chance(0.5) {
            present.push((first + 1 + rng.below(3)) % SHAPES.len());
        }
        let img = draw(w, h, &present, &mut rng);
        let name = format!("img_{i:02}.png");
        let mut buf = std::io::Cursor::new(Vec::new());
        img.write_to(&mut buf, image::ImageFormat::Png)
            .map_err(|e| ProbeError::Usage(format!("cannot encode {name}: {e}")))?;
        let path = img_dir.join(&name);
        write_atomic(&path, buf.get_ref())?;
        list += &format!("images/{name}\n");
        for (s, (phrase, _)) in SHAPES.iter().enumerate() {
            let label = if present.contains(&s) { "pos" } else { "neg" };
            pairs += &format!("{{\"image\": \"images/{name}\", \"prompt\": \"{phrase}\", \"label\": \"{label}\"}}\n");
        }
        images.push(path);
    }
    let image_list = out.join("images.txt");
    write_atomic(&image_list, list.as_bytes())?;
    let pairs_path = out.join("pairs.jsonl");
    write_atomic(&pairs_path, pairs.as_bytes())?;
    let shapes = out.join("shapes.txt");
    let phrases: String = SHAPES.iter().map(|(p, _)| format!("{p}\n")).collect();
    write_atomic(&shapes, format!("# the shapes sam3lab probe demo-inputs draws\n{phrases}").as_bytes())?;
    Ok(DemoInputs { images, image_list, pairs: pairs_path, shapes })
}

/// Write `ckpt` + uniform noise in ±`noise` as `out_dir/weights.safetensors`, copying a fixture
/// directory's `config.json` so `out_dir` loads like the original.
pub fn write_perturbed(ckpt: &Path, out_dir: &Path, noise: f32, seed: u64) -> Result<PathBuf> {
    if !(noise.is_finite() && noise >= 0.0) {
        return Err(ProbeError::Usage(format!("--noise {noise} must be ≥ 0")));
    }
    let (weights, config) = if ckpt.is_dir() {
        (ckpt.join("weights.safetensors"), Some(ckpt.join("config.json")).filter(|p| p.is_file()))
    } else {
        (ckpt.to_path_buf(), None)
    };
    std::fs::create_dir_all(out_dir).map_err(|e| ProbeError::io(out_dir, e))?;
    let out = out_dir.join("weights.safetensors");
    // The weights error names the file at fault already.
    sam3lab_weights::synth::write_perturbed(&out, &weights, noise, seed, &sam3lab_util::progress::NoProgress)
        .map_err(|e| ProbeError::Usage(e.to_string()))?;
    if let Some(c) = config {
        let bytes = std::fs::read(&c).map_err(|e| ProbeError::io(&c, e))?;
        write_atomic(&out_dir.join("config.json"), &bytes)?;
    }
    Ok(out_dir.to_path_buf())
}
