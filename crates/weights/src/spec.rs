//! Command-line trajectory specs: `PATH`, `LABEL=PATH` or `LABEL=FROM:TO` (FROM defaults to the
//! base checkpoint). Paths are resolved against the file system so `:` or `=` inside a real path
//! still parse.

use std::path::{Path, PathBuf};

use crate::error::{Result, WeightsError};

/// A parsed trajectory: `to − from`, with `from = None` meaning "the base checkpoint".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrajSpec {
    pub label: String,
    pub from: Option<PathBuf>,
    pub to: PathBuf,
}

fn valid_label(l: &str) -> bool {
    !l.is_empty()
        && l.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.+@".contains(c))
        && l != "."
        && l != ".."
}

fn stem(p: &Path) -> String {
    let s = p
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let s = s.split('.').next().unwrap_or("").to_string();
    let s: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-+@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "ckpt".into() } else { s }
}

/// Parse one spec (see the module doc).
pub fn parse_traj(spec: &str) -> Result<TrajSpec> {
    let bad = |why: String| {
        WeightsError::Usage(format!(
            "trajectory '{spec}': {why} (expected PATH, LABEL=PATH or LABEL=FROM:TO)"
        ))
    };
    if Path::new(spec).is_file() {
        return Ok(TrajSpec {
            label: stem(Path::new(spec)),
            from: None,
            to: spec.into(),
        });
    }
    let (label, rest) = match spec.split_once('=') {
        Some((l, r)) => {
            if !valid_label(l) {
                return Err(bad(format!(
                    "label '{l}' may use only letters, digits and _ - . + @"
                )));
            }
            (Some(l.to_string()), r)
        }
        None => (None, spec),
    };
    if rest.is_empty() {
        return Err(bad("no checkpoint path".into()));
    }
    let (from, to) = if Path::new(rest).is_file() || !rest.contains(':') {
        (None, PathBuf::from(rest))
    } else {
        // FROM:TO — take the first ':' whose left side is an existing file.
        let split = rest
            .match_indices(':')
            .map(|(i, _)| (&rest[..i], &rest[i + 1..]))
            .find(|(f, t)| Path::new(f).is_file() && !t.is_empty());
        match split {
            Some((f, t)) => (Some(PathBuf::from(f)), PathBuf::from(t)),
            None => {
                let (f, _) = rest.split_once(':').expect("contains ':'");
                return Err(bad(format!("FROM checkpoint '{f}' is not a file")));
            }
        }
    };
    let label = label.unwrap_or_else(|| stem(&to));
    Ok(TrajSpec { label, from, to })
}

/// Parse several specs and refuse duplicate labels.
pub fn parse_trajs(specs: &[String]) -> Result<Vec<TrajSpec>> {
    let out: Vec<TrajSpec> = specs.iter().map(|s| parse_traj(s)).collect::<Result<_>>()?;
    for (i, t) in out.iter().enumerate() {
        if out[..i].iter().any(|u| u.label == t.label) {
            return Err(WeightsError::Usage(format!(
                "label '{}' is used twice; name trajectories explicitly as LABEL=FROM:TO",
                t.label
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_with_and_without_label_and_start() {
        let dir = std::env::temp_dir().join(format!("sam3lab-spec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("frozen_te.safetensors");
        let b = dir.join("recovery.safetensors");
        let odd = dir.join("we:ird=name.safetensors");
        for p in [&a, &b, &odd] {
            std::fs::write(p, b"x").unwrap();
        }
        let (a_s, b_s) = (a.to_str().unwrap(), b.to_str().unwrap());
        assert_eq!(
            parse_traj(a_s).unwrap(),
            TrajSpec {
                label: "frozen_te".into(),
                from: None,
                to: a.clone()
            }
        );
        assert_eq!(
            parse_traj(&format!("ft={a_s}")).unwrap(),
            TrajSpec {
                label: "ft".into(),
                from: None,
                to: a.clone()
            }
        );
        assert_eq!(
            parse_traj(&format!("rec={a_s}:{b_s}")).unwrap(),
            TrajSpec {
                label: "rec".into(),
                from: Some(a.clone()),
                to: b.clone()
            }
        );
        assert_eq!(parse_traj(odd.to_str().unwrap()).unwrap().to, odd);
        assert!(
            parse_traj("bad label=x")
                .unwrap_err()
                .to_string()
                .contains("label 'bad label'")
        );
        assert!(
            parse_traj(&format!("r=/nope/x.safetensors:{b_s}"))
                .unwrap_err()
                .to_string()
                .contains("/nope/x.safetensors")
        );
        let dup = parse_trajs(&[a_s.to_string(), format!("frozen_te={b_s}")])
            .unwrap_err()
            .to_string();
        assert!(dup.contains("'frozen_te' is used twice"), "{dup}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

/// Opened checkpoints, each distinct file once (by canonical path).
pub struct Opened {
    pub checkpoints: Vec<sam3lab_checkpoint::Checkpoint>,
    keys: Vec<PathBuf>,
}

impl Opened {
    pub fn new() -> Self {
        Self {
            checkpoints: Vec::new(),
            keys: Vec::new(),
        }
    }

    /// Index of `path`'s checkpoint, opening it on first use.
    pub fn open(&mut self, path: &Path) -> Result<usize> {
        let key = path.canonicalize().map_err(|e| WeightsError::io(path, e))?;
        if let Some(i) = self.keys.iter().position(|k| *k == key) {
            return Ok(i);
        }
        self.checkpoints.push(sam3lab_checkpoint::Checkpoint::open(path)?);
        self.keys.push(key);
        Ok(self.keys.len() - 1)
    }

    /// Open `base` and every trajectory's endpoints (in order: base, then each `from`, `to`);
    /// returns the `(from, to)` checkpoint indices per trajectory, `from` defaulting to `base`.
    pub fn open_trajectories(&mut self, base: &Path, trajs: &[crate::TrajSpec]) -> Result<Vec<(usize, usize)>> {
        let b = self.open(base)?;
        trajs
            .iter()
            .map(|t| Ok((t.from.as_deref().map(|f| self.open(f)).transpose()?.unwrap_or(b), self.open(&t.to)?)))
            .collect()
    }
}

impl Default for Opened {
    fn default() -> Self {
        Self::new()
    }
}
