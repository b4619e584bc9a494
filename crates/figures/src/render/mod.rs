//! Renderers. Each figure is a [`Plot`]: it knows its pixel size, draws itself on any plotters
//! backend (the same code produces the PNG and the SVG), and serialises exactly the numbers it
//! draws for the JSON sidecar. [`write_figure`] writes `STEM.png`, `STEM.svg` and `STEM.json`,
//! each through a temporary file renamed into place.

pub mod common;
pub mod drift_steps;
pub mod heatmap;
pub mod presence_bars;
pub mod projection;
pub mod scatter;

use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Serialize;

use crate::error::{FigureError, Result};
use crate::style;

pub use drift_steps::DriftSteps;
pub use heatmap::Heatmap;
pub use presence_bars::PresenceBarsPlot;
pub use projection::ProjectionPlot;
pub use scatter::ScatterPlot;

/// Any figure this crate draws.
pub enum Plot {
    Heatmap(Heatmap),
    DriftSteps(DriftSteps),
    Scatter(ScatterPlot),
    Projection(ProjectionPlot),
    PresenceBars(PresenceBarsPlot),
}

impl Plot {
    pub fn kind(&self) -> &'static str {
        match self {
            Plot::Heatmap(_) => "heatmap",
            Plot::DriftSteps(_) => "fig61",
            Plot::Scatter(_) => "fig62",
            Plot::Projection(_) => "fig81",
            Plot::PresenceBars(_) => "fig11",
        }
    }

    pub fn title(&self) -> &str {
        match self {
            Plot::Heatmap(p) => p.title(),
            Plot::DriftSteps(p) => &p.title,
            Plot::Scatter(p) => &p.title,
            Plot::Projection(p) => &p.title,
            Plot::PresenceBars(p) => &p.title,
        }
    }

    pub fn size(&self) -> (u32, u32) {
        match self {
            Plot::Heatmap(p) => p.size(),
            Plot::DriftSteps(p) => p.size(),
            Plot::Scatter(p) => p.size(),
            Plot::Projection(p) => p.size(),
            Plot::PresenceBars(p) => p.size(),
        }
    }

    pub fn draw<DB: DrawingBackend>(&self, root: &common::Area<DB>, fig: &str) -> Result<()> {
        match self {
            Plot::Heatmap(p) => p.draw(root, fig),
            Plot::DriftSteps(p) => p.draw(root, fig),
            Plot::Scatter(p) => p.draw(root, fig),
            Plot::Projection(p) => p.draw(root, fig),
            Plot::PresenceBars(p) => p.draw(root, fig),
        }
    }

    /// Exactly the numbers drawn (inputs plus anything derived, such as fits or coordinates).
    pub fn data(&self) -> serde_json::Value {
        let v = match self {
            Plot::Heatmap(p) => serde_json::to_value(&p.table),
            Plot::DriftSteps(p) => serde_json::to_value(p),
            Plot::Scatter(p) => serde_json::to_value(p),
            Plot::Projection(p) => serde_json::to_value(p),
            Plot::PresenceBars(p) => serde_json::to_value(p),
        };
        v.expect("figure models serialise to JSON")
    }

    /// Renders the PNG in memory.
    pub fn render_png(&self, fig: &str) -> Result<Vec<u8>> {
        style::ensure_fonts()?;
        let (w, h) = self.size();
        let mut buf = vec![0u8; w as usize * h as usize * 3];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
            self.draw(&root, fig)?;
            root.present().map_err(common::de(fig))?;
        }
        let mut png = Vec::new();
        image::ImageEncoder::write_image(
            image::codecs::png::PngEncoder::new(&mut png),
            &buf,
            w,
            h,
            image::ExtendedColorType::Rgb8,
        )
        .map_err(|e| FigureError::Draw {
            figure: fig.into(),
            msg: format!("PNG encoding: {e}"),
        })?;
        Ok(png)
    }

    /// Renders the SVG in memory.
    pub fn render_svg(&self, fig: &str) -> Result<String> {
        style::ensure_fonts()?;
        let (w, h) = self.size();
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
            self.draw(&root, fig)?;
            root.present().map_err(common::de(fig))?;
        }
        Ok(svg)
    }
}

/// Identity of an input file a figure was drawn from.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SourceRef {
    pub path: String,
    pub sha256: String,
}

impl SourceRef {
    pub fn of(path: &Path) -> Result<SourceRef> {
        let bytes = std::fs::read(path).map_err(|cause| FigureError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        Ok(SourceRef {
            path: path.display().to_string(),
            sha256: sam3lab_util::sha256_hex(&bytes),
        })
    }
}

/// The JSON sidecar written next to every figure.
#[derive(Serialize)]
struct Sidecar<'a> {
    figure: &'a str,
    kind: &'a str,
    title: &'a str,
    width: u32,
    height: u32,
    png: String,
    svg: String,
    sources: &'a [SourceRef],
    data: serde_json::Value,
}

/// Paths written for one figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Written {
    pub png: PathBuf,
    pub svg: PathBuf,
    pub json: PathBuf,
}

/// Renders `plot` to `OUT/STEM.{png,svg,json}`. Each file is written to a temporary file in
/// `out_dir` and renamed into place, so a failure never leaves a partial figure behind.
pub fn write_figure(
    plot: &Plot,
    out_dir: &Path,
    stem: &str,
    sources: &[SourceRef],
) -> Result<Written> {
    std::fs::create_dir_all(out_dir).map_err(|cause| FigureError::Write {
        path: out_dir.to_path_buf(),
        cause,
    })?;
    // Render everything before touching the output directory's files.
    let png = plot.render_png(stem)?;
    let svg = plot.render_svg(stem)?;
    let (width, height) = plot.size();
    let side = Sidecar {
        figure: stem,
        kind: plot.kind(),
        title: plot.title(),
        width,
        height,
        png: format!("{stem}.png"),
        svg: format!("{stem}.svg"),
        sources,
        data: plot.data(),
    };
    let mut json = serde_json::to_string_pretty(&side).expect("sidecar serialises");
    json.push('\n');
    let out = Written {
        png: out_dir.join(format!("{stem}.png")),
        svg: out_dir.join(format!("{stem}.svg")),
        json: out_dir.join(format!("{stem}.json")),
    };
    atomic_write(&out.png, &png)?;
    atomic_write(&out.svg, svg.as_bytes())?;
    atomic_write(&out.json, json.as_bytes())?;
    Ok(out)
}

/// Writes `bytes` to a temporary file next to `path`, then renames it over `path`.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    sam3lab_util::write_atomic(path, bytes).map_err(|cause| FigureError::Write { path: path.to_path_buf(), cause })
}
