//! Build-script helper of [m2m](https://docs.rs/m2m): a typed client for
//! each of your own OpenAPI 3.0 documents, with m2m's auth hooks wired in
//! exactly as for the APIs m2m ships.
//!
//! ```ignore
//! // build.rs
//! fn main() {
//!     m2m_build::Generator::new().document("openapi/petstore.yaml").generate()
//! }
//! ```
//!
//! and, in the crate (`src/lib.rs` or `src/main.rs`), one module per
//! document, named after its file (`petstore-v2.yaml` → `petstore_v2`):
//!
//! ```ignore
//! m2m::include_apis!();
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = m2m::config::Config::load_default()?;
//! let petstore = petstore::Client::from_config(&config, "petstore")?;
//! # Ok(()) }
//! ```
//!
//! Each generated `Client` has `from_config` (base URL and token from a
//! client of `m2m.toml`, the token cache owned by the configuration),
//! `from_auth` (an [`Auth`](https://docs.rs/m2m/latest/m2m/auth/struct.Auth.html)
//! handle built by hand) and progenitor's builder interface; its calls
//! carry a token, renew it once on `401 invalid_token`, and keep to the
//! handle's time and size limits. The code names only the `m2m` crate (its
//! `__private` re-exports), so the crate needs no `serde`, `reqwest` or
//! `progenitor-client` dependency of its own.
//!
//! A document that cannot be used fails the build with one line naming the
//! file and the problem.

#![warn(missing_docs)]

mod document;
mod paths;
mod wiring;

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use progenitor::{GenerationSettings, HooksMode, InterfaceStyle, TagStyle};

pub use document::Document;

/// The file, in `OUT_DIR`, that declares one module per document;
/// `m2m::include_apis!()` includes it.
pub const INDEX_FILE: &str = "m2m-apis.rs";

/// Generates the clients of a set of OpenAPI documents into `OUT_DIR`.
#[derive(Debug, Clone, Default)]
pub struct Generator {
    documents: Vec<PathBuf>,
    directories: Vec<PathBuf>,
    out_dir: Option<PathBuf>,
}

/// What went wrong, naming the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The document (or directory) concerned.
    pub path: PathBuf,
    /// The problem, in one line.
    pub problem: String,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.problem)
    }
}

impl std::error::Error for Error {}

/// The extensions read as OpenAPI documents by [`Generator::documents_in`].
pub const DOCUMENT_EXTENSIONS: [&str; 3] = ["yaml", "yml", "json"];

impl Generator {
    /// A generator with no document yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one OpenAPI 3.0 document (YAML or JSON), relative to the crate.
    pub fn document(mut self, path: impl Into<PathBuf>) -> Self {
        self.documents.push(path.into());
        self
    }

    /// Adds every `*.yaml`, `*.yml` and `*.json` file of `dir`, in name order.
    pub fn documents_in(mut self, dir: impl Into<PathBuf>) -> Self {
        self.directories.push(dir.into());
        self
    }

    /// Writes into `dir` instead of `OUT_DIR` (tests of the generator).
    pub fn out_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out_dir = Some(dir.into());
        self
    }

    /// Generates every client, for a build script: a problem is reported
    /// to cargo as one `error:` line naming the document, and the build
    /// script exits with status 1.
    pub fn generate(self) {
        if let Err(error) = self.try_generate() {
            println!("cargo::error={}", error.to_string().replace('\n', " "));
            std::process::exit(1);
        }
    }

    /// Generates every client, returning the documents generated from.
    ///
    /// For each document `<name>.yaml`: `<name>.rs` (the module's body),
    /// `<name>.json` (the document as JSON, the module's `OPENAPI_JSON`),
    /// and [`INDEX_FILE`] declaring every module.
    pub fn try_generate(self) -> Result<Vec<Document>, Error> {
        let out_dir = match self.out_dir {
            Some(dir) => dir,
            None => std::env::var_os("OUT_DIR")
                .map(PathBuf::from)
                .ok_or_else(|| Error {
                    path: PathBuf::from("OUT_DIR"),
                    problem: "not set: call the generator from a build script".to_owned(),
                })?,
        };
        let mut paths = self.documents;
        for dir in &self.directories {
            println!("cargo::rerun-if-changed={}", dir.display());
            paths.extend(documents_in(dir)?);
        }
        let mut documents = Vec::new();
        let mut index = String::new();
        for path in paths {
            println!("cargo::rerun-if-changed={}", path.display());
            let document = Document::read(&path)?;
            let fail = |problem: String| Error {
                path: path.clone(),
                problem,
            };
            let code = client_code(&document).map_err(fail)?;
            write(
                &out_dir.join(format!("{}.rs", document.stem)),
                code.as_bytes(),
            )?;
            write(
                &out_dir.join(format!("{}.json", document.stem)),
                document.json.as_bytes(),
            )?;
            index.push_str(&wiring::index_entry(&document));
            documents.push(document);
        }
        write(&out_dir.join(INDEX_FILE), index.as_bytes())?;
        Ok(documents)
    }
}

/// The module body for `document`: progenitor's client with m2m's paths,
/// its hooks, `from_config`, `from_auth` and `OPENAPI_JSON`.
fn client_code(document: &Document) -> Result<String, String> {
    let mut settings = GenerationSettings::new();
    settings
        .with_interface(InterfaceStyle::Builder)
        .with_tag(TagStyle::Merged)
        .with_inner_type(quote::quote!(::m2m::auth::Auth))
        .with_hooks(HooksMode::Expected)
        .with_derive("schemars::JsonSchema");
    let tokens = catch_generator_panic(|| {
        progenitor::Generator::new(&settings).generate_tokens(&document.spec)
    })?
    .map_err(|e| format!("progenitor cannot generate a client: {e}"))?;
    let mut file = syn::parse2::<syn::File>(tokens)
        .map_err(|e| format!("generated code that does not parse: {e}"))?;
    paths::through_m2m(&mut file);
    wiring::new_follows_the_handle(&mut file)?;
    file.items.extend(wiring::items(document));
    Ok(prettyplease::unparse(&file))
}

fn documents_in(dir: &Path) -> Result<Vec<PathBuf>, Error> {
    let fail = |problem: String| Error {
        path: dir.to_owned(),
        problem,
    };
    let entries = fs::read_dir(dir).map_err(|e| fail(format!("cannot read the directory: {e}")))?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| fail(format!("cannot list the directory: {e}")))?
            .path();
        let is_document = path
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| DOCUMENT_EXTENSIONS.contains(&ext));
        if is_document && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
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

fn write(path: &Path, contents: &[u8]) -> Result<(), Error> {
    // Skip identical writes so that unchanged documents do not trigger rebuilds.
    if fs::read(path).is_ok_and(|old| old == contents) {
        return Ok(());
    }
    fs::write(path, contents).map_err(|e| Error {
        path: path.to_owned(),
        problem: format!("cannot write: {e}"),
    })
}
