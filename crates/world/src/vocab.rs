//! The world's vocabulary: broad colours and shapes (a concept is "COLOUR SHAPE"), and the narrow
//! task's part names, which share no word with the broad vocabulary.

/// Broad colours with their base RGB (saturated, far apart, all unlike the muted backgrounds).
pub const COLOURS: [(&str, [u8; 3]); 10] = [
    ("red", [222, 38, 38]),
    ("green", [34, 170, 56]),
    ("blue", [38, 84, 224]),
    ("yellow", [244, 214, 36]),
    ("purple", [136, 52, 204]),
    ("orange", [248, 138, 24]),
    ("teal", [30, 200, 205]),
    ("pink", [250, 128, 192]),
    ("white", [246, 246, 246]),
    ("brown", [124, 72, 30]),
];

/// Broad shapes (also the broad "category names" of the probe set).
pub const SHAPES: [&str; 10] = [
    "circle", "square", "triangle", "star", "ring", "cross", "diamond", "heart", "arrow",
    "crescent",
];

/// The narrow task's parts, in drawing order's spirit (see `narrow`). Index = part id.
pub const PARTS: [&str; 15] = [
    "outer bezel",
    "dial face",
    "hour marker",
    "hour hand",
    "minute hand",
    "second hand",
    "center hub",
    "crown knob",
    "upper strap",
    "lower strap",
    "strap lug",
    "date window",
    "logo badge",
    "small subdial",
    "keeper loop",
];

/// A broad concept: indices into [`COLOURS`] and [`SHAPES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Concept {
    pub colour: usize,
    pub shape: usize,
}

impl Concept {
    /// The two-word noun phrase, e.g. "red circle".
    pub fn phrase(&self) -> String {
        format!("{} {}", COLOURS[self.colour].0, SHAPES[self.shape])
    }
}

/// Every concept of a world with `colours × shapes` (colour-major order).
pub fn concepts(colours: usize, shapes: usize) -> Vec<Concept> {
    (0..colours)
        .flat_map(|colour| (0..shapes).map(move |shape| Concept { colour, shape }))
        .collect()
}

/// Every word of the broad vocabulary (colours and shapes in use).
pub fn broad_words(colours: usize, shapes: usize) -> Vec<&'static str> {
    COLOURS[..colours]
        .iter()
        .map(|c| c.0)
        .chain(SHAPES[..shapes].iter().copied())
        .collect()
}

/// Every word of the narrow vocabulary.
pub fn narrow_words() -> Vec<&'static str> {
    let mut w: Vec<&str> = PARTS.iter().flat_map(|p| p.split(' ')).collect();
    w.sort();
    w.dedup();
    w
}
