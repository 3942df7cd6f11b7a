//! What `m2m call CLIENT OPERATION --help` and `m2m call --list` print.

use std::fmt::Write as _;

use super::schema;
use super::spec::{Document, Operation};

impl Operation {
    /// The operation's help: what it does, where it goes, each parameter
    /// (name as `--param` takes it, where it goes, type, required) and each
    /// body field, with an example body and an example command.
    pub fn help(&self) -> String {
        let doc = Document::of(self.api);
        let mut out = String::new();
        let _ = writeln!(out, "{} — {}", self.operation_id, self.summary);
        let _ = writeln!(
            out,
            "  {} {}  ({})",
            self.method,
            self.path,
            self.api.name()
        );
        if !self.description.is_empty() && self.description != self.summary {
            let _ = writeln!(out);
            for line in wrap(&self.description, 78) {
                let _ = writeln!(out, "  {line}");
            }
        }
        let _ = writeln!(out);
        if self.parameters.is_empty() {
            let _ = writeln!(out, "Parameters: none");
        } else {
            let _ = writeln!(out, "Parameters (--param NAME=VALUE):");
            let rows: Vec<[String; 4]> = self
                .parameters
                .iter()
                .map(|p| {
                    [
                        p.name.clone(),
                        p.location.name().to_owned(),
                        schema::describe(doc, &p.schema),
                        if p.required { "required" } else { "optional" }.to_owned(),
                    ]
                })
                .collect();
            let descriptions: Vec<String> = self
                .parameters
                .iter()
                .map(|p| clip(&p.description))
                .collect();
            table(&mut out, &rows, &descriptions);
        }
        if let Some(body) = &self.body {
            let _ = writeln!(out);
            let _ = writeln!(
                out,
                "Request body (--body FILE, or - for standard input; JSON{}), {}:",
                body.type_name
                    .as_ref()
                    .map(|name| format!(", {name}"))
                    .unwrap_or_default(),
                if body.required {
                    "required"
                } else {
                    "optional"
                }
            );
            let fields = schema::fields(doc, &body.schema);
            if fields.is_empty() {
                let _ = writeln!(out, "  {}", schema::describe(doc, &body.schema));
            } else {
                let rows: Vec<[String; 4]> = fields
                    .iter()
                    .map(|f| {
                        [
                            f.path.clone(),
                            String::new(),
                            f.kind.clone(),
                            if f.required { "required" } else { "optional" }.to_owned(),
                        ]
                    })
                    .collect();
                let descriptions: Vec<String> =
                    fields.iter().map(|f| clip(&f.description)).collect();
                table(&mut out, &rows, &descriptions);
                let _ = writeln!(
                    out,
                    "  Top-level fields can also be given as --param NAME=VALUE instead of --body."
                );
            }
            let example = schema::example(doc, &body.schema);
            let _ = writeln!(out);
            let _ = writeln!(out, "Example body:");
            let pretty = serde_json::to_string_pretty(&example).unwrap_or_default();
            for line in pretty.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
        let _ = writeln!(out);
        let _ = writeln!(out, "Example:");
        let mut command = format!("  m2m call CLIENT {}", self.operation_id);
        for parameter in self.parameters.iter().filter(|p| p.required) {
            let _ = write!(command, " --param {}=…", parameter.name);
        }
        if self.body.is_some() {
            command.push_str(" --body body.json");
        }
        let _ = writeln!(out, "{command}");
        out
    }

    /// What the operation takes, in one short line for `m2m call --list`:
    /// its parameters (`*` when required) and its body
    /// (`body:TransactionRequest*`), or `-`.
    pub fn takes_in_short(&self) -> String {
        let mut takes: Vec<String> = self
            .parameters
            .iter()
            .map(|p| format!("{}{}", p.name, if p.required { "*" } else { "" }))
            .collect();
        if let Some(body) = &self.body {
            takes.push(format!(
                "body{}{}",
                body.type_name
                    .as_ref()
                    .map(|name| format!(":{name}"))
                    .unwrap_or_default(),
                if body.required { "*" } else { "" }
            ));
        }
        if takes.is_empty() {
            "-".to_owned()
        } else {
            takes.join(" ")
        }
    }
}

/// Rows of name, location, type, required, then the description below.
fn table(out: &mut String, rows: &[[String; 4]], descriptions: &[String]) {
    let width = |column: usize| rows.iter().map(|r| r[column].len()).max().unwrap_or(0);
    let (name, location, kind) = (width(0), width(1), width(2));
    for (row, description) in rows.iter().zip(descriptions) {
        let mut line = format!("  {:<name$}  ", row[0]);
        if location > 0 {
            let _ = write!(line, "{:<location$}  ", row[1]);
        }
        let _ = write!(line, "{:<kind$}  {}", row[2], row[3]);
        let _ = writeln!(out, "{}", line.trim_end());
        if !description.is_empty() {
            for text in wrap(description, 74) {
                let _ = writeln!(out, "      {text}");
            }
        }
    }
}

/// `text` as lines of at most `width` characters (longer words stay whole).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// A description on one line, at most 240 characters.
fn clip(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= 240 {
        line
    } else {
        let cut: String = line.chars().take(239).collect();
        format!("{cut}…")
    }
}
