//! Every example in `examples/` runs on the embedded sandbox with no
//! settings, exits 0, says what it did, and prints no secret.
//!
//! `cargo test` builds the examples before it runs the tests; this file runs
//! the built binaries from `target/<profile>/examples/`. (`cargo test --test
//! examples` alone does not rebuild them: `cargo build --examples` first.)

use std::path::PathBuf;
use std::process::Command;

use m2m::test_util::assert_no_secret;

/// The environment variables that would point an example at a real provider.
const REAL_SETTINGS: [&str; 5] = [
    "CENDA_CLIENT_SECRET",
    "NXTSOFT_CLIENT_SECRET",
    "NXTPORT_CLIENT_SECRET",
    "SEQUEL_CLIENT_SECRET",
    "APITURE_CLIENT_SECRET",
];

fn example_binary(name: &str) -> PathBuf {
    // target/<profile>/deps/examples-<hash> → target/<profile>/examples/<name>
    let test_binary = std::env::current_exe().expect("the test binary's path");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary sits in target/<profile>/deps");
    let binary = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} is missing: run the tests with `cargo test`, which builds the examples",
        binary.display()
    );
    binary
}

/// Runs example `name` on the sandbox and returns what it printed.
fn run_example(name: &str) -> String {
    let mut command = Command::new(example_binary(name));
    for variable in REAL_SETTINGS {
        command.env_remove(variable);
    }
    let output = command.output().expect("the example runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        output.status.success(),
        "example {name} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert_no_secret(&format!("{name}'s stdout"), &stdout);
    assert_no_secret(&format!("{name}'s stderr"), &stderr);
    assert!(
        stdout.contains("using the embedded sandbox"),
        "{name} did not say it used the sandbox:\n{stdout}"
    );
    stdout
}

#[test]
fn cenda_onboarding_follows_the_vendors_order_with_one_token() {
    let out = run_example("cenda_onboarding");
    let steps = [
        "created organisation ",
        "validated: true",
        "created issuance template \"Employee Badge\"",
        "created verification template \"Employee Badge Check\"",
        "has 2 credential template(s)",
        "revoked credential ",
    ];
    let positions: Vec<usize> = steps
        .iter()
        .map(|step| {
            out.find(step)
                .unwrap_or_else(|| panic!("no {step:?} in:\n{out}"))
        })
        .collect();
    assert!(positions.is_sorted(), "out of the vendor's order:\n{out}");
    assert!(
        out.contains("the sandbox saw 1 token request(s), 0 discovery fetch(es) and 6 API call(s)"),
        "{out}"
    );
}

#[test]
fn nxtsoft_validation_posts_two_messages_with_one_token() {
    let out = run_example("nxtsoft_validation");
    assert_eq!(out.matches("validation message ").count(), 2, "{out}");
    assert!(
        out.contains("the sandbox saw 1 token request(s), 0 discovery fetch(es) and 2 API call(s)"),
        "{out}"
    );
}

#[test]
fn nxtport_asks_for_its_own_default_scope_and_reuses_the_token() {
    let out = run_example("nxtport");
    assert!(
        out.contains(&format!(
            "scope: {}",
            m2m::sandbox::demo::NXTPORT_ENTRA_SCOPE
        )),
        "{out}"
    );
    assert_eq!(out.matches("sensitive: true").count(), 3, "{out}");
    assert!(
        out.contains("the sandbox saw 1 token request(s), 0 discovery fetch(es) and 0 API call(s)"),
        "{out}"
    );
}

#[test]
fn sequel_reuses_its_token_and_calls_cenda() {
    let out = run_example("sequel");
    assert!(out.contains("the same token, from the cache"), "{out}");
    assert!(out.contains("listOrganisations: "), "{out}");
    assert!(
        out.contains("the sandbox saw 1 token request(s), 0 discovery fetch(es) and 1 API call(s)"),
        "{out}"
    );
}

#[test]
fn apiture_discovers_its_endpoint_and_sends_basic_and_body() {
    let out = run_example("apiture");
    assert!(
        out.contains("client authentication: ClientSecretBasicAndPost"),
        "{out}"
    );
    assert!(out.contains("validation message: "), "{out}");
    assert!(
        out.contains("the sandbox saw 1 token request(s), 1 discovery fetch(es) and 1 API call(s)"),
        "{out}"
    );
}
