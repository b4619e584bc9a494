//! Loaders for the post's published numbers in `data/post02/` (one CSV per table, each starting
//! with a `# source:` line). They return the same typed inputs the live probes produce.

use std::collections::BTreeMap;
use std::path::Path;

use crate::csv::CsvTable;
use crate::error::{FigureError, Result};
use crate::geometry::CosineRow;
use crate::schema::Validate as _;
use crate::schema::{DriftRow, DriftTable, HeatmapTable};

/// Every file in `data/post02/`, with the table it transcribes.
pub const FILES: &[(&str, &str)] = &[
    (
        "table1_1_saco_base_vs_ft.csv",
        "Table 1.1: SA-Co/Gold, base SAM3 vs the frozen-TE watch FT",
    ),
    (
        "table3_1_all_recipes.csv",
        "Table 3.1: every recipe on watch, LVIS-val and SA-Co/Gold",
    ),
    (
        "table4_1_replay_vs_recovery.csv",
        "Table 4.1: the same LVIS data in two timing regimes",
    ),
    (
        "table5_1_presence_only_trajectory.csv",
        "Table 5.1 (§5): presence_only training trajectory",
    ),
    (
        "table5_2_presence_only_endpoint.csv",
        "Table 5.2: presence_only endpoint vs the data-side recipes",
    ),
    (
        "table6_rel_delta.csv",
        "§6 rel_Δ table (titled \"Table 5.1\" in §6): activation drift vs base",
    ),
    (
        "table6_1_weight_movement.csv",
        "Table 6.1: weighted mean rel_change per module group",
    ),
    (
        "table7_1_bias_cosines.csv",
        "Table 7.1: presence_token_out_norm.bias delta norms and cosines",
    ),
    (
        "table8_1_interventions.csv",
        "Table 8.1: training-free interventions and neg_correct",
    ),
];

pub const DRIFT: &str = "table6_rel_delta.csv";
pub const WEIGHT_MOVEMENT: &str = "table6_1_weight_movement.csv";
pub const COSINES: &str = "table7_1_bias_cosines.csv";
pub const RECIPES: &str = "table3_1_all_recipes.csv";
pub const ENDPOINT: &str = "table5_2_presence_only_endpoint.csv";

/// "Source: <the file's # source line> (<path>)", the footer every published figure carries.
pub fn source_line(t: &CsvTable) -> Result<String> {
    Ok(format!("Source: {} ({})", t.source()?, t.path.display()))
}

/// A wide drift CSV: `checkpoint`, optional `published_label`, and one `POINT:GROUP` column per
/// cell. Points and groups keep their first-seen column order.
pub fn load_drift_csv(path: &Path) -> Result<DriftTable> {
    let t = CsvTable::read(path)?;
    let source = t.source()?.to_string();
    t.column("checkpoint")?;
    let cells: Vec<(usize, &str, &str)> = t
        .header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.split_once(':').map(|(p, g)| (i, p, g)))
        .collect();
    if cells.is_empty() {
        return Err(FigureError::Csv {
            path: path.to_path_buf(),
            line: 1,
            msg: format!(
                "no POINT:GROUP columns (e.g. `fusion.layers.4:lvis`); header is {}",
                t.header.join(",")
            ),
        });
    }
    let mut points: Vec<String> = Vec::new();
    let mut groups: Vec<String> = Vec::new();
    for (_, p, g) in &cells {
        if !points.iter().any(|x| x == p) {
            points.push(p.to_string());
        }
        if !groups.iter().any(|x| x == g) {
            groups.push(g.to_string());
        }
    }
    let has_label = t.header.iter().any(|h| h == "published_label");
    let mut rows = Vec::new();
    for row in &t.rows {
        let mut values: BTreeMap<String, BTreeMap<String, Option<f64>>> = BTreeMap::new();
        for (i, p, g) in &cells {
            let v = t.opt_f64(row, &t.header[*i])?;
            values
                .entry(p.to_string())
                .or_default()
                .insert(g.to_string(), v);
        }
        let label = if has_label {
            Some(t.str(row, "published_label")?.to_string())
        } else {
            None
        };
        rows.push(DriftRow {
            checkpoint: t.str(row, "checkpoint")?.to_string(),
            label,
            values,
        });
    }
    let sha = crate::render::SourceRef::of(path)?.sha256;
    let table = DriftTable {
        metric: "rel_delta".into(),
        reference: Some("base".into()),
        points,
        groups,
        rows,
        manifest: serde_json::json!({"source": source, "file": path.display().to_string(), "sha256": sha}),
    };
    table.validate(&path.display().to_string())?;
    Ok(table)
}

/// Table 6.1 as a heatmap: module groups × recipes (`TO-FROM` columns, shown as "TO − FROM").
pub fn load_weight_movement_csv(path: &Path) -> Result<HeatmapTable> {
    let t = CsvTable::read(path)?;
    t.column("group")?;
    let label_col = if t.header.iter().any(|h| h == "published_label") {
        "published_label"
    } else {
        "group"
    };
    let cols: Vec<&String> = t
        .header
        .iter()
        .filter(|h| *h != "group" && *h != "published_label")
        .collect();
    if cols.is_empty() {
        return Err(FigureError::Csv {
            path: path.to_path_buf(),
            line: 1,
            msg: "no recipe columns after `group`".into(),
        });
    }
    let mut rows = Vec::new();
    let mut values = Vec::new();
    for row in &t.rows {
        rows.push(t.str(row, label_col)?.to_string());
        values.push(
            cols.iter()
                .map(|c| t.opt_f64(row, c))
                .collect::<Result<Vec<_>>>()?,
        );
    }
    Ok(HeatmapTable {
        title: "Table 6.1 — weighted mean rel_change per module group, each recipe vs its start"
            .into(),
        source: source_line(&t)?,
        rows,
        cols: cols.iter().map(|c| c.replacen('-', "\n− ", 1)).collect(),
        values,
        scale: None,
        decimals: Some(3),
        row_title: Some("module group".into()),
        col_title: Some("recipe (TO − FROM)".into()),
    })
}

/// Table 7.1: per trajectory its FROM/TO, ‖Δ‖ relative to base, and cosines to reference
/// trajectories (`cos_to_LABEL` columns).
#[derive(Clone, Debug)]
pub struct PublishedCosines {
    pub param: String,
    /// The origin's label (`# base: LABEL`), e.g. the post's "base SAM3".
    pub base: Option<String>,
    pub source: String,
    pub references: Vec<String>,
    pub rows: Vec<PublishedCosineRow>,
}

#[derive(Clone, Debug)]
pub struct PublishedCosineRow {
    pub label: String,
    pub from: String,
    pub to: String,
    pub published_label: String,
    pub rel_base: f64,
    /// Aligned with [`PublishedCosines::references`].
    pub cos: Vec<f64>,
}

impl PublishedCosines {
    pub fn load(path: &Path) -> Result<PublishedCosines> {
        let t = CsvTable::read(path)?;
        let param = t
            .meta("param")
            .ok_or_else(|| FigureError::Csv {
                path: path.to_path_buf(),
                line: 1,
                msg: "no `# param: NAME` header line naming the parameter".into(),
            })?
            .to_string();
        let references: Vec<String> = t
            .header
            .iter()
            .filter_map(|h| h.strip_prefix("cos_to_").map(str::to_string))
            .collect();
        if references.len() < 2 {
            return Err(FigureError::Csv {
                path: path.to_path_buf(),
                line: 1,
                msg: "need two `cos_to_LABEL` columns (axis and toward)".into(),
            });
        }
        let mut rows = Vec::new();
        for row in &t.rows {
            let published_label = match t.column("published_label") {
                Ok(_) => t.str(row, "published_label")?.to_string(),
                Err(_) => t.str(row, "label")?.to_string(),
            };
            rows.push(PublishedCosineRow {
                label: t.str(row, "label")?.to_string(),
                from: t.str(row, "from")?.to_string(),
                to: t.str(row, "to")?.to_string(),
                published_label,
                rel_base: t.f64(row, "delta_norm_rel_base")?,
                cos: references
                    .iter()
                    .map(|r| t.f64(row, &format!("cos_to_{r}")))
                    .collect::<Result<_>>()?,
            });
        }
        Ok(PublishedCosines {
            param,
            base: t.meta("base").map(str::to_string),
            source: source_line(&t)?,
            references,
            rows,
        })
    }

    /// Rows for [`crate::geometry::projection_from_cosines`], with cosines to `axis` and `toward`.
    pub fn cosine_rows(&self, axis: &str, toward: &str, input: &str) -> Result<Vec<CosineRow>> {
        let idx = |l: &str| {
            self.references.iter().position(|r| r == l).ok_or_else(|| {
                FigureError::invalid(
                    input,
                    format!(
                        "no `cos_to_{l}` column (have {}){}",
                        self.references
                            .iter()
                            .map(|r| format!("cos_to_{r}"))
                            .collect::<Vec<_>>()
                            .join(", "),
                        crate::schema::did_you_mean(l, &self.references)
                    ),
                )
            })
        };
        let (a, b) = (idx(axis)?, idx(toward)?);
        Ok(self
            .rows
            .iter()
            .map(|r| CosineRow {
                label: r.label.clone(),
                from: r.from.clone(),
                to: r.to.clone(),
                rel_base: r.rel_base,
                cos_axis: r.cos[a],
                cos_toward: r.cos[b],
            })
            .collect())
    }

    /// The cosine columns as a diverging heatmap; row labels carry ‖Δ‖ rel base.
    pub fn heatmap(&self) -> HeatmapTable {
        let delta = |label: &str| {
            self.rows
                .iter()
                .find(|r| r.label == label)
                .map(|r| format!("{} − {}", r.to, r.from))
                .unwrap_or(label.to_string())
        };
        HeatmapTable::cosines(
            format!("Table 7.1 — cosines of weight-delta directions on {}", self.param),
            self.source.clone(),
            self.rows
                .iter()
                .map(|r| format!("{} − {}   (‖Δ‖ {:.2})", r.to, r.from, r.rel_base))
                .collect(),
            self.references.iter().map(|r| format!("cos to\n{}", delta(r))).collect(),
            self.rows.iter().map(|r| r.cos.iter().map(|c| Some(*c)).collect()).collect(),
        )
    }
}

/// SA-Co neg_correct (percent) per recipe from tables with `recipe` and `saco_neg_correct_pct`
/// columns (Tables 3.1 and 5.2). A recipe in several tables must carry the same value.
pub fn load_neg_correct(paths: &[&Path]) -> Result<BTreeMap<String, f64>> {
    let mut out: BTreeMap<String, (f64, String)> = BTreeMap::new();
    for path in paths {
        let t = CsvTable::read(path)?;
        for row in &t.rows {
            let recipe = t.str(row, "recipe")?.to_string();
            let v = t.f64(row, "saco_neg_correct_pct")?;
            if let Some((prev, at)) = out.get(&recipe)
                && (prev - v).abs() > 1e-9
            {
                return Err(FigureError::Csv {
                    path: path.to_path_buf(),
                    line: row.line,
                    msg: format!("`{recipe}` neg_correct {v} disagrees with {prev} in {at}"),
                });
            }
            out.insert(recipe, (v, path.display().to_string()));
        }
    }
    Ok(out.into_iter().map(|(k, (v, _))| (k, v)).collect())
}
