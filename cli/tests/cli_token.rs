//! `m2m token` and the rest of the command as a user runs it: the token
//! cache across runs (one token request, private encrypted files, one
//! fetch for concurrent processes), `--decode`, the output formats, the
//! token timeout message, completions, `config check`, `providers` and
//! `sandbox --write-config`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wiremock::MockServer;

#[path = "support/cli.rs"]
mod cli;

use cli::{SECRET, SECRET_VAR, TOKEN, args, m2m, requests_to, run, token_server};
use m2m::test_util::assert_no_secret;

/// `m2m token` flags for a custom client of `server`, caching in `dir`.
fn token_args(server: &MockServer, dir: &Path) -> Vec<String> {
    args(&[
        "token",
        "--provider",
        "custom",
        "--token-url",
        &format!("{}/token", server.uri()),
        "--client-id",
        "cli-test-client",
        "--client-secret-env",
        SECRET_VAR,
        "--cache-dir",
        dir.to_str().unwrap(),
    ])
}

fn summary(run: &cli::Run) -> serde_json::Value {
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    serde_json::from_str(&run.stdout).unwrap()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every file under `dir`: none may hold the secret or the token.
fn assert_files_hold_no_secret(dir: &Path) -> usize {
    let mut files = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
        assert!(
            !text.contains(SECRET),
            "{} holds the secret",
            path.display()
        );
        assert!(!text.contains(TOKEN), "{} holds the token", path.display());
        assert_no_secret(&path.display().to_string(), &text);
        #[cfg(unix)]
        assert_eq!(mode(&path), 0o600, "{}", path.display());
        files += 1;
    }
    files
}

#[tokio::test(flavor = "multi_thread")]
async fn two_runs_make_one_token_request_through_private_encrypted_files() {
    let server = token_server(Duration::ZERO).await;
    let dir = cli::tempdir("cache").join("tokens");

    let first = summary(&run(token_args(&server, &dir)).await);
    let second = summary(&run(token_args(&server, &dir)).await);
    assert_eq!(first["cached"], false);
    assert_eq!(second["cached"], true);
    assert_eq!(requests_to(&server, "/token").await, 1);
    #[cfg(unix)]
    assert_eq!(mode(&dir), 0o700);
    assert!(assert_files_hold_no_secret(&dir) >= 1);

    // The directory from M2M_CACHE_DIR, and from [cache] dir in m2m.toml.
    let mut by_env = token_args(&server, &dir);
    by_env.truncate(by_env.len() - 2);
    let dir_text = dir.to_str().unwrap().to_owned();
    let env_run = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = by_env.iter().map(String::as_str).collect();
        m2m(&args, &[(SECRET_VAR, SECRET), ("M2M_CACHE_DIR", &dir_text)])
    })
    .await
    .unwrap();
    assert_eq!(summary(&env_run)["cached"], true);
    let config = dir.parent().unwrap().join("m2m.toml");
    std::fs::write(
        &config,
        format!(
            "[cache]\ndir = {:?}\n\n[clients.cli]\nprovider = \"custom\"\ntoken_url = \"{}/token\"\nclient_id = \"cli-test-client\"\nclient_secret_env = \"{SECRET_VAR}\"\n",
            dir.to_str().unwrap(),
            server.uri()
        ),
    )
    .unwrap();
    let from_file = run(args(&[
        "--config",
        config.to_str().unwrap(),
        "token",
        "cli",
    ]))
    .await;
    assert_eq!(summary(&from_file)["cached"], true);
    assert_eq!(requests_to(&server, "/token").await, 1);

    // Another secret cannot read the file: a new token, written over it.
    let other = tokio::task::spawn_blocking({
        let args = token_args(&server, &dir);
        move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            m2m(&args, &[(SECRET_VAR, "another-secret-for-the-cache")])
        }
    })
    .await
    .unwrap();
    assert_eq!(summary(&other)["cached"], false);
    assert_eq!(requests_to(&server, "/token").await, 2);

    // An empty M2M_CACHE_DIR is no cache, not an error.
    let mut no_dir = token_args(&server, &dir);
    no_dir.truncate(no_dir.len() - 2);
    let unset = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = no_dir.iter().map(String::as_str).collect();
        m2m(&args, &[(SECRET_VAR, SECRET), ("M2M_CACHE_DIR", "")])
    })
    .await
    .unwrap();
    assert_eq!(summary(&unset)["cached"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_cold_processes_make_one_token_request() {
    let server = token_server(Duration::from_millis(600)).await;
    let dir = cli::tempdir("concurrent").join("tokens");
    let args = token_args(&server, &dir);
    let results = tokio::task::spawn_blocking(move || {
        let children: Vec<_> = (0..6)
            .map(|_| {
                Command::new(cli::M2M)
                    .args(&args)
                    .env(SECRET_VAR, SECRET)
                    .env_remove("M2M_CONFIG")
                    .current_dir(env!("CARGO_TARGET_TMPDIR"))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        children
            .into_iter()
            .map(|child| child.wait_with_output().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for output in &results {
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert_eq!(
        requests_to(&server, "/token").await,
        1,
        "one fetch for six processes"
    );
    assert_files_hold_no_secret(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn decode_shows_claims_never_the_token_and_says_when_it_is_not_a_jwt() {
    let sandbox = m2m::sandbox::Sandbox::start().await.unwrap();
    let flags = args(&[
        "--provider",
        "nxtsoft",
        "--token-url",
        &sandbox.cognito_token_url(),
        "--client-id",
        m2m::sandbox::demo::COGNITO_CLIENT_ID,
        "--client-secret-env",
        "M2M_TEST_COGNITO",
        "--scope",
        "transactions/mock",
    ]);
    let with = |extra: &[&str]| {
        let mut all = args(&["token"]);
        all.extend(flags.clone());
        all.extend(args(extra));
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = all.iter().map(String::as_str).collect();
            m2m(
                &args,
                &[(
                    "M2M_TEST_COGNITO",
                    m2m::sandbox::demo::COGNITO_CLIENT_SECRET,
                )],
            )
        })
    };

    let decoded = with(&["--decode"]).await.unwrap();
    assert_eq!(decoded.code, Some(0), "{}", decoded.stderr);
    let out = &decoded.stdout;
    assert!(out.starts_with("header   {\"alg\":\"ES256\""), "{out}");
    assert!(
        out.contains(&format!("iss      {}/cognito", sandbox.base_url())),
        "{out}"
    );
    assert!(out.contains("aud      nxtsoft-transactions"), "{out}");
    assert!(out.contains("(expires in 59 min"), "{out}");
    assert!(out.contains("scope    transactions/mock"), "{out}");
    assert_no_secret("--decode", &decoded.output());

    let claims = with(&["--format", "claims"]).await.unwrap();
    let json: serde_json::Value = serde_json::from_str(&claims.stdout).unwrap();
    assert_eq!(json["header"]["typ"], "JWT");
    assert_eq!(json["claims"]["token_use"], "access");
    assert_no_secret("--format claims", &claims.output());

    let env = with(&[
        "--format",
        "env",
        "--show-token",
        "--env-var",
        "NXTSOFT_TOKEN",
    ])
    .await
    .unwrap();
    assert_eq!(env.code, Some(0), "{}", env.stderr);
    assert!(
        env.stdout.starts_with("export NXTSOFT_TOKEN='eyJ"),
        "{}",
        env.stdout
    );
    let refused = with(&["--format", "env", "--env-var", "NXTSOFT_TOKEN"])
        .await
        .unwrap();
    assert_eq!(refused.code, Some(2));
    assert!(refused.error_line().contains("add --show-token"));
    let bad_name = with(&["--format", "env", "--show-token", "--env-var", "1-bad"])
        .await
        .unwrap();
    assert_eq!(bad_name.code, Some(2));
    assert!(bad_name.error_line().contains("not a shell variable name"));

    // An opaque token.
    let server = token_server(Duration::ZERO).await;
    let mut opaque = token_args(&server, &cli::tempdir("opaque"));
    opaque.push("--decode".into());
    let result = run(opaque).await;
    assert_eq!(result.code, Some(0), "{}", result.stderr);
    assert!(result.stdout.contains("not a JWT"), "{}", result.stdout);
    assert!(!result.output().contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_scopes_and_timeouts_are_reported_truthfully() {
    let server = token_server(Duration::ZERO).await;
    let dir = cli::tempdir("secrets");
    let flags = token_args(&server, &dir.join("tokens"));
    let empty = tokio::task::spawn_blocking({
        let flags = flags.clone();
        move || {
            let args: Vec<&str> = flags.iter().map(String::as_str).collect();
            m2m(&args, &[(SECRET_VAR, "")])
        }
    })
    .await
    .unwrap();
    assert_eq!(empty.code, Some(2));
    assert!(
        empty
            .error_line()
            .ends_with(&format!("the environment variable {SECRET_VAR} is empty")),
        "{}",
        empty.stderr
    );

    // `--scope` takes one value: the next word is the client.
    let config = dir.join("m2m.toml");
    std::fs::write(
        &config,
        format!(
            "[clients.cli]\nprovider = \"custom\"\ntoken_url = \"{}/token\"\nclient_id = \"cli-test-client\"\nclient_secret_env = \"{SECRET_VAR}\"\n",
            server.uri()
        ),
    )
    .unwrap();
    let scoped = run(args(&[
        "--config",
        config.to_str().unwrap(),
        "token",
        "--scope",
        "transactions/mock",
        "cli",
    ]))
    .await;
    assert_eq!(
        summary(&scoped)["scopes"],
        serde_json::json!(["transactions/mock"])
    );
    let request = &server.received_requests().await.unwrap()[0];
    let scope: Vec<String> = url::form_urlencoded::parse(&request.body)
        .filter(|(name, _)| name == "scope")
        .map(|(_, value)| value.into_owned())
        .collect();
    assert_eq!(scope, ["transactions/mock"]);

    // A token endpoint that never answers: each attempt waits timeout_secs.
    let silent = token_server(Duration::from_secs(30)).await;
    let mut slow = token_args(&silent, &dir.join("slow"));
    slow.extend(args(&["--timeout-secs", "1"]));
    let started = Instant::now();
    let timed_out = run(slow).await;
    let elapsed = started.elapsed();
    assert_eq!(timed_out.code, Some(1));
    assert!(
        timed_out.error_line().contains(&format!(
            "the token endpoint {}/token timed out after 1 s (attempt 3 of 3",
            silent.uri()
        )),
        "{}",
        timed_out.stderr
    );
    assert_eq!(requests_to(&silent, "/token").await, 3);
    assert!(elapsed >= Duration::from_secs(3), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "powershell"] {
        let result = m2m(&["completions", shell], &[]);
        assert_eq!(result.code, Some(0), "{shell}: {}", result.stderr);
        assert!(result.stdout.contains("m2m"), "{shell}");
        assert!(result.stdout.contains("completions"), "{shell}");
        assert!(result.stdout.len() > 1000, "{shell}");
    }
    let unknown = m2m(&["completions", "tcsh"], &[]);
    assert_eq!(unknown.code, Some(2));
    unknown.error_line();
}

#[test]
fn config_check_names_what_is_missing_and_no_secret() {
    let dir = cli::tempdir("check");
    let config = dir.join("m2m.toml");
    std::fs::write(
        &config,
        format!(
            "[clients.good]\nprovider = \"nxtsoft\"\nclient_id = \"id\"\nclient_secret_env = \"{SECRET_VAR}\"\n\n\
             [clients.unset]\nprovider = \"nxtsoft\"\nclient_id = \"id\"\nclient_secret_env = \"M2M_TEST_NEVER_SET\"\n\n\
             [clients.partial]\nprovider = \"cenda\"\ntenant_id = \"t\"\nclient_id = \"id\"\nclient_secret_env = \"{SECRET_VAR}\"\n"
        ),
    )
    .unwrap();
    let path = config.to_str().unwrap();
    let checked = m2m(
        &["config", "check", "--config", path],
        &[(SECRET_VAR, SECRET)],
    );
    assert_eq!(checked.code, Some(2), "{}", checked.output());
    let out = &checked.stdout;
    assert!(out.contains("ok      good"), "{out}");
    assert!(out.contains(&format!("secret from ${SECRET_VAR}")), "{out}");
    assert!(
        out.contains(
            "FAILED  unset    client_secret_env names M2M_TEST_NEVER_SET, which is not set"
        ),
        "{out}"
    );
    assert!(
        out.contains("FAILED  partial  provider cenda needs gateway_client_id"),
        "{out}"
    );
    assert!(
        checked.error_line().contains("partial, unset"),
        "{}",
        checked.stderr
    );
    assert!(!checked.output().contains(SECRET));

    std::fs::write(
        &config,
        format!("[clients.good]\nprovider = \"nxtsoft\"\nclient_id = \"id\"\nclient_secret_env = \"{SECRET_VAR}\"\n"),
    )
    .unwrap();
    let ok = m2m(
        &["config", "check"],
        &[(SECRET_VAR, SECRET), ("M2M_CONFIG", path)],
    );
    assert_eq!(ok.code, Some(0), "{}", ok.output());
    assert!(ok.stderr.is_empty());

    let none = m2m(&["config", "check"], &[]);
    assert_eq!(none.code, Some(2));
    assert!(
        none.error_line().contains("no configuration file found"),
        "{}",
        none.stderr
    );
}

#[test]
fn providers_show_token_url_templates() {
    let result = m2m(&["providers"], &[]);
    assert_eq!(result.code, Some(0));
    let out = &result.stdout;
    assert!(
        out.contains(
            "token        https://login.microsoftonline.com/{tenant_id}/oauth2/v2.0/token"
        ),
        "{out}"
    );
    assert!(
        out.contains("{authentication_server_url}/connect/token"),
        "{out}"
    );
    assert!(
        !out.contains("must be"),
        "no error message in the table: {out}"
    );
    assert!(!out.contains("invalid"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sandbox_write_config_gives_working_clients() {
    let dir = cli::tempdir("write-config");
    let config = dir.join("m2m.toml");
    let mut sandbox = Command::new(cli::M2M)
        .args(["sandbox", "--write-config", config.to_str().unwrap()])
        .env_remove("M2M_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while !config.exists() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let path = config.to_str().unwrap().to_owned();
    let with_config = |rest: &[&str]| {
        let mut all = args(&["--config", &path]);
        all.extend(args(rest));
        run(all)
    };
    let check = with_config(&["config", "check"]).await;
    let token = with_config(&["token", "nxtsoft"]).await;
    let list = with_config(&["call", "cenda", "listOrganisations"]).await;
    // The clients without a lasting secret, or with a bound token.
    let mut bound = Vec::new();
    for client in ["federated", "dpop", "mtls", "mtls-self-signed"] {
        bound.push((client, with_config(&["token", client]).await));
    }
    // An API call over mutual TLS, traced: the certificate on the token
    // request and the call, no key material or token in any output.
    let mtls_call = with_config(&[
        "-vv",
        "call",
        "mtls",
        "postValidationMessage",
        "--param",
        "accountNumber=000123456789",
        "--param",
        "routingNumber=021000021",
        "--param",
        "amount=10.5",
        "--param",
        "currency=USD",
        "--param",
        "transactionType=Debit",
        "--param",
        "reference=CLI-MTLS-1",
    ])
    .await;
    let _ = sandbox.kill();
    let output = sandbox.wait_with_output().unwrap();
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();

    assert_eq!(check.code, Some(0), "{}", check.output());
    assert_eq!(summary(&token)["cached"], false);
    assert_eq!(list.code, Some(0), "{}", list.output());
    // A fresh sandbox has no organisation yet: the list is empty.
    assert_eq!(list.stdout.trim(), "[]", "{}", list.stdout);
    for (client, token) in &bound {
        assert_eq!(token.code, Some(0), "{client}: {}", token.output());
        assert_eq!(summary(token)["cached"], false, "{client}");
    }
    assert_eq!(mtls_call.code, Some(0), "{}", mtls_call.output());
    assert!(
        mtls_call.stdout.contains("\"status\""),
        "{}",
        mtls_call.stdout
    );
    let key = std::fs::read_to_string(dir.join("m2m.secrets/mtls-client-key.pem")).unwrap();
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(key_body.len() > 40);
    let mtls_output = mtls_call.output();
    assert!(!mtls_output.contains(&key_body), "{mtls_output}");
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!mtls_output.contains(line), "{mtls_output}");
    }
    assert_no_secret("call mtls (-vv)", &mtls_output);
    let token_types: Vec<(&str, String)> = bound
        .iter()
        .map(|(client, token)| (*client, summary(token)["token_type"].to_string()))
        .collect();
    assert_eq!(
        token_types,
        [
            ("federated", "\"Bearer\"".to_owned()),
            ("dpop", "\"DPoP\"".to_owned()),
            ("mtls", "\"Bearer\"".to_owned()),
            ("mtls-self-signed", "\"Bearer\"".to_owned()),
        ]
    );
    assert!(printed.contains(&format!("Wrote {path}")), "{printed}");
    assert!(printed.contains("config check"), "{printed}");
    let text = std::fs::read_to_string(&config).unwrap();
    for output in [
        &printed,
        &text,
        &check.output(),
        &token.output(),
        &list.output(),
    ]
    .into_iter()
    .chain(
        bound
            .iter()
            .map(|(_, token)| token.output())
            .collect::<Vec<_>>()
            .iter(),
    ) {
        assert_no_secret("sandbox --write-config", output);
    }
    #[cfg(unix)]
    for entry in std::fs::read_dir(dir.join("m2m.secrets")).unwrap() {
        assert_eq!(mode(&entry.unwrap().path()), 0o600);
    }
    // Written again over its own file; another file is kept.
    let foreign = dir.join("mine.toml");
    std::fs::write(&foreign, "[clients]\n").unwrap();
    let refused = m2m(
        &["sandbox", "--write-config", foreign.to_str().unwrap()],
        &[],
    );
    assert_eq!(refused.code, Some(2));
    assert!(
        refused
            .error_line()
            .contains("was not written by m2m sandbox")
    );
}

/// `--client-assertion-file`: the file's assertion is sent as a jwt-bearer
/// client assertion, a rotated file is read at the next run, and an expired
/// one is an error naming the file (exit 2), with no request sent.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_assertion_file_is_sent_and_an_expired_one_named() {
    use base64::Engine as _;
    let server = token_server(Duration::ZERO).await;
    let dir = cli::tempdir("assertion");
    let file = dir.join("token");
    let jwt = |exp: u64, sub: &str| {
        let part = |json: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        format!(
            "{}.{}.c2ln",
            part(r#"{"alg":"RS256"}"#.to_owned()),
            part(format!(r#"{{"sub":"{sub}","exp":{exp}}}"#))
        )
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let flags = args(&[
        "token",
        "--provider",
        "custom",
        "--token-url",
        &format!("{}/token", server.uri()),
        "--client-id",
        "federated-client",
        "--client-assertion-file",
        file.to_str().unwrap(),
    ]);
    let mut sent = Vec::new();
    for sub in ["first", "second"] {
        let assertion = jwt(now + 600, sub);
        std::fs::write(&file, format!("{assertion}\n")).unwrap();
        let run = run(flags.clone()).await;
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert!(!run.output().contains(&assertion), "{}", run.output());
        sent.push(assertion);
    }
    let received: Vec<String> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|request| {
            url::form_urlencoded::parse(&request.body)
                .find(|(k, _)| k == "client_assertion")
                .map(|(_, v)| v.into_owned())
                .unwrap()
        })
        .collect();
    assert_eq!(received, sent);

    let expired = jwt(now - 60, "late");
    std::fs::write(&file, &expired).unwrap();
    let run = run(flags).await;
    assert_eq!(run.code, Some(2), "{}", run.output());
    let line = run.error_line();
    assert!(
        line.contains(file.to_str().unwrap()) && line.contains("expired"),
        "{line}"
    );
    assert!(!run.output().contains(&expired));
    assert_no_secret("an expired assertion's error", &run.output());
    assert_eq!(requests_to(&server, "/token").await, 2);
}

/// `--secondary-client-secret-env`: the first secret refused, the second
/// takes over in the same run; neither value is printed.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_first_secret_fails_over_to_the_secondary() {
    use wiremock::matchers::body_string_contains;
    use wiremock::{Mock, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(body_string_contains("client_secret=wrong-secret-0f9e8d"))
        .respond_with(
            ResponseTemplate::new(401)
                .set_body_json(serde_json::json!({"error": "invalid_client"})),
        )
        .mount(&server)
        .await;
    Mock::given(body_string_contains(format!("client_secret={SECRET}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600
        })))
        .mount(&server)
        .await;
    let token_url = format!("{}/token", server.uri());
    let run = m2m(
        &[
            "-v",
            "token",
            "--provider",
            "custom",
            "--token-url",
            &token_url,
            "--client-id",
            "rotating-client",
            "--auth",
            "post",
            "--client-secret-env",
            "M2M_TEST_OLD_SECRET",
            "--secondary-client-secret-env",
            SECRET_VAR,
        ],
        &[
            ("M2M_TEST_OLD_SECRET", "wrong-secret-0f9e8d"),
            (SECRET_VAR, SECRET),
        ],
    );
    assert_eq!(run.code, Some(0), "{}", run.output());
    assert!(
        run.stderr.contains("second"),
        "the switch is logged by which: {}",
        run.stderr
    );
    assert!(!run.output().contains(SECRET), "{}", run.output());
    assert_no_secret("a fail-over", &run.output());
    assert_eq!(requests_to(&server, "/token").await, 2);
}
