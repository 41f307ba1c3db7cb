//! Where the command line finds its endpoint, region and credentials: the same places, in
//! the same order, as the AWS CLI. With nothing configured it talks to a local broker as
//! `test`/`test` in `us-east-1`, which the broker accepts like any credential.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The default endpoint: a broker on this machine with its default port.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4567";
/// Region used when none is configured anywhere.
pub const DEFAULT_REGION: &str = "us-east-1";

/// An access key pair, with the session token of temporary credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `AKIA...`, or a 12-digit account id against the broker.
    pub access_key_id: String,
    /// Never printed.
    pub secret_access_key: String,
    /// `X-Amz-Security-Token`, for temporary credentials.
    pub session_token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// What the user said on the command line; `None` where nothing was given.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--endpoint-url`.
    pub endpoint_url: Option<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--profile`.
    pub profile: Option<String>,
    /// `--ca-bundle`.
    pub ca_bundle: Option<String>,
}

/// Everything needed to reach the service.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `http://host:port` (validated by the client).
    pub endpoint_url: String,
    /// The region requests are signed for.
    pub region: String,
    /// Who signs.
    pub credentials: Credentials,
    /// Extra certificates to trust for https endpoints, besides the system's: `--ca-bundle`,
    /// else `AWS_CA_BUNDLE`, else the profile's `ca_bundle` (the AWS CLI's order).
    pub ca_bundle: Option<PathBuf>,
}

/// Sections of an INI file (`[name]`) to their `key = value` pairs. Comments (`#`, `;`)
/// and the indented sub-settings the AWS config allows (`s3 =` blocks) are skipped.
pub fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for raw in text.lines() {
        if raw.starts_with([' ', '\t']) {
            continue;
        }
        let line = raw.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().to_string();
            sections.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(section), Some((key, value))) = (&current, line.split_once('=')) {
            sections
                .entry(section.clone())
                .or_default()
                .insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    sections
}

/// Resolves the settings. `env` reads an environment variable and `read_file` a file (so
/// that tests need neither); the order is the AWS CLI's:
///
/// - endpoint: `--endpoint-url`, `AWS_ENDPOINT_URL_KINESIS`, `AWS_ENDPOINT_URL`, the
///   profile's `endpoint_url`, then [`DEFAULT_ENDPOINT`];
/// - region: `--region`, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region` in the
///   config file, then [`DEFAULT_REGION`];
/// - credentials: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`),
///   the profile (`--profile`, `AWS_PROFILE`, else `default`) in the shared credentials
///   file (`AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`), then in the config
///   file (`AWS_CONFIG_FILE`, else `~/.aws/config`, section `[profile NAME]` or
///   `[default]`), then `test`/`test`.
///
/// A profile asked for by name that exists in neither file is an error, as with the CLI.
pub fn resolve(
    overrides: &Overrides,
    env: &dyn Fn(&str) -> Option<String>,
    read_file: &dyn Fn(&PathBuf) -> Option<String>,
) -> Result<Settings, String> {
    let env = |name: &str| env(name).filter(|v| !v.is_empty());
    let home = env("HOME").map(PathBuf::from);
    let in_home = |rel: &str| home.as_ref().map(|h| h.join(rel));
    let credentials_file = env("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .or_else(|| in_home(".aws/credentials"));
    let config_file = env("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .or_else(|| in_home(".aws/config"));
    let credentials_ini = credentials_file
        .as_ref()
        .and_then(read_file)
        .map(|t| parse_ini(&t))
        .unwrap_or_default();
    let config_ini = config_file
        .as_ref()
        .and_then(read_file)
        .map(|t| parse_ini(&t))
        .unwrap_or_default();

    let named_profile = overrides.profile.clone().or_else(|| env("AWS_PROFILE"));
    let profile = named_profile
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let empty = BTreeMap::new();
    let in_credentials = credentials_ini.get(&profile);
    // The config file names profiles `[profile NAME]`, except the default one.
    let in_config = config_ini.get(&format!("profile {profile}")).or_else(|| {
        (profile == "default")
            .then(|| config_ini.get("default"))
            .flatten()
    });
    if named_profile.is_some() && in_credentials.is_none() && in_config.is_none() {
        return Err(format!("The config profile ({profile}) could not be found"));
    }
    let in_credentials = in_credentials.unwrap_or(&empty);
    let in_config = in_config.unwrap_or(&empty);
    let from_profile = |key: &str| {
        in_credentials
            .get(key)
            .or_else(|| in_config.get(key))
            .filter(|v| !v.is_empty())
            .cloned()
    };

    let endpoint_url = overrides
        .endpoint_url
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL_KINESIS"))
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .or_else(|| in_config.get("endpoint_url").cloned())
        .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string());
    let region = overrides
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .or_else(|| in_config.get("region").cloned())
        .unwrap_or_else(|| DEFAULT_REGION.to_string());

    let credentials = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
        (Some(access_key_id), Some(secret_access_key)) => Credentials {
            access_key_id,
            secret_access_key,
            session_token: env("AWS_SESSION_TOKEN"),
        },
        _ => match (
            from_profile("aws_access_key_id"),
            from_profile("aws_secret_access_key"),
        ) {
            (Some(access_key_id), Some(secret_access_key)) => Credentials {
                access_key_id,
                secret_access_key,
                session_token: from_profile("aws_session_token"),
            },
            _ => Credentials {
                access_key_id: "test".into(),
                secret_access_key: "test".into(),
                session_token: None,
            },
        },
    };
    let ca_bundle = overrides
        .ca_bundle
        .clone()
        .filter(|v| !v.is_empty())
        .or_else(|| env("AWS_CA_BUNDLE"))
        .or_else(|| in_config.get("ca_bundle").cloned())
        .map(PathBuf::from);
    Ok(Settings {
        endpoint_url,
        region,
        credentials,
        ca_bundle,
    })
}

/// [`resolve`] against the real environment and files.
pub fn resolve_from_environment(overrides: &Overrides) -> Result<Settings, String> {
    resolve(overrides, &|name| std::env::var(name).ok(), &|path| {
        std::fs::read_to_string(path).ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(
        overrides: Overrides,
        vars: &[(&str, &str)],
        files: &[(&str, &str)],
    ) -> Result<Settings, String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let files: HashMap<PathBuf, String> = files
            .iter()
            .map(|(k, v)| (PathBuf::from(k), v.to_string()))
            .collect();
        resolve(&overrides, &|n| vars.get(n).cloned(), &|p| {
            files.get(p).cloned()
        })
    }

    const CREDENTIALS: &str = "\
# a comment
[default]
aws_access_key_id = AKIDDEFAULT
aws_secret_access_key = secret-default

[dev]
aws_access_key_id=123456789012
aws_secret_access_key=secret-dev
aws_session_token = token-dev
";
    const CONFIG: &str = "\
[default]
region = eu-west-1

[profile dev]
region = ap-south-1
s3 =
  max_concurrent_requests = 20
[profile config-only]
aws_access_key_id = AKIDCONFIG
aws_secret_access_key = secret-config
endpoint_url = http://10.0.0.1:4567
";

    #[test]
    fn nothing_configured_falls_back_to_a_local_broker() {
        let s = run(Overrides::default(), &[], &[]).unwrap();
        assert_eq!(s.endpoint_url, DEFAULT_ENDPOINT);
        assert_eq!(s.region, DEFAULT_REGION);
        assert_eq!(s.credentials.access_key_id, "test");
        assert_eq!(s.credentials.secret_access_key, "test");
    }

    #[test]
    fn ini_sections_keys_and_comments() {
        let ini = parse_ini(CONFIG);
        assert_eq!(ini["default"]["region"], "eu-west-1");
        assert_eq!(ini["profile dev"]["region"], "ap-south-1");
        // The indented block belongs to `s3`, not to the profile.
        assert!(!ini["profile dev"].contains_key("max_concurrent_requests"));
        assert_eq!(
            parse_ini(CREDENTIALS)["dev"]["aws_session_token"],
            "token-dev"
        );
    }

    #[test]
    fn default_profile_from_the_home_files() {
        let files = [
            ("/home/u/.aws/credentials", CREDENTIALS),
            ("/home/u/.aws/config", CONFIG),
        ];
        let s = run(Overrides::default(), &[("HOME", "/home/u")], &files).unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIDDEFAULT");
        assert_eq!(s.credentials.secret_access_key, "secret-default");
        assert_eq!(s.region, "eu-west-1");
    }

    #[test]
    fn named_profile_and_file_locations_from_the_environment() {
        let files = [("/etc/creds", CREDENTIALS), ("/etc/conf", CONFIG)];
        let vars = [
            ("AWS_PROFILE", "dev"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/etc/creds"),
            ("AWS_CONFIG_FILE", "/etc/conf"),
        ];
        let s = run(Overrides::default(), &vars, &files).unwrap();
        assert_eq!(s.credentials.access_key_id, "123456789012");
        assert_eq!(s.credentials.session_token.as_deref(), Some("token-dev"));
        assert_eq!(s.region, "ap-south-1");
        // --profile beats AWS_PROFILE; credentials may sit in the config file.
        let s = run(
            Overrides {
                profile: Some("config-only".into()),
                ..Default::default()
            },
            &vars,
            &files,
        )
        .unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIDCONFIG");
        assert_eq!(s.endpoint_url, "http://10.0.0.1:4567");
    }

    #[test]
    fn environment_beats_files_and_flags_beat_environment() {
        let files = [
            ("/home/u/.aws/credentials", CREDENTIALS),
            ("/home/u/.aws/config", CONFIG),
        ];
        let vars = [
            ("HOME", "/home/u"),
            ("AWS_ACCESS_KEY_ID", "AKIDENV"),
            ("AWS_SECRET_ACCESS_KEY", "secret-env"),
            ("AWS_SESSION_TOKEN", "token-env"),
            ("AWS_DEFAULT_REGION", "us-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:1"),
            ("AWS_ENDPOINT_URL_KINESIS", "http://127.0.0.1:2"),
        ];
        let s = run(Overrides::default(), &vars, &files).unwrap();
        assert_eq!(s.credentials.access_key_id, "AKIDENV");
        assert_eq!(s.credentials.session_token.as_deref(), Some("token-env"));
        assert_eq!(s.region, "us-west-1");
        assert_eq!(s.endpoint_url, "http://127.0.0.1:2");
        let mut with_region = vars.to_vec();
        with_region.push(("AWS_REGION", "us-west-2"));
        let s = run(
            Overrides {
                endpoint_url: Some("http://127.0.0.1:3".into()),
                ..Default::default()
            },
            &with_region,
            &files,
        )
        .unwrap();
        assert_eq!(s.region, "us-west-2");
        assert_eq!(s.endpoint_url, "http://127.0.0.1:3");
        let s = run(
            Overrides {
                region: Some("sa-east-1".into()),
                ..Default::default()
            },
            &with_region,
            &files,
        )
        .unwrap();
        assert_eq!(s.region, "sa-east-1");
    }

    #[test]
    fn ca_bundle_from_flag_then_environment_then_profile() {
        let config = "[default]\nca_bundle = /etc/profile-ca.pem\n";
        let files = [("/home/u/.aws/config", config)];
        let home = ("HOME", "/home/u");
        let s = run(Overrides::default(), &[home], &files).unwrap();
        assert_eq!(s.ca_bundle, Some(PathBuf::from("/etc/profile-ca.pem")));
        let vars = [home, ("AWS_CA_BUNDLE", "/etc/env-ca.pem")];
        let s = run(Overrides::default(), &vars, &files).unwrap();
        assert_eq!(s.ca_bundle, Some(PathBuf::from("/etc/env-ca.pem")));
        let flag = Overrides {
            ca_bundle: Some("/etc/flag-ca.pem".into()),
            ..Default::default()
        };
        let s = run(flag, &vars, &files).unwrap();
        assert_eq!(s.ca_bundle, Some(PathBuf::from("/etc/flag-ca.pem")));
        assert_eq!(run(Overrides::default(), &[], &[]).unwrap().ca_bundle, None);
    }

    #[test]
    fn a_named_profile_that_does_not_exist_is_an_error() {
        let err = run(Overrides::default(), &[("AWS_PROFILE", "nope")], &[]).unwrap_err();
        assert_eq!(err, "The config profile (nope) could not be found");
    }
}
