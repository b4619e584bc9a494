//! `weights convert`: a `.pt` in the released `sam3.pt`'s layout (`{"model": …}`, `detector.` /
//! `tracker.` keys, complex64 RoPE tables) becomes one safetensors file holding the same tensors
//! under the same keys (the complex RoPE tables left out and listed), which the model loads to the
//! very same parameters; bad input names the file and tensor and leaves nothing behind.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use burn::prelude::*;
use burn::store::ModuleSnapshot;
use common::{T, write_pt_with_complex};
use sam3lab_util::progress::NoProgress;
use sam3lab_model::{Sam3, Sam3Config, checkpoint, params::param_shapes};
use sam3lab_checkpoint::{Checkpoint, Format, convert};

fn fixture() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny")
}

/// The fixture's weights as sam3.pt lays them out: `detector.` keys, a tracker key and two complex64
/// RoPE tables.
fn sam3_like_pt(path: &Path) -> Vec<String> {
    let fx = Checkpoint::open(fixture().join("weights.safetensors")).unwrap();
    let mut ts: Vec<T> = fx
        .tensors()
        .map(|e| T {
            name: format!("detector.{}", e.name),
            shape: e.shape.clone(),
            values: fx.read_f32(&e.name).unwrap(),
        })
        .collect();
    ts.push(common::t("tracker.maskmem.weight", &[2, 3], vec![0.5; 6]));
    let rope: Vec<(String, Vec<usize>, Vec<u8>)> = (0..2)
        .map(|b| {
            let name = format!("detector.backbone.vision_backbone.trunk.blocks.{b}.attn.freqs_cis");
            (name, vec![16, 16], (0..16 * 16 * 8).map(|i| (i * 7 + b) as u8).collect())
        })
        .collect();
    write_pt_with_complex(path, &ts, true, &rope);
    rope.into_iter().map(|(n, _, _)| n).collect()
}

fn params(path: &Path) -> BTreeMap<String, Vec<u8>> {
    let cfg = Sam3Config::from_file(&fixture().join("config.json")).unwrap();
    let mut m = Sam3::new(&cfg, &Device::flex());
    checkpoint::load_into(&mut m, path, &param_shapes(&cfg), "").unwrap();
    m.collect(None, None, false).into_iter().map(|t| (t.name.clone(), t.to_bytes().unwrap().to_vec())).collect()
}

#[test]
fn converted_sam3_layout_holds_the_same_tensors_and_loads_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let pt = dir.path().join("sam3.pt");
    let rope = sam3_like_pt(&pt);
    let out = dir.path().join("sam3.safetensors");
    let r = convert(&pt, &out, &NoProgress).unwrap();
    assert_eq!(r.dropped, rope.iter().map(|n| n.clone()).collect::<Vec<_>>());

    let a = Checkpoint::open(&pt).unwrap();
    let b = Checkpoint::open(&out).unwrap();
    assert_eq!(b.format(), Format::Safetensors);
    let real: Vec<&str> = a.all_entries().iter().filter(|e| !e.is_complex()).map(|e| e.stored_name.as_str()).collect();
    let written: Vec<&str> = b.all_entries().iter().map(|e| e.stored_name.as_str()).collect();
    let mut written_sorted = written.clone();
    written_sorted.sort();
    assert_eq!(written_sorted, real, "every real tensor under its stored key, nothing else");
    assert!(written.contains(&"tracker.maskmem.weight") && written.contains(&"detector.transformer.decoder.norm.weight"));
    assert_eq!(r.tensors, real.len());
    for e in b.all_entries() {
        let src = a.all_entries().iter().find(|x| x.stored_name == e.stored_name).unwrap();
        assert_eq!((e.dtype, &e.shape), (src.dtype, &src.shape), "{}", e.stored_name);
        assert_eq!(b.bytes(e, 0..e.numel()).unwrap(), a.bytes(src, 0..src.numel()).unwrap(), "{}", e.stored_name);
    }
    let meta = b.metadata().unwrap();
    assert_eq!(meta["sam3lab.dropped"], rope.join(","));
    assert_eq!(meta["sam3lab.source_format"], "pytorch");
    assert_eq!(r.sha256, sam3lab_checkpoint::sha256_file(&out).unwrap());

    // the model loads the .pt (read in place) and the converted file to identical parameters,
    // and both equal the fixture's own weights
    let want = params(&fixture().join("weights.safetensors"));
    assert_eq!(params(&pt), want);
    assert_eq!(params(&out), want);

    // only the checkpoint and the output are left in the directory (no temporary files)
    let mut left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, ["sam3.pt", "sam3.safetensors"]);
}

#[test]
fn bad_input_names_the_file_and_tensor_and_leaves_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let pt = dir.path().join("sam3.pt");
    sam3_like_pt(&pt);
    let out = dir.path().join("out.safetensors");

    // a flipped byte inside the largest storage: the CRC check names the tensor
    let fx = Checkpoint::open(fixture().join("weights.safetensors")).unwrap();
    let big = fx.tensors().max_by_key(|e| e.numel()).unwrap().name.clone();
    let victim: Vec<u8> = fx.read_f32(&big).unwrap().iter().flat_map(|v| v.to_le_bytes()).collect();
    let mut bytes = std::fs::read(&pt).unwrap();
    let at = bytes.windows(64).position(|w| w == &victim[..64]).unwrap() + victim.len() / 2;
    bytes[at] ^= 0x5a;
    let bad = dir.path().join("flipped.pt");
    std::fs::write(&bad, &bytes).unwrap();
    let msg = convert(&bad, &out, &NoProgress).err().unwrap().to_string();
    assert!(msg.contains("flipped.pt") && msg.contains(&big) && msg.contains("Invalid checksum"), "{msg}");
    assert!(!out.exists());

    // not a checkpoint, missing file, wrong output extension, output = input
    std::fs::write(dir.path().join("junk.pt"), b"PK\x03\x04 not really a zip").unwrap();
    let msg = convert(&dir.path().join("junk.pt"), &out, &NoProgress).err().unwrap().to_string();
    assert!(msg.contains("junk.pt"), "{msg}");
    let msg = convert(&dir.path().join("nope.pt"), &out, &NoProgress).err().unwrap().to_string();
    assert!(msg.contains("nope.pt"), "{msg}");
    let msg = convert(&pt, &dir.path().join("out.bin"), &NoProgress).err().unwrap().to_string();
    assert!(msg.contains("out.bin") && msg.contains(".safetensors"), "{msg}");
    let st = dir.path().join("a.safetensors");
    convert(&pt, &st, &NoProgress).unwrap();
    let msg = convert(&st, &st, &NoProgress).err().unwrap().to_string();
    assert!(msg.contains("same file"), "{msg}");

    let mut left: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, ["a.safetensors", "flipped.pt", "junk.pt", "sam3.pt"], "no partial or temporary output");
}
