//! Validation findings that point at a file, line and column, with a hint on how to fix them.
use std::collections::HashMap;
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

/// Findings reported per file; the rest are counted in one more finding.
pub const MAX_FINDINGS_PER_FILE: usize = 50;

/// Findings of one file that a producer left out past the cap: how many, where the first one
/// is, and whether any is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Omitted {
    pub count: usize,
    pub first: (usize, usize),
    pub error: bool,
}

impl Omitted {
    fn add(self, other: Omitted) -> Omitted {
        Omitted {
            count: self.count + other.count,
            first: self.first.min(other.first),
            error: self.error || other.error,
        }
    }
}

/// The findings of one file as they come, in position order: the first `max` are built and
/// kept, the rest only counted, so that a file with thousands costs no more than `max`.
pub(super) struct Capped {
    pub kept: Vec<Diagnostic>,
    pub omitted: Option<Omitted>,
    max: usize,
}

impl Capped {
    pub(super) fn new(max: usize) -> Capped {
        Capped {
            kept: Vec::new(),
            omitted: None,
            max,
        }
    }

    /// Adds the finding at `at`; `make` builds it only when it is kept.
    pub(super) fn push(&mut self, at: (usize, usize), error: bool, make: impl FnOnce() -> Diagnostic) {
        if self.kept.len() < self.max {
            self.kept.push(make());
            return;
        }
        let one = Omitted {
            count: 1,
            first: at,
            error,
        };
        self.omitted = Some(self.omitted.map_or(one, |o| o.add(one)));
    }
}

/// The findings of a whole catalog, and what producers left out of each file.
#[derive(Default)]
pub(super) struct Findings {
    list: Vec<Diagnostic>,
    omitted: HashMap<String, Omitted>,
}

impl Findings {
    pub(super) fn push(&mut self, d: Diagnostic) {
        self.list.push(d);
    }

    pub(super) fn extend(&mut self, found: impl IntoIterator<Item = Diagnostic>) {
        self.list.extend(found);
    }

    /// Adds the findings of `file` that a producer kept, and the count of those it left out.
    pub(super) fn add(&mut self, file: &str, kept: Vec<Diagnostic>, omitted: Option<Omitted>) {
        self.list.extend(kept);
        if let Some(o) = omitted {
            let merged = self.omitted.get(file).map_or(o, |had| had.add(o));
            self.omitted.insert(file.to_string(), merged);
        }
    }

    /// Sorted, at most [`MAX_FINDINGS_PER_FILE`] per file and then their count.
    pub(super) fn finish(self) -> Vec<Diagnostic> {
        let mut list = self.list;
        sort(&mut list);
        cap_per_file(&mut list, &self.omitted, MAX_FINDINGS_PER_FILE);
        list
    }
}

/// Keeps the first `max` findings of each file of a sorted list and replaces the rest, with
/// what producers already left out (`omitted`, by file), by one finding that counts them at
/// the first one left out.
pub(super) fn cap_per_file(
    diagnostics: &mut Vec<Diagnostic>,
    omitted: &HashMap<String, Omitted>,
    max: usize,
) {
    let all = std::mem::take(diagnostics);
    let mut files: Vec<&String> = omitted.keys().collect();
    files.extend(all.iter().map(|d| &d.file));
    files.sort();
    files.dedup();
    let mut index = 0;
    for file in files {
        let end = index + all[index..].iter().take_while(|d| &d.file == file).count();
        let shown = (end - index).min(max);
        diagnostics.extend(all[index..index + shown].iter().cloned());
        let rest = &all[index + shown..end];
        let over = rest.first().map(|first| Omitted {
            count: rest.len(),
            first: (first.line, first.column),
            error: rest.iter().any(Diagnostic::is_error),
        });
        let left_out = match (over, omitted.get(file).copied()) {
            (Some(a), Some(b)) => Some(a.add(b)),
            (a, b) => a.or(b),
        };
        if let Some(o) = left_out {
            let severity = if o.error {
                Severity::Error
            } else {
                Severity::Warning
            };
            diagnostics.push(Diagnostic {
                severity,
                ..Diagnostic::error(
                    file.as_str(),
                    o.first,
                    format!("{} more findings in this file are not shown", o.count),
                )
                .hint("fix the findings above and validate again")
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
        let left_out = Omitted {
            count: 4,
            first: (9, 1),
            error: false,
        };
        let omitted = HashMap::from([("b.yaml".to_string(), left_out), ("c.yaml".to_string(), left_out)]);
        cap_per_file(&mut all, &omitted, 2);
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
                "b.yaml:9:1: 4 more findings in this file are not shown",
                "c.yaml:9:1: 4 more findings in this file are not shown",
            ]
        );
        assert!(all[2].is_error() && !all[4].is_error());
    }

    #[test]
    fn capped_builds_only_what_it_keeps() {
        let mut capped = Capped::new(2);
        let mut built = 0;
        for line in 1..=5 {
            capped.push((line, 1), line == 4, || {
                built += 1;
                Diagnostic::warning("a.yaml", (line, 1), "x")
            });
        }
        assert_eq!((capped.kept.len(), built), (2, 2));
        assert_eq!(
            capped.omitted,
            Some(Omitted {
                count: 3,
                first: (3, 1),
                error: true
            })
        );
    }
}
