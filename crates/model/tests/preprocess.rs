//! Image input: the fixture's raw `image_uint8` (126×98) resized to 112×112 (a downscale and an
//! upscale axis) and normalised equals the reference `pixel_values` within 1e-5, also after a PNG
//! round trip through `load_image`; unreadable inputs fail naming the file.

use std::path::Path;

use safetensors::SafeTensors;
use sam3lab_model::preprocess::{load_image, preprocess_data};

fn inputs() -> (Vec<u8>, (usize, usize), Vec<f32>) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/fixtures/sam3-tiny/inputs.safetensors");
    let bytes = std::fs::read(p).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let img = st.tensor("image_uint8").unwrap();
    let s = img.shape().to_vec();
    let px = st.tensor("pixel_values").unwrap();
    let pv = px.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    (img.data().to_vec(), (s[0], s[1]), pv)
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn pixel_values_match_the_reference() {
    let (raw, (h, w), want) = inputs();
    assert_eq!((h, w), (126, 98));
    let img = image::RgbImage::from_raw(w as u32, h as u32, raw).unwrap();
    let got = preprocess_data(&img, 112);
    let d = max_diff(&got, &want);
    assert!(d <= 1e-5, "max |diff| = {d}");
}

#[test]
fn png_round_trip_and_errors() {
    let (raw, (h, w), want) = inputs();
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("in.png");
    image::RgbImage::from_raw(w as u32, h as u32, raw).unwrap().save(&png).unwrap();
    let img = load_image(&png).unwrap();
    assert!(max_diff(&preprocess_data(&img, 112), &want) <= 1e-5);

    let txt = dir.path().join("notes.png");
    std::fs::write(&txt, "not an image at all").unwrap();
    let e = load_image(&txt).unwrap_err().to_string();
    assert!(e.contains("notes.png") && e.contains("not a PNG or JPEG"), "{e}");
    let missing = dir.path().join("missing.jpg");
    let e = load_image(&missing).unwrap_err().to_string();
    assert!(e.contains("missing.jpg") && e.contains("cannot read"), "{e}");
    // a truncated PNG: right signature, broken body
    let bytes = std::fs::read(&png).unwrap();
    let cut = dir.path().join("cut.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let e = load_image(&cut).unwrap_err().to_string();
    assert!(e.contains("cut.png") && e.contains("cannot decode"), "{e}");
}
