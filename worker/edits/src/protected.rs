//! The operator's protected-path globs (`PROTECTED_PATHS`): matching a normalized path
//! against patterns such as `deploy/**`, `*.pem` or `infra/`.
//!
//! Syntax (a small, documented subset of gitignore, matched ASCII-case-insensitively
//! because macOS and Windows checkouts treat `Deploy/` and `deploy/` as one directory):
//! - `*` matches any run of characters inside one path component, `?` one character;
//!   `**` as a whole component matches any number of components (zero included).
//! - A pattern without `/` (`*.pem`, `secrets`) matches a component at any depth, so
//!   `secrets` protects `a/secrets/b.txt` as well.
//! - A pattern with `/` is anchored at the repository root (a leading `/` or `./` is
//!   ignored); a trailing `/` means "this directory and everything in it".
//! - A pattern that matches a directory protects everything below it: `deploy/*` also
//!   protects `deploy/k8s/a.yaml`.
//!
//! Matching is a small dynamic programme over components and characters (quadratic in
//! the pattern and path lengths at worst, which are both short), never a regex.

/// The first pattern of `patterns` that protects the path given as its normalized
/// components (`["deploy", "a.yaml"]`), if any.
pub(crate) fn first_match<'p>(patterns: &'p [String], parts: &[&str]) -> Option<&'p str> {
    patterns
        .iter()
        .map(|p| p.trim())
        .find(|p| !p.is_empty() && protects(p, parts))
}

fn protects(pattern: &str, parts: &[&str]) -> bool {
    let pattern = pattern.replace('\\', "/");
    let pattern = pattern.trim_start_matches("./").trim_start_matches('/');
    let pattern = pattern.trim_end_matches('/');
    let segments: Vec<&str> = pattern
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    if segments.is_empty() {
        return false;
    }
    if segments.len() == 1 && !pattern.contains('/') {
        // Unanchored: any component, and with it everything below that component.
        return parts.iter().any(|c| component_matches(segments[0], c));
    }
    // Anchored: the pattern must match the whole path or one of its ancestor directories.
    (1..=parts.len()).any(|n| segments_match(&segments, &parts[..n]))
}

/// `segments` (with `**`) against every component of `parts`.
fn segments_match(segments: &[&str], parts: &[&str]) -> bool {
    // m[i][j]: segments[i..] matches parts[j..].
    let (s, p) = (segments.len(), parts.len());
    let mut m = vec![vec![false; p + 1]; s + 1];
    m[s][p] = true;
    for i in (0..s).rev() {
        for j in (0..=p).rev() {
            m[i][j] = if segments[i] == "**" {
                m[i + 1][j] || (j < p && m[i][j + 1])
            } else {
                j < p && component_matches(segments[i], parts[j]) && m[i + 1][j + 1]
            };
        }
    }
    m[0][0]
}

/// `*` and `?` inside one component, ASCII-case-insensitively.
fn component_matches(glob: &str, name: &str) -> bool {
    let g: Vec<char> = glob.chars().map(|c| c.to_ascii_lowercase()).collect();
    let n: Vec<char> = name.chars().map(|c| c.to_ascii_lowercase()).collect();
    // The classic two-pointer wildcard match: linear except when backtracking to the
    // last `*`, bounded by |glob| * |name|.
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if gi < g.len() && (g[gi] == '?' || (g[gi] != '*' && g[gi] == n[ni])) {
            gi += 1;
            ni += 1;
        } else if gi < g.len() && g[gi] == '*' {
            star = Some((gi, ni));
            gi += 1;
        } else if let Some((sg, sn)) = star {
            gi = sg + 1;
            ni = sn + 1;
            star = Some((sg, sn + 1));
        } else {
            return false;
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(pattern: &str, path: &str) -> bool {
        let parts: Vec<&str> = path.split('/').collect();
        first_match(&[pattern.to_string()], &parts).is_some()
    }

    /// (pattern, path, whether the pattern protects the path).
    const GLOBS: &[(&str, &str, bool)] = &[
        ("deploy/**", "deploy/k8s/a.yaml", true),
        ("deploy/**", "deploy/a", true),
        ("deploy/**", "src/deploy/a", false),
        ("deploy/", "deploy/a/b", true),
        ("/deploy", "deploy/a", true),
        ("./deploy/*", "deploy/k8s/a.yaml", true),
        ("*.pem", "a/b/c.pem", true),
        ("*.pem", "KEY.PEM", true),
        ("*.pem", "a.pem.txt", false),
        ("secrets", "x/secrets/y.txt", true),
        ("secrets", "x/secrets.txt", false),
        ("**/config/*.yml", "a/b/config/c.yml", true),
        ("**/config/*.yml", "config/c.yml", true),
        ("src/?.rs", "src/a.rs", true),
        ("src/?.rs", "src/ab.rs", false),
        ("docs/日本*.md", "docs/日本語.md", true),
        ("", "a", false),
        (" , ", "a", false),
    ];

    #[test]
    fn globs() {
        for &(pattern, path, protected) in GLOBS {
            assert_eq!(hit(pattern, path), protected, "{pattern:?} on {path:?}");
        }
    }

    #[test]
    fn many_stars_stay_fast() {
        let glob = "*a".repeat(200);
        let name = "a".repeat(4000) + "b";
        let started = std::time::Instant::now();
        assert!(!component_matches(&glob, &name));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}
