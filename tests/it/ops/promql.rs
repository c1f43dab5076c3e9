//! Just enough of PromQL to find what an expression reads: the metric names of its selectors,
//! their label matchers, and the labels it groups or matches on. Syntax is promtool's to judge;
//! this reader only has to be right about names, and says so when it meets something it cannot
//! place rather than guessing.

/// `metric{label op "value", ...}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub metric: String,
    pub matchers: Vec<Matcher>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    pub value: String,
}

/// What an expression reads.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reads {
    pub selectors: Vec<Selector>,
    /// Labels of `by`, `without`, `on`, `ignoring`, `group_left` and `group_right` lists.
    pub grouping: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Str(String),
    /// Numbers and durations, also Grafana variables such as `$__rate_interval`.
    Literal,
    Punct(&'static str),
}

/// Keywords that take a parenthesised list of label names.
const LABEL_LIST_KEYWORDS: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];
/// Keywords and aggregation operators: never a metric name, whether or not `(` follows.
const KEYWORDS: [&str; 22] = [
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const PUNCT: [&str; 24] = [
    "=~", "!~", "!=", "==", "<=", ">=", "{", "}", "(", ")", "[", "]", ",", "=", "<", ">", "+", "-", "*", "/",
    "%", "^", "@", ":",
];

fn lex(expr: &str) -> Result<Vec<Token>, String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == ':';
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '"' || c == '\'' || c == '`' {
            let mut value = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(format!("unterminated string in {expr:?}")),
                    Some(&q) if q == c => break,
                    Some('\\') if c != '`' => {
                        value.extend(chars.get(i + 1));
                        i += 2;
                    }
                    Some(&other) => {
                        value.push(other);
                        i += 1;
                    }
                }
            }
            i += 1;
            tokens.push(Token::Str(value));
        } else if c.is_ascii_digit() || c == '.' || c == '$' {
            i += 1;
            if c == '$' && chars.get(i) == Some(&'{') {
                while i < chars.len() && chars[i] != '}' {
                    i += 1;
                }
                i += 1;
            }
            while i < chars.len() && (word(chars[i]) || chars[i] == '.') && chars[i] != ':' {
                i += 1;
            }
            tokens.push(Token::Literal);
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && word(chars[i]) {
                i += 1;
            }
            tokens.push(Token::Ident(chars[start..i].iter().collect()));
        } else if let Some(p) = PUNCT.iter().find(|p| expr_at(&chars, i, p)) {
            i += p.len();
            tokens.push(Token::Punct(p));
        } else {
            return Err(format!("unexpected {c:?} in {expr:?}"));
        }
    }
    Ok(tokens)
}

fn expr_at(chars: &[char], i: usize, p: &str) -> bool {
    p.chars().enumerate().all(|(k, pc)| chars.get(i + k) == Some(&pc))
}

/// The selectors and grouping labels of `expr`.
pub fn reads(expr: &str) -> Result<Reads, String> {
    let tokens = lex(expr)?;
    let mut out = Reads::default();
    let mut i = 0;
    while i < tokens.len() {
        match &tokens[i] {
            Token::Ident(name) if LABEL_LIST_KEYWORDS.contains(&name.to_lowercase().as_str()) => {
                i += 1;
                if tokens.get(i) == Some(&Token::Punct("(")) {
                    i += 1;
                    loop {
                        match tokens.get(i) {
                            Some(Token::Punct(")")) => break,
                            Some(Token::Punct(",")) => {}
                            Some(Token::Ident(label)) => out.grouping.push(label.clone()),
                            other => {
                                return Err(format!("{other:?} in the label list of {name} in {expr:?}"));
                            }
                        }
                        i += 1;
                    }
                    i += 1;
                }
            }
            Token::Ident(name) if KEYWORDS.contains(&name.to_lowercase().as_str()) => i += 1,
            // A function call.
            Token::Ident(_) if tokens.get(i + 1) == Some(&Token::Punct("(")) => i += 1,
            Token::Ident(metric) => {
                i += 1;
                let matchers = if tokens.get(i) == Some(&Token::Punct("{")) {
                    let (matchers, next) = matchers(&tokens, i + 1, expr)?;
                    i = next;
                    matchers
                } else {
                    Vec::new()
                };
                out.selectors.push(Selector {
                    metric: metric.clone(),
                    matchers,
                });
            }
            Token::Punct("{") => return Err(format!("a selector without a metric name in {expr:?}")),
            // Ranges, subqueries and offsets name no metric.
            Token::Punct("[") => {
                while i < tokens.len() && tokens[i] != Token::Punct("]") {
                    i += 1;
                }
                i += 1;
            }
            _ => i += 1,
        }
    }
    Ok(out)
}

/// The matchers from just after `{` up to its `}`; returns them and the index after `}`.
fn matchers(tokens: &[Token], mut i: usize, expr: &str) -> Result<(Vec<Matcher>, usize), String> {
    let mut out = Vec::new();
    loop {
        match (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2)) {
            (Some(Token::Punct("}")), _, _) => return Ok((out, i + 1)),
            (Some(Token::Punct(",")), _, _) => i += 1,
            (Some(Token::Ident(label)), Some(Token::Punct(op)), Some(Token::Str(value)))
                if ["=", "!=", "=~", "!~"].contains(op) =>
            {
                out.push(Matcher {
                    label: label.clone(),
                    op: op.to_string(),
                    value: value.clone(),
                });
                i += 3;
            }
            (t, _, _) => return Err(format!("cannot read a label matcher at {t:?} in {expr:?}")),
        }
    }
}

/// The literal values a matcher can match: its value, or each branch of a regex made only of
/// `|`-separated words. None when the value is a pattern or a template variable.
pub fn literal_values(m: &Matcher) -> Option<Vec<&str>> {
    let plain = |v: &str| {
        !v.is_empty()
            && v.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    match m.op.as_str() {
        "=" | "!=" if plain(&m.value) => Some(vec![m.value.as_str()]),
        "=~" | "!~" if m.value.split('|').all(plain) => Some(m.value.split('|').collect()),
        _ => None,
    }
}
