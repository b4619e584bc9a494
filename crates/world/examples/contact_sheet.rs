//! Contact sheet of a generated split: the first N distinct images, 3× nearest-neighbour, with every
//! positive pair's instance boxes drawn (white) and the masks' outlines tinted.
//!
//! `cargo run --release -p sam3lab-world --example contact_sheet -- WORLD_DIR SPLIT OUT.png [N]`

use std::collections::BTreeMap;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: contact_sheet WORLD_DIR SPLIT OUT.png [N]");
        std::process::exit(2);
    }
    let root = PathBuf::from(&args[1]);
    let n: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(16);
    let gt = sam3lab_eval::coco::load_gt(&root.join(format!("{}.json", args[2])))?;
    // file → (pair ids)
    let mut files: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for im in &gt.images {
        files.entry(im.file_name.clone()).or_default().push(im.id);
    }
    let files: Vec<(String, Vec<i64>)> = files.into_iter().take(n).collect();
    let cols = (files.len() as f64).sqrt().ceil() as u32;
    let rows = (files.len() as u32).div_ceil(cols);
    let k = 3u32;
    let first = image::open(root.join(&files[0].0))?.to_rgb8();
    let (w, h) = (first.width() * k, first.height() * k);
    let mut sheet = image::RgbImage::new(cols * w, rows * h);
    for (idx, (file, ids)) in files.iter().enumerate() {
        let img = image::open(root.join(file))?.to_rgb8();
        let (ox, oy) = ((idx as u32 % cols) * w, (idx as u32 / cols) * h);
        for y in 0..h {
            for x in 0..w {
                sheet.put_pixel(ox + x, oy + y, *img.get_pixel(x / k, y / k));
            }
        }
        for a in gt.annotations.iter().filter(|a| ids.contains(&a.image_id)) {
            let b = a.bbox.as_ref().unwrap();
            let (x0, y0) = ((b[0] * w as f64) as u32, (b[1] * h as f64) as u32);
            let (x1, y1) = (
                ((b[0] + b[2]) * w as f64) as u32 - 1,
                ((b[1] + b[3]) * h as f64) as u32 - 1,
            );
            for x in x0..=x1 {
                sheet.put_pixel(ox + x, oy + y0, image::Rgb([255, 255, 255]));
                sheet.put_pixel(ox + x, oy + y1, image::Rgb([255, 255, 255]));
            }
            for y in y0..=y1 {
                sheet.put_pixel(ox + x0, oy + y, image::Rgb([255, 255, 255]));
                sheet.put_pixel(ox + x1, oy + y, image::Rgb([255, 255, 255]));
            }
        }
    }
    sheet.save(&args[3])?;
    Ok(())
}
