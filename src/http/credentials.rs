//! The credentials file of `--auth verify`: who may call, with which secret, in which account.
//!
//! AWS's shared-credentials INI syntax (`[section]`, `key = value`, `#` and `;` comments), so
//! an operator can copy sections from `~/.aws/credentials` and add an `account_id`:
//!
//! ```ini
//! [team-a]
//! aws_access_key_id = AKIAEXAMPLETEAMA0001
//! aws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY
//! account_id = 111111111111
//! ```
//!
//! Anything doubtful refuses the whole file, naming the line: a server that silently
//! dropped a section would lock a team out with nothing in the log to say why.

use std::collections::HashMap;
use std::path::Path;

/// One access key: its secret and the account its requests act in.
#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// The section the key was declared in, for log lines.
    pub name: String,
    /// The access key id, as clients send it in the credential scope.
    pub access_key_id: String,
    /// The secret the signature is checked against.
    pub secret_access_key: String,
    /// 12 digits.
    pub account_id: String,
}

impl std::fmt::Debug for Identity {
    // The secret never reaches a log line, even by `{:?}`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("name", &self.name)
            .field("access_key_id", &self.access_key_id)
            .field("account_id", &self.account_id)
            .finish_non_exhaustive()
    }
}

/// The identities of a credentials file, by access key id.
#[derive(Debug, Clone, Default)]
pub struct Credentials {
    by_key: HashMap<String, Identity>,
}

/// Why a credentials file was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("credentials file {file}, line {line}: {reason}")]
pub struct CredentialsError {
    /// The file (its path, or `<text>` when parsed from a string).
    pub file: String,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

const KEY_ID: &str = "aws_access_key_id";
const SECRET: &str = "aws_secret_access_key";
const ACCOUNT: &str = "account_id";

impl Credentials {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, CredentialsError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| CredentialsError {
            file: file.clone(),
            line: 0,
            reason: format!("cannot read it: {e}"),
        })?;
        Self::parse(&file, &text)
    }

    /// Parses the text of a credentials file; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Self, CredentialsError> {
        let err = |line: usize, reason: String| CredentialsError {
            file: file.to_string(),
            line,
            reason,
        };
        // (section name, line of its header, its key/value pairs with their lines)
        type Section = (String, usize, Vec<(String, String, usize)>);
        let mut sections: Vec<Section> = Vec::new();
        // A set beside the list: scanning the list for each header was quadratic (found by
        // fuzzing: 20,000 sections took seconds).
        let mut section_names: std::collections::HashSet<String> = Default::default();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some(name) = rest.strip_suffix(']') else {
                    return Err(err(
                        line_no,
                        format!("'{line}' opens a section but has no ']'"),
                    ));
                };
                let name = name.trim().trim_start_matches("profile ").trim();
                if name.is_empty() {
                    return Err(err(line_no, "a section needs a name".into()));
                }
                if !section_names.insert(name.to_string()) {
                    return Err(err(line_no, format!("section [{name}] is declared twice")));
                }
                sections.push((name.to_string(), line_no, Vec::new()));
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(err(
                    line_no,
                    "expected 'name = value', a [section] or a comment".into(),
                ));
            };
            let Some((_, _, pairs)) = sections.last_mut() else {
                return Err(err(line_no, "a setting before the first [section]".into()));
            };
            let key = key.trim().to_ascii_lowercase();
            if !matches!(key.as_str(), KEY_ID | SECRET | ACCOUNT) {
                return Err(err(
                    line_no,
                    format!("unknown setting '{key}' (expected {KEY_ID}, {SECRET}, {ACCOUNT})"),
                ));
            }
            if pairs.iter().any(|(k, _, _)| *k == key) {
                return Err(err(
                    line_no,
                    format!("'{key}' is set twice in this section"),
                ));
            }
            pairs.push((key, value.trim().to_string(), line_no));
        }

        let mut by_key: HashMap<String, Identity> = HashMap::new();
        for (name, header_line, pairs) in sections {
            let get = |key: &str| pairs.iter().find(|(k, _, _)| k == key);
            let mut missing = Vec::new();
            for key in [KEY_ID, SECRET, ACCOUNT] {
                if get(key).is_none_or(|(_, v, _)| v.is_empty()) {
                    missing.push(key);
                }
            }
            if !missing.is_empty() {
                return Err(err(
                    header_line,
                    format!("section [{name}] lacks {}", missing.join(", ")),
                ));
            }
            let (_, key_id, key_line) = get(KEY_ID).cloned().unwrap_or_default();
            let (_, secret, _) = get(SECRET).cloned().unwrap_or_default();
            let (_, account, account_line) = get(ACCOUNT).cloned().unwrap_or_default();
            // The key id travels in the credential scope, between slashes and commas.
            if !key_id.bytes().all(|b| b.is_ascii_alphanumeric()) || key_id.len() > 128 {
                return Err(err(
                    key_line,
                    format!("access key id '{key_id}' must be 1 to 128 letters and digits"),
                ));
            }
            if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err(
                    account_line,
                    format!("account_id '{account}' must be 12 digits"),
                ));
            }
            if let Some(other) = by_key.get(&key_id) {
                return Err(err(
                    key_line,
                    format!(
                        "access key id {key_id} is also in section [{}]; a key belongs to one account",
                        other.name
                    ),
                ));
            }
            by_key.insert(
                key_id.clone(),
                Identity {
                    name,
                    access_key_id: key_id,
                    secret_access_key: secret,
                    account_id: account,
                },
            );
        }
        if by_key.is_empty() {
            return Err(err(
                0,
                "no identity in it: --auth verify would refuse every request".into(),
            ));
        }
        Ok(Self { by_key })
    }

    /// The identity of an access key id.
    pub fn get(&self, access_key_id: &str) -> Option<&Identity> {
        self.by_key.get(access_key_id)
    }

    /// How many keys the file declares.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether no key is declared (never true of a loaded file).
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The distinct accounts, sorted (for the start-up log line).
    pub fn accounts(&self) -> Vec<&str> {
        let mut accounts: Vec<&str> = self
            .by_key
            .values()
            .map(|i| i.account_id.as_str())
            .collect();
        accounts.sort_unstable();
        accounts.dedup();
        accounts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
# two accounts, two keys for the first
[alice]
aws_access_key_id = AKIDALICE
aws_secret_access_key = secret/alice+1
account_id = 111111111111

[profile alice-ci]
aws_access_key_id=AKIDALICECI
aws_secret_access_key=secret-ci
account_id=111111111111
; the other team
[bob]
aws_access_key_id = AKIDBOB
aws_secret_access_key = secret-bob
account_id = 222222222222
";

    fn parse_err(text: &str) -> CredentialsError {
        Credentials::parse("f.ini", text).unwrap_err()
    }

    #[test]
    fn several_accounts_and_keys() {
        let creds = Credentials::parse("f.ini", GOOD).unwrap();
        assert_eq!(creds.len(), 3);
        assert_eq!(creds.accounts(), vec!["111111111111", "222222222222"]);
        let ci = creds.get("AKIDALICECI").unwrap();
        assert_eq!(ci.name, "alice-ci");
        assert_eq!(ci.secret_access_key, "secret-ci");
        assert_eq!(
            creds.get("AKIDALICE").unwrap().secret_access_key,
            "secret/alice+1"
        );
        assert!(creds.get("AKIDNOBODY").is_none());
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let creds = Credentials::parse("f.ini", GOOD).unwrap();
        let shown = format!("{creds:?}");
        assert!(!shown.contains("secret-bob"), "{shown}");
        assert!(shown.contains("AKIDBOB"));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse_err("[a]\naws_access_key_id = K\nnonsense\n");
        assert_eq!(e.line, 3);
        assert!(
            e.to_string()
                .starts_with("credentials file f.ini, line 3: expected"),
            "{e}"
        );

        let e =
            parse_err("[a]\naws_access_key_id = K\naws_secret_access_key = s\naccount_id = 12\n");
        assert_eq!(
            (e.line, e.reason.as_str()),
            (4, "account_id '12' must be 12 digits")
        );

        let e = parse_err("[a]\naws_access_key_id = K\n");
        assert_eq!(e.line, 1);
        assert_eq!(
            e.reason,
            "section [a] lacks aws_secret_access_key, account_id"
        );

        let e = parse_err("aws_access_key_id = K\n");
        assert_eq!(
            (e.line, e.reason.as_str()),
            (1, "a setting before the first [section]")
        );

        let e = parse_err("[a\n");
        assert_eq!(e.line, 1);

        let e = parse_err("[a]\nregion = us-east-1\n");
        assert!(e.reason.starts_with("unknown setting 'region'"), "{e}");

        let e = parse_err(
            "[a]\naws_access_key_id = K/1\naws_secret_access_key = s\naccount_id = 123456789012\n",
        );
        assert_eq!(e.line, 2);
    }

    #[test]
    fn a_key_in_two_sections_or_a_section_twice_is_refused() {
        let twice = "[a]\naws_access_key_id = K\naws_secret_access_key = s\naccount_id = 111111111111\n\
                     [b]\naws_access_key_id = K\naws_secret_access_key = t\naccount_id = 222222222222\n";
        let e = parse_err(twice);
        assert_eq!(e.line, 6);
        assert!(e.reason.contains("also in section [a]"), "{e}");
        let e = parse_err("[a]\n[a]\n");
        assert_eq!(
            (e.line, e.reason.as_str()),
            (2, "section [a] is declared twice")
        );
    }

    #[test]
    fn an_empty_file_is_refused() {
        let e = parse_err("# nothing\n");
        assert_eq!(e.line, 0);
        assert!(e.reason.starts_with("no identity"), "{e}");
    }

    #[test]
    fn unreadable_file_is_refused() {
        let e = Credentials::load(Path::new("/nonexistent/creds.ini")).unwrap_err();
        assert!(e.reason.starts_with("cannot read it"), "{e}");
    }
}

/// Bounded fuzzing of the credentials-file parser (see `crate::fuzzing`): a valid file of
/// two accounts damaged at the byte level, lines duplicated, sections repeated thousands of
/// times, huge values and invalid UTF-8 made lossy. Nothing panics or hangs; a refusal
/// names a line of the file (or 0 for the whole file), and what parses has only valid keys
/// and 12-digit accounts.
#[cfg(test)]
mod fuzz {
    use super::*;
    use crate::fuzzing::{Run, damage, show};

    const FILE: &str = "# comment\n[default]\naws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\naccount_id = 000000000000\n\n; other\n[profile second]\nAWS_ACCESS_KEY_ID=AKIDSECOND\naws_secret_access_key=s=e=c\naccount_id=111111111111\n";
    const BYTES: &[u8] = b"[]=#; \t\r\naws_access_key_idsecretaccount_profile0123456789AKID\0\xff";

    #[test]
    fn fuzzed_credentials_files_never_panic() {
        let mut run = Run::new("credentials_file", 10_000, 0xc4ed_5f11);
        for i in 0..run.iterations() {
            let rng = &mut run.rng;
            let mut bytes = FILE.as_bytes().to_vec();
            if rng.chance(500) {
                // Many sections: the checks across sections must stay fast.
                let section = format!(
                    "[p{}]\naws_access_key_id=K{}\naws_secret_access_key=s\naccount_id=000000000000\n",
                    rng.below(10),
                    rng.below(10)
                );
                for n in 0..rng.below(20_000) {
                    bytes.extend_from_slice(
                        section
                            .replace("p", &format!("p{n}_"))
                            .replace("=K", &format!("=K{n}x"))
                            .as_bytes(),
                    );
                }
            }
            for _ in 0..rng.below(6) {
                damage(rng, &mut bytes, BYTES, FILE.as_bytes());
            }
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let lines = text.lines().count();
            match run.input(i, || show(&bytes), || Credentials::parse("f", &text)) {
                Ok(c) => {
                    assert!(!c.is_empty());
                    for account in c.accounts() {
                        assert!(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()));
                    }
                }
                Err(e) => assert!(e.line <= lines, "{e:?}"),
            }
        }
        run.finish();
    }
}
