//! Validation findings that point at a file, line and column, with a hint on how to fix them.
use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Path of the file relative to the catalog root, e.g. `stores/acme.yaml`.
    pub file: String,
    /// 1-based line; 0 when the finding is about the file as a whole.
    pub line: usize,
    /// 1-based column; 0 when the finding is about the file as a whole.
    pub column: usize,
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(
        file: impl Into<String>,
        (line, column): (usize, usize),
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            file: file.into(),
            line,
            column,
            severity: Severity::Error,
            message: message.into(),
            hint: None,
        }
    }

    pub fn warning(
        file: impl Into<String>,
        (line, column): (usize, usize),
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(file, (line, column), message)
        }
    }

    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:col` (line and column omitted when unknown).
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.file.clone()
        } else {
            format!("{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{}: {severity}: {}", self.location(), self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

/// Orders findings by file, then position, errors before warnings at the same spot.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (&a.file, a.line, a.column, a.severity, &a.message)
            .cmp(&(&b.file, b.line, b.column, b.severity, &b.message))
    });
}

/// Keeps the first `max` findings of each file of a sorted list and replaces the rest with one
/// finding that counts them (at the first one left out), so that one file cannot flood the
/// output.
pub fn cap_per_file(diagnostics: &mut Vec<Diagnostic>, max: usize) {
    let all = std::mem::take(diagnostics);
    let mut index = 0;
    while index < all.len() {
        let file = &all[index].file;
        let end = index + all[index..].iter().take_while(|d| &d.file == file).count();
        let shown = (end - index).min(max);
        diagnostics.extend(all[index..index + shown].iter().cloned());
        if let Some(first) = all.get(index + shown).filter(|_| index + shown < end) {
            let rest = &all[index + shown..end];
            diagnostics.push(Diagnostic {
                severity: if rest.iter().any(Diagnostic::is_error) {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                message: format!("{} more findings in this file are not shown", rest.len()),
                hint: Some("fix the findings above and validate again".into()),
                ..first.clone()
            });
        }
        index = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_findings_per_file() {
        let mut all: Vec<Diagnostic> = (1..=5)
            .map(|line| Diagnostic::error("a.yaml", (line, 1), "bad"))
            .chain([Diagnostic::warning("b.yaml", (1, 1), "meh")])
            .collect();
        cap_per_file(&mut all, 2);
        let shown: Vec<String> = all
            .iter()
            .map(|d| format!("{}: {}", d.location(), d.message))
            .collect();
        assert_eq!(
            shown,
            vec![
                "a.yaml:1:1: bad",
                "a.yaml:2:1: bad",
                "a.yaml:3:1: 3 more findings in this file are not shown",
                "b.yaml:1:1: meh",
            ]
        );
        assert!(all[2].is_error());
    }
}
