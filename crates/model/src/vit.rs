//! The ViTDet image trunk (`backbone.vision_backbone.trunk`, reference `sam3/model/vitdet.py`).
//!
//! Patch embedding (no bias) → tiled absolute position embedding → `ln_pre` → blocks, each
//! `x += attn(norm1 x)` (window attention with zero padding bottom/right when the grid is not a
//! multiple of the window, or global attention) and `x += fc2(gelu(fc1(norm2 x)))` with the exact
//! erf GELU. Attention is a fused `qkv` Linear, 2-D axial RoPE on q and k, scaled dot-product
//! attention through [`attention_core`] (burn's fused kernel unless a head hook is set) and `proj`.
//! The trunk output is the output of the LAST global-attention block, channels-first.
//!
//! Hook layouts: `trunk.patch_embed`/`trunk.embed`/`trunk.ln_pre`/`trunk.blocks.{i}`/
//! `trunk.blocks.{i}.mlp.out` are `(B, g, g, C)`; the attention points `trunk.blocks.{i}.attn.{out,
//! head.{h}, attn_weights}` are in the attention's own layout — window blocks `(B·nW, w·w, C)` over the
//! zero-padded windows in row-major window order, global blocks `(B, g·g, C)`;
//! `trunk.blocks.{i}.attn.freqs_cis` is the RoPE table `(N, hd/2, 2)` = (cos, sin) (editing it
//! changes the rotation the block applies); `trunk.out` is `(B, C, g, g)`.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{Initializer, LayerNorm, LayerNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::gelu;
use sam3lab_hooks::Hooks;

use crate::config::VitConfig;
use crate::nn::{DropRate, HeadsInput, OutProjection, attention_core, drop_path_schedule};

#[derive(Module, Debug)]
pub struct PatchEmbed {
    pub proj: Conv2d,
}

/// `vitdet.Attention`: fused `qkv` (rows q | k | v, each head-major) and the output `proj`.
#[derive(Module, Debug)]
pub struct VitAttention {
    pub qkv: Linear,
    pub proj: Linear,
    pub num_heads: usize,
}

#[derive(Module, Debug)]
pub struct VitMlp {
    pub fc1: Linear,
    pub fc2: Linear,
}

#[derive(Module, Debug)]
pub struct VitBlock {
    pub norm1: LayerNorm,
    pub attn: VitAttention,
    pub norm2: LayerNorm,
    pub mlp: VitMlp,
    /// 0 = global attention.
    pub window_size: usize,
}

#[derive(Module, Debug)]
pub struct Vit {
    pub pos_embed: Option<Param<Tensor<3>>>,
    pub patch_embed: PatchEmbed,
    pub blocks: Vec<VitBlock>,
    pub ln_pre: Option<LayerNorm>,
    pub ln_post: Option<LayerNorm>,
    #[module(skip)]
    pub cfg: VitConfig,
}

fn ln(d: usize, eps: f64, device: &Device) -> LayerNorm {
    LayerNormConfig::new(d).with_epsilon(eps).init(device)
}

/// The configurations this port supports beyond `Sam3Config::validate` (the reference's other
/// ViT options are not used by SAM3).
pub fn check_supported(cfg: &VitConfig) -> Result<(), String> {
    let mut errs = Vec::new();
    if cfg.use_abs_pos && !cfg.tile_abs_pos {
        errs.push("vit.tile_abs_pos = false (bicubic interpolation of pos_embed) is not supported".to_string());
    }
    if cfg.retain_cls_token {
        errs.push("vit.retain_cls_token = true is not supported".into());
    }
    if cfg.global_att_blocks.is_empty() {
        errs.push("vit.global_att_blocks is empty: the trunk output is the last global block's".into());
    }
    if cfg.window_size == 0 && cfg.depth > cfg.global_att_blocks.len() {
        errs.push("vit.window_size = 0 with window blocks".into());
    }
    if errs.is_empty() { Ok(()) } else { Err(errs.join("; ")) }
}

impl Vit {
    pub fn new(cfg: &VitConfig, device: &Device) -> Self {
        let c = cfg.embed_dim;
        let hidden = (c as f64 * cfg.mlp_ratio) as usize;
        let eps = cfg.layer_norm_eps;
        let pos_embed = cfg.use_abs_pos.then(|| {
            let p = cfg.pretrain_img_size / cfg.patch_size;
            let n = p * p + usize::from(cfg.pretrain_use_cls_token);
            // reference: trunc_normal_(std=0.02)
            Initializer::Normal { mean: 0.0, std: 0.02 }.init([1, n, c], device)
        });
        let proj = Conv2dConfig::new([3, c], [cfg.patch_size, cfg.patch_size])
            .with_stride([cfg.patch_size, cfg.patch_size])
            .with_padding(PaddingConfig2d::Valid)
            .with_bias(cfg.bias_patch_embed)
            .init(device);
        let blocks = (0..cfg.depth)
            .map(|i| VitBlock {
                norm1: ln(c, eps, device),
                attn: VitAttention {
                    qkv: LinearConfig::new(c, 3 * c).with_bias(cfg.qkv_bias).init(device),
                    proj: LinearConfig::new(c, c).init(device),
                    num_heads: cfg.num_heads,
                },
                norm2: ln(c, eps, device),
                mlp: VitMlp { fc1: LinearConfig::new(c, hidden).init(device), fc2: LinearConfig::new(hidden, c).init(device) },
                window_size: if cfg.global_att_blocks.contains(&i) { 0 } else { cfg.window_size },
            })
            .collect();
        Self {
            pos_embed,
            patch_embed: PatchEmbed { proj },
            blocks,
            ln_pre: cfg.ln_pre.then(|| ln(c, eps, device)),
            ln_post: cfg.ln_post.then(|| ln(c, eps, device)),
            cfg: cfg.clone(),
        }
    }

    /// Index of the block whose output is the trunk output (the last listed global block).
    pub fn last_global_block(&self) -> usize {
        *self.cfg.global_att_blocks.last().expect("check_supported: global blocks")
    }

    /// `pixels` `(B, 3, S, S)` → trunk features `(B, C, g, g)`.
    pub fn forward(&self, pixels: Tensor<4>, hooks: &mut Hooks) -> Tensor<4> {
        self.forward_drop_path(pixels, 0.0, hooks)
    }

    /// [`Self::forward`] in train mode with stochastic depth: block `i` drops each residual branch
    /// (attention, MLP) per image with rate `drop_path_rate · i / (depth − 1)` (the reference's
    /// `torch.linspace(0, drop_path_rate, depth)`); only on an autodiff device, 0 = `forward`.
    pub fn forward_drop_path(&self, pixels: Tensor<4>, drop_path_rate: f64, hooks: &mut Hooks) -> Tensor<4> {
        let dpr = drop_path_schedule(drop_path_rate, self.blocks.len());
        let device = pixels.device();
        let x = self.patch_embed.proj.forward(pixels); // (B, C, gh, gw)
        let [b, c, gh, gw] = x.dims();
        let x = hooks.tap(|| point!("trunk.patch_embed"), x.permute([0, 2, 3, 1]));
        let x = match &self.pos_embed {
            Some(p) => x + self.abs_pos(p.val(), gh, gw),
            None => x,
        };
        let x = hooks.tap(|| point!("trunk.embed"), x);
        let x = match &self.ln_pre {
            Some(n) => n.forward(x),
            None => x,
        };
        let mut x = hooks.tap(|| point!("trunk.ln_pre"), x);

        let hd = c / self.cfg.num_heads;
        let ws = self.cfg.window_size;
        let scale_global = if self.cfg.use_interp_rope { ws as f32 / gh as f32 } else { 1.0 };
        let rope_window = (ws > 0).then(|| rope_table(hd, ws, ws, self.cfg.rope_theta, 1.0, &device));
        let rope_global = rope_table(hd, gw, gh, self.cfg.rope_theta, scale_global, &device);

        let last = self.last_global_block();
        let mut out = None;
        for (i, blk) in self.blocks.iter().enumerate() {
            // Blocks after the last global one do not feed the output; run them only for hooks.
            if i > last && !wants_block(hooks, i, self.cfg.num_heads) {
                break;
            }
            let rope = if blk.window_size > 0 { rope_window.clone().expect("window rope") } else { rope_global.clone() };
            x = blk.forward(i, x, rope, b, DropRate::new(dpr[i]), hooks);
            if i == last {
                let y = match &self.ln_post {
                    Some(n) => n.forward(x.clone()),
                    None => x.clone(),
                };
                out = Some(y.permute([0, 3, 1, 2]));
            }
        }
        hooks.tap(|| point!("trunk.out"), out.expect("last global block ran"))
    }

    /// Tiled absolute position embedding `(1, gh, gw, C)` (cls slot dropped, `P×P` tiled then cropped).
    fn abs_pos(&self, pos: Tensor<3>, gh: usize, gw: usize) -> Tensor<4> {
        let [_, n, c] = pos.dims();
        let skip = usize::from(self.cfg.pretrain_use_cls_token);
        let p = ((n - skip) as f64).sqrt().round() as usize;
        let grid = pos.slice([0..1, skip..n]).reshape([1, p, p, c]);
        if p == gh && p == gw {
            return grid;
        }
        let (ry, rx) = (gh / p + 1, gw / p + 1);
        grid.repeat_dim(1, ry).repeat_dim(2, rx).slice([0..1, 0..gh, 0..gw])
    }
}

/// Does any entry want a point of block `i` (its names come from the hook table)?
fn wants_block(hooks: &Hooks, i: usize, heads: usize) -> bool {
    hooks.is_active() && crate::points::block_points("trunk.blocks.", i, heads).any(|n| hooks.wants(&n))
}

impl VitBlock {
    /// `x` `(B, H, W, C)` → `(B, H, W, C)`; `rope` is the `(N, hd/2, 2)` table of this block;
    /// `drop_path` the block's train-mode stochastic depth on both residual branches (reference
    /// `x = shortcut + drop_path(attn)`, `x = x + drop_path(mlp)`), after their `.out` taps.
    pub fn forward(&self, i: usize, x: Tensor<4>, rope: Tensor<3>, b: usize, drop_path: DropRate, hooks: &mut Hooks) -> Tensor<4> {
        let [_, h, w, c] = x.dims();
        let name = if hooks.is_active() { point!(prefix "trunk.blocks.{i}.attn", i) } else { String::new() };
        let rope = hooks.tap(|| point!("trunk.blocks.{i}.attn.freqs_cis", i), rope);
        let y = self.norm1.forward(x.clone());
        let y = if self.window_size > 0 {
            let ws = self.window_size;
            let (win, (hp, wp)) = window_partition(y, ws);
            let o = self.attn.forward(&name, win, rope, hooks);
            window_unpartition(o, ws, (hp, wp), (h, w), b)
        } else {
            self.attn.forward(&name, y.reshape([b, h * w, c]), rope, hooks).reshape([b, h, w, c])
        };
        let x = x + drop_path.path(y);
        let m = self.mlp.fc2.forward(gelu_rows_parallel(self.mlp.fc1.forward(self.norm2.forward(x.clone()))));
        let m = hooks.tap(|| point!("trunk.blocks.{i}.mlp.out", i), m);
        hooks.tap(|| point!("trunk.blocks.{i}", i), x + drop_path.path(m))
    }
}

/// Exact (erf) GELU. flex evaluates it serially element by element, which is a visible share of a
/// full-size forward; for large CPU inference tensors the rows are split over the CPU threads
/// (same values: the element-wise function is unchanged).
fn gelu_rows_parallel<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let threads = crate::device::cpu_threads();
    let dims = x.dims();
    let n: usize = dims.iter().product();
    let device = x.device();
    if threads < 2 || n < (1 << 20) || device != Device::flex() || device.is_autodiff() {
        return gelu(x);
    }
    let cols = dims[D - 1];
    let rows = n / cols;
    let x2 = x.reshape([rows, cols]);
    let per = rows.div_ceil(threads);
    let parts: Vec<Tensor<2>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| (t * per, ((t + 1) * per).min(rows)))
            .filter(|(r0, r1)| r0 < r1)
            .map(|(r0, r1)| {
                let part = x2.clone().slice([r0..r1]);
                s.spawn(move || gelu(part))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("gelu worker")).collect()
    });
    Tensor::cat(parts, 0).reshape(dims)
}

impl VitAttention {
    /// `x` `(B', N, C)` → `(B', N, C)`, RoPE table `(N, hd/2, 2)`.
    pub fn forward(&self, name: &str, x: Tensor<3>, rope: Tensor<3>, hooks: &mut Hooks) -> Tensor<3> {
        let [bw, n, c] = x.dims();
        let h = self.num_heads;
        let hd = c / h;
        let half = hd / 2;
        // (B', N, 3C) → (3, B', H, N, hd): q, k, v are contiguous blocks of the permuted view.
        let qkv = self.qkv.forward(x).reshape([bw, n, 3, h, hd]).permute([2, 0, 3, 1, 4]);
        // RoPE on q and k together (one copy out of the view, three elementwise passes).
        let qk = qkv.clone().slice([0..2]).reshape([2, bw, h, n, half, 2]);
        let (cos, sin) = rope_factors(rope, n, half);
        let qk = apply_rope(qk, &cos, &sin).reshape([2, bw, h, n, hd]);
        let q = qk.clone().slice([0..1]).reshape([bw, h, n, hd]);
        let k = qk.slice([1..2]).reshape([bw, h, n, hd]);
        let v = qkv.slice([2..3]).reshape([bw, h, n, hd]);
        let out = OutProjection { weight: self.proj.weight.val(), bias: self.proj.bias.as_ref().map(|b| b.val()) };
        attention_core(name, HeadsInput::new(q, k, v), &out, hooks)
    }
}

/// From the `(N, hd/2, 2)` = (cos, sin) table, the factors `(1,1,1,N,hd/2,2)` of
/// `out = x·[cos, cos] + swap(x)·[−sin, sin]` per channel pair.
fn rope_factors(rope: Tensor<3>, n: usize, half: usize) -> (Tensor<6>, Tensor<6>) {
    let cos = rope.clone().slice([0..n, 0..half, 0..1]);
    let sin = rope.slice([0..n, 0..half, 1..2]);
    let cos2 = Tensor::cat(vec![cos.clone(), cos], 2).reshape([1, 1, 1, n, half, 2]);
    let sin2 = Tensor::cat(vec![sin.clone().neg(), sin], 2).reshape([1, 1, 1, n, half, 2]);
    (cos2, sin2)
}

/// Rotate channel pairs `(a, b)` = `(x[2j], x[2j+1])` as complex numbers by the table's angles
/// (`view_as_complex(x) * freqs_cis`): re = a·cos − b·sin, im = b·cos + a·sin. `x` is
/// `(…, N, hd/2, 2)`; the pair swap is a zero-copy flip of the last axis.
fn apply_rope(x: Tensor<6>, cos: &Tensor<6>, sin: &Tensor<6>) -> Tensor<6> {
    let swapped = x.clone().flip([5]);
    x * cos.clone() + swapped * sin.clone()
}

/// The reference `compute_axial_cis` as a real table `(N, hd/2, 2)` = (cos, sin), N = end_x·end_y,
/// token t at column `t % end_x`, row `t / end_x`; the first hd/4 pairs rotate by x, the rest by y.
/// Computed in f32 like the reference.
pub fn rope_table_data(head_dim: usize, end_x: usize, end_y: usize, theta: f64, scale: f32) -> Vec<f32> {
    let q = head_dim / 4;
    let theta = theta as f32;
    let freqs: Vec<f32> = (0..q).map(|k| 1.0f32 / theta.powf((4 * k) as f32 / head_dim as f32)).collect();
    let n = end_x * end_y;
    let mut out = Vec::with_capacity(n * 2 * q * 2);
    for t in 0..n {
        let tx = (t % end_x) as f32 * scale;
        let ty = (t / end_x) as f32 * scale;
        for (pos, f) in [(tx, &freqs), (ty, &freqs)] {
            for &fk in f.iter() {
                let a = pos * fk;
                out.push(a.cos());
                out.push(a.sin());
            }
        }
    }
    out
}

pub fn rope_table(head_dim: usize, end_x: usize, end_y: usize, theta: f64, scale: f32, device: &Device) -> Tensor<3> {
    let n = end_x * end_y;
    let data = rope_table_data(head_dim, end_x, end_y, theta, scale);
    Tensor::from_data(TensorData::new(data, [n, head_dim / 2, 2]), device)
}

/// `(B, H, W, C)` → `(B·nW, w·w, C)` windows in row-major window order, zero-padding the grid
/// bottom/right to a multiple of `w`. Returns the padded size.
pub fn window_partition(x: Tensor<4>, w: usize) -> (Tensor<3>, (usize, usize)) {
    let [b, h, wd, c] = x.dims();
    let (ph, pw) = ((w - h % w) % w, (w - wd % w) % w);
    let dev = x.device();
    let x = if pw > 0 { Tensor::cat(vec![x, Tensor::zeros([b, h, pw, c], &dev)], 2) } else { x };
    let x = if ph > 0 { Tensor::cat(vec![x, Tensor::zeros([b, ph, wd + pw, c], &dev)], 1) } else { x };
    let (hp, wp) = (h + ph, wd + pw);
    let win = x
        .reshape([b, hp / w, w, wp / w, w, c])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([b * (hp / w) * (wp / w), w * w, c]);
    (win, (hp, wp))
}

/// Inverse of [`window_partition`]: `(B·nW, w·w, C)` → `(B, H, W, C)` (padding cropped).
pub fn window_unpartition(win: Tensor<3>, w: usize, (hp, wp): (usize, usize), (h, wd): (usize, usize), b: usize) -> Tensor<4> {
    let c = win.dims()[2];
    let x = win
        .reshape([b, hp / w, wp / w, w, w, c])
        .permute([0, 1, 3, 2, 4, 5])
        .reshape([b, hp, wp, c]);
    if hp > h || wp > wd { x.slice([0..b, 0..h, 0..wd]) } else { x }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t4(v: Vec<f32>, s: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(v, s), &Device::flex())
    }

    /// Partition then unpartition is the identity on a grid that needs padding (3×3, window 2),
    /// and window 0 holds the top-left 2×2 patch in row-major order.
    #[test]
    fn window_round_trip_with_padding() {
        let v: Vec<f32> = (0..9).map(|i| i as f32).collect();
        let x = t4(v.clone(), [1, 3, 3, 1]);
        let (win, pad) = window_partition(x, 2);
        assert_eq!(win.dims(), [4, 4, 1]);
        assert_eq!(pad, (4, 4));
        let w0 = win.clone().slice([0..1]).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(w0, vec![0., 1., 3., 4.]);
        // last window = bottom-right: [8, pad, pad, pad]
        let w3 = win.clone().slice([3..4]).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(w3, vec![8., 0., 0., 0.]);
        let back = window_unpartition(win, 2, pad, (3, 3), 1);
        assert_eq!(back.into_data().try_to_vec::<f32>().unwrap(), v);
    }

    /// Hand-derived RoPE table: hd=8 → 2 freqs per axis, f = [1, θ^-0.5]; token 3 of a 2×2 grid is
    /// (x=1, y=1).
    #[test]
    fn rope_table_by_hand() {
        let t = rope_table_data(8, 2, 2, 100.0, 1.0);
        assert_eq!(t.len(), 4 * 4 * 2);
        let tok3 = &t[3 * 8..4 * 8];
        let ang = [1.0f32, 0.1, 1.0, 0.1]; // x·f0, x·f1, y·f0, y·f1
        for (j, a) in ang.iter().enumerate() {
            assert!((tok3[2 * j] - a.cos()).abs() < 1e-6 && (tok3[2 * j + 1] - a.sin()).abs() < 1e-6, "{tok3:?}");
        }
        // token 1 = (x=1, y=0): y pairs unrotated
        assert_eq!(&t[8 + 4..8 + 8], &[1.0, 0.0, 1.0, 0.0]);
    }

    /// The row-split GELU gives exactly the serial GELU's values (large enough to take the split).
    #[test]
    fn parallel_gelu_equals_gelu() {
        let dev = Device::flex();
        let x = Tensor::<3>::random([3, 401, 1000], burn::tensor::Distribution::Normal(0.0, 2.0), &dev);
        let a = gelu_rows_parallel(x.clone()).into_data().try_to_vec::<f32>().unwrap();
        let b = gelu(x).into_data().try_to_vec::<f32>().unwrap();
        assert!(a == b, "row-split GELU differs");
    }

    /// RoPE on a single pair equals the complex product.
    #[test]
    fn rope_rotates_pairs() {
        let dev = Device::flex();
        let x = Tensor::<6>::from_data(TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [1, 1, 1, 1, 2, 2]), &dev);
        let table = Tensor::<3>::from_data(
            TensorData::new(vec![0.0f32.cos(), 0.0f32.sin(), 1.0f32.cos(), 1.0f32.sin()], [1, 2, 2]),
            &dev,
        );
        let (cos, sin) = rope_factors(table, 1, 2);
        let y = apply_rope(x, &cos, &sin).into_data().try_to_vec::<f32>().unwrap();
        let (c, s) = (1.0f32.cos(), 1.0f32.sin());
        let want = [1.0, 2.0, 3.0 * c - 4.0 * s, 3.0 * s + 4.0 * c];
        for (a, b) in y.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{y:?}");
        }
    }
}
