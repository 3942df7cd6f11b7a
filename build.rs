//! Generates the typed client of every OpenAPI document in `openapi/`,
//! through m2m-build, the helper a service uses for its own documents.
//!
//! It also tells the build scripts of crates that depend on m2m (the CLI's)
//! where the generated code is and which APIs there are
//! (`DEP_M2M_GENERATED`, `DEP_M2M_APIS`).

fn main() {
    let documents = m2m_build::Generator::new()
        .documents_in("openapi")
        .try_generate()
        .unwrap_or_else(|error| {
            println!("cargo::error={}", error.to_string().replace('\n', " "));
            std::process::exit(1)
        });
    let out_dir = std::env::var("OUT_DIR").unwrap_or_default();
    let stems: Vec<&str> = documents.iter().map(|d| d.stem.as_str()).collect();
    println!("cargo::metadata=generated={out_dir}");
    println!("cargo::metadata=apis={}", stems.join(","));
}
