//! The probes' inputs: image lists, prompt groups and (image, prompt, label) pair files.
//!
//! - images: a directory (every `.png`/`.jpg`/`.jpeg` directly inside it, sorted by file name) or a
//!   list file (one path per line, relative to the list file's directory; blank lines and lines
//!   starting with `#` are skipped);
//! - prompt groups: `GROUP=FILE`, one noun phrase per line, `#` starts a comment line;
//! - pairs: JSONL, one `{"image": …, "prompt": …, "label": "pos"|"neg"}` per non-blank line, image
//!   paths relative to the pair file's directory. The 0-based index of a pair counts non-blank lines
//!   (the `extra.pair` id of the SAE cache contract).
//!
//! Every error names the file and, where there is one, the 1-based line at fault.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::{RunError, Result};
use crate::manifest::{FileRecord, file_record, sha256_file};

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// The images of a probe, in a fixed order.
#[derive(Clone, Debug)]
pub struct ImageList {
    /// The directory or list file given.
    pub source: PathBuf,
    pub paths: Vec<PathBuf>,
}

fn is_image_name(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// Non-comment lines of a text file with their 1-based numbers (trimmed; blank and `#` lines skipped).
fn content_lines(path: &Path) -> Result<Vec<(usize, String)>> {
    let text = std::fs::read_to_string(path).map_err(|e| RunError::io(path, e))?;
    Ok(text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim().to_string()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .collect())
}

fn base_dir(file: &Path) -> PathBuf {
    file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
}

/// Read `--images`: a directory or a list file.
pub fn read_images(arg: &Path) -> Result<ImageList> {
    let paths = if arg.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(arg)
            .map_err(|e| RunError::io(arg, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_image_name(p))
            .collect();
        v.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        if v.is_empty() {
            return Err(RunError::input(arg, None, "directory holds no .png/.jpg/.jpeg file"));
        }
        v
    } else if arg.is_file() {
        let dir = base_dir(arg);
        let mut v = Vec::new();
        for (line, l) in content_lines(arg)? {
            let p = dir.join(&l);
            if !p.is_file() {
                return Err(RunError::input(arg, Some(line), format!("image `{l}` not found (looked at {})", p.display())));
            }
            v.push(p);
        }
        if v.is_empty() {
            return Err(RunError::input(arg, None, "list file names no image"));
        }
        v
    } else {
        return Err(RunError::input(arg, None, "no such directory or list file"));
    };
    Ok(ImageList { source: arg.to_path_buf(), paths })
}

impl ImageList {
    /// Path + sha256 of every image, for manifests.
    pub fn records(&self) -> Result<Vec<FileRecord>> {
        self.paths.iter().map(|p| file_record(p)).collect()
    }
}

/// Is `s` a valid group / checkpoint label (`[A-Za-z0-9_.@+-]+`)?
pub fn is_label(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_.@+-".contains(c))
}

/// One named list of prompts.
#[derive(Clone, Debug, Serialize)]
pub struct PromptGroup {
    pub name: String,
    pub file: PathBuf,
    pub prompts: Vec<String>,
}

/// Parse one `GROUP=FILE` argument and read the file.
pub fn read_prompt_group(arg: &str) -> Result<PromptGroup> {
    let Some((name, file)) = arg.split_once('=') else {
        return Err(RunError::Usage(format!("--prompts `{arg}` must be GROUP=FILE (e.g. lvis=data/prompts/lvis.txt)")));
    };
    if !is_label(name) {
        return Err(RunError::Usage(format!("--prompts `{arg}`: group name `{name}` must match [A-Za-z0-9_.@+-]+")));
    }
    let file = PathBuf::from(file);
    if !file.is_file() {
        return Err(RunError::input(&file, None, format!("prompt file of group `{name}` not found")));
    }
    let mut prompts: Vec<String> = Vec::new();
    let mut first_line: BTreeMap<String, usize> = BTreeMap::new();
    for (line, l) in content_lines(&file)? {
        if let Some(prev) = first_line.insert(l.clone(), line) {
            return Err(RunError::input(&file, Some(line), format!("prompt `{l}` repeats line {prev}")));
        }
        prompts.push(l);
    }
    if prompts.is_empty() {
        return Err(RunError::input(&file, None, format!("group `{name}` has no prompts (only blank or # lines)")));
    }
    Ok(PromptGroup { name: name.to_string(), file, prompts })
}

/// Parse every `GROUP=FILE`; group names must be unique.
pub fn read_prompt_groups(args: &[String]) -> Result<Vec<PromptGroup>> {
    if args.is_empty() {
        return Err(RunError::Usage("give at least one --prompts GROUP=FILE".into()));
    }
    let mut out: Vec<PromptGroup> = Vec::new();
    for a in args {
        let g = read_prompt_group(a)?;
        if out.iter().any(|o| o.name == g.name) {
            return Err(RunError::Usage(format!("prompt group `{}` is given twice", g.name)));
        }
        out.push(g);
    }
    Ok(out)
}

/// Whether a pair's prompt names something present in its image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Pos,
    Neg,
}

impl Label {
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Pos => "pos",
            Label::Neg => "neg",
        }
    }
}

/// Which pairs a probe uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LabelFilter {
    Pos,
    Neg,
    All,
}

impl LabelFilter {
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "pos" => Ok(Self::Pos),
            "neg" => Ok(Self::Neg),
            "all" => Ok(Self::All),
            _ => Err(RunError::Usage(format!("label filter `{s}` must be pos, neg or all"))),
        }
    }

    pub fn keeps(self, l: Label) -> bool {
        match self {
            Self::All => true,
            Self::Pos => l == Label::Pos,
            Self::Neg => l == Label::Neg,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pos => "pos",
            Self::Neg => "neg",
            Self::All => "all",
        }
    }
}

/// One (image, prompt, label) pair.
#[derive(Clone, Debug)]
pub struct Pair {
    /// 0-based index among the file's non-blank lines.
    pub index: usize,
    /// 1-based line number in the file.
    pub line: usize,
    /// The `image` field as written.
    pub image_raw: String,
    /// Resolved against the pair file's directory.
    pub image: PathBuf,
    pub prompt: String,
    pub label: Label,
}

/// A pair file.
#[derive(Clone, Debug)]
pub struct Pairs {
    pub path: PathBuf,
    pub sha256: String,
    pub pairs: Vec<Pair>,
}

#[derive(serde::Deserialize)]
struct RawPair {
    image: Option<serde_json::Value>,
    prompt: Option<serde_json::Value>,
    label: Option<serde_json::Value>,
}

/// Read a JSONL pair file.
pub fn read_pairs(path: &Path) -> Result<Pairs> {
    if !path.is_file() {
        return Err(RunError::input(path, None, "pair file not found"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| RunError::io(path, e))?;
    let dir = base_dir(path);
    let mut pairs = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() {
            continue;
        }
        let bad = |why: String| RunError::input(path, Some(line), why);
        let r: RawPair = serde_json::from_str(l).map_err(|e| {
            bad(format!("not a JSON object {{\"image\": …, \"prompt\": …, \"label\": \"pos\"|\"neg\"}}: {e}"))
        })?;
        let field = |v: Option<serde_json::Value>, name: &str| -> Result<String> {
            match v {
                Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Ok(s),
                Some(serde_json::Value::String(_)) => Err(bad(format!("`{name}` is empty"))),
                Some(other) => Err(bad(format!("`{name}` must be a string, found {other}"))),
                None => Err(bad(format!("missing field `{name}`"))),
            }
        };
        let image_raw = field(r.image, "image")?;
        let prompt = field(r.prompt, "prompt")?;
        let label = match field(r.label, "label")?.as_str() {
            "pos" => Label::Pos,
            "neg" => Label::Neg,
            other => return Err(bad(format!("`label` is `{other}`, expected \"pos\" or \"neg\""))),
        };
        let image = dir.join(&image_raw);
        if !image.is_file() {
            return Err(bad(format!("image `{image_raw}` not found (looked at {})", image.display())));
        }
        pairs.push(Pair { index: pairs.len(), line, image_raw, image, prompt: prompt.trim().to_string(), label });
    }
    if pairs.is_empty() {
        return Err(RunError::input(path, None, "pair file holds no pairs"));
    }
    let sha256 = sha256_file(path)?;
    Ok(Pairs { path: path.to_path_buf(), sha256, pairs })
}

impl Pairs {
    /// The pairs a label filter keeps; an error when none is left.
    pub fn select(&self, filter: LabelFilter) -> Result<Vec<&Pair>> {
        let v: Vec<&Pair> = self.pairs.iter().filter(|p| filter.keeps(p.label)).collect();
        if v.is_empty() {
            return Err(RunError::input(&self.path, None, format!("no pair has label `{}`", filter.as_str())));
        }
        Ok(v)
    }

    pub fn count(&self, l: Label) -> usize {
        self.pairs.iter().filter(|p| p.label == l).count()
    }
}

/// What the runner runs: one (image, prompt) input. A pair file's [`Pair`] is one; a probe with its
/// own product of inputs (drift: images × prompts) brings its own.
pub trait Item {
    fn image(&self) -> &Path;
    fn prompt(&self) -> &str;
}

impl Item for Pair {
    fn image(&self) -> &Path {
        &self.image
    }
    fn prompt(&self) -> &str {
        &self.prompt
    }
}

/// Items grouped by image, in order of first appearance (each group in item order).
pub fn by_image<'a, I: Item>(pairs: &[&'a I]) -> Vec<(PathBuf, Vec<&'a I>)> {
    let mut out: Vec<(PathBuf, Vec<&I>)> = Vec::new();
    for p in pairs {
        match out.iter_mut().find(|(img, _)| img == p.image()) {
            Some((_, v)) => v.push(p),
            None => out.push((p.image().to_path_buf(), vec![p])),
        }
    }
    out
}

/// The pairs of shard `shard`: those whose image is the g-th distinct image (in order of first
/// appearance, as [`by_image`] groups them) with g ≡ K (mod N), in their original order. Each
/// image goes to exactly one shard with all its pairs, so it is still encoded once per checkpoint.
pub fn shard_pairs<'a>(pairs: &[&'a Pair], shard: sam3lab_eval::shard::Shard) -> Vec<&'a Pair> {
    let groups = by_image(pairs);
    pairs
        .iter()
        .copied()
        .filter(|p| groups.iter().position(|(img, _)| *img == p.image).is_some_and(|g| shard.owns(g)))
        .collect()
}

/// Image records (path + sha256) of the distinct images of some pairs, in first-appearance order.
pub fn pair_image_records(pairs: &[&Pair]) -> Result<Vec<FileRecord>> {
    by_image(pairs).iter().map(|(p, _)| file_record(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_errors_name_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.png"), b"x").unwrap();
        let p = dir.path().join("pairs.jsonl");
        std::fs::write(&p, "{\"image\":\"a.png\",\"prompt\":\"cat\",\"label\":\"pos\"}\n\n{\"image\":\"a.png\",\"prompt\":\"dog\",\"label\":\"maybe\"}\n").unwrap();
        let e = read_pairs(&p).unwrap_err().to_string();
        assert!(e.contains("pairs.jsonl:3") && e.contains("maybe"), "{e}");
        std::fs::write(&p, "{\"image\":\"b.png\",\"prompt\":\"cat\",\"label\":\"pos\"}\n").unwrap();
        let e = read_pairs(&p).unwrap_err().to_string();
        assert!(e.contains(":1") && e.contains("b.png"), "{e}");
        std::fs::write(&p, "{\"image\":\"a.png\",\"label\":\"pos\"}\n").unwrap();
        assert!(read_pairs(&p).unwrap_err().to_string().contains("missing field `prompt`"));
        std::fs::write(&p, "not json\n").unwrap();
        assert!(read_pairs(&p).unwrap_err().to_string().contains(":1"));
        std::fs::write(&p, "\n{\"image\":\"a.png\",\"prompt\":\" cat \",\"label\":\"neg\"}\n").unwrap();
        let ok = read_pairs(&p).unwrap();
        assert_eq!((ok.pairs[0].index, ok.pairs[0].line, ok.pairs[0].prompt.as_str()), (0, 2, "cat"));
        assert_eq!(ok.pairs[0].label, Label::Neg);
    }

    #[test]
    fn prompt_groups_and_image_lists() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("g.txt");
        std::fs::write(&f, "# c\ncat\n\n dog \ncat\n").unwrap();
        let e = read_prompt_group(&format!("g={}", f.display())).unwrap_err().to_string();
        assert!(e.contains("g.txt:5") && e.contains("line 2"), "{e}");
        std::fs::write(&f, "# only a comment\n").unwrap();
        assert!(read_prompt_group(&format!("g={}", f.display())).is_err());
        std::fs::write(&f, "cat\n dog \n").unwrap();
        let g = read_prompt_group(&format!("lvis={}", f.display())).unwrap();
        assert_eq!(g.prompts, vec!["cat", "dog"]);
        assert!(read_prompt_group("no-equals").is_err());
        assert!(read_prompt_group(&format!("bad name={}", f.display())).is_err());

        for n in ["b.png", "a.JPG", "c.txt"] {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        let l = read_images(dir.path()).unwrap();
        let names: Vec<_> = l.paths.iter().map(|p| p.file_name().unwrap().to_str().unwrap().to_string()).collect();
        assert_eq!(names, vec!["a.JPG", "b.png"]);
        let list = dir.path().join("list.txt");
        std::fs::write(&list, "b.png\n# x\nmissing.png\n").unwrap();
        let e = read_images(&list).unwrap_err().to_string();
        assert!(e.contains("list.txt:3") && e.contains("missing.png"), "{e}");
    }
}
