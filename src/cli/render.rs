//! `vanctl render` and `vanctl verify-qr`.
//!
//! `render` writes sample documents (PDF, preview PNG, printer bitmaps) so a person can look at
//! them; samples are signed with the public test seed, never with the van's key, and marked as
//! specimens. `verify-qr` checks a document QR given as text or as a photo (PNG or JPEG) against a
//! public key, and calls a code signed with the public test key a SPECIMEN.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use ed25519_dalek::VerifyingKey;

use crate::config::Config;
use crate::keys::VanKey;
use crate::render::Digits;
use crate::render::documents::{DocOptions, RollPrinter};
use crate::render::output::{DocKind, PrinterOutput, pdf_of, printer_output, sample_scenes};
use crate::render::qr::QrPayload;
use crate::render::raster::{self, bitmap1_png};
use crate::render::scan::{self, ScanError};

/// Seed of the public test key that signs sample documents (documented in docs/qr-payload.md).
pub const SAMPLE_SEED: [u8; 32] = [0x42; 32];

/// Arguments of `vanctl render`.
#[derive(Debug, clap::Args)]
pub struct RenderArgs {
    /// Document to render (`all`, driving-licence-front, driving-licence-back, vehicle-licence,
    /// sticker, receipt-a4, receipt-a6, receipt-80mm, shift-report).
    pub document: String,
    /// Use the built-in Arabic sample data (the only source `vanctl` has; vand renders real records).
    #[arg(long)]
    pub sample: bool,
    /// Output folder (created if missing).
    #[arg(long, default_value = "render-out")]
    pub out: PathBuf,
    /// Print dates and amounts with Eastern Arabic digits (٠١٢٣…).
    #[arg(long)]
    pub eastern_digits: bool,
}

/// Arguments of `vanctl verify-qr`.
#[derive(Debug, clap::Args)]
pub struct VerifyQrArgs {
    /// The QR text (`MTU1:…`); or give --image.
    pub payload: Option<String>,
    /// A photo or scan of the QR code, PNG or JPEG.
    #[arg(long, visible_alias = "png", conflicts_with = "payload")]
    pub image: Option<PathBuf>,
    /// Van public key, 64 hex digits. Default: the public half of the configured key file.
    #[arg(long)]
    pub public_key: Option<String>,
}

fn write(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}

/// Renders one document into `out`; returns the files written.
fn render_one(
    kind: DocKind,
    out: &Path,
    key: &VanKey,
    config: &Config,
    opts: DocOptions,
) -> anyhow::Result<Vec<PathBuf>> {
    let name = kind.name();
    let mut issuer = crate::render::documents::sample::issuer();
    issuer.van_id.clone_from(&config.van.id);
    if !config.van.unit_name_ar.is_empty() {
        issuer.unit_ar.clone_from(&config.van.unit_name_ar);
    }
    let scenes = sample_scenes(kind, key, &issuer, opts).with_context(|| format!("rendering {name}"))?;
    let mut files = Vec::new();
    let pdf_path = out.join(format!("{name}.pdf"));
    let creator = concat!("vanctl render (mtu ", env!("CARGO_PKG_VERSION"), ")");
    write(&pdf_path, &pdf_of(kind, &scenes, creator, jiff::Timestamp::now())?)?;
    files.push(pdf_path);
    let dpi = kind.preview_dpi(&opts);
    for (i, scene) in scenes.iter().enumerate() {
        let suffix = if scenes.len() > 1 { format!("-p{}", i + 1) } else { String::new() };
        let p = out.join(format!("{name}{suffix}.png"));
        write(&p, &raster::preview_png(scene, dpi)?)?;
        files.push(p);
    }
    match printer_output(kind, &scenes, &opts)? {
        PrinterOutput::Card(panels) => {
            let p = out.join(format!("{name}.k.png"));
            write(&p, &bitmap1_png(&panels.k)?)?;
            files.push(p);
            for (plane, data) in [("y", &panels.y), ("m", &panels.m), ("c", &panels.c)] {
                let p = out.join(format!("{name}.{plane}.raw"));
                write(&p, &data.data)?;
                files.push(p);
            }
        }
        PrinterOutput::Mono(bitmap) => {
            let p = out.join(format!("{name}.1bit.png"));
            write(&p, &bitmap1_png(&bitmap)?)?;
            files.push(p);
        }
        PrinterOutput::None => {}
    }
    Ok(files)
}

/// Runs `vanctl render`.
pub fn run_render(args: &RenderArgs, config: &Config) -> anyhow::Result<()> {
    if !args.sample {
        bail!(
            "vanctl render needs --sample: documents for real records are rendered by vand from the journal"
        );
    }
    let kinds: Vec<DocKind> = if args.document == "all" {
        DocKind::ALL.to_vec()
    } else {
        match DocKind::from_name(&args.document) {
            Some(k) => vec![k],
            None => {
                let names: Vec<&str> = DocKind::ALL.iter().map(|k| k.name()).collect();
                bail!("unknown document {:?}; known: all, {}", args.document, names.join(", "));
            }
        }
    };
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let key = VanKey::from_seed(&SAMPLE_SEED);
    let opts = doc_options(config, if args.eastern_digits { Digits::Eastern } else { Digits::Western });
    for kind in kinds {
        for f in render_one(kind, &args.out, &key, config, opts)? {
            println!("{}", f.display());
        }
    }
    println!(
        "samples are signed with the public test key {} (seed 42×32; see docs/qr-payload.md)",
        hex::encode(key.verifying_key().as_bytes())
    );
    Ok(())
}

/// The document options the configuration gives (printer resolutions and widths).
pub fn doc_options(config: &Config, digits: Digits) -> DocOptions {
    let d = &config.documents;
    DocOptions {
        digits,
        specimen: false,
        sticker_dpi: d.sticker_dpi,
        roll: RollPrinter { dpi: d.roll_dpi, width_dots: d.roll_width_dots },
    }
}

/// Finds and decodes the first QR code in a PNG or JPEG image.
pub fn qr_text_from_image(bytes: &[u8]) -> Result<String, ScanError> {
    scan::qr_text_from_image(bytes)
}

/// Runs `vanctl verify-qr`.
pub fn run_verify_qr(args: &VerifyQrArgs, config: &Config) -> anyhow::Result<()> {
    let text = match (&args.payload, &args.image) {
        (Some(t), None) => t.clone(),
        (None, Some(p)) => {
            let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
            qr_text_from_image(&bytes).with_context(|| p.display().to_string())?
        }
        _ => bail!("give the QR text or --image FILE"),
    };
    let key = match &args.public_key {
        Some(h) => {
            let raw = hex::decode(h.trim()).context("--public-key is not hex")?;
            let arr: [u8; 32] = raw
                .as_slice()
                .try_into()
                .map_err(|_| anyhow::anyhow!("--public-key must be 32 bytes (64 hex digits)"))?;
            VerifyingKey::from_bytes(&arr).context("--public-key is not an Ed25519 public key")?
        }
        None => VanKey::load(&config.paths.key_path())?.verifying_key(),
    };
    let (payload, sig, body) = QrPayload::parse(&text).context("QR payload")?;
    println!("document:     {}", payload.doc_type.name());
    println!("van:          {}", payload.van_id);
    println!("journal seq:  {}", payload.journal_seq);
    println!("key id:       {}", hex::encode(payload.key_id));
    println!("key field:    {}", payload.key_field);
    println!("expiry:       {}", payload.expiry.map_or("none".to_owned(), |d| d.to_string()));
    println!("record hash:  {}", hex::encode(payload.short_hash));
    match payload.verify(&body, &sig, &key) {
        Ok(()) if payload.is_specimen() => {
            println!("SPECIMEN: signed with the public test key (docs/qr-payload.md); not a real document");
            bail!("QR code is a SPECIMEN (signed with the public test key), not a real document")
        }
        Ok(()) => {
            println!("VALID: signed by key {}", hex::encode(payload.key_id));
            Ok(())
        }
        Err(e) => {
            println!("INVALID: {e}");
            bail!("QR code is not valid: {e}")
        }
    }
}
