//! Two rendered figures side by side under one title, each panel labelled (`sam3lab reproduce`
//! puts every published figure beside the same renderer's drawing of the world's numbers). The PNG
//! is composed from the two PNGs pixel for pixel; the SVG nests the two SVG documents unchanged.

use std::path::Path;

use plotters::prelude::*;

use crate::error::{FigureError, Result};
use crate::render::{Written, atomic_write};
use crate::style::{FAMILY, INK, MUTED, PAPER, ensure_fonts};

const PAD: u32 = 16;
const HEADER: u32 = 84;

/// One panel: a rendered figure (STEM.png and STEM.svg beside each other) and its label.
pub struct Panel<'a> {
    pub stem: &'a Path,
    pub label: &'a str,
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|cause| FigureError::Read { path: path.to_path_buf(), cause })
}

fn draw_err(figure: &str, e: impl std::fmt::Display) -> FigureError {
    FigureError::Draw { figure: figure.into(), msg: e.to_string() }
}

/// Writes `OUT_DIR/STEM.{png,svg,json}` with `left` and `right` side by side under `title`.
pub fn side_by_side(left: Panel, right: Panel, title: &str, out_dir: &Path, stem: &str) -> Result<Written> {
    ensure_fonts()?;
    let with = |p: &Path, ext: &str| p.with_extension(ext);
    let decode = |p: &Path| -> Result<image::RgbImage> {
        let bytes = read(p)?;
        Ok(image::load_from_memory(&bytes).map_err(|e| draw_err(stem, format!("{}: {e}", p.display())))?.to_rgb8())
    };
    let (a, b) = (decode(&with(left.stem, "png"))?, decode(&with(right.stem, "png"))?);
    let (w, h) = (a.width() + b.width() + 3 * PAD, HEADER + a.height().max(b.height()) + PAD);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    for px in buf.chunks_mut(3) {
        px.copy_from_slice(&[PAPER.0, PAPER.1, PAPER.2]);
    }
    let blit = |buf: &mut [u8], img: &image::RgbImage, x0: u32| {
        for (x, y, p) in img.enumerate_pixels() {
            let i = (((HEADER + y) * w + x0 + x) * 3) as usize;
            buf[i..i + 3].copy_from_slice(&p.0);
        }
    };
    blit(&mut buf, &a, PAD);
    blit(&mut buf, &b, 2 * PAD + a.width());
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        let t = (FAMILY, 32).into_font().style(FontStyle::Bold).color(&INK);
        let l = (FAMILY, 26).into_font().color(&MUTED);
        root.draw_text(title, &t, (PAD as i32, 8)).map_err(|e| draw_err(stem, e))?;
        root.draw_text(left.label, &l, (PAD as i32, 48)).map_err(|e| draw_err(stem, e))?;
        root.draw_text(right.label, &l, ((2 * PAD + a.width()) as i32, 48)).map_err(|e| draw_err(stem, e))?;
        root.present().map_err(|e| draw_err(stem, e))?;
    }
    let mut png = Vec::new();
    image::RgbImage::from_raw(w, h, buf)
        .expect("buffer size matches")
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| draw_err(stem, e))?;

    let svg_of = |p: &Path| -> Result<String> {
        let text = String::from_utf8_lossy(&read(&with(p, "svg"))?).into_owned();
        Ok(match text.find("<svg") {
            Some(i) => text[i..].to_string(),
            None => return Err(draw_err(stem, format!("{}: not an SVG", with(p, "svg").display()))),
        })
    };
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let svg = format!(
        "<svg width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" xmlns=\"http://www.w3.org/2000/svg\">\n\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#{:02X}{:02X}{:02X}\"/>\n\
         <text x=\"{PAD}\" y=\"36\" font-family=\"{FAMILY}\" font-size=\"32\" font-weight=\"bold\">{}</text>\n\
         <text x=\"{PAD}\" y=\"72\" font-family=\"{FAMILY}\" font-size=\"26\" fill=\"#5C564C\">{}</text>\n\
         <text x=\"{}\" y=\"72\" font-family=\"{FAMILY}\" font-size=\"26\" fill=\"#5C564C\">{}</text>\n\
         <g transform=\"translate({PAD},{HEADER})\">{}</g>\n<g transform=\"translate({},{HEADER})\">{}</g>\n</svg>\n",
        PAPER.0,
        PAPER.1,
        PAPER.2,
        esc(title),
        esc(left.label),
        2 * PAD + a.width(),
        esc(right.label),
        svg_of(left.stem)?,
        2 * PAD + a.width(),
        svg_of(right.stem)?,
    );
    let json = serde_json::json!({
        "figure": stem,
        "kind": "side_by_side",
        "title": title,
        "width": w,
        "height": h,
        "panels": [
            {"label": left.label, "from": with(left.stem, "json").display().to_string()},
            {"label": right.label, "from": with(right.stem, "json").display().to_string()},
        ],
    });
    let out = Written { png: out_dir.join(format!("{stem}.png")), svg: out_dir.join(format!("{stem}.svg")), json: out_dir.join(format!("{stem}.json")) };
    atomic_write(&out.png, &png)?;
    atomic_write(&out.svg, svg.as_bytes())?;
    atomic_write(&out.json, format!("{}\n", serde_json::to_string_pretty(&json).expect("json")).as_bytes())?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panels_land_pixel_for_pixel_beside_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let mk = |name: &str, w: u32, h: u32, c: [u8; 3]| {
            let p = dir.path().join(name);
            image::RgbImage::from_pixel(w, h, image::Rgb(c)).save(p.with_extension("png")).unwrap();
            std::fs::write(p.with_extension("svg"), format!("<?xml version=\"1.0\"?>\n<svg width=\"{w}\" height=\"{h}\"><rect/></svg>")).unwrap();
            p
        };
        let (l, r) = (mk("l", 40, 30, [255, 0, 0]), mk("r", 20, 50, [0, 0, 255]));
        let out = side_by_side(Panel { stem: &l, label: "published" }, Panel { stem: &r, label: "world" }, "T", dir.path(), "both").unwrap();
        let img = image::open(&out.png).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (40 + 20 + 3 * PAD, HEADER + 50 + PAD));
        assert_eq!(img.get_pixel(PAD + 39, HEADER + 29).0, [255, 0, 0]);
        assert_eq!(img.get_pixel(2 * PAD + 40, HEADER + 49).0, [0, 0, 255]);
        assert_eq!(img.get_pixel(PAD + 10, HEADER + 40).0, [PAPER.0, PAPER.1, PAPER.2], "below the shorter panel is paper");
        let svg = std::fs::read_to_string(&out.svg).unwrap();
        assert_eq!(svg.matches("<svg").count(), 3);
        assert!(!svg.contains("<?xml"));
    }
}
