//! The document-driven checks of `m2m call`, on the NXTsoft document (and
//! Cenda operations whose names and path parameter are stable).

use serde_json::json;

use super::spec::Location;
use super::*;

fn nxtsoft(name: &str) -> &'static Operation {
    Api::nxtsoft_transactions.operation(name).unwrap()
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

fn refusal(result: Result<Call, CallFailure>) -> String {
    match result {
        Err(CallFailure::Refused(message)) => {
            assert!(!message.contains('\n'), "one line: {message}");
            assert!(!message.contains("error:"), "{message}");
            message
        }
        Err(other) => panic!("expected a refusal, got {other:?}"),
        Ok(call) => panic!("expected a refusal, got {call:?}"),
    }
}

fn body(text: &str) -> Option<BodyText<'_>> {
    Some(BodyText {
        source: "body.json",
        text,
    })
}

const TRANSACTION: &str = r#"{"accountNumber":"000123456789","routingNumber":"021000021","amount":10.5,"currency":"USD","transactionType":"Debit","reference":"R-1"}"#;

#[test]
fn every_document_operation_and_parameter_has_a_generated_counterpart() {
    for api in Api::ALL {
        assert!(!api.operations().is_empty(), "{}", api.name());
        for operation in api.operations() {
            let method = operation
                .generated_method()
                .unwrap_or_else(|| panic!("{} has no generated method", operation.operation_id));
            let setters = api.generated_setters(method);
            for parameter in &operation.parameters {
                let matching = setters
                    .iter()
                    .filter(|setter| same_name(setter, &parameter.name))
                    .count();
                assert_eq!(
                    matching, 1,
                    "{} {}: setters {setters:?}",
                    operation.operation_id, parameter.name
                );
            }
            assert_eq!(
                operation.body.is_some(),
                setters.contains(&"body"),
                "{}",
                operation.operation_id
            );
            assert_eq!(
                setters.len(),
                operation.parameters.len() + usize::from(operation.body.is_some()),
                "{}: {setters:?}",
                operation.operation_id
            );
        }
        assert_eq!(api.operations().len(), api.generated_methods().len());
    }
}

#[test]
fn lookup_finds_loose_names_suggests_near_ones_and_tells_other_apis() {
    let op = lookup(Some(Api::nxtsoft_transactions), "post_validation_message").unwrap();
    assert_eq!(op.operation_id, "postValidationMessage");
    assert_eq!(
        lookup(None, "postValidationMessage").unwrap().api,
        Api::nxtsoft_transactions
    );

    let unknown = lookup(Some(Api::cenda_configuration), "listOrganizations")
        .unwrap_err()
        .to_string();
    assert_eq!(
        unknown,
        "cenda-configuration has no operation \"listOrganizations\"; did you mean listOrganisations? (`m2m call --list` lists them)"
    );
    let far = lookup(None, "frobnicate").unwrap_err().to_string();
    assert!(
        far.starts_with("no API has an operation \"frobnicate\" ("),
        "{far}"
    );

    let other = lookup(Some(Api::nxtsoft_transactions), "getOrganisation")
        .unwrap_err()
        .to_string();
    assert_eq!(
        other,
        "getOrganisation is an operation of cenda-configuration, not of nxtsoft-transactions"
    );
}

#[test]
fn the_document_model_has_methods_paths_parameters_and_bodies() {
    let post = nxtsoft("postTransaction");
    assert_eq!(
        (post.method.as_str(), post.path.as_str()),
        ("POST", "/transactions")
    );
    let key = &post.parameters[0];
    assert_eq!(key.name, "Idempotency-Key");
    assert_eq!(key.location, Location::Header);
    assert!(!key.required);
    let body = post.body.as_ref().unwrap();
    assert!(body.required);
    assert_eq!(body.type_name.as_deref(), Some("TransactionRequest"));

    let get = Api::cenda_configuration
        .operation("getOrganisation")
        .unwrap();
    let id = get
        .parameters
        .iter()
        .find(|p| p.name == "organisationId")
        .unwrap();
    assert_eq!(id.location, Location::Path);
    assert!(id.required);
    assert!(get.body.is_none());
}

#[test]
fn help_lists_parameters_and_fields_with_types_and_an_example_body() {
    let help = nxtsoft("postTransaction").help();
    assert!(
        help.starts_with("postTransaction — Post a transaction\n  POST /transactions"),
        "{help}"
    );
    assert!(
        help.contains("Idempotency-Key  header  string  optional"),
        "{help}"
    );
    for line in [
        "accountNumber     string (pattern ^[0-9]{4,17}$)  required",
        "amount            number (double)                 required",
        "transactionType   one of: Debit, Credit           required",
        "memo              string                          optional",
        "effectiveDate     string (date)                   optional",
    ] {
        assert!(help.contains(line), "{line:?} missing:\n{help}");
    }
    assert!(
        help.contains("\"accountNumber\": \"000123456789\""),
        "{help}"
    );
    assert!(
        help.contains("m2m call CLIENT postTransaction --body body.json"),
        "{help}"
    );
    let example = nxtsoft("postTransaction").example_body().unwrap();
    let doc = Document::of(Api::nxtsoft_transactions);
    schema::check(
        doc,
        &nxtsoft("postTransaction").body.as_ref().unwrap().schema,
        &example,
        "the example",
    )
    .expect("the example body is valid");

    let get = Api::cenda_configuration
        .operation("getOrganisation")
        .unwrap();
    let help = get.help();
    let row = help
        .lines()
        .find(|line| {
            line.trim_start()
                .starts_with("organisationId  path  string")
        })
        .unwrap_or_else(|| panic!("no organisationId row:\n{help}"));
    assert!(row.ends_with("  required"), "{row}");
    assert_eq!(get.takes_in_short(), "organisationId*");
    assert_eq!(
        nxtsoft("postTransaction").takes_in_short(),
        "Idempotency-Key body:TransactionRequest*"
    );
}

#[test]
fn refusals_name_the_operation_the_parameter_and_what_it_takes() {
    let get = Api::cenda_configuration
        .operation("getOrganisation")
        .unwrap();
    let missing = refusal(get.prepare(&[], None));
    assert!(
        missing.starts_with("getOrganisation needs the path parameter organisationId (string"),
        "{missing}"
    );
    assert!(
        missing.ends_with("): add --param organisationId=VALUE"),
        "{missing}"
    );
    let bogus = refusal(get.prepare(&params(&[("bogus", "1")]), None));
    assert!(
        bogus.starts_with("getOrganisation has no parameter \"bogus\" (it takes: organisationId"),
        "{bogus}"
    );
    let near = refusal(get.prepare(
        &params(&[("organisationID", "x"), ("organisatonId", "1")]),
        None,
    ));
    assert!(near.contains("did you mean organisationId?"), "{near}");
    // The format check, where the document gives one.
    if get.describe(&get.parameters[0]).contains("uuid") {
        assert_eq!(
            refusal(get.prepare(&params(&[("organisationId", "not-a-uuid")]), None)),
            "parameter organisationId \"not-a-uuid\" is not a valid uuid"
        );
    }
    assert_eq!(
        refusal(get.prepare(
            &params(&[("organisationId", "6f1c3e5a-0000-4000-8000-000000000001")]),
            body("{}")
        )),
        "getOrganisation takes no request body, but --body body.json was given"
    );
    assert_eq!(
        refusal(get.prepare(
            &params(&[
                ("organisationId", "6f1c3e5a-0000-4000-8000-000000000001"),
                ("organisationId", "6f1c3e5a-0000-4000-8000-000000000002")
            ]),
            None
        )),
        "--param organisationId is given more than once"
    );
}

#[test]
fn body_refusals_name_the_field() {
    let post = nxtsoft("postValidationMessage");
    assert!(post.prepare(&[], body(TRANSACTION)).is_ok());
    let cases = [
        (
            r#"{"accountNumber":"000123456789","routingNumber":"021000021","amount":"ten","currency":"USD","transactionType":"Debit","reference":"R"}"#,
            "the request body field amount must be a number, not a string (\"ten\")",
        ),
        (
            r#"{"accountNumber":"000123456789","routingNumber":"021000021","amount":1,"currency":"USD","transactionType":"Debit","reference":"R","refrence":"x"}"#,
            "the request body has an unknown field refrence; did you mean reference?",
        ),
        (
            r#"{"accountNumber":"000123456789","routingNumber":"021000021","amount":1,"currency":"USD","transactionType":"Sideways","reference":"R"}"#,
            "the request body field transactionType is \"Sideways\", not one of: Debit, Credit",
        ),
        (
            r#"{"accountNumber":"12","routingNumber":"021000021","amount":1,"currency":"USD","transactionType":"Debit","reference":"R"}"#,
            "the request body field accountNumber \"12\" does not match the pattern ^[0-9]{4,17}$",
        ),
        (
            r#"{"accountNumber":"000123456789","amount":1,"currency":"USD","transactionType":"Debit","reference":"R"}"#,
            "the request body lacks the required field routingNumber",
        ),
        (
            r#"{"accountNumber":"000123456789","routingNumber":"021000021","amount":1,"currency":"USD","transactionType":"Debit","reference":"R","effectiveDate":"03/06/2024"}"#,
            "the request body field effectiveDate \"03/06/2024\" is not a valid date (YYYY-MM-DD)",
        ),
        (
            "[1, 2]",
            "the request body must be an object, not an array ([1,2])",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(refusal(post.prepare(&[], body(text))), expected, "{text}");
    }
    let invalid = refusal(post.prepare(&[], body("{\"amount\": 1,")));
    assert!(
        invalid.starts_with("the request body in body.json is not valid JSON: EOF while parsing"),
        "{invalid}"
    );
    let missing = refusal(post.prepare(&[], None));
    assert!(
        missing.starts_with("postValidationMessage needs a request body: --body FILE"),
        "{missing}"
    );
    assert_eq!(
        refusal(post.prepare(&params(&[("amount", "5")]), body(TRANSACTION))),
        "amount is a field of the request body of postValidationMessage: set it in body.json or leave --body out, not both"
    );
}

#[test]
fn body_fields_from_params_are_typed_by_the_schema() {
    let post = nxtsoft("postValidationMessage");
    let call = post
        .prepare(
            &params(&[
                ("accountNumber", "000123456789"),
                ("routingNumber", "021000021"),
                ("amount", "10.5"),
                ("currency", "USD"),
                ("transactionType", "Debit"),
                ("reference", "12"),
            ]),
            None,
        )
        .unwrap();
    assert_eq!(
        call.input.body,
        Some(
            json!({"accountNumber":"000123456789","routingNumber":"021000021","amount":10.5,"currency":"USD","transactionType":"Debit","reference":"12"})
        )
    );
    let wrong = refusal(post.prepare(
        &params(&[
            ("accountNumber", "000123456789"),
            ("routingNumber", "021000021"),
            ("amount", "ten"),
            ("currency", "USD"),
            ("transactionType", "Debit"),
            ("reference", "R"),
        ]),
        None,
    ));
    assert_eq!(
        wrong,
        "the request body field amount must be a number, not a string (\"ten\")"
    );
}

#[test]
fn the_typed_conversion_is_the_last_word() {
    let input = Input {
        params: vec![
            ("pageSize".into(), "0".into()),
            (
                "organisationId".into(),
                "6F1C3E5A-0000-4000-8000-000000000001".into(),
            ),
        ],
        body: Some(json!({"amount": "x"})),
    };
    let zero = input
        .param::<std::num::NonZeroU32>("page_size")
        .unwrap_err()
        .to_string();
    assert!(
        zero.starts_with("parameter pageSize: \"0\" is not valid: "),
        "{zero}"
    );
    let id = input
        .param::<uuid::Uuid>("organisation_id")
        .unwrap()
        .unwrap();
    assert_eq!(id.to_string(), "6f1c3e5a-0000-4000-8000-000000000001");
    assert_eq!(input.param::<String>("search").unwrap(), None);
    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Body {
        amount: f64,
    }
    let error = input.body::<Body>().unwrap_err().to_string();
    assert!(
        error.starts_with("the request body field amount does not fit: invalid type"),
        "{error}"
    );
}

#[test]
fn suggestions_need_to_be_near() {
    let known = ["listOrganisations", "getOrganisation", "createOrganisation"];
    assert_eq!(
        suggest("listOrganizations", known),
        Some("listOrganisations")
    );
    assert_eq!(suggest("GETORGANISATION", known), Some("getOrganisation"));
    assert_eq!(suggest("bogus", known), None);
}
