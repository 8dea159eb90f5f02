//! Diagnostics: what the provider tells Terraform went wrong, with the
//! attribute path so Terraform can point at the file and line. No Rust
//! backtraces or debug formatting ever reach the user.

use super::proto::tfplugin6 as pb;

/// One step of an attribute path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    /// An object attribute or block name.
    Attr(String),
    /// A map key.
    Key(String),
    /// A list index.
    Index(i64),
}

/// A path to an attribute, e.g. `rule[0].namespace`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttrPath(pub Vec<PathStep>);

impl AttrPath {
    /// The path to a top-level attribute.
    pub fn root(name: &str) -> AttrPath {
        AttrPath(vec![PathStep::Attr(name.to_owned())])
    }

    /// This path extended with an attribute name.
    pub fn attr(&self, name: &str) -> AttrPath {
        let mut steps = self.0.clone();
        steps.push(PathStep::Attr(name.to_owned()));
        AttrPath(steps)
    }

    /// This path extended with a list index.
    pub fn index(&self, i: usize) -> AttrPath {
        let mut steps = self.0.clone();
        steps.push(PathStep::Index(i64::try_from(i).unwrap_or(i64::MAX)));
        AttrPath(steps)
    }

    /// This path extended with a map key.
    pub fn key(&self, k: &str) -> AttrPath {
        let mut steps = self.0.clone();
        steps.push(PathStep::Key(k.to_owned()));
        AttrPath(steps)
    }

    /// The protocol form.
    pub fn to_proto(&self) -> pb::AttributePath {
        use pb::attribute_path::{Step, step::Selector};
        pb::AttributePath {
            steps: self
                .0
                .iter()
                .map(|s| Step {
                    selector: Some(match s {
                        PathStep::Attr(n) => Selector::AttributeName(n.clone()),
                        PathStep::Key(k) => Selector::ElementKeyString(k.clone()),
                        PathStep::Index(i) => Selector::ElementKeyInt(*i),
                    }),
                })
                .collect(),
        }
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            match step {
                PathStep::Attr(n) if i == 0 => write!(f, "{n}")?,
                PathStep::Attr(n) => write!(f, ".{n}")?,
                PathStep::Key(k) => write!(f, "[{k:?}]")?,
                PathStep::Index(ix) => write!(f, "[{ix}]")?,
            }
        }
        Ok(())
    }
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The operation failed.
    Error,
    /// The operation succeeded with a caveat.
    Warning,
}

/// One message for Terraform to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// One line: what failed.
    pub summary: String,
    /// Why, and what to do about it.
    pub detail: String,
    /// The attribute it is about, if any.
    pub path: Option<AttrPath>,
}

impl Diagnostic {
    /// An error not tied to an attribute.
    pub fn error(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Error, summary: summary.into(), detail: detail.into(), path: None }
    }

    /// An error about one attribute.
    pub fn attribute_error(path: AttrPath, summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Error, summary: summary.into(), detail: detail.into(), path: Some(path) }
    }

    /// A warning not tied to an attribute.
    pub fn warning(summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, summary: summary.into(), detail: detail.into(), path: None }
    }

    /// A warning about one attribute.
    pub fn attribute_warning(path: AttrPath, summary: impl Into<String>, detail: impl Into<String>) -> Diagnostic {
        Diagnostic { severity: Severity::Warning, summary: summary.into(), detail: detail.into(), path: Some(path) }
    }

    /// An error from a Rust error: its `Display` as summary, its source
    /// chain as detail (never `Debug`, never a backtrace).
    pub fn from_error(err: &(dyn std::error::Error + 'static)) -> Diagnostic {
        let mut detail = Vec::new();
        let mut source = err.source();
        while let Some(s) = source {
            detail.push(s.to_string());
            source = s.source();
        }
        Diagnostic::error(err.to_string(), detail.join(": "))
    }

    /// The protocol form.
    pub fn to_proto(&self) -> pb::Diagnostic {
        pb::Diagnostic {
            severity: match self.severity {
                Severity::Error => pb::diagnostic::Severity::Error as i32,
                Severity::Warning => pb::diagnostic::Severity::Warning as i32,
            },
            summary: self.summary.clone(),
            detail: self.detail.clone(),
            attribute: self.path.as_ref().map(AttrPath::to_proto),
        }
    }
}

/// A list of diagnostics; the error type of every provider operation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// Adds one diagnostic.
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    /// Whether any is an error.
    pub fn has_errors(&self) -> bool {
        self.0.iter().any(|d| d.severity == Severity::Error)
    }

    /// Appends all of `other`.
    pub fn extend(&mut self, other: Diagnostics) {
        self.0.extend(other.0);
    }

    /// The protocol form.
    pub fn to_proto(&self) -> Vec<pb::Diagnostic> {
        self.0.iter().map(Diagnostic::to_proto).collect()
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Diagnostics {
        Diagnostics(vec![d])
    }
}

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for d in &self.0 {
            match &d.path {
                Some(p) => writeln!(f, "{p}: {}: {}", d.summary, d.detail)?,
                None => writeln!(f, "{}: {}", d.summary, d.detail)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("write object file /tmp/x.json")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chain_becomes_summary_and_detail_without_debug() {
        let err = Outer(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "permission denied"));
        let d = Diagnostic::from_error(&err);
        assert_eq!(d.summary, "write object file /tmp/x.json");
        assert_eq!(d.detail, "permission denied");
        assert!(!d.detail.contains("Os {") && !d.detail.contains("backtrace"));
    }

    #[test]
    fn path_renders_and_converts() {
        let p = AttrPath::root("rule").index(0).attr("namespace").key("k");
        assert_eq!(p.to_string(), "rule[0].namespace[\"k\"]");
        assert_eq!(p.to_proto().steps.len(), 4);
    }
}
