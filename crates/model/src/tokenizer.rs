//! The CLIP byte-level BPE tokenizer SAM3 uses (`sam3/model/tokenizer_ve.py::SimpleTokenizer`,
//! clean = "lower"), with the vocabulary embedded (`data/clip-bpe/bpe_simple_vocab_16e6.txt.gz`,
//! MIT, from OpenAI CLIP / open_clip).
//!
//! Pipeline: clean → split with the CLIP regex → UTF-8 bytes mapped to printable characters → BPE
//! merges by rank → ids; then `[SOT] + ids + [EOT]`, zero-padded to the context length, and when
//! too long, truncated with the last id forced to EOT (the reference does this silently; here the
//! `truncated` flag lets callers warn).
//!
//! Cleaning = `ftfy.fix_text` → `html.unescape` twice → strip → collapse whitespace → strip →
//! lowercase. ftfy is Python-only; this implements the subset of `fix_text`'s default steps that
//! change text a prompt can plausibly contain:
//! - remove terminal escape sequences (`ESC [ … letter`);
//! - HTML entities unescaped once when the text has no `<` (ftfy's `unescape_html="auto"`);
//! - Latin ligatures (ﬁ, ﬂ, ĳ, …) and full-width/half-width forms (U+FF01–U+FFEF, U+3000) → NFKC;
//! - curly quotes → straight quotes (U+02BC, U+2018–U+201B → `'`; U+201C–U+201F → `"`);
//! - line breaks (`\r\n`, `\r`, U+2028, U+2029, U+0085) → `\n`;
//! - control characters removed (U+0000–U+0008, U+000B, U+000E–U+001F, U+007F, U+206A–U+206F,
//!   U+FEFF, U+FFF9–U+FFFC);
//! - NFC normalisation.
//!
//! Not implemented: ftfy's mojibake repair (`fix_encoding`: text that was UTF-8 decoded as
//! Latin-1/Windows-1252, e.g. `Ã©` → `é`), C1-control fixing and surrogate repair (a Rust `str`
//! cannot hold surrogates). Such inputs may tokenize differently from the reference.

use std::collections::HashMap;
use std::io::Read;
use std::sync::OnceLock;

use regex::Regex;
use unicode_normalization::UnicodeNormalization;

use crate::ModelError;

static BPE_GZ: &[u8] = include_bytes!("../../../data/clip-bpe/bpe_simple_vocab_16e6.txt.gz");

pub const SOT_TOKEN: u32 = 49406;
pub const EOT_TOKEN: u32 = 49407;
pub const PAD_TOKEN: u32 = 0;
const SOT_TEXT: &str = "<start_of_text>";
const EOT_TEXT: &str = "<end_of_text>";

/// CLIP BPE tokenizer (vocabulary 49408).
pub struct Tokenizer {
    encoder: HashMap<String, u32>,
    decoder: Vec<String>,
    ranks: HashMap<(String, String), usize>,
    byte_encoder: [char; 256],
    pattern: Regex,
    whitespace: Regex,
    terminal_escape: Regex,
}

/// The reference `bytes_to_unicode`: every byte maps to a printable character.
fn bytes_to_unicode() -> [char; 256] {
    let mut printable: Vec<u32> = (b'!' as u32..=b'~' as u32).collect();
    printable.extend(0xA1..=0xAC);
    printable.extend(0xAE..=0xFF);
    let mut table = ['\0'; 256];
    let mut n = 0;
    for b in 0..256u32 {
        let c = if printable.contains(&b) {
            b
        } else {
            n += 1;
            255 + n
        };
        table[b as usize] = char::from_u32(c).expect("valid char");
    }
    table
}

impl Tokenizer {
    /// The tokenizer with the embedded CLIP vocabulary (built once per process, then shared).
    pub fn clip() -> &'static Tokenizer {
        static TOK: OnceLock<Tokenizer> = OnceLock::new();
        TOK.get_or_init(|| Tokenizer::from_gz(BPE_GZ).expect("the embedded CLIP BPE vocabulary is valid"))
    }

    /// Build from a gzipped merges file (the format of `bpe_simple_vocab_16e6.txt.gz`).
    pub fn from_gz(gz: &[u8]) -> Result<Tokenizer, ModelError> {
        let mut text = String::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_string(&mut text)
            .map_err(|e| ModelError::Tokenizer(format!("BPE vocabulary is not gzipped UTF-8 text: {e}")))?;
        let lines: Vec<&str> = text.split('\n').collect();
        let n_merges = 49152 - 256 - 2;
        if lines.len() < n_merges + 1 {
            return Err(ModelError::Tokenizer(format!("BPE vocabulary has {} lines, need {}", lines.len(), n_merges + 1)));
        }
        let merges: Vec<(String, String)> = lines[1..=n_merges]
            .iter()
            .map(|l| {
                let mut it = l.split_whitespace();
                match (it.next(), it.next()) {
                    (Some(a), Some(b)) => Ok((a.to_string(), b.to_string())),
                    _ => Err(ModelError::Tokenizer(format!("bad merge line `{l}`"))),
                }
            })
            .collect::<Result<_, _>>()?;
        let byte_encoder = bytes_to_unicode();
        // The reference's vocabulary starts with `bytes_to_unicode().values()` in ITS insertion
        // order: the printable bytes first, then the remapped ones.
        let mut base: Vec<char> = byte_encoder.to_vec();
        base.sort_by_key(|c| (*c as u32) > 255);
        let mut vocab: Vec<String> = base.iter().map(|c| c.to_string()).collect();
        vocab.extend(base.iter().map(|c| format!("{c}</w>")));
        vocab.extend(merges.iter().map(|(a, b)| format!("{a}{b}")));
        vocab.push(SOT_TEXT.into());
        vocab.push(EOT_TEXT.into());
        let encoder = vocab.iter().enumerate().map(|(i, v)| (v.clone(), i as u32)).collect();
        let ranks = merges.into_iter().enumerate().map(|(i, m)| (m, i)).collect();
        let pattern = Regex::new(r"(?i)<start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+")
            .expect("static regex");
        Ok(Tokenizer {
            encoder,
            decoder: vocab,
            ranks,
            byte_encoder,
            pattern,
            whitespace: Regex::new(r"\s+").expect("static regex"),
            terminal_escape: Regex::new("\x1b\\[((?:\\d|;)*)([a-zA-Z])").expect("static regex"),
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.decoder.len()
    }

    /// The reference's `_clean_lower`.
    pub fn clean(&self, text: &str) -> String {
        let t = fix_text_subset(text, &self.terminal_escape);
        let t = html_unescape(&html_unescape(&t));
        let t = t.trim();
        let t = self.whitespace.replace_all(t, " ");
        t.trim().to_lowercase()
    }

    /// BPE ids of `text` without SOT/EOT or padding.
    pub fn encode_raw(&self, text: &str) -> Vec<u32> {
        let cleaned = self.clean(text);
        let mut ids = Vec::new();
        for m in self.pattern.find_iter(&cleaned) {
            let tok = m.as_str();
            if tok == SOT_TEXT || tok == EOT_TEXT {
                // The reference caches the special tokens as themselves.
                ids.push(self.encoder[tok]);
                continue;
            }
            let mapped: String = tok.bytes().map(|b| self.byte_encoder[b as usize]).collect();
            for piece in self.bpe(&mapped) {
                ids.push(self.encoder[&piece]);
            }
        }
        ids
    }

    /// `[SOT] + BPE + [EOT]`, zero-padded to `context_length`; when longer, cut to
    /// `context_length` with the last id set to EOT and `truncated = true`.
    pub fn encode(&self, text: &str, context_length: usize) -> (Vec<u32>, bool) {
        let mut ids = Vec::with_capacity(context_length);
        ids.push(SOT_TOKEN);
        ids.extend(self.encode_raw(text));
        ids.push(EOT_TOKEN);
        let truncated = ids.len() > context_length;
        if truncated {
            ids.truncate(context_length);
            if let Some(last) = ids.last_mut() {
                *last = EOT_TOKEN;
            }
        }
        ids.resize(context_length, PAD_TOKEN);
        (ids, truncated)
    }

    /// Text of ids (byte-level decode; `</w>` → space), for display.
    pub fn decode(&self, ids: &[u32]) -> String {
        let rev: HashMap<char, u8> = self.byte_encoder.iter().enumerate().map(|(b, c)| (*c, b as u8)).collect();
        let mut bytes = Vec::new();
        for &id in ids {
            if let Some(tok) = self.decoder.get(id as usize) {
                for c in tok.chars() {
                    match rev.get(&c) {
                        Some(b) => bytes.push(*b),
                        None => bytes.extend(c.to_string().as_bytes()),
                    }
                }
            }
        }
        String::from_utf8_lossy(&bytes).replace("</w>", " ")
    }

    /// Greedy lowest-rank merging of one pre-token (already byte-mapped); `</w>` on the last symbol.
    fn bpe(&self, token: &str) -> Vec<String> {
        let chars: Vec<char> = token.chars().collect();
        let mut word: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        if let Some(last) = word.last_mut() {
            last.push_str("</w>");
        }
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|p| self.ranks.get(&(p[0].clone(), p[1].clone())).map(|r| (*r, p[0].clone(), p[1].clone())))
                .min();
            let Some((_, a, b)) = best else { break };
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == a && word[i + 1] == b {
                    merged.push(format!("{a}{b}"));
                    i += 2;
                } else {
                    merged.push(word[i].clone());
                    i += 1;
                }
            }
            word = merged;
        }
        word
    }
}

/// Python's `html.unescape` (all HTML5 named entities, numeric references).
fn html_unescape(s: &str) -> String {
    if !s.contains('&') {
        return s.to_string();
    }
    htmlize::unescape(s).into_owned()
}

fn is_ftfy_control(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0x206A..=0x206F | 0xFEFF | 0xFFF9..=0xFFFC)
}

fn is_latin_ligature(c: char) -> bool {
    matches!(c as u32, 0x132 | 0x133 | 0x149 | 0x1C4..=0x1CC | 0x1F1..=0x1F3 | 0xFB00..=0xFB06)
}

/// The implemented subset of `ftfy.fix_text` (see the module doc).
fn fix_text_subset(text: &str, terminal_escape: &Regex) -> String {
    let t = terminal_escape.replace_all(text, "");
    let t = if t.contains('<') { t.into_owned() } else { html_unescape(&t) };
    let mut out = String::with_capacity(t.len());
    let mut chars = t.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push('\n'),
            '\u{2BC}' | '\u{2018}'..='\u{201B}' => out.push('\''),
            '\u{201C}'..='\u{201F}' => out.push('"'),
            '\u{3000}' => out.push(' '),
            c if is_ftfy_control(c) => {}
            c if is_latin_ligature(c) || ('\u{FF01}'..='\u{FFEF}').contains(&c) => out.extend(c.to_string().nfkc()),
            c => out.push(c),
        }
    }
    out.nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_shape_and_specials() {
        let t = Tokenizer::clip();
        assert_eq!(t.vocab_size(), 49408);
        assert_eq!(t.encoder[SOT_TEXT], SOT_TOKEN);
        assert_eq!(t.encoder[EOT_TEXT], EOT_TOKEN);
        // byte 'a' is its own printable char, id 'a' - '!' = 64
        assert_eq!(t.encoder["a"], 64);
    }

    #[test]
    fn truncation_forces_eot_and_flags_it() {
        let t = Tokenizer::clip();
        let (ids, tr) = t.encode("a red cat", 4);
        assert!(tr);
        assert_eq!(ids, vec![SOT_TOKEN, 320, 736, EOT_TOKEN]);
        let (ids, tr) = t.encode("a red cat", 5);
        assert!(!tr);
        assert_eq!(ids.len(), 5);
    }

    #[test]
    fn ftfy_subset_cleans() {
        let t = Tokenizer::clip();
        assert_eq!(t.clean("\u{201C}ﬁne\u{201D}  ＣＡＴ\r\n"), "\"fine\" cat");
        assert_eq!(t.clean("&amp;amp;amp;"), "&");
        assert_eq!(t.clean("a\x1b[31mred\x00"), "ared");
    }
}
