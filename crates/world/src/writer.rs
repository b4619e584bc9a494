//! Writing a world: every split's images (PNG) and SA-Co/Gold ground truth, the probe set's lists,
//! and `world.json`; into a temporary directory beside the target, renamed into place at the end.

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use sam3lab_eval::coco::{Category, GtAnnotation, GtDataset, GtImage, Segmentation};
use sam3lab_eval::rle::Rle;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::broad::{render_part_scene, render_scene};
use crate::config::WorldConfig;
use crate::error::{Result, WorldError};
use crate::narrow::{View, render_view};
use crate::rng::Rng;
use crate::vocab::{COLOURS, Concept, PARTS, SHAPES, concepts};

/// Format tag of `world.json`.
pub const FORMAT: &str = "sam3lab-world/1";

/// The split names, in generation order, with their random-stream ids.
pub const SPLITS: [(&str, u64); 7] = [
    ("broad-pretrain", 1),
    ("broad-eval", 2),
    ("broad-positive-eval", 3),
    ("narrow-train", 4),
    ("narrow-eval", 5),
    ("narrow-negatives", 6),
    ("probe", 7),
];

/// The probe set's prompt groups (file stems under `prompts/`).
pub const PROBE_GROUPS: [&str; 3] = ["narrow-parts", "broad-categories", "broad-eval"];

/// `world.json`: what was generated, from what, and the sha256 of every file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorldManifest {
    pub format: String,
    pub generator: String,
    pub seed: u64,
    pub config: WorldConfig,
    pub vocabulary: Vocabulary,
    /// Per split (`broad-pretrain`, …, `probe`).
    pub splits: BTreeMap<String, SplitInfo>,
    pub probe: ProbeInfo,
    /// sha256 of every file but `world.json`, by path relative to the world directory.
    pub files: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Vocabulary {
    pub broad_colours: Vec<String>,
    pub broad_shapes: Vec<String>,
    /// Every broad concept's noun phrase ("red circle", …).
    pub broad_phrases: Vec<String>,
    /// The broad category names (the shapes), the probe's stand-in for LVIS category names.
    pub broad_categories: Vec<String>,
    pub narrow_parts: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    /// The SA-Co/Gold ground truth, relative to the world directory (image paths in it are relative
    /// to the same directory).
    pub gt: String,
    pub images_dir: String,
    /// Distinct image files.
    pub images: usize,
    /// (image, noun phrase) entries.
    pub pairs: usize,
    pub positives: usize,
    pub negatives: usize,
    pub instances: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeInfo {
    /// List of the probe images, one path per line relative to the list file.
    pub images: String,
    /// Prompt group name → file (one noun phrase per line) and its phrases.
    pub prompt_groups: BTreeMap<String, PromptGroup>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PromptGroup {
    pub file: String,
    pub prompts: Vec<String>,
}

/// One instance of a pair: its exact mask and tight box in pixels.
struct Inst {
    rle: Rle,
    /// `[x, y, w, h]` in pixels.
    bbox: [u32; 4],
    area: u64,
}

struct PairOut {
    text: String,
    instances: Vec<Inst>,
}

struct ImageOut {
    file_name: String,
    sha256: String,
    pairs: Vec<PairOut>,
}

/// A rendered image ready to write: RGB bytes, side, and its pairs.
struct Rendered {
    rgb: Vec<u8>,
    size: usize,
    pairs: Vec<PairOut>,
}

/// The instances with labels `labels` of a label map: one exact mask per label with visible pixels.
fn instances(label: &[u16], size: usize, labels: &[u16]) -> Vec<Inst> {
    labels
        .iter()
        .filter_map(|&l| {
            let mask: Vec<u8> = label.iter().map(|&v| (v == l) as u8).collect();
            let area = mask.iter().map(|&m| m as u64).sum::<u64>();
            if area == 0 {
                return None;
            }
            let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
            for (i, _) in mask.iter().enumerate().filter(|(_, m)| **m != 0) {
                let (x, y) = (i % size, i / size);
                x0 = x0.min(x);
                y0 = y0.min(y);
                x1 = x1.max(x);
                y1 = y1.max(y);
            }
            Some(Inst {
                rle: Rle::from_row_major(size as u32, size as u32, &mask),
                bbox: [
                    x0 as u32,
                    y0 as u32,
                    (x1 - x0 + 1) as u32,
                    (y1 - y0 + 1) as u32,
                ],
                area,
            })
        })
        .collect()
}

fn negative(text: String) -> PairOut {
    PairOut {
        text,
        instances: vec![],
    }
}

/// Pick up to `k` absent broad concepts as negatives: a share `hard` of them sharing a colour or a
/// shape with a present concept (when there is one).
fn broad_negatives(
    all: &[Concept],
    present: &[Concept],
    k: usize,
    hard: f64,
    rng: &mut Rng,
) -> Vec<Concept> {
    let mut absent: Vec<Concept> = all
        .iter()
        .copied()
        .filter(|c| !present.contains(c))
        .collect();
    let mut out = vec![];
    for _ in 0..k {
        if absent.is_empty() {
            break;
        }
        let hard_pool: Vec<usize> = (0..absent.len())
            .filter(|&i| {
                present
                    .iter()
                    .any(|p| p.colour == absent[i].colour || p.shape == absent[i].shape)
            })
            .collect();
        let i = if !hard_pool.is_empty() && rng.chance(hard) {
            hard_pool[rng.below(hard_pool.len())]
        } else {
            rng.below(absent.len())
        };
        out.push(absent.remove(i));
    }
    out
}

/// What one split's item turns into.
#[derive(Clone, Copy)]
enum Recipe {
    /// Broad image: `pos` positives at most (None = all), `neg` negatives.
    Broad { pos: Option<usize>, neg: usize },
    /// Part scene (world v2's pretraining slice): every broad object and every isolated part as a
    /// positive, `neg` broad negatives and one absent part name.
    PartScene { neg: usize },
    /// Narrow view, positives only (at most `pos`, None = all).
    NarrowPositives { pos: Option<usize> },
    /// Narrow view, absent parts only (at most `neg`).
    NarrowNegatives { neg: usize },
    /// Narrow close-up probed with every part plus the broad prompts (all absent).
    Probe,
}

fn render_item(
    cfg: &WorldConfig,
    rng: &mut Rng,
    recipe: Recipe,
    view: View,
    broad_prompts: &[String],
) -> Rendered {
    let res = cfg.resolution as usize;
    match recipe {
        Recipe::Broad { pos, neg } => {
            let scene = render_scene(cfg, rng);
            let all = concepts(cfg.broad.colours, cfg.broad.shapes);
            let present = scene.concepts_present();
            let mut chosen = present.clone();
            if let Some(p) = pos {
                rng.shuffle(&mut chosen);
                chosen.truncate(p);
                chosen.sort_by_key(|c| present.iter().position(|q| q == c));
            }
            let mut pairs: Vec<PairOut> = chosen
                .iter()
                .map(|&c| PairOut {
                    text: c.phrase(),
                    instances: instances(&scene.label, res, &scene.labels_of(c)),
                })
                .collect();
            for c in broad_negatives(&all, &present, neg, cfg.broad.hard_negative_share, rng) {
                pairs.push(negative(c.phrase()));
            }
            Rendered {
                rgb: scene.rgb,
                size: res,
                pairs,
            }
        }
        Recipe::PartScene { neg } => {
            let (scene, parts) = render_part_scene(cfg, rng);
            let all = concepts(cfg.broad.colours, cfg.broad.shapes);
            let present = scene.concepts_present();
            let mut pairs: Vec<PairOut> = present
                .iter()
                .map(|&c| PairOut {
                    text: c.phrase(),
                    instances: instances(&scene.label, res, &scene.labels_of(c)),
                })
                .collect();
            for p in &parts {
                pairs.push(PairOut {
                    text: PARTS[p.part].to_string(),
                    instances: instances(&scene.label, res, &[p.label]),
                });
            }
            for c in broad_negatives(&all, &present, neg, cfg.broad.hard_negative_share, rng) {
                pairs.push(negative(c.phrase()));
            }
            let absent: Vec<usize> = (0..PARTS.len()).filter(|q| !parts.iter().any(|p| p.part == *q)).collect();
            pairs.push(negative(PARTS[absent[rng.below(absent.len())]].to_string()));
            Rendered {
                rgb: scene.rgb,
                size: res,
                pairs,
            }
        }
        Recipe::NarrowPositives { pos } => {
            let v = render_view(cfg, rng, view);
            let areas = v.part_areas();
            let mut parts: Vec<usize> = (0..PARTS.len())
                .filter(|&p| areas[p] >= cfg.narrow.min_positive_area)
                .collect();
            if let Some(k) = pos {
                rng.shuffle(&mut parts);
                parts.truncate(k);
                parts.sort();
            }
            let pairs = parts
                .iter()
                .map(|&p| PairOut {
                    text: PARTS[p].to_string(),
                    instances: instances(&v.label, res, &v.visible_labels(p)),
                })
                .collect();
            Rendered {
                rgb: v.rgb,
                size: res,
                pairs,
            }
        }
        Recipe::NarrowNegatives { neg } => {
            let v = render_view(cfg, rng, view);
            let areas = v.part_areas();
            let mut parts: Vec<usize> = (0..PARTS.len()).filter(|&p| areas[p] == 0).collect();
            rng.shuffle(&mut parts);
            parts.truncate(neg);
            parts.sort();
            Rendered {
                rgb: v.rgb,
                size: res,
                pairs: parts
                    .iter()
                    .map(|&p| negative(PARTS[p].to_string()))
                    .collect(),
            }
        }
        Recipe::Probe => {
            let v = render_view(cfg, rng, view);
            let mut pairs: Vec<PairOut> = (0..PARTS.len())
                .map(|p| PairOut {
                    text: PARTS[p].to_string(),
                    instances: instances(&v.label, res, &v.visible_labels(p)),
                })
                .collect();
            pairs.extend(broad_prompts.iter().map(|t| negative(t.clone())));
            Rendered {
                rgb: v.rgb,
                size: res,
                pairs,
            }
        }
    }
}

/// Whether `broad-pretrain` image `i` is a part scene: floor((i+1)·share) > floor(i·share), so part
/// scenes are spread evenly and there are floor(n·share) of them among n images.
pub fn is_part_scene(share: f64, i: usize) -> bool {
    ((i + 1) as f64 * share).floor() > (i as f64 * share).floor()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn write_file(root: &Path, rel: &str, bytes: &[u8]) -> Result<String> {
    let path = root.join(rel);
    std::fs::write(&path, bytes).map_err(|e| WorldError::io(&path, e))?;
    Ok(sha256_hex(bytes))
}

fn png(rgb: Vec<u8>, size: usize, what: &str) -> Result<Vec<u8>> {
    let img = image::RgbImage::from_raw(size as u32, size as u32, rgb)
        .expect("rgb buffer matches its size");
    let mut buf = Vec::new();
    img.write_to(&mut Cursor::new(&mut buf), image::ImageFormat::Png)
        .map_err(|e| WorldError::Encode {
            what: what.to_string(),
            msg: e.to_string(),
        })?;
    Ok(buf)
}

/// Render, encode and write `n` items of a split (in parallel; each item has its own stream, so the
/// result does not depend on the thread count), returned in index order.
fn run_split(
    cfg: &WorldConfig,
    seed: u64,
    root: &Path,
    name: &str,
    stream: u64,
    n: usize,
    item: &(dyn Fn(usize) -> (Recipe, View) + Sync),
    broad_prompts: &[String],
    threads: usize,
) -> Result<Vec<ImageOut>> {
    let dir = format!("images/{name}");
    std::fs::create_dir_all(root.join(&dir)).map_err(|e| WorldError::io(root.join(&dir), e))?;
    let threads = threads.max(1);
    let work = |t: usize| -> Result<Vec<(usize, ImageOut)>> {
        let mut out = vec![];
        for i in (t..n).step_by(threads) {
            let mut rng = Rng::for_item(seed, stream, i as u64);
            let (recipe, view) = item(i);
            let r = render_item(cfg, &mut rng, recipe, view, broad_prompts);
            let file_name = format!("{dir}/{i:06}.png");
            let bytes = png(r.rgb, r.size, &file_name)?;
            let sha256 = write_file(root, &file_name, &bytes)?;
            out.push((
                i,
                ImageOut {
                    file_name,
                    sha256,
                    pairs: r.pairs,
                },
            ));
        }
        Ok(out)
    };
    let results: Vec<Result<Vec<(usize, ImageOut)>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads).map(|t| s.spawn(move || work(t))).collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("world worker panicked"))
            .collect()
    });
    let mut all = vec![];
    for r in results {
        all.extend(r?);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, o)| o).collect())
}

/// Build the SA-Co/Gold ground truth of a split (one entry per pair, ids from 1; boxes normalised).
fn ground_truth(items: &[ImageOut], size: u32) -> (GtDataset, SplitInfo) {
    let mut images = vec![];
    let mut annotations = vec![];
    let (mut positives, mut negatives) = (0, 0);
    for it in items {
        for p in &it.pairs {
            let id = images.len() as i64 + 1;
            images.push(GtImage {
                id,
                file_name: it.file_name.clone(),
                height: size,
                width: size,
                text_input: Some(p.text.clone()),
                is_instance_exhaustive: true,
                is_pixel_exhaustive: Some(true),
            });
            if p.instances.is_empty() {
                negatives += 1;
            } else {
                positives += 1;
            }
            for inst in &p.instances {
                let s = size as f64;
                annotations.push(GtAnnotation {
                    id: Some(annotations.len() as i64 + 1),
                    image_id: id,
                    segmentation: Some(Segmentation::from_rle(&inst.rle)),
                    bbox: Some(vec![
                        inst.bbox[0] as f64 / s,
                        inst.bbox[1] as f64 / s,
                        inst.bbox[2] as f64 / s,
                        inst.bbox[3] as f64 / s,
                    ]),
                    area: Some(inst.area as f64),
                    iscrowd: false,
                    category_id: Some(1),
                });
            }
        }
    }
    let info = SplitInfo {
        gt: String::new(),
        images_dir: String::new(),
        images: items.len(),
        pairs: images.len(),
        positives,
        negatives,
        instances: annotations.len(),
    };
    (
        GtDataset {
            images,
            annotations,
            categories: vec![Category {
                id: 1,
                name: Some("object".into()),
            }],
        },
        info,
    )
}

fn prompt_file(title: &str, prompts: &[String]) -> String {
    let mut s = format!("# {title}\n");
    for p in prompts {
        s.push_str(p);
        s.push('\n');
    }
    s
}

/// Write the whole world into the existing, empty directory `root`.
fn write_world(cfg: &WorldConfig, seed: u64, root: &Path, threads: usize) -> Result<WorldManifest> {
    let s = &cfg.splits;
    let b = &cfg.broad;
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    let mut splits = BTreeMap::new();
    let size = cfg.resolution;

    let quadrant = |i: usize| View::Quadrant((i % 4) as u8);
    let closeups_then_quadrants = |nc: usize| {
        move |i: usize| {
            if i < nc {
                View::Closeup
            } else {
                quadrant(i - nc)
            }
        }
    };
    let mut outputs: BTreeMap<&str, Vec<ImageOut>> = BTreeMap::new();
    let mut broad_eval_phrases: Vec<String> = vec![];
    let categories: Vec<String> = SHAPES[..b.shapes].iter().map(|s| s.to_string()).collect();
    for (name, stream) in SPLITS {
        let (n, item): (usize, Box<dyn Fn(usize) -> (Recipe, View) + Sync + '_>) = match name {
            "broad-pretrain" => (
                s.broad_pretrain_images,
                Box::new(|i| {
                    let neg = s.broad_pretrain_negatives_per_image;
                    let recipe = if is_part_scene(b.part_scene_share, i) {
                        Recipe::PartScene { neg: neg.saturating_sub(1) }
                    } else {
                        Recipe::Broad { pos: None, neg }
                    };
                    (recipe, View::Closeup)
                }),
            ),
            "broad-eval" => (
                s.broad_eval_images,
                Box::new(|_| {
                    (
                        Recipe::Broad {
                            pos: Some(s.broad_eval_positives_per_image),
                            neg: s.broad_eval_negatives_per_image,
                        },
                        View::Closeup,
                    )
                }),
            ),
            "broad-positive-eval" => (
                s.broad_positive_eval_images,
                Box::new(|_| {
                    (
                        Recipe::Broad {
                            pos: Some(s.broad_positive_eval_per_image),
                            neg: 0,
                        },
                        View::Closeup,
                    )
                }),
            ),
            "narrow-train" => {
                let v = closeups_then_quadrants(s.narrow_train_closeups);
                (
                    s.narrow_train_closeups + s.narrow_train_quadrants,
                    Box::new(move |i| (Recipe::NarrowPositives { pos: None }, v(i))),
                )
            }
            "narrow-eval" => {
                let v = closeups_then_quadrants(s.narrow_eval_closeups);
                let k = s.narrow_eval_per_image;
                (
                    s.narrow_eval_closeups + s.narrow_eval_quadrants,
                    Box::new(move |i| (Recipe::NarrowPositives { pos: Some(k) }, v(i))),
                )
            }
            "narrow-negatives" => {
                let k = s.narrow_negatives_per_quadrant;
                (
                    s.narrow_negative_quadrants,
                    Box::new(move |i| (Recipe::NarrowNegatives { neg: k }, quadrant(i))),
                )
            }
            _ => (s.probe_images, Box::new(|_| (Recipe::Probe, View::Closeup))),
        };
        let broad_prompts: Vec<String> = if name == "probe" {
            categories
                .iter()
                .chain(broad_eval_phrases.iter())
                .cloned()
                .collect()
        } else {
            vec![]
        };
        let items = run_split(
            cfg,
            seed,
            root,
            name,
            stream,
            n,
            item.as_ref(),
            &broad_prompts,
            threads,
        )?;
        if name == "broad-eval" {
            for it in &items {
                for p in &it.pairs {
                    if !broad_eval_phrases.contains(&p.text)
                        && broad_eval_phrases.len() < s.probe_broad_eval_phrases
                    {
                        broad_eval_phrases.push(p.text.clone());
                    }
                }
            }
        }
        for it in &items {
            files.insert(it.file_name.clone(), it.sha256.clone());
        }
        let (gt, mut info) = ground_truth(&items, size);
        let gt_name = format!("{name}.json");
        let mut bytes = serde_json::to_vec(&gt).expect("ground truth serialises");
        bytes.push(b'\n');
        files.insert(gt_name.clone(), write_file(root, &gt_name, &bytes)?);
        info.gt = gt_name;
        info.images_dir = format!("images/{name}");
        splits.insert(name.to_string(), info);
        outputs.insert(name, items);
    }

    // The probe set's image list and prompt groups.
    let mut list = String::from("# probe images (narrow close-ups), relative to this file\n");
    for it in &outputs["probe"] {
        list.push_str(&it.file_name);
        list.push('\n');
    }
    files.insert(
        "probe-images.txt".into(),
        write_file(root, "probe-images.txt", list.as_bytes())?,
    );
    std::fs::create_dir_all(root.join("prompts"))
        .map_err(|e| WorldError::io(root.join("prompts"), e))?;
    let parts: Vec<String> = PARTS.iter().map(|p| p.to_string()).collect();
    let mut prompt_groups = BTreeMap::new();
    for (group, title, prompts) in [
        (
            "narrow-parts",
            "narrow part names (the watch-component group)",
            parts.clone(),
        ),
        (
            "broad-categories",
            "broad category names (the LVIS-category group)",
            categories.clone(),
        ),
        (
            "broad-eval",
            "broad-eval noun phrases (the SA-Co/Gold group)",
            broad_eval_phrases.clone(),
        ),
    ] {
        let file = format!("prompts/{group}.txt");
        files.insert(
            file.clone(),
            write_file(root, &file, prompt_file(title, &prompts).as_bytes())?,
        );
        prompt_groups.insert(group.to_string(), PromptGroup { file, prompts });
    }

    let vocabulary = Vocabulary {
        broad_colours: COLOURS[..b.colours]
            .iter()
            .map(|c| c.0.to_string())
            .collect(),
        broad_shapes: categories.clone(),
        broad_phrases: concepts(b.colours, b.shapes)
            .iter()
            .map(Concept::phrase)
            .collect(),
        broad_categories: categories,
        narrow_parts: parts,
    };
    let manifest = WorldManifest {
        format: FORMAT.into(),
        generator: format!("sam3lab-world {}", env!("CARGO_PKG_VERSION")),
        seed,
        config: cfg.clone(),
        vocabulary,
        splits,
        probe: ProbeInfo {
            images: "probe-images.txt".into(),
            prompt_groups,
        },
        files,
    };
    let mut bytes = serde_json::to_vec_pretty(&manifest).expect("manifest serialises");
    bytes.push(b'\n');
    write_file(root, "world.json", &bytes)?;
    Ok(manifest)
}

/// Whether `out` can be generated into: absent, or an empty directory.
fn check_target(out: &Path) -> Result<()> {
    match std::fs::metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(WorldError::io(out, e)),
        Ok(m) if !m.is_dir() => Err(WorldError::NotADirectory {
            path: out.to_path_buf(),
        }),
        Ok(_) => {
            let entries = std::fs::read_dir(out)
                .map_err(|e| WorldError::io(out, e))?
                .count();
            if entries > 0 {
                Err(WorldError::NotEmpty {
                    path: out.to_path_buf(),
                    entries,
                })
            } else {
                Ok(())
            }
        }
    }
}

/// Generate the world of `cfg` and `seed` into `out_dir` (which must be absent or empty). Everything
/// is written into a temporary directory beside it and renamed into place at the end, so a failure
/// leaves no partial output.
pub fn generate(cfg: &WorldConfig, seed: u64, out_dir: &Path) -> Result<WorldManifest> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(8);
    generate_with_threads(cfg, seed, out_dir, threads)
}

/// [`generate`] on `threads` worker threads (the files do not depend on it).
pub fn generate_with_threads(
    cfg: &WorldConfig,
    seed: u64,
    out_dir: &Path,
    threads: usize,
) -> Result<WorldManifest> {
    cfg.validate()?;
    check_target(out_dir)?;
    let parent: PathBuf = match out_dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(|e| WorldError::io(&parent, e))?;
    let stem = out_dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "world".into());
    let tmp = tempfile::Builder::new()
        .prefix(&format!(".{stem}.partial-"))
        .tempdir_in(&parent)
        .map_err(|e| WorldError::io(&parent, e))?;
    let manifest = write_world(cfg, seed, tmp.path(), threads)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(|e| WorldError::io(tmp.path(), e))?;
    }
    check_target(out_dir)?;
    if out_dir.exists() {
        std::fs::remove_dir(out_dir).map_err(|e| WorldError::io(out_dir, e))?;
    }
    std::fs::rename(tmp.path(), out_dir).map_err(|e| WorldError::io(out_dir, e))?;
    // The directory has moved; nothing is left for the guard to clean up.
    let _ = tmp.keep();
    Ok(manifest)
}
