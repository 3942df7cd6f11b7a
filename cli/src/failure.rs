//! How the command fails: one line on stderr, no backtrace, no secret, and
//! an exit code that tells usage errors from remote ones.

use std::process::ExitCode;

/// A failed command.
#[derive(Debug)]
pub struct Failure {
    kind: Kind,
    message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The remote side or authentication failed: exit 1.
    Remote,
    /// The command line or the configuration is wrong: exit 2.
    Usage,
}

impl Failure {
    /// A remote or authentication failure (exit code 1).
    pub fn remote(message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Remote,
            message: message.into(),
        }
    }

    /// A usage or configuration error (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Usage,
            message: message.into(),
        }
    }

    /// Prints the one-line message and returns the exit code.
    pub fn report(self) -> ExitCode {
        let line = self.message.replace(['\n', '\r'], " ");
        eprintln!("m2m: error: {line}");
        match self.kind {
            Kind::Remote => ExitCode::from(1),
            Kind::Usage => ExitCode::from(2),
        }
    }
}

impl From<m2m::config::ConfigFileError> for Failure {
    fn from(error: m2m::config::ConfigFileError) -> Self {
        Failure::usage(error.to_string())
    }
}
