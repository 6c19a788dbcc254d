//! Settings read from the environment: `DOCKET_URL`, `DOCKET_NAME`, `DOCKET_WORKER_CONCURRENCY`.

use std::fmt;

use crate::backend::redis::RedisOptions;
use crate::error::{Error, Result};

/// The namespace used when `DOCKET_NAME` is unset.
pub const DEFAULT_NAME: &str = "docket";

/// The worker concurrency used when `DOCKET_WORKER_CONCURRENCY` is unset.
pub const DEFAULT_CONCURRENCY: usize = 10;

/// Where tasks are stored.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// No queue: `schedule` runs the task on the caller's tokio runtime.
    InProcess,
    /// The in-memory backend of this process.
    Memory,
    /// A Redis server: `redis://` or `rediss://` (TLS).
    Redis(String),
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target> {
        let url = url.trim();
        match url.split_once("://").map(|(scheme, _)| scheme) {
            _ if url.is_empty() => Ok(Target::InProcess),
            Some("memory") => Ok(Target::Memory),
            Some("redis" | "rediss") => Ok(Target::Redis(url.to_owned())),
            _ => Err(Error::UnsupportedUrl { url: redact(url) }),
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::InProcess => f.write_str("in-process"),
            Target::Memory => f.write_str("memory://"),
            Target::Redis(url) => f.write_str(&redact(url)),
        }
    }
}

/// Everything the environment configures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) target: Target,
    pub(crate) name: String,
    pub(crate) concurrency: usize,
    pub(crate) redis: RedisOptions,
    /// Whether `schedule` runs a task in-process when the backend cannot be reached.
    pub(crate) fallback: bool,
}

impl Settings {
    pub(crate) fn from_env() -> Result<Settings> {
        Settings::from_vars(|name| std::env::var(name).ok())
    }

    /// Read the settings through `var`, so tests need not touch the process environment.
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        let target = Target::parse(&var("DOCKET_URL").unwrap_or_default())?;
        let name = match var("DOCKET_NAME") {
            Some(name) => validate_name(name.trim())?.to_owned(),
            None => DEFAULT_NAME.to_owned(),
        };
        let concurrency = match var("DOCKET_WORKER_CONCURRENCY") {
            Some(value) => parse_concurrency(&value)?,
            None => DEFAULT_CONCURRENCY,
        };
        let mut redis = RedisOptions::default();
        if let Some(path) = var("DOCKET_TLS_CA_FILE").filter(|path| !path.is_empty()) {
            let pem = std::fs::read(&path).map_err(|error| {
                Error::Config(format!("cannot read DOCKET_TLS_CA_FILE `{path}`: {error}"))
            })?;
            redis.tls_ca = Some(pem);
        }
        Ok(Settings {
            target,
            name,
            concurrency,
            redis,
            fallback: true,
        })
    }
}

/// A docket name becomes part of every storage key, so it must be printable and brace-free.
pub(crate) fn validate_name(name: &str) -> Result<&str> {
    if name.is_empty() {
        return Err(Error::Config("the docket name must not be empty".into()));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || matches!(c, '{' | '}' | ':'))
    {
        return Err(Error::Config(format!(
            "the docket name `{name}` contains {bad:?}; use letters, digits, `-`, `_` or `.`"
        )));
    }
    Ok(name)
}

fn parse_concurrency(value: &str) -> Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(Error::Config(format!(
            "DOCKET_WORKER_CONCURRENCY must be a whole number above 0, not `{value}`"
        ))),
    }
}

/// The URL with its password, if any, replaced by `***`, fit for errors and logs.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => format!("{scheme}://***@{host}{tail}"),
        },
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings> {
        Settings::from_vars(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        })
    }

    #[test]
    fn defaults_run_in_process() {
        let settings = settings(&[]).unwrap();
        assert_eq!(settings.target, Target::InProcess);
        assert_eq!(settings.name, "docket");
        assert_eq!(settings.concurrency, 10);
    }

    #[test]
    fn the_environment_sets_every_field() {
        let settings = settings(&[
            ("DOCKET_URL", "memory://"),
            ("DOCKET_NAME", "plyr"),
            ("DOCKET_WORKER_CONCURRENCY", "32"),
        ])
        .unwrap();
        assert_eq!(settings.target, Target::Memory);
        assert_eq!(settings.name, "plyr");
        assert_eq!(settings.concurrency, 32);
    }

    #[test]
    fn bad_values_are_named_in_the_error() {
        let err = settings(&[("DOCKET_WORKER_CONCURRENCY", "0")]).unwrap_err();
        assert!(
            err.to_string().contains("DOCKET_WORKER_CONCURRENCY"),
            "{err}"
        );
        let err = settings(&[("DOCKET_NAME", "a{b}")]).unwrap_err();
        assert!(err.to_string().contains("a{b}"), "{err}");
        let settings_with_redis =
            settings(&[("DOCKET_URL", "rediss://:secret@127.0.0.1:6380")]).unwrap();
        assert_eq!(
            format!("{:?}", settings_with_redis.target),
            "rediss://:***@127.0.0.1:6380"
        );
        let err = settings(&[("DOCKET_URL", "amqp://guest:secret@127.0.0.1")]).unwrap_err();
        assert!(
            err.to_string().contains("amqp://guest:***@127.0.0.1"),
            "{err}"
        );
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn passwords_never_survive_redaction() {
        assert_eq!(
            redact("redis://user:hunter2@127.0.0.1:6379/0"),
            "redis://user:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact("rediss://:hunter2@127.0.0.1"),
            "rediss://:***@127.0.0.1"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(
            redact("redis://a:b@c@127.0.0.1/x@y"),
            "redis://a:***@127.0.0.1/x@y"
        );
    }
}
