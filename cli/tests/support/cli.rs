//! Running the built `m2m` command in tests, and the loopback servers it
//! talks to. Included by the command-line test crates with
//! `#[path = "support/cli.rs"] mod cli;`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

/// The command under test.
pub const M2M: &str = env!("CARGO_BIN_EXE_m2m");

/// The client secret the loopback token servers expect.
pub const SECRET: &str = "cli-test-secret-9c41e7";
/// The access token the loopback token servers hand out (opaque).
pub const TOKEN: &str = "cli-test-access-token-51f0a2d8c3";
/// The variable the tests put the secret in.
pub const SECRET_VAR: &str = "M2M_TEST_CLI_SECRET";

/// What a run of the command printed and how it ended.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The one `m2m: error:` line, after checking it is the only line.
    pub fn error_line(&self) -> &str {
        let trimmed = self.stderr.trim_end();
        assert_eq!(
            trimmed.lines().count(),
            1,
            "expected one line on stderr, got:\n{}",
            self.stderr
        );
        assert!(
            trimmed.starts_with("m2m: error: "),
            "expected an error line, got:\n{}",
            self.stderr
        );
        assert!(!trimmed.contains("error: error:"), "{trimmed}");
        trimmed
    }

    /// Both streams, for "never prints X" checks.
    pub fn output(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `m2m args` with `env` (and nothing of the caller's m2m settings),
/// `stdin` as standard input.
pub fn m2m_stdin(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Run {
    let mut command = Command::new(M2M);
    command
        .args(args)
        .current_dir(env!("CARGO_TARGET_TMPDIR"))
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for name in [
        "M2M_CONFIG",
        "M2M_CACHE_DIR",
        "M2M_CACHE_KEY",
        "RUST_LOG",
        "NO_COLOR",
    ] {
        command.env_remove(name);
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("the m2m binary runs");
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `m2m args` with `env`.
pub fn m2m(args: &[&str], env: &[(&str, &str)]) -> Run {
    m2m_stdin(args, env, None)
}

/// Runs `m2m args` with the test secret in [`SECRET_VAR`], off the async
/// runtime (the loopback servers run on it).
pub async fn run(args: Vec<String>) -> Run {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        m2m(&args, &[(SECRET_VAR, SECRET)])
    })
    .await
    .unwrap()
}

/// `["a", "b"]` as owned strings.
pub fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// A fresh directory under the target's temporary directory.
pub fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "cli-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A token endpoint at `/token` that hands out [`TOKEN`] after `delay`.
pub async fn token_server(delay: Duration) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/token"))
        .respond_with(ResponseTemplate::new(200).set_delay(delay).set_body_json(
            serde_json::json!({
                "access_token": TOKEN,
                "token_type": "Bearer",
                "expires_in": 3600
            }),
        ))
        .mount(&server)
        .await;
    server
}

/// How many requests `server` received at `path`.
pub async fn requests_to(server: &MockServer, at: &str) -> usize {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|request| request.url.path() == at)
        .count()
}

/// The flags that describe a custom client of `token_server` whose API is
/// `api_base_url`, with the secret from [`SECRET_VAR`].
pub fn client_flags(token_server: &MockServer, api_base_url: &str) -> Vec<String> {
    args(&[
        "--provider",
        "custom",
        "--token-url",
        &format!("{}/token", token_server.uri()),
        "--client-id",
        "cli-test-client",
        "--client-secret-env",
        SECRET_VAR,
        "--api-base-url",
        api_base_url,
    ])
}
