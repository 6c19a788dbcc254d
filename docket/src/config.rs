//! Settings read from the environment (`DOCKET_URL`, `DOCKET_NAME`, `DOCKET_WORKER_CONCURRENCY`,
//! `DOCKET_TLS_CA_FILE`, `DOCKET_METRICS_NAMES`, `DOCKET_PROTOCOL`, `DOCKET_PARTITIONS`) or given to
//! [`Connect`](crate::Connect), and the checks they pass.

use std::fmt;
use std::time::Duration;

use crate::backend::redis::RedisOptions;
use crate::error::{Error, Result};

/// The namespace used when `DOCKET_NAME` is unset.
pub const DEFAULT_NAME: &str = "docket";

/// The worker concurrency used when `DOCKET_WORKER_CONCURRENCY` is unset.
pub const DEFAULT_CONCURRENCY: usize = 10;

/// The highest worker concurrency: what a tokio semaphore holds, and what fits the `u32` its
/// `acquire_many` takes.
pub(crate) const MAX_CONCURRENCY: usize = {
    let permits = tokio::sync::Semaphore::MAX_PERMITS;
    if permits < u32::MAX as usize {
        permits
    } else {
        u32::MAX as usize
    }
};

/// The range of `Connect::redelivery_timeout`. Below it renewals would flood Redis and a short
/// pause would hand healthy tasks over; above it a crashed worker's tasks wait more than a week,
/// and past ~1e17 ms Redis refuses the reclaim command outright.
pub(crate) const REDELIVERY_TIMEOUT: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(7 * 86_400));

/// The range of `Connect::max_payload`, in bytes: room for the smallest task's envelope, and no
/// more than Redis takes in one string (`proto-max-bulk-len`, 512 MiB).
pub(crate) const MAX_PAYLOAD: (usize, usize) = (256, 512 << 20);

/// Where tasks are stored.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// No queue: `schedule` runs the task on the caller's tokio runtime.
    InProcess,
    /// The in-memory backend of this process.
    Memory,
    /// Redis: one server (`redis://`, `rediss://` for TLS, `unix:///path/to/redis.sock`), a
    /// Redis Cluster (`redis+cluster://host:port,host:port`, `rediss+cluster://`), or a master
    /// watched by Sentinels (`redis+sentinel://host:port,host:port/name[/db]`,
    /// `rediss+sentinel://`).
    Redis(String),
}

impl Target {
    pub(crate) fn parse(url: &str) -> Result<Target> {
        let url = url.trim();
        match url.split_once("://").map(|(scheme, _)| scheme) {
            _ if url.is_empty() => Ok(Target::InProcess),
            Some("memory") => Ok(Target::Memory),
            Some(
                "redis" | "rediss" | "unix" | "redis+unix" | "redis+cluster" | "rediss+cluster"
                | "redis+sentinel" | "rediss+sentinel",
            ) => Ok(Target::Redis(url.to_owned())),
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
    /// The metric names `DOCKET_METRICS_NAMES` asks for, applied to the whole process when the
    /// docket opens (see [`crate::metrics::set_names`]); `None` leaves them as they are.
    pub(crate) metrics_names: Option<crate::metrics::Names>,
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
            redis.tls_ca = Some(read_ca_file(&path)?);
        }
        let metrics_names = match var("DOCKET_METRICS_NAMES") {
            Some(value) if !value.trim().is_empty() => Some(value.parse()?),
            _ => None,
        };
        if let Some(protocol) = var("DOCKET_PROTOCOL") {
            redis.protocol = protocol.trim().parse()?;
        }
        if let Some(value) = var("DOCKET_PARTITIONS").filter(|value| !value.trim().is_empty()) {
            redis.partitions = value.trim().parse().map_err(|_| {
                Error::Config(format!(
                    "DOCKET_PARTITIONS must be a whole number from 1 to {}, not `{value}`",
                    crate::backend::redis::partitions::MOST_PARTITIONS
                ))
            })?;
            validate_partitions(redis.partitions, "DOCKET_PARTITIONS")?;
        }
        validate_options(&redis)?;
        Ok(Settings {
            target,
            name,
            concurrency,
            redis,
            fallback: true,
            metrics_names,
        })
    }
}

/// The CA certificates in the PEM file `DOCKET_TLS_CA_FILE` (or the CLI's `--tls-ca-file`)
/// names, checked.
pub(crate) fn read_ca_file(path: &str) -> Result<Vec<u8>> {
    let pem = std::fs::read(path).map_err(|error| {
        Error::Config(format!("cannot read DOCKET_TLS_CA_FILE `{path}`: {error}"))
    })?;
    validate_ca(&pem).map_err(|problem| {
        Error::Config(format!(
            "DOCKET_TLS_CA_FILE `{path}` {problem}; point it at a PEM file of CA certificates"
        ))
    })?;
    Ok(pem)
}

/// A docket name becomes part of every storage key, and of the ACL patterns `~{name}:*` that
/// grant a docket's keys, so it is limited to ASCII letters, digits, `-`, `_` and `.`: braces
/// would change the Redis Cluster hash tag, and glob characters (`* ? [ ] \`) would grant other
/// dockets' keys or deny the docket its own.
pub(crate) fn validate_name(name: &str) -> Result<&str> {
    if name.is_empty() {
        return Err(Error::Config("the docket name must not be empty".into()));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(Error::Config(format!(
            "the docket name `{}` contains {bad:?}; use only ASCII letters, digits, `-`, `_` or `.`",
            name.escape_debug()
        )));
    }
    Ok(name)
}

fn parse_concurrency(value: &str) -> Result<usize> {
    match value.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(Error::Config(format!(
            "DOCKET_WORKER_CONCURRENCY must be a whole number from 1 to {MAX_CONCURRENCY}, not `{}`",
            value.escape_debug()
        ))),
    }
}

/// Check a worker concurrency given as `setting` (such as `Connect::worker_concurrency`).
pub(crate) fn validate_concurrency(concurrency: usize, setting: &str) -> Result<usize> {
    if (1..=MAX_CONCURRENCY).contains(&concurrency) {
        return Ok(concurrency);
    }
    Err(Error::Config(format!(
        "the worker concurrency ({setting}) must be from 1 to {MAX_CONCURRENCY}, not {concurrency}"
    )))
}

/// Check the options given to `Connect`, naming the setting and its valid range on error.
/// A partition count, from the setting named `what`.
fn validate_partitions(partitions: u16, what: &str) -> Result<()> {
    let most = crate::backend::redis::partitions::MOST_PARTITIONS;
    if !(1..=most).contains(&partitions) {
        return Err(Error::Config(format!(
            "{what} must be a whole number from 1 to {most}, not `{partitions}`"
        )));
    }
    Ok(())
}

pub(crate) fn validate_options(options: &RedisOptions) -> Result<()> {
    validate_partitions(
        options.partitions,
        "`Connect::partitions`, DOCKET_PARTITIONS",
    )?;
    if options.partitions > 1 && options.protocol != crate::connect::Protocol::Docket {
        return Err(Error::Config(
            "a docket in pydocket's protocol lives in one partition: leave `Connect::partitions` and DOCKET_PARTITIONS at 1".into(),
        ));
    }
    let (shortest, longest) = REDELIVERY_TIMEOUT;
    let timeout = options.redelivery_timeout;
    if !(shortest..=longest).contains(&timeout) {
        return Err(Error::Config(format!(
            "the redelivery timeout (`Connect::redelivery_timeout`, `--redelivery-timeout`) must be from 100ms to 7 days, not {timeout:?}"
        )));
    }
    let (smallest, largest) = MAX_PAYLOAD;
    if !(smallest..=largest).contains(&options.max_payload) {
        return Err(Error::Config(format!(
            "the payload limit (`Connect::max_payload`) must be from {smallest} bytes to {largest} bytes (512 MiB), not {}",
            options.max_payload
        )));
    }
    if options.max_deliveries == 0 {
        return Err(Error::Config(
            "`Connect::max_deliveries` must be at least 1: it counts the delivery that is running"
                .into(),
        ));
    }
    if options.dead_letters_kept == 0 || options.dead_letter_age < Duration::from_secs(60) {
        return Err(Error::Config(format!(
            "`Connect::dead_letters` must keep at least 1 letter for at least a minute, not {} for {:?}",
            options.dead_letters_kept, options.dead_letter_age
        )));
    }
    if let Some(pem) = &options.tls_ca {
        validate_ca(pem).map_err(|problem| {
            Error::Config(format!(
                "the CA given to `Connect::tls_ca_pem` {problem}; pass the contents of a PEM file of CA certificates"
            ))
        })?;
    }
    Ok(())
}

/// Check that `pem` holds at least one certificate, and only certificates that parse, the way
/// the TLS connector reads them; otherwise every handshake would fail later with a vaguer error.
/// On error, what is wrong (to follow the name of the setting).
fn validate_ca(pem: &[u8]) -> std::result::Result<(), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    for (index, certificate) in CertificateDer::pem_slice_iter(pem).enumerate() {
        let certificate = certificate
            .map_err(|error| format!("has a certificate that does not parse: {error}"))?;
        roots.add(certificate).map_err(|error| {
            format!(
                "has a certificate (number {}) that is not a valid CA: {error}",
                index + 1
            )
        })?;
    }
    if roots.is_empty() {
        return Err("holds no `-----BEGIN CERTIFICATE-----` block".into());
    }
    Ok(())
}

/// The URL with its password, if any, replaced by `***`, fit for errors, logs and `Debug`.
///
/// A password may hold `/`, `?`, `#` or `@` when the URL was written without percent-encoding
/// it (such a URL does not parse, and its error names it). So when any `@` follows the end of
/// the authority, everything up to the *last* `@` counts as user information: leaking nothing
/// beats a faithful echo. The same holds for text without a `scheme://`.
pub(crate) fn redact(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (&url[..scheme.len() + 3], rest),
        None => ("", url),
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let userinfo_end = match rest[authority_end..].contains('@') {
        true => rest.rfind('@'),
        false => rest[..authority_end].rfind('@'),
    };
    let Some(at) = userinfo_end else {
        return url.to_owned();
    };
    let (userinfo, host_and_tail) = (&rest[..at], &rest[at + 1..]);
    match userinfo.split_once(':') {
        Some((user, _password)) => format!("{scheme}{user}:***@{host_and_tail}"),
        None => format!("{scheme}***@{host_and_tail}"),
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
        assert_eq!(settings.metrics_names, None);
        let settings = super::tests::settings(&[("DOCKET_METRICS_NAMES", "pydocket")]).unwrap();
        assert_eq!(
            settings.metrics_names,
            Some(crate::metrics::Names::AlsoPydocket)
        );
        let err = super::tests::settings(&[("DOCKET_METRICS_NAMES", "prometheus")]).unwrap_err();
        assert!(err.to_string().contains("`prometheus`"), "{err}");
    }

    #[test]
    fn docket_partitions_takes_a_count_from_1_to_64() {
        let partitions = |value: &str| {
            settings(&[
                ("DOCKET_URL", "redis://127.0.0.1"),
                ("DOCKET_PARTITIONS", value),
            ])
            .map(|settings| settings.redis.partitions)
        };
        assert_eq!(partitions("3").unwrap(), 3);
        assert_eq!(partitions(" 64 ").unwrap(), 64);
        assert_eq!(partitions("").unwrap(), 1, "empty is unset");
        for bad in ["0", "65", "-1", "three", "70000"] {
            let error = partitions(bad).unwrap_err().to_string();
            assert!(
                error.contains("DOCKET_PARTITIONS") && error.contains("1 to 64"),
                "{bad}: {error}"
            );
        }
        // pydocket's protocol keeps one partition (without the feature, the protocol itself
        // is refused first).
        let error = settings(&[
            ("DOCKET_URL", "redis://127.0.0.1"),
            ("DOCKET_PARTITIONS", "2"),
            ("DOCKET_PROTOCOL", "pydocket"),
        ])
        .unwrap_err()
        .to_string();
        let expected = match cfg!(feature = "pydocket") {
            true => "one partition",
            false => "`pydocket` feature",
        };
        assert!(error.contains(expected), "{error}");
    }

    #[test]
    fn docket_protocol_picks_the_wire_format() {
        use crate::connect::Protocol;
        let protocol = |value: &str| {
            settings(&[
                ("DOCKET_URL", "redis://127.0.0.1"),
                ("DOCKET_PROTOCOL", value),
            ])
            .map(|settings| settings.redis.protocol)
        };
        assert_eq!(settings(&[]).unwrap().redis.protocol, Protocol::Docket);
        assert_eq!(protocol("docket").unwrap(), Protocol::Docket);
        #[cfg(feature = "pydocket")]
        assert_eq!(protocol(" pydocket ").unwrap(), Protocol::Pydocket);
        #[cfg(not(feature = "pydocket"))]
        assert!(
            protocol("pydocket")
                .unwrap_err()
                .to_string()
                .contains("`pydocket` feature")
        );
        let error = protocol("celery").unwrap_err().to_string();
        assert!(
            error.contains("DOCKET_PROTOCOL") && error.contains("celery"),
            "{error}"
        );
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
            redact("redis://a:b@c@127.0.0.1/0"),
            "redis://a:***@127.0.0.1/0"
        );
        // An `@` after the first `/` may be the end of a password holding `/`: everything up to
        // the last `@` is hidden, even if that hides a path.
        assert_eq!(redact("redis://a:b@c@127.0.0.1/x@y"), "redis://a:***@y");
    }

    #[test]
    fn passwords_with_url_delimiters_never_survive_redaction() {
        for (url, redacted) in [
            (
                "rediss://default:ab#cd@host:6379",
                "rediss://default:***@host:6379",
            ),
            (
                "redis://default:pa/ss@host:6379/2",
                "redis://default:***@host:6379/2",
            ),
            ("redis://default:p?w@host", "redis://default:***@host"),
            ("redis://default:p@w@host", "redis://default:***@host"),
            (
                "rediss://default:s3cr%t/x@127.0.0.1:6380",
                "rediss://default:***@127.0.0.1:6380",
            ),
            ("redis://:a/b?c#d@e@host/0", "redis://:***@host/0"),
            ("redis://tok/en@host", "redis://***@host"),
            ("default:hunter2@host:6379", "default:***@host:6379"),
            ("redis//default:hunter2@host", "redis//default:***@host"),
        ] {
            assert_eq!(redact(url), redacted, "{url}");
        }
        for password in ["ab#cd", "pa/ss", "p?w", "p@w", "s3cr%t/x", "hunter2"] {
            let url = format!("rediss://default:{password}@127.0.0.1:6380/0");
            assert!(!redact(&url).contains(password), "{url}");
            let error = Target::parse(&format!("amqp://u:{password}@h")).unwrap_err();
            assert!(!error.to_string().contains(password), "{error}");
        }
    }

    #[test]
    fn docket_names_are_limited_to_what_acl_patterns_take_literally() {
        for good in ["docket", "plyr-prod_2.eu", "A9"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in [
            "a*", "t[1]", "a?", "a\\b", "a b", "a:b", "{a}", "é", "a\u{1b}",
        ] {
            let error = validate_name(bad).unwrap_err().to_string();
            assert!(error.contains("letters, digits"), "{bad}: {error}");
            assert!(!error.contains('\u{1b}'), "{error}");
        }
    }

    #[test]
    fn options_out_of_range_are_named_with_their_range() {
        let error = |change: fn(&mut RedisOptions)| {
            let mut options = RedisOptions::default();
            change(&mut options);
            validate_options(&options).unwrap_err().to_string()
        };
        assert!(validate_options(&RedisOptions::default()).is_ok());
        let message = error(|o| o.redelivery_timeout = Duration::ZERO);
        assert!(
            message.contains("redelivery_timeout") && message.contains("100ms to 7 days"),
            "{message}"
        );
        assert!(error(|o| o.redelivery_timeout = Duration::from_millis(99)).contains("redelivery"));
        assert!(error(|o| o.redelivery_timeout = Duration::MAX).contains("redelivery"));
        assert!(error(|o| o.max_payload = 0).contains("max_payload"));
        assert!(error(|o| o.max_payload = (512 << 20) + 1).contains("max_payload"));
        assert!(error(|o| o.max_deliveries = 0).contains("max_deliveries"));
        assert!(
            error(|o| o.tls_ca = Some(Vec::new())).contains("no `-----BEGIN CERTIFICATE-----`")
        );
        for fine in [
            |o: &mut RedisOptions| o.redelivery_timeout = Duration::from_millis(100),
            |o: &mut RedisOptions| o.redelivery_timeout = Duration::from_secs(7 * 86_400),
            |o: &mut RedisOptions| o.max_payload = 256,
            |o: &mut RedisOptions| o.max_payload = 512 << 20,
        ] {
            let mut options = RedisOptions::default();
            fine(&mut options);
            assert!(validate_options(&options).is_ok(), "{options:?}");
        }
    }

    #[test]
    fn a_ca_must_hold_certificates_that_parse() {
        let problem = |pem: &str| validate_ca(pem.as_bytes()).unwrap_err();
        assert!(problem("").contains("no `-----BEGIN CERTIFICATE-----`"));
        assert!(problem("not a pem at all").contains("no `-----BEGIN"));
        assert!(
            problem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .contains("no `-----BEGIN")
        );
        assert!(
            problem("-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n")
                .contains("does not parse")
        );
        assert!(
            problem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .contains("not a valid CA")
        );
    }

    #[test]
    fn concurrency_is_bounded_by_what_a_semaphore_holds() {
        const {
            assert!(MAX_CONCURRENCY <= tokio::sync::Semaphore::MAX_PERMITS);
            assert!(MAX_CONCURRENCY <= u32::MAX as usize);
        }
        assert_eq!(validate_concurrency(10, "x").unwrap(), 10);
        assert!(validate_concurrency(0, "x").is_err());
        assert!(validate_concurrency(MAX_CONCURRENCY + 1, "x").is_err());
        let too_many = (MAX_CONCURRENCY + 1).to_string();
        let error = settings(&[("DOCKET_WORKER_CONCURRENCY", &too_many)]).unwrap_err();
        assert!(
            error.to_string().contains("DOCKET_WORKER_CONCURRENCY"),
            "{error}"
        );
    }

    #[test]
    fn an_empty_or_foreign_ca_file_is_refused_at_startup() {
        let path = std::env::temp_dir().join(format!("docket-ca-{}.pem", std::process::id()));
        std::fs::write(&path, "").unwrap();
        let path_text = path.to_str().unwrap();
        let error = settings(&[("DOCKET_TLS_CA_FILE", path_text)]).unwrap_err();
        std::fs::remove_file(&path).unwrap();
        let message = error.to_string();
        assert!(message.contains("DOCKET_TLS_CA_FILE"), "{message}");
        assert!(message.contains("BEGIN CERTIFICATE"), "{message}");
    }
}
