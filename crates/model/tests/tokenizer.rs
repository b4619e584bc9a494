//! Every case of the fixture's `tokenizer_cases.json` (ids from the reference `SimpleTokenizer`)
//! gives identical ids, unpadded and padded to 32 and 16, with the truncation flag set exactly when
//! the reference truncated.

use std::path::Path;

use sam3lab_model::tokenizer::{EOT_TOKEN, SOT_TOKEN, Tokenizer};

#[test]
fn reference_cases_give_identical_ids() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny/tokenizer_cases.json");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let ids = |x: &serde_json::Value| -> Vec<u32> { x.as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect() };
    let tok = Tokenizer::clip();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 15);
    for c in cases {
        let text = c["text"].as_str().unwrap();
        let want = ids(&c["ids"]);
        let mut raw = vec![SOT_TOKEN];
        raw.extend(tok.encode_raw(text));
        raw.push(EOT_TOKEN);
        assert_eq!(raw, want, "{text:?}");
        for n in [32usize, 16] {
            let (got, truncated) = tok.encode(text, n);
            assert_eq!(got, ids(&c[format!("padded_{n}")]), "{text:?} padded to {n}");
            assert_eq!(truncated, want.len() > n, "{text:?} truncation flag at {n}");
        }
    }
}

#[test]
fn fixture_prompt_matches_its_input_ids() {
    let (ids, tr) = Tokenizer::clip().encode("a red cat", 16);
    assert!(!tr);
    assert_eq!(ids, vec![49406, 320, 736, 2368, 49407, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(Tokenizer::clip().decode(&ids[1..4]).trim(), "a red cat");
}
