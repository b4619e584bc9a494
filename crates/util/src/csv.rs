//! CSV tables as sam3lab writes and reads them: optional `# key: value` lines first (provenance:
//! source table, checkpoint, seed), then one header row and the records. The records themselves —
//! quoting, escaped quotes, embedded commas and newlines — are the `csv` crate's; this module only
//! adds the comment lines around it and line numbers for error messages.

/// A table built in memory: comment lines, a header, rows (RFC 4180 quoting where needed).
pub struct Table {
    comments: String,
    records: csv::Writer<Vec<u8>>,
    cols: usize,
}

fn writer() -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .flexible(false)
        .from_writer(Vec::new())
}

impl Table {
    pub fn new<S: AsRef<str>>(header: &[S]) -> Self {
        let mut t = Self { comments: String::new(), records: writer(), cols: header.len() };
        t.push(header.iter().map(|s| s.as_ref()));
        t
    }

    /// A `# key: value` line above the header (in call order).
    pub fn meta(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.comments.push_str(&format!("# {key}: {value}\n"));
        self
    }

    /// A free `# text` line above the header.
    pub fn comment(mut self, text: &str) -> Self {
        self.comments.push_str(&format!("# {text}\n"));
        self
    }

    /// One record; its width must be the header's.
    pub fn row<I>(&mut self, fields: I)
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let fields: Vec<I::Item> = fields.into_iter().collect();
        assert_eq!(fields.len(), self.cols, "CSV row width differs from the header's");
        self.push(fields.iter().map(|f| f.as_ref()));
    }

    fn push<'a>(&mut self, fields: impl Iterator<Item = &'a str>) {
        // Writing into a Vec cannot fail.
        self.records.write_record(fields).expect("CSV into memory");
    }

    /// The whole table as text.
    pub fn into_string(self) -> String {
        let body = self.records.into_inner().expect("CSV into memory");
        self.comments + &String::from_utf8(body).expect("fields are UTF-8")
    }
}

/// A number cell: the shortest form that reads back as the same f64 (deterministic), empty for
/// `None` (an undefined value).
pub fn num(v: Option<f64>) -> String {
    v.map(|x| x.to_string()).unwrap_or_default()
}

/// One record as a line (with its `\n`), quoted as [`Table`] does: for logs appended row by row.
pub fn line<I>(fields: I) -> String
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let mut w = writer();
    w.write_record(fields.into_iter().map(|f| f.as_ref().to_string())).expect("CSV into memory");
    String::from_utf8(w.into_inner().expect("CSV into memory")).expect("fields are UTF-8")
}

/// A parsed table: the leading `# key: value` lines (keys lowercased; `#` lines without a colon are
/// skipped), the header and the records with their 1-based line numbers in the file.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    pub meta: Vec<(String, String)>,
    pub header: Vec<String>,
    pub rows: Vec<(usize, Vec<String>)>,
}

/// Parse `text`. An error is `(line, message)`: a record whose width differs from the header's,
/// a duplicate header name, no header, or a quoting error the `csv` crate reports.
pub fn parse(text: &str) -> Result<Parsed, (usize, String)> {
    let mut meta = Vec::new();
    let mut offset = 0; // bytes of leading comment / blank lines
    let mut skipped = 0; // their count
    for raw in text.split_inclusive('\n') {
        let l = raw.trim_end_matches(['\n', '\r']);
        if let Some(body) = l.strip_prefix('#') {
            if let Some((k, v)) = body.trim().split_once(':') {
                meta.push((k.trim().to_lowercase(), v.trim().to_string()));
            }
        } else if !l.trim().is_empty() {
            break;
        }
        offset += raw.len();
        skipped += 1;
    }
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text[offset..].as_bytes());
    let mut header: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    for rec in rd.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map(|p| p.line() as usize + skipped).unwrap_or(skipped + 1);
            (line, e.to_string())
        })?;
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0) + skipped;
        let cells: Vec<String> = rec.iter().map(str::to_string).collect();
        match &header {
            None => {
                let mut seen = std::collections::BTreeSet::new();
                if let Some(c) = cells.iter().find(|c| !seen.insert(c.as_str())) {
                    return Err((line, format!("duplicate column `{c}` in the header")));
                }
                header = Some(cells);
            }
            Some(h) if cells.len() != h.len() => {
                return Err((line, format!("{} fields, but the header has {} ({})", cells.len(), h.len(), h.join(","))));
            }
            Some(_) => rows.push((line, cells)),
        }
    }
    let header = header.ok_or((text.lines().count().max(1), "no header row".to_string()))?;
    Ok(Parsed { meta, header, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_meta_and_quoting() {
        let mut t = Table::new(&["name", "value"]).meta("source", "Table 6.1").comment("free text");
        t.row(["a, b", "1"]);
        t.row(["say \"hi\"", ""]);
        t.row(["two\nlines", "+2.5"]);
        let s = t.into_string();
        assert_eq!(
            s,
            "# source: Table 6.1\n# free text\nname,value\n\"a, b\",1\n\"say \"\"hi\"\"\",\n\"two\nlines\",+2.5\n"
        );
        let p = parse(&s).unwrap();
        assert_eq!(p.meta, vec![("source".to_string(), "Table 6.1".to_string())]);
        assert_eq!(p.header, vec!["name", "value"]);
        let cells: Vec<_> = p.rows.iter().map(|(_, c)| c.clone()).collect();
        assert_eq!(cells, vec![vec!["a, b", "1"], vec!["say \"hi\"", ""], vec!["two\nlines", "+2.5"]]);
        // Line numbers count the comment lines and the quoted newline.
        let lines: Vec<_> = p.rows.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, vec![4, 5, 6]);
        assert_eq!(line(["x", "y,z"]), "x,\"y,z\"\n");
    }

    #[test]
    fn errors_name_the_line() {
        assert_eq!(parse("a,b\n1,2,3\n").unwrap_err().0, 2);
        assert!(parse("# c: 1\na,b\n1,2\n3\n").unwrap_err().1.contains("1 fields, but the header has 2"));
        assert_eq!(parse("# c: 1\na,b\n1,2\n3\n").unwrap_err().0, 4);
        assert!(parse("a,a\n").unwrap_err().1.contains("duplicate column `a`"));
        assert!(parse("# only: meta\n").unwrap_err().1.contains("no header"));
    }
}
