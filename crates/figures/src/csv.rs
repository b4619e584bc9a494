//! A small CSV reader for the published-data files: `# key: value` comment lines at the top (the
//! first names the source table), one header row, then records. Quoted fields (`"a, b"`, `""` for a
//! quote) are supported; every error names the file and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{FigureError, Result};

#[derive(Clone, Debug)]
pub struct CsvTable {
    pub path: PathBuf,
    /// `# key: value` lines before the header, in file order (keys lowercased).
    pub meta: Vec<(String, String)>,
    pub header: Vec<String>,
    pub rows: Vec<CsvRow>,
}

#[derive(Clone, Debug)]
pub struct CsvRow {
    /// 1-based line number in the file, for error messages.
    pub line: usize,
    pub cells: Vec<String>,
}

impl CsvTable {
    pub fn read(path: &Path) -> Result<CsvTable> {
        let text = std::fs::read_to_string(path).map_err(|cause| FigureError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        CsvTable::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<CsvTable> {
        let err = |line: usize, msg: String| FigureError::Csv {
            path: path.to_path_buf(),
            line,
            msg,
        };
        let mut meta = Vec::new();
        let mut header: Option<Vec<String>> = None;
        let mut rows = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if header.is_none() && raw.starts_with('#') {
                let body = raw.trim_start_matches('#').trim();
                if let Some((k, v)) = body.split_once(':') {
                    meta.push((k.trim().to_lowercase(), v.trim().to_string()));
                }
                continue;
            }
            if raw.trim().is_empty() {
                continue;
            }
            let cells = split_record(raw).map_err(|m| err(line, m))?;
            match &header {
                None => {
                    let mut seen = BTreeMap::new();
                    for c in &cells {
                        if seen.insert(c.clone(), ()).is_some() {
                            return Err(err(line, format!("duplicate column `{c}` in the header")));
                        }
                    }
                    header = Some(cells);
                }
                Some(h) => {
                    if cells.len() != h.len() {
                        return Err(err(
                            line,
                            format!(
                                "{} fields, but the header has {} ({})",
                                cells.len(),
                                h.len(),
                                h.join(",")
                            ),
                        ));
                    }
                    rows.push(CsvRow { line, cells });
                }
            }
        }
        let header =
            header.ok_or_else(|| err(text.lines().count().max(1), "no header row".into()))?;
        Ok(CsvTable {
            path: path.to_path_buf(),
            meta,
            header,
            rows,
        })
    }

    /// The value of a `# key: value` line (key compared case-insensitively).
    pub fn meta(&self, key: &str) -> Option<&str> {
        let key = key.to_lowercase();
        self.meta
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The `# source:` line, required for published data.
    pub fn source(&self) -> Result<&str> {
        self.meta("source").ok_or_else(|| FigureError::Csv {
            path: self.path.clone(),
            line: 1,
            msg: "no `# source: …` header line naming the table this file transcribes".into(),
        })
    }

    pub fn column(&self, name: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| FigureError::MissingColumn {
                path: self.path.clone(),
                column: name.to_string(),
                present: self.header.join(", "),
            })
    }

    pub fn str<'a>(&'a self, row: &'a CsvRow, column: &str) -> Result<&'a str> {
        Ok(row.cells[self.column(column)?].as_str())
    }

    /// A required number. Accepts a leading `+` (the post prints `+1.00`).
    pub fn f64(&self, row: &CsvRow, column: &str) -> Result<f64> {
        self.opt_f64(row, column)?.ok_or_else(|| FigureError::Csv {
            path: self.path.clone(),
            line: row.line,
            msg: format!("column `{column}` is empty but a number is required"),
        })
    }

    /// A number or an empty cell.
    pub fn opt_f64(&self, row: &CsvRow, column: &str) -> Result<Option<f64>> {
        let cell = self.str(row, column)?.trim();
        if cell.is_empty() {
            return Ok(None);
        }
        parse_number(cell)
            .map(Some)
            .ok_or_else(|| FigureError::Csv {
                path: self.path.clone(),
                line: row.line,
                msg: format!("column `{column}`: `{cell}` is not a number"),
            })
    }
}

fn parse_number(cell: &str) -> Option<f64> {
    let v: f64 = cell.strip_prefix('+').unwrap_or(cell).parse().ok()?;
    v.is_finite().then_some(v)
}

fn split_record(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    let mut at_start = true;
    while let Some(c) = chars.next() {
        if quoted {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    quoted = false;
                    if !matches!(chars.peek(), None | Some(',')) {
                        return Err("text after a closing quote".into());
                    }
                }
            } else {
                cur.push(c);
            }
            continue;
        }
        match c {
            '"' if at_start => {
                quoted = true;
                at_start = false;
            }
            ',' => {
                out.push(std::mem::take(&mut cur));
                at_start = true;
            }
            _ => {
                cur.push(c);
                at_start = false;
            }
        }
    }
    if quoted {
        return Err("unterminated quoted field".into());
    }
    out.push(cur);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields_and_meta() {
        let t = CsvTable::parse(
            Path::new("x.csv"),
            "# source: T\n# param: p.q\na,b,c\n1,\"x, \"\"y\"\"\",+2.5\n",
        )
        .unwrap();
        assert_eq!(t.source().unwrap(), "T");
        assert_eq!(t.meta("PARAM"), Some("p.q"));
        assert_eq!(t.rows[0].cells, vec!["1", "x, \"y\"", "+2.5"]);
        assert_eq!(t.f64(&t.rows[0], "c").unwrap(), 2.5);
        assert_eq!(t.rows[0].line, 4);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let e = CsvTable::parse(Path::new("d/t.csv"), "a,b\n1,2,3\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("d/t.csv:2:"), "{e}");
        let t = CsvTable::parse(Path::new("d/t.csv"), "a,b\n1,zz\n").unwrap();
        let e = t.f64(&t.rows[0], "b").unwrap_err().to_string();
        assert!(e.contains("d/t.csv:2") && e.contains("`zz`"), "{e}");
        let e = t.f64(&t.rows[0], "c").unwrap_err().to_string();
        assert!(
            e.contains("missing column `c`") && e.contains("a, b"),
            "{e}"
        );
        let e = CsvTable::parse(Path::new("q.csv"), "a\n\"open\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unterminated"), "{e}");
    }
}
