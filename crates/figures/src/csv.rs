//! The published-data files as tables: `# key: value` comment lines at the top (the first names the
//! source table), one header row, then records — parsed by [`sam3lab_util::csv`] (records by the
//! `csv` crate) — with typed cell access; every error names the file and line.

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
        let p = sam3lab_util::csv::parse(text).map_err(|(line, msg)| FigureError::Csv {
            path: path.to_path_buf(),
            line,
            msg,
        })?;
        Ok(CsvTable {
            path: path.to_path_buf(),
            meta: p.meta,
            header: p.header,
            rows: p.rows.into_iter().map(|(line, cells)| CsvRow { line, cells }).collect(),
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
        let e = CsvTable::parse(Path::new("q.csv"), "a,b\na,\"b,c\",d\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("q.csv:2:") && e.contains("3 fields"), "{e}");
    }
}
