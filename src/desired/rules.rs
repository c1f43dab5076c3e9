//! Syntax rules for names, domains, label values and resource quantities.

/// `^[a-z]([a-z0-9-]{1,38})[a-z0-9]$`: 3 to 40 characters, usable in a namespace name.
pub fn is_store_name(s: &str) -> bool {
    let b = s.as_bytes();
    (3..=40).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b[1..b.len() - 1]
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && (b[b.len() - 1].is_ascii_lowercase() || b[b.len() - 1].is_ascii_digit())
}

/// A DNS-1123 label: 1 to 63 characters of a-z, 0-9 and '-', alphanumeric at both ends.
pub fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// A host name an Ingress accepts: at least two DNS labels, 253 characters at most, no wildcard.
pub fn is_domain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').count() >= 2 && s.split('.').all(is_dns_label)
}

/// A Kubernetes label value that is not empty: 63 characters at most, alphanumeric at both ends,
/// '-', '_' and '.' inside.
pub fn is_label_value(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

/// A non-negative Kubernetes resource quantity: `500m`, `2Gi`, `1.5`, `1e3`.
pub fn is_quantity(s: &str) -> bool {
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let valid_number = !number.is_empty()
        && number != "."
        && number.matches('.').count() <= 1
        && number.chars().any(|c| c.is_ascii_digit());
    let valid_suffix = match suffix {
        "" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" | "n" | "u" | "m" | "k" | "M" | "G" | "T" | "P"
        | "E" => true,
        s => {
            let exp = s.strip_prefix(['e', 'E']).unwrap_or("");
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            !digits.is_empty() && digits.len() <= 3 && digits.chars().all(|c| c.is_ascii_digit())
        }
    };
    valid_number && valid_suffix
}

/// A dotted chart value path such as `admin.email`.
pub fn is_value_path(s: &str) -> bool {
    !s.is_empty()
        && s.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        })
}

/// A chart directory name under the charts directory: one path segment of letters, digits,
/// '-', '_' and '.', not starting with '.'.
pub fn is_chart_dir_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// An `oci://host/path` chart reference: a host (with an optional port) and no user info, a
/// path of non-empty segments without `.` or `..`, and no whitespace or control characters.
pub fn is_oci_reference(s: &str) -> bool {
    let Some(rest) = s.strip_prefix("oci://") else {
        return false;
    };
    let Some((host, path)) = rest.split_once('/') else {
        return false;
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':' | '_'));
    let path_ok = path
        .split('/')
        .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && !path.chars().any(|c| c.is_whitespace() || c.is_control());
    host_ok && path_ok
}

/// A relative directory inside the catalog: no leading `/`, no empty, `.` or `..` segment.
pub fn is_catalog_dir(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('/')
        && s.split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names() {
        for ok in ["acme", "bobs-bikes", "a1b", "x".repeat(40).as_str(), "shop-2"] {
            assert!(is_store_name(ok), "{ok} should be valid");
        }
        for bad in [
            "ab",
            "Acme",
            "1acme",
            "acme-",
            "-acme",
            "ac_me",
            "acme.shop",
            "",
            &"x".repeat(41),
        ] {
            assert!(!is_store_name(bad), "{bad} should be invalid");
        }
    }

    #[test]
    fn domains() {
        for ok in ["acme.shop.example", "a.io", "x-1.example.com"] {
            assert!(is_domain(ok), "{ok}");
        }
        for bad in [
            "localhost",
            "*.shop.example",
            "acme..example",
            "-a.example",
            "Acme.example",
            "a_b.example",
            "a.example.",
        ] {
            assert!(!is_domain(bad), "{bad}");
        }
    }

    #[test]
    fn label_values() {
        assert!(is_label_value("team-acme"));
        assert!(is_label_value("Team_A.b"));
        assert!(!is_label_value(""));
        assert!(!is_label_value("team acme"));
        assert!(!is_label_value("-team"));
        assert!(!is_label_value(&"a".repeat(64)));
    }

    #[test]
    fn quantities() {
        for ok in ["1", "500m", "2Gi", "1.5", "0", "1e3", "10k", ".5"] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in ["", "-1", "1GB", "Gi", "1.2.3", "1e", "one", "1 Gi", "."] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }

    #[test]
    fn chart_references() {
        for ok in ["woocommerce", "medusa", "my_chart-2.x"] {
            assert!(is_chart_dir_name(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            ".hidden",
            "a/b",
            "/abs",
            "../x",
            "a b",
            "oci://x/y",
        ] {
            assert!(!is_chart_dir_name(bad), "{bad}");
        }
        for ok in [
            "oci://registry.example.com/charts/shop",
            "oci://localhost:5000/shop",
        ] {
            assert!(is_oci_reference(ok), "{ok}");
        }
        for bad in [
            "oci://",
            "oci://host",
            "oci://host/",
            "oci:///path",
            "oci://user@host/x",
            "oci://user:pw@host/x",
            "oci://host/../x",
            "oci://host/a/./b",
            "oci://host//x",
            "oci://host/a b",
            "oci://host/a\nb",
            "https://host/x",
        ] {
            assert!(!is_oci_reference(bad), "{bad}");
        }
    }

    #[test]
    fn catalog_dirs() {
        assert!(is_catalog_dir("stores") && is_catalog_dir("a/b-c"));
        for bad in ["", "/etc", "../x", "a/../b", "a//b", "./a", "a/"] {
            assert!(!is_catalog_dir(bad), "{bad}");
        }
    }
}
