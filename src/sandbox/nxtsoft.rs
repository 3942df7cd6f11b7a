//! NXTsoft transactions: validation messages (`POST /transactions/mock`)
//! and the transactions they rehearse (`POST /transactions`, idempotent
//! with `Idempotency-Key`). Bodies are the generated types.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Datelike, NaiveDate, Utc, Weekday};
use uuid::Uuid;

use super::api_call::ApiCall;
use super::demo;
use super::problem::{FieldProblem, Problem};
use crate::apis::nxtsoft_transactions::types;

const SUPPORTED_CURRENCIES: [&str; 1] = ["USD"];
const MAX_AMOUNT: f64 = 1_000_000.0;
const REVIEW_ABOVE: f64 = 10_000.0;
const MAX_REFERENCE_CHARS: usize = 80;
const MAX_MEMO_CHARS: usize = 255;
const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// The operations of `openapi/nxtsoft-transactions.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    PostValidationMessage,
    PostTransaction,
}

impl Operation {
    /// The operation with this `operationId`.
    pub(crate) fn from_id(operation_id: &str) -> Option<Self> {
        match operation_id {
            "postValidationMessage" => Some(Self::PostValidationMessage),
            "postTransaction" => Some(Self::PostTransaction),
            _ => None,
        }
    }

    /// The scope the operation's security requirement names.
    pub(crate) fn required_scope(self) -> &'static str {
        match self {
            Self::PostValidationMessage => demo::SCOPE_TRANSACTIONS_MOCK,
            Self::PostTransaction => demo::SCOPE_TRANSACTIONS_POST,
        }
    }
}

/// Transactions remembered by idempotency key.
#[derive(Debug, Default)]
pub(crate) struct Store {
    by_key: HashMap<String, Remembered>,
}

#[derive(Debug)]
struct Remembered {
    request: serde_json::Value,
    transaction: types::Transaction,
    at: SystemTime,
}

/// Runs one operation, remembering idempotent transactions in `store`.
pub(crate) fn handle(
    store: &mut Store,
    operation: Operation,
    call: &ApiCall,
) -> Result<Response, Problem> {
    let now = DateTime::<Utc>::from(call.now);
    match operation {
        Operation::PostValidationMessage => {
            let request: types::TransactionRequest = call.json()?;
            let checks = run_checks(&request);
            let status = if checks.iter().any(|c| !c.check.passed) {
                types::ValidationStatus::Invalid
            } else if request.amount > REVIEW_ABOVE {
                types::ValidationStatus::NeedsReview
            } else {
                types::ValidationStatus::Valid
            };
            let result = types::ValidationResult {
                checks: checks.into_iter().map(|c| c.check).collect(),
                received_at: now,
                status,
                validation_id: Uuid::new_v4(),
            };
            json(StatusCode::OK, &result)
        }
        Operation::PostTransaction => {
            let key = idempotency_key(call);
            let request: types::TransactionRequest = call.json()?;
            let failed: Vec<FieldProblem> = run_checks(&request)
                .into_iter()
                .filter(|c| !c.check.passed)
                .map(|c| FieldProblem {
                    field: c.field.to_owned(),
                    code: c.code,
                    message: c.check.message.unwrap_or_default(),
                })
                .collect();
            if !failed.is_empty() {
                return Err(Problem {
                    fields: failed,
                    ..Problem::new(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "validation_failed",
                        "The transaction failed validation.",
                    )
                });
            }
            let as_sent = serde_json::to_value(&request).unwrap_or_default();
            if let Some(key) = &key {
                store.forget_older_than(call.now);
                if let Some(remembered) = store.by_key.get(key) {
                    if remembered.request != as_sent {
                        return Err(Problem::new(
                            StatusCode::CONFLICT,
                            "idempotency_key_reused",
                            "The Idempotency-Key was already used with a different request body.",
                        ));
                    }
                    return json(StatusCode::CREATED, &remembered.transaction);
                }
            }
            let transaction = types::Transaction {
                amount: request.amount,
                created_at: now,
                currency: request.currency,
                effective_date: Some(
                    request
                        .effective_date
                        .unwrap_or_else(|| next_business_day(now.date_naive())),
                ),
                reference: Some(request.reference),
                status: types::TransactionStatus::Pending,
                transaction_id: Uuid::new_v4(),
                transaction_type: Some(request.transaction_type),
            };
            if let Some(key) = key {
                store.by_key.insert(
                    key,
                    Remembered {
                        request: as_sent,
                        transaction: transaction.clone(),
                        at: call.now,
                    },
                );
            }
            json(StatusCode::CREATED, &transaction)
        }
    }
}

impl Store {
    fn forget_older_than(&mut self, now: SystemTime) {
        self.by_key.retain(|_, remembered| {
            now.duration_since(remembered.at)
                .map_or(true, |age| age < IDEMPOTENCY_WINDOW)
        });
    }
}

/// The `Idempotency-Key` header (its length was checked against the
/// document's declaration).
fn idempotency_key(call: &ApiCall) -> Option<String> {
    call.headers
        .get("idempotency-key")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// A check's outcome with the field it concerns.
struct Outcome {
    check: types::ValidationCheck,
    field: &'static str,
    code: &'static str,
}

fn outcome(code: &'static str, field: &'static str, passed: bool, message: String) -> Outcome {
    Outcome {
        check: types::ValidationCheck {
            code: code.to_owned(),
            message: Some(message),
            passed,
        },
        field,
        code,
    }
}

/// The checks of `POST /transactions/mock`, in order. The formats the
/// schema's patterns enforce were already checked on deserialization.
fn run_checks(request: &types::TransactionRequest) -> Vec<Outcome> {
    let routing: &str = &request.routing_number;
    let mut checks = vec![
        outcome(
            "routing_number_format",
            "routingNumber",
            true,
            "Routing number has 9 digits.".into(),
        ),
        if aba_checksum_ok(routing) {
            outcome(
                "aba_checksum",
                "routingNumber",
                true,
                "Routing number checksum is valid.".into(),
            )
        } else {
            outcome(
                "aba_checksum",
                "routingNumber",
                false,
                "The routing number's ABA checksum does not match.".into(),
            )
        },
        outcome(
            "account_number_format",
            "accountNumber",
            true,
            "Account number has 4 to 17 digits.".into(),
        ),
    ];
    let currency: &str = &request.currency;
    checks.push(outcome(
        "currency_supported",
        "currency",
        SUPPORTED_CURRENCIES.contains(&currency),
        if SUPPORTED_CURRENCIES.contains(&currency) {
            format!("{currency} is supported.")
        } else {
            format!(
                "{currency} is not supported; supported: {}.",
                SUPPORTED_CURRENCIES.join(", ")
            )
        },
    ));
    let amount = request.amount;
    let amount_ok = amount > 0.0 && amount <= MAX_AMOUNT && has_at_most_two_decimals(amount);
    checks.push(outcome(
        "amount_limit",
        "amount",
        amount_ok,
        if amount_ok {
            "Amount is within limits.".into()
        } else {
            format!("Amount must be greater than 0 and at most {MAX_AMOUNT:.2}, with at most 2 decimals.")
        },
    ));
    let reference_chars = request.reference.chars().count();
    let reference_ok = (1..=MAX_REFERENCE_CHARS).contains(&reference_chars);
    checks.push(outcome(
        "reference_length",
        "reference",
        reference_ok,
        format!("Reference has {reference_chars} characters (1 to {MAX_REFERENCE_CHARS} allowed)."),
    ));
    if let Some(memo) = &request.memo {
        let memo_chars = memo.chars().count();
        checks.push(outcome(
            "memo_length",
            "memo",
            memo_chars <= MAX_MEMO_CHARS,
            format!("Memo has {memo_chars} characters (up to {MAX_MEMO_CHARS} allowed)."),
        ));
    }
    checks
}

/// ABA routing number checksum: 3·(d1+d4+d7) + 7·(d2+d5+d8) + (d3+d6+d9) ≡ 0 (mod 10).
fn aba_checksum_ok(routing: &str) -> bool {
    let digits: Vec<u32> = routing.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 9 {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .zip([3, 7, 1].iter().cycle())
        .map(|(digit, weight)| digit * weight)
        .sum();
    sum.is_multiple_of(10)
}

fn has_at_most_two_decimals(amount: f64) -> bool {
    let cents = amount * 100.0;
    (cents - cents.round()).abs() < 1e-6
}

fn next_business_day(today: NaiveDate) -> NaiveDate {
    let mut day = today.succ_opt().unwrap_or(today);
    while matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
        day = day.succ_opt().unwrap_or(day);
    }
    day
}

fn json<T: serde::Serialize>(status: StatusCode, body: &T) -> Result<Response, Problem> {
    let text = serde_json::to_string(body).map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        )
    })?;
    Ok((
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        text,
    )
        .into_response())
}

/// A problem as NXTsoft's `Error`.
pub(crate) fn problem_response(problem: Problem) -> Response {
    let body = types::Error {
        code: problem.code.to_owned(),
        details: problem
            .fields
            .into_iter()
            .map(|field| types::ErrorDetail {
                code: Some(field.code.to_owned()),
                field: Some(field.field),
                message: field.message,
            })
            .collect(),
        message: problem.message,
        request_id: Some(Uuid::new_v4().to_string()),
    };
    let mut response = json(problem.status, &body).unwrap_or_else(|p| p.status.into_response());
    for (name, value) in problem.headers {
        response.headers_mut().insert(name, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aba_checksum_accepts_real_routing_numbers() {
        assert!(aba_checksum_ok("021000021"));
        assert!(aba_checksum_ok("011000015"));
        assert!(!aba_checksum_ok("021000022"));
        assert!(!aba_checksum_ok("12345"));
    }

    #[test]
    fn amounts_and_business_days() {
        assert!(has_at_most_two_decimals(125.5));
        assert!(has_at_most_two_decimals(0.29));
        assert!(!has_at_most_two_decimals(1.005));
        let friday = NaiveDate::from_ymd_opt(2026, 1, 2).unwrap();
        assert_eq!(
            next_business_day(friday),
            NaiveDate::from_ymd_opt(2026, 1, 5).unwrap()
        );
    }
}
