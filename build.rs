//! Generates one typed API client per OpenAPI document in `openapi/`.
//!
//! For every `openapi/<name>.{yaml,yml,json}` this writes, into `OUT_DIR`:
//! - `<name>.rs`: the progenitor client (builder interface, [`Auth`] as the
//!   inner type, hooks that the crate must implement, `JsonSchema` derived);
//! - `<name>-dispatch.rs`: `m2m call`'s way into that client: for each
//!   operation, its builder with every parameter and the body typed as the
//!   builder takes them, so the request is the one the typed client sends;
//! - `<name>.json`: the same document as JSON, so runtime code (the sandbox,
//!   `m2m call --list`) reads the spec without a YAML parser.
//!
//! A document that cannot be used fails the build with one line naming the
//! file and the problem, never with a bare panic from the generator.
//!
//! [`Auth`]: crate::auth::Auth

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use progenitor::{GenerationSettings, Generator, HooksMode, InterfaceStyle, TagStyle};

#[path = "build/dispatch.rs"]
mod dispatch;

const SPEC_DIR: &str = "openapi";
const SPEC_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

fn main() -> ExitCode {
    println!("cargo::rerun-if-changed={SPEC_DIR}");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let specs = match spec_files(Path::new(SPEC_DIR)) {
        Ok(specs) => specs,
        Err(problem) => return fail(Path::new(SPEC_DIR), &problem),
    };
    for spec in specs {
        println!("cargo::rerun-if-changed={}", spec.display());
        if let Err(problem) = generate(&spec, &out_dir) {
            return fail(&spec, &problem);
        }
    }
    ExitCode::SUCCESS
}

fn fail(path: &Path, problem: &str) -> ExitCode {
    // One line, naming the file: cargo shows it as `error: …` under the build
    // script's name.
    let line = format!("{}: {}", path.display(), problem.replace('\n', " "));
    println!("cargo::error={line}");
    ExitCode::FAILURE
}

fn spec_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = fs::read_dir(dir).map_err(|e| format!("cannot read the directory: {e}"))?;
    let mut specs = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("cannot list the directory: {e}"))?
            .path();
        let is_spec = path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| SPEC_EXTENSIONS.contains(&ext));
        if is_spec && path.is_file() {
            specs.push(path);
        }
    }
    specs.sort();
    Ok(specs)
}

fn generate(spec_path: &Path, out_dir: &Path) -> Result<(), String> {
    let stem = spec_path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or("the file name is not valid UTF-8")?;
    let text = fs::read_to_string(spec_path).map_err(|e| format!("cannot read: {e}"))?;
    let value: serde_json::Value = if spec_path.extension().is_some_and(|ext| ext == "json") {
        serde_json::from_str(&text).map_err(|e| format!("invalid JSON: {e}"))?
    } else {
        serde_norway::from_str(&text).map_err(|e| format!("invalid YAML: {e}"))?
    };
    let version = value.get("openapi").and_then(|v| v.as_str()).unwrap_or("");
    if !version.starts_with("3.0.") {
        return Err(format!(
            "OpenAPI version {version:?} is not supported: progenitor needs 3.0.x \
             (convert a 3.1 document down, or ask the vendor for a 3.0 export)"
        ));
    }
    let spec: openapiv3::OpenAPI = serde_json::from_value(value.clone())
        .map_err(|e| format!("not a valid OpenAPI 3.0 document: {e}"))?;

    let mut settings = GenerationSettings::new();
    settings
        .with_interface(InterfaceStyle::Builder)
        .with_tag(TagStyle::Merged)
        .with_inner_type("crate::auth::Auth".parse().expect("a valid Rust path"))
        .with_hooks(HooksMode::Expected)
        .with_derive("schemars::JsonSchema");

    let client = catch_generator_panic(|| Generator::new(&settings).generate_tokens(&spec))?
        .map_err(|e| format!("progenitor cannot generate a client: {e}"))?;
    let file = parse(client)?;
    let dispatch = dispatch::generate(&file)?;
    write(
        &out_dir.join(format!("{stem}.rs")),
        prettyplease::unparse(&file).as_bytes(),
    )?;
    write(
        &out_dir.join(format!("{stem}-dispatch.rs")),
        prettyplease::unparse(&parse(dispatch)?).as_bytes(),
    )?;
    let json = serde_json::to_vec(&value).map_err(|e| format!("cannot serialise: {e}"))?;
    write(&out_dir.join(format!("{stem}.json")), &json)
}

fn parse(tokens: proc_macro2::TokenStream) -> Result<syn::File, String> {
    syn::parse2::<syn::File>(tokens).map_err(|e| format!("generated code that does not parse: {e}"))
}

/// progenitor panics on some documents it does not support (two request
/// media types, two error schemas on one operation). Turn that into an error
/// that names the file, instead of a backtrace.
fn catch_generator_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    let default_hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    panic::set_hook(default_hook);
    result.map_err(|payload| {
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown reason");
        format!(
            "unsupported by progenitor ({message}); check for a request body with more than one \
             media type, or two different error schemas on one operation"
        )
    })
}

fn write(path: &Path, contents: &[u8]) -> Result<(), String> {
    // Skip identical writes so that unchanged specs do not trigger rebuilds.
    if fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    fs::write(path, contents).map_err(|e| format!("cannot write {}: {e}", path.display()))
}
