//! The layering that docs/architecture.md draws holds in the manifests: every workspace crate is
//! in exactly one layer, every dependency between workspace crates (normal, build or dev) points
//! to a lower layer, and the user-interface crates (`indicatif`, `clap`) are dependencies of the
//! front ends (the top layer) only. Read from `cargo metadata --no-deps`, so nothing is built.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// crate name (without `sam3lab-`) → layer, from the block between the `layers` markers.
fn documented_layers() -> BTreeMap<String, u32> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let start = doc.find("<!-- layers").expect("docs/architecture.md: no `<!-- layers` marker");
    let end = doc.find("<!-- /layers -->").expect("docs/architecture.md: no `<!-- /layers -->` marker");
    let mut layers = BTreeMap::new();
    for line in doc[start..end].lines().filter_map(|l| l.strip_prefix("layer ")) {
        let (n, rest) = line.split_once(':').unwrap_or_else(|| panic!("`layer {line}`: expected `layer N: a, b — …`"));
        let n: u32 = n.trim().parse().unwrap_or_else(|_| panic!("`layer {line}`: `{n}` is not a number"));
        let names = rest.split('—').next().unwrap();
        for name in names.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            assert!(layers.insert(name.to_string(), n).is_none(), "`{name}` is in two layers of docs/architecture.md");
        }
    }
    assert!(!layers.is_empty(), "docs/architecture.md: no `layer N: …` lines between the markers");
    layers
}

struct Package {
    name: String,
    /// (dependency name, kind: "normal" / "dev" / "build")
    deps: Vec<(String, String)>,
}

fn workspace() -> Vec<Package> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(root())
        .output()
        .expect("run cargo metadata");
    assert!(out.status.success(), "cargo metadata: {}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    m["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Package {
            name: p["name"].as_str().unwrap().to_string(),
            deps: p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| (d["name"].as_str().unwrap().to_string(), d["kind"].as_str().unwrap_or("normal").to_string()))
                .collect(),
        })
        .collect()
}

fn short(name: &str) -> &str {
    name.strip_prefix("sam3lab-").unwrap_or(name)
}

#[test]
fn no_crate_depends_on_one_in_its_own_or_a_higher_layer() {
    let layers = documented_layers();
    let packages = workspace();
    let names: Vec<&str> = packages.iter().map(|p| short(&p.name)).collect();
    for n in &names {
        assert!(layers.contains_key(*n), "crate `{n}` is in no layer of docs/architecture.md; add it to the table");
    }
    for n in layers.keys() {
        assert!(names.contains(&n.as_str()), "docs/architecture.md names `{n}`, which is not a workspace crate");
    }
    let mut wrong = vec![];
    for p in &packages {
        let from = short(&p.name);
        for (dep, kind) in &p.deps {
            let Some(&to) = layers.get(short(dep)).filter(|_| dep.starts_with("sam3lab-")) else { continue };
            if to >= layers[from] {
                wrong.push(format!("{from} (layer {}) → {} (layer {to}, {kind})", layers[from], short(dep)));
            }
        }
    }
    assert!(wrong.is_empty(), "dependencies that do not point down (docs/architecture.md):\n{}", wrong.join("\n"));
}

/// Library crates still taking a UI type, each with what is left to do; an entry must be removed
/// when its dependency goes (the test fails while a listed one is gone).
const NOT_YET: &[(&str, &str, &str)] = &[];

#[test]
fn only_the_front_ends_depend_on_user_interface_crates() {
    let layers = documented_layers();
    let top = *layers.values().max().unwrap();
    let mut wrong = vec![];
    let mut seen = vec![];
    for p in workspace() {
        if layers.get(short(&p.name)) == Some(&top) {
            continue;
        }
        for (dep, kind) in &p.deps {
            if ["indicatif", "clap"].contains(&dep.as_str()) {
                if NOT_YET.iter().any(|(c, d, _)| *c == short(&p.name) && d == dep) {
                    seen.push((short(&p.name).to_string(), dep.clone()));
                } else {
                    wrong.push(format!("{} → {dep} ({kind})", short(&p.name)));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "library crates depending on user-interface crates:\n{}", wrong.join("\n"));
    for (c, d, _) in NOT_YET {
        assert!(
            seen.iter().any(|(sc, sd)| sc == c && sd == d),
            "`{c}` no longer depends on `{d}`: remove its NOT_YET entry in crates/cli/tests/layering.rs"
        );
    }
}
