use std::fmt;
use std::str::FromStr;

use crate::HookError;

/// A hook point's canonical dotted name, e.g. `trunk.blocks.3`, `decoder.layers.5.q0`,
/// `decoder.layers.4.ca_text.head.0`.
///
/// Segments are lowercase identifiers (`[a-z_][a-z0-9_]*`) or decimal indices. Parsing checks the
/// grammar only; whether the point exists for a given model is the [`crate::HookRegistry`]'s call.
/// `to_string()` of a parsed point gives back the same text.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HookPoint(String);

impl HookPoint {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The point one level down, e.g. `decoder.layers.5` → `decoder.layers.5.q0`.
    pub fn child(&self, seg: impl fmt::Display) -> HookPoint {
        HookPoint(format!("{}.{}", self.0, seg))
    }

    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('.')
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for HookPoint {
    type Err = HookError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: &str| HookError::InvalidName { name: s.to_string(), why: why.to_string() };
        if s.is_empty() {
            return Err(bad("empty name"));
        }
        for seg in s.split('.') {
            if seg.is_empty() {
                return Err(bad("empty segment (double or trailing dot)"));
            }
            let numeric = seg.bytes().all(|b| b.is_ascii_digit());
            let ident = seg.as_bytes()[0].is_ascii_lowercase() || seg.as_bytes()[0] == b'_';
            let ident = ident && seg.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !numeric && !ident {
                return Err(bad(&format!("segment `{seg}` is neither an index nor a lowercase identifier")));
            }
        }
        Ok(HookPoint(s.to_string()))
    }
}

impl TryFrom<String> for HookPoint {
    type Error = HookError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<HookPoint> for String {
    fn from(p: HookPoint) -> String {
        p.0
    }
}

/// A pattern over hook names: dotted segments where
/// - `*` matches exactly one segment, `**` any number of segments (including none);
/// - a segment may contain `*` wildcards within it (`head*`, `ca_*`);
/// - `a..b` matches an integer index in the inclusive range (`decoder.layers.3..5`);
/// - `{x,y,z}` matches any of the listed alternatives;
/// - anything else matches literally.
///
/// A pattern without wildcards is just a name.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HookPattern {
    text: String,
    segs: Vec<Seg>,
}

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
enum Seg {
    Any,
    AnyMany,
    Literal(String),
    Glob(String),
    Range(u64, u64),
    Alt(Vec<String>),
}

impl HookPattern {
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern names exactly one point (no wildcard, range or alternation).
    pub fn is_exact(&self) -> bool {
        self.segs.iter().all(|s| matches!(s, Seg::Literal(_)))
    }

    /// Does `name` match? Allocation-free for names of up to 16 segments (every SAM3 name), since
    /// this runs at every tap of a hooked forward.
    pub fn matches(&self, name: &str) -> bool {
        let mut buf = [""; 16];
        let mut n = 0;
        for part in name.split('.') {
            if n == buf.len() {
                let parts: Vec<&str> = name.split('.').collect();
                return match_segs(&self.segs, &parts);
            }
            buf[n] = part;
            n += 1;
        }
        match_segs(&self.segs, &buf[..n])
    }
}

fn match_segs(segs: &[Seg], parts: &[&str]) -> bool {
    match segs.split_first() {
        None => parts.is_empty(),
        Some((Seg::AnyMany, rest)) => (0..=parts.len()).any(|k| match_segs(rest, &parts[k..])),
        Some((seg, rest)) => match parts.split_first() {
            None => false,
            Some((p, prest)) => seg_matches(seg, p) && match_segs(rest, prest),
        },
    }
}

fn seg_matches(seg: &Seg, p: &str) -> bool {
    match seg {
        Seg::Any => true,
        Seg::AnyMany => true,
        Seg::Literal(l) => l == p,
        Seg::Glob(g) => glob(g.as_bytes(), p.as_bytes()),
        Seg::Range(a, b) => p.parse::<u64>().is_ok_and(|v| v >= *a && v <= *b),
        Seg::Alt(alts) => alts.iter().any(|a| a == p),
    }
}

fn glob(g: &[u8], s: &[u8]) -> bool {
    match g.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|k| glob(rest, &s[k..])),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

impl fmt::Display for HookPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for HookPattern {
    type Err = HookError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |why: String| HookError::InvalidName { name: s.to_string(), why };
        if s.is_empty() {
            return Err(bad("empty pattern".into()));
        }
        let mut segs = Vec::new();
        // split on '.' but not inside `{...}` and not the `..` of a range
        for raw in split_pattern(s) {
            let seg = if raw.is_empty() {
                return Err(bad("empty segment".into()));
            } else if raw == "*" {
                Seg::Any
            } else if raw == "**" {
                Seg::AnyMany
            } else if let Some(inner) = raw.strip_prefix('{').and_then(|r| r.strip_suffix('}')) {
                Seg::Alt(inner.split(',').map(|x| x.trim().to_string()).collect())
            } else if let Some((a, b)) = raw.split_once("..") {
                let (a, b) = (a.parse::<u64>(), b.parse::<u64>());
                match (a, b) {
                    (Ok(a), Ok(b)) if a <= b => Seg::Range(a, b),
                    _ => return Err(bad(format!("`{raw}` is not a range `a..b` with a <= b"))),
                }
            } else if raw.contains('*') {
                Seg::Glob(raw.to_string())
            } else {
                // validate as a name segment
                HookPoint::from_str(&raw).map_err(|e| bad(e.to_string()))?;
                Seg::Literal(raw.to_string())
            };
            segs.push(seg);
        }
        Ok(HookPattern { text: s.to_string(), segs })
    }
}

fn split_pattern(s: &str) -> Vec<String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        match c {
            '{' => {
                depth += 1;
                cur.push(c)
            }
            '}' => {
                depth -= 1;
                cur.push(c)
            }
            '.' if depth == 0 => {
                if i + 1 < b.len() && b[i + 1] == b'.' {
                    cur.push_str("..");
                    i += 1;
                } else {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
        i += 1;
    }
    out.push(cur);
    out
}

impl TryFrom<String> for HookPattern {
    type Error = HookError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<HookPattern> for String {
    fn from(p: HookPattern) -> String {
        p.text
    }
}

impl From<&HookPoint> for HookPattern {
    fn from(p: &HookPoint) -> Self {
        p.as_str().parse().expect("a valid point is a valid pattern")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in ["trunk.blocks.3", "decoder.layers.5.q0", "decoder.layers.4.ca_text.head.0", "presence_logit"] {
            let p: HookPoint = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        for bad in ["", "a..b", "Trunk.blocks", "a.b.", "a-b"] {
            assert!(bad.parse::<HookPoint>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn patterns_match() {
        let p: HookPattern = "decoder.layers.*.q0".parse().unwrap();
        assert!(p.matches("decoder.layers.5.q0"));
        assert!(!p.matches("decoder.layers.5.queries"));
        assert!(!p.matches("decoder.layers.5.q0.x"));
        let r: HookPattern = "decoder.layers.3..5.ca_text.head.*".parse().unwrap();
        assert!(r.matches("decoder.layers.4.ca_text.head.0"));
        assert!(!r.matches("decoder.layers.2.ca_text.head.0"));
        assert!(!r.matches("decoder.layers.6.ca_text.head.0"));
        let m: HookPattern = "**.q0".parse().unwrap();
        assert!(m.matches("decoder.layers.0.q0"));
        assert!(!m.matches("decoder.layers.0.queries"));
        let a: HookPattern = "decoder.layers.{1,3}.ca_*.out".parse().unwrap();
        assert!(a.matches("decoder.layers.3.ca_image.out"));
        assert!(!a.matches("decoder.layers.2.ca_image.out"));
        assert!(!a.matches("decoder.layers.3.self_attn.out"));
        assert!("x.5..3".parse::<HookPattern>().is_err());
        assert!("decoder.layers.5.q0".parse::<HookPattern>().unwrap().is_exact());
    }
}
