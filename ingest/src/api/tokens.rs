//! `API_TOKENS`: who may call the operator API and the console, and with which role.
//! `name:role:token`, comma-separated; the name is what the audit trail records as the
//! actor, the token is a secret (never logged, compared in constant time).

use secrecy::{ExposeSecret, SecretString};
use shared::settings::SettingsError;
use subtle::ConstantTimeEq;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads tasks, dead letters and the audit trail.
    Viewer,
    /// Also cancels, retries and replays.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
        }
    }
}

/// Who called: the token's name and role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone)]
struct Token {
    name: String,
    role: Role,
    secret: SecretString,
}

/// The tokens of `API_TOKENS`; empty: the API answers 401 to everyone.
#[derive(Debug, Clone, Default)]
pub struct ApiTokens(Vec<Token>);

/// Tokens shorter than this are refused at start-up: they could be guessed.
const MIN_TOKEN_LEN: usize = 16;

impl ApiTokens {
    pub fn parse(entries: &[String]) -> Result<Self, SettingsError> {
        let bad = |reason: String| SettingsError::new("API_TOKENS", reason);
        let mut tokens: Vec<Token> = Vec::new();
        for (position, entry) in entries.iter().enumerate() {
            let mut parts = entry.splitn(3, ':');
            let (Some(name), Some(role), Some(secret)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(bad(format!(
                    "entry {} must be name:role:token",
                    position + 1
                )));
            };
            let name = name.trim();
            let valid_name = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'));
            if !valid_name {
                return Err(bad(format!(
                    "entry {}: the name must be 1-64 letters, digits, - _ . @",
                    position + 1
                )));
            }
            let role = match role.trim() {
                "viewer" => Role::Viewer,
                "operator" => Role::Operator,
                other => {
                    return Err(bad(format!(
                        "entry `{name}`: role `{other}` is not viewer or operator"
                    )));
                }
            };
            let secret = secret.trim();
            if secret.len() < MIN_TOKEN_LEN {
                return Err(bad(format!(
                    "entry `{name}`: the token must be at least {MIN_TOKEN_LEN} characters"
                )));
            }
            if tokens.iter().any(|t| t.name == name) {
                return Err(bad(format!("entry `{name}` is listed twice")));
            }
            tokens.push(Token {
                name: name.to_owned(),
                role,
                secret: SecretString::from(secret.to_owned()),
            });
        }
        Ok(Self(tokens))
    }

    /// The caller a presented token belongs to. Every token is compared (in constant
    /// time each), so the answer's timing does not say which one came close.
    pub fn caller(&self, presented: &str) -> Option<Caller> {
        let mut found = None;
        for token in &self.0 {
            let same: bool = token
                .secret
                .expose_secret()
                .as_bytes()
                .ct_eq(presented.as_bytes())
                .into();
            if same && found.is_none() {
                found = Some(Caller {
                    name: token.name.clone(),
                    role: token.role,
                });
            }
        }
        found
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_parse_into_named_roles_and_bad_entries_name_the_variable() {
        let tokens = ApiTokens::parse(&[
            "grafana:viewer:view-token-0123456789".into(),
            "ops@acme:operator:op:token:with:colons".into(),
        ])
        .expect("valid");
        assert_eq!(
            tokens.caller("view-token-0123456789"),
            Some(Caller {
                name: "grafana".into(),
                role: Role::Viewer
            })
        );
        let ops = tokens.caller("op:token:with:colons").expect("operator");
        assert_eq!(ops.role, Role::Operator);
        assert_eq!(tokens.caller("view-token-012345678"), None, "a prefix");
        assert_eq!(tokens.caller(""), None);
        assert!(!format!("{tokens:?}").contains("view-token"), "redacted");
        for bad in [
            "grafana:viewer",
            "grafana:admin:0123456789abcdef",
            ":viewer:0123456789abcdef",
            "a b:viewer:0123456789abcdef",
            "short:viewer:123",
        ] {
            let error = ApiTokens::parse(&[bad.into()]).expect_err(bad);
            assert_eq!(error.variable, "API_TOKENS");
            assert!(!error.to_string().contains("0123456789abcdef"), "{error}");
        }
        let twice = [
            "a:viewer:0123456789abcdef".into(),
            "a:operator:fedcba9876543210".into(),
        ];
        assert!(ApiTokens::parse(&twice).is_err());
    }
}
