//! The `CNI_*` environment variables, parsed and validated per command.
//!
//! The runtime passes every per-call parameter in the environment. Each
//! command needs a different subset (CNI 1.1, section 2), and a missing or
//! malformed variable must be reported with code 4 naming the variables, so
//! all of that is decided here, once, into a typed [`Invocation`].

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::error::{CniError, ErrorCode};

/// `CNI_COMMAND`: the operation.
pub const CNI_COMMAND: &str = "CNI_COMMAND";
/// `CNI_CONTAINERID`: the container (attachment) identifier.
pub const CNI_CONTAINERID: &str = "CNI_CONTAINERID";
/// `CNI_NETNS`: the container's isolation domain, a netns path.
pub const CNI_NETNS: &str = "CNI_NETNS";
/// `CNI_IFNAME`: the interface name to create inside the container.
pub const CNI_IFNAME: &str = "CNI_IFNAME";
/// `CNI_ARGS`: extra `KEY=VALUE;...` arguments.
pub const CNI_ARGS: &str = "CNI_ARGS";
/// `CNI_PATH`: where to look for delegated plugins.
pub const CNI_PATH: &str = "CNI_PATH";

/// Longest interface name: `IFNAMSIZ` (16) minus the terminating NUL.
const MAX_IFNAME: usize = 15;

/// A CNI operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Attach the container to the network.
    Add,
    /// Detach the container from the network.
    Del,
    /// Check that an attachment is as expected.
    Check,
    /// Report whether the plugin can service `ADD`.
    Status,
    /// Report the supported spec versions.
    Version,
    /// Clean up resources of attachments that are no longer valid.
    Gc,
}

impl Command {
    /// Parse `CNI_COMMAND` (the spec's upper-case spelling only).
    pub fn parse(command: &str) -> Option<Self> {
        match command {
            "ADD" => Some(Self::Add),
            "DEL" => Some(Self::Del),
            "CHECK" => Some(Self::Check),
            "STATUS" => Some(Self::Status),
            "VERSION" => Some(Self::Version),
            "GC" => Some(Self::Gc),
            _ => None,
        }
    }

    /// The spec spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Del => "DEL",
            Self::Check => "CHECK",
            Self::Status => "STATUS",
            Self::Version => "VERSION",
            Self::Gc => "GC",
        }
    }

    /// The variables the spec requires for this command, besides
    /// `CNI_COMMAND` itself.
    pub fn required(self) -> &'static [&'static str] {
        match self {
            Self::Add | Self::Check => &[CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME],
            Self::Del => &[CNI_CONTAINERID, CNI_IFNAME],
            Self::Gc => &[CNI_PATH],
            Self::Status | Self::Version => &[],
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the environment was refused. Every variant maps to code 4 and names
/// the offending variables, as the spec requires.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// `CNI_COMMAND` is unset or empty.
    #[error("required env variables [CNI_COMMAND] missing")]
    MissingCommand,
    /// `CNI_COMMAND` is not a CNI operation.
    #[error("unknown CNI_COMMAND: {0:?}")]
    UnknownCommand(String),
    /// Variables the command requires are unset or empty.
    #[error("required env variables [{}] missing for {command}", .missing.join(","))]
    Missing {
        /// The command being run.
        command: Command,
        /// The missing variables, in spec order.
        missing: Vec<&'static str>,
    },
    /// A variable is not valid UTF-8.
    #[error("env variable {0} is not valid UTF-8")]
    NotUnicode(&'static str),
    /// `CNI_CONTAINERID` breaks the spec's character rules.
    #[error(
        "invalid CNI_CONTAINERID {0:?}: must start with a letter or digit, followed by letters, digits, '_', '.' or '-'"
    )]
    ContainerId(String),
    /// `CNI_IFNAME` breaks the Linux interface name rules.
    #[error("invalid CNI_IFNAME {name:?}: {reason}")]
    IfName {
        /// The name as given.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// `CNI_ARGS` is not a list of `KEY=VALUE` pairs.
    #[error("invalid CNI_ARGS: pair {0:?} is not KEY=VALUE")]
    Args(String),
}

impl From<EnvError> for CniError {
    fn from(err: EnvError) -> Self {
        CniError::new(ErrorCode::INVALID_ENVIRONMENT_VARIABLES, err.to_string())
    }
}

/// The parsed environment of one call, shaped by its command so that a
/// handler cannot reach a variable its command does not guarantee.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `ADD`: every attachment parameter is present.
    Add(Attach),
    /// `DEL`: the netns may already be gone.
    Del(Detach),
    /// `CHECK`: every attachment parameter is present.
    Check(Attach),
    /// `STATUS`: no attachment.
    Status(Probe),
    /// `VERSION`: no parameters at all.
    Version,
    /// `GC`: no attachment; `CNI_PATH` is present.
    Gc(Probe),
}

impl Invocation {
    /// Read and validate the environment through `lookup` (`std::env::var_os`
    /// in the binary, a map in tests). An unset or empty variable counts as
    /// missing, as in libcni.
    pub fn from_env(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, EnvError> {
        let var = |name: &'static str| -> Result<Option<String>, EnvError> {
            match lookup(name) {
                None => Ok(None),
                Some(value) if value.is_empty() => Ok(None),
                Some(value) => value
                    .into_string()
                    .map(Some)
                    .map_err(|_| EnvError::NotUnicode(name)),
            }
        };
        let command = var(CNI_COMMAND)?.ok_or(EnvError::MissingCommand)?;
        let command = Command::parse(&command).ok_or(EnvError::UnknownCommand(command))?;

        let missing: Vec<&'static str> = command
            .required()
            .iter()
            .copied()
            .filter(|name| lookup(name).is_none_or(|v| v.is_empty()))
            .collect();
        if !missing.is_empty() {
            return Err(EnvError::Missing { command, missing });
        }
        // Required variables are known to be present from here on, so the
        // `unwrap_or_default` below only fills optional ones.
        let path = || -> Result<Vec<PathBuf>, EnvError> {
            Ok(var(CNI_PATH)?
                .map(|p| {
                    p.split(':')
                        .filter(|d| !d.is_empty())
                        .map(PathBuf::from)
                        .collect()
                })
                .unwrap_or_default())
        };
        let container_id = || -> Result<String, EnvError> {
            let id = var(CNI_CONTAINERID)?.unwrap_or_default();
            validate_container_id(&id)?;
            Ok(id)
        };
        let ifname = || -> Result<String, EnvError> {
            let name = var(CNI_IFNAME)?.unwrap_or_default();
            validate_ifname(&name)?;
            Ok(name)
        };
        let args = || -> Result<CniArgs, EnvError> {
            var(CNI_ARGS)?.map_or_else(|| Ok(CniArgs::default()), |a| CniArgs::parse(&a))
        };
        let attach = || -> Result<Attach, EnvError> {
            Ok(Attach {
                container_id: container_id()?,
                netns: var(CNI_NETNS)?.map(PathBuf::from).unwrap_or_default(),
                ifname: ifname()?,
                args: args()?,
                path: path()?,
            })
        };
        Ok(match command {
            Command::Add => Self::Add(attach()?),
            Command::Check => Self::Check(attach()?),
            Command::Del => Self::Del(Detach {
                container_id: container_id()?,
                netns: var(CNI_NETNS)?.map(PathBuf::from),
                ifname: ifname()?,
                args: args()?,
                path: path()?,
            }),
            Command::Status => Self::Status(Probe { path: path()? }),
            Command::Gc => Self::Gc(Probe { path: path()? }),
            Command::Version => Self::Version,
        })
    }

    /// The command this invocation runs.
    pub fn command(&self) -> Command {
        match self {
            Self::Add(_) => Command::Add,
            Self::Del(_) => Command::Del,
            Self::Check(_) => Command::Check,
            Self::Status(_) => Command::Status,
            Self::Version => Command::Version,
            Self::Gc(_) => Command::Gc,
        }
    }
}

/// Parameters of `ADD` and `CHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attach {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`.
    pub netns: PathBuf,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: CniArgs,
    /// `CNI_PATH`, possibly empty.
    pub path: Vec<PathBuf>,
}

/// Parameters of `DEL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detach {
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`, absent when the runtime no longer has it.
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`.
    pub args: CniArgs,
    /// `CNI_PATH`, possibly empty.
    pub path: Vec<PathBuf>,
}

/// Parameters of `STATUS` and `GC`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `CNI_PATH` (never empty for `GC`).
    pub path: Vec<PathBuf>,
}

/// `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`, in order.
///
/// Kubernetes runtimes pass the pod identity here
/// (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, ...), which is why it is parsed
/// rather than carried as a string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs(Vec<(String, String)>);

impl CniArgs {
    /// Parse `FOO=BAR;ABC=123`. Empty segments (a trailing `;`) are
    /// skipped; a value may contain `=`, a key may not be empty.
    pub fn parse(args: &str) -> Result<Self, EnvError> {
        args.split(';')
            .filter(|pair| !pair.is_empty())
            .map(|pair| match pair.split_once('=') {
                Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
                _ => Err(EnvError::Args(pair.to_owned())),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// The value of the first pair with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// All pairs, in the order given.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// The spec's container ID rule: not empty, starts with a letter or digit,
/// then letters, digits, `_`, `.` or `-`.
pub fn validate_container_id(id: &str) -> Result<(), EnvError> {
    let mut bytes = id.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    if first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')) {
        Ok(())
    } else {
        Err(EnvError::ContainerId(id.to_owned()))
    }
}

/// The spec's interface name rule (the Linux one): not empty, not `.` or
/// `..`, under 16 bytes, no `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), EnvError> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name == "." || name == ".." {
        Some("must not be '.' or '..'")
    } else if name.len() > MAX_IFNAME {
        Some("must be shorter than 16 bytes")
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        Some("must not contain '/', ':' or whitespace")
    } else {
        None
    };
    match reason {
        None => Ok(()),
        Some(reason) => Err(EnvError::IfName {
            name: name.to_owned(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Invocation, EnvError> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(*v)))
            .collect();
        Invocation::from_env(|name| map.get(name).cloned())
    }

    const FULL: [(&str, &str); 5] = [
        (CNI_CONTAINERID, "c0ffee"),
        (CNI_NETNS, "/var/run/netns/pod"),
        (CNI_IFNAME, "eth0"),
        (CNI_ARGS, "K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0"),
        (CNI_PATH, "/opt/cni/bin::/usr/lib/cni"),
    ];

    fn with(command: &str, vars: &[(&'static str, &'static str)]) -> Vec<(&'static str, String)> {
        let mut all: Vec<(&'static str, String)> = vec![(CNI_COMMAND, command.to_owned())];
        all.extend(vars.iter().map(|(k, v)| (*k, (*v).to_owned())));
        all
    }

    fn parse_owned(vars: &[(&'static str, String)]) -> Result<Invocation, EnvError> {
        let borrowed: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        parse(&borrowed)
    }

    #[test]
    fn required_variables_per_command() {
        // (command, variables missing when only CNI_COMMAND is set)
        let table: [(&str, &[&str]); 6] = [
            ("ADD", &[CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME]),
            ("CHECK", &[CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME]),
            ("DEL", &[CNI_CONTAINERID, CNI_IFNAME]),
            ("GC", &[CNI_PATH]),
            ("STATUS", &[]),
            ("VERSION", &[]),
        ];
        for (command, missing) in table {
            let got = parse(&[(CNI_COMMAND, command)]);
            if missing.is_empty() {
                assert!(got.is_ok(), "{command}: {got:?}");
            } else {
                let Err(EnvError::Missing { missing: got, .. }) = got else {
                    panic!("{command}: expected missing variables, got {got:?}");
                };
                assert_eq!(got, missing, "{command}");
            }
            // With everything set, every command parses.
            assert!(
                parse_owned(&with(command, &FULL)).is_ok(),
                "{command} with all vars"
            );
        }
    }

    #[test]
    fn empty_counts_as_missing() {
        let got = parse_owned(&with(
            "ADD",
            &[
                (CNI_CONTAINERID, "c"),
                (CNI_NETNS, ""),
                (CNI_IFNAME, "eth0"),
            ],
        ));
        assert_eq!(
            got,
            Err(EnvError::Missing {
                command: Command::Add,
                missing: vec![CNI_NETNS]
            })
        );
        let msg = got.expect_err("missing").to_string();
        assert!(msg.contains("CNI_NETNS"), "{msg}");
    }

    #[test]
    fn command_parsing() {
        assert_eq!(parse(&[]), Err(EnvError::MissingCommand));
        assert_eq!(parse(&[(CNI_COMMAND, "")]), Err(EnvError::MissingCommand));
        assert_eq!(
            parse(&[(CNI_COMMAND, "add")]),
            Err(EnvError::UnknownCommand("add".into()))
        );
        assert_eq!(
            parse(&[(CNI_COMMAND, "INIT")]),
            Err(EnvError::UnknownCommand("INIT".into()))
        );
        for c in [
            Command::Add,
            Command::Del,
            Command::Check,
            Command::Status,
            Command::Version,
            Command::Gc,
        ] {
            assert_eq!(Command::parse(c.as_str()), Some(c));
            assert_eq!(c.to_string(), c.as_str());
        }
    }

    #[test]
    fn typed_invocations() {
        let Ok(Invocation::Add(attach)) = parse_owned(&with("ADD", &FULL)) else {
            panic!("ADD");
        };
        assert_eq!(attach.container_id, "c0ffee");
        assert_eq!(attach.netns, PathBuf::from("/var/run/netns/pod"));
        assert_eq!(attach.ifname, "eth0");
        assert_eq!(attach.args.get("K8S_POD_NAME"), Some("web-0"));
        assert_eq!(
            attach.path,
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
        let del = parse_owned(&with(
            "DEL",
            &[(CNI_CONTAINERID, "c"), (CNI_IFNAME, "eth0")],
        ));
        let Ok(Invocation::Del(detach)) = del else {
            panic!("DEL: {del:?}");
        };
        assert_eq!(detach.netns, None);
        assert!(detach.path.is_empty());
        let gc = parse_owned(&with("GC", &[(CNI_PATH, "/opt/cni/bin")]));
        assert_eq!(
            gc,
            Ok(Invocation::Gc(Probe {
                path: vec![PathBuf::from("/opt/cni/bin")]
            }))
        );
        assert_eq!(
            parse(&[(CNI_COMMAND, "STATUS")]),
            Ok(Invocation::Status(Probe { path: vec![] }))
        );
        // VERSION ignores everything else, even garbage.
        let version = parse(&[
            (CNI_COMMAND, "VERSION"),
            (CNI_IFNAME, "bad/name"),
            (CNI_ARGS, "x"),
        ]);
        assert_eq!(version, Ok(Invocation::Version));
        assert_eq!(version.map(|i| i.command()), Ok(Command::Version));
    }

    #[test]
    fn container_ids() {
        for ok in ["a", "0", "c0ffee", "a_b.c-d", "ABC123"] {
            assert_eq!(validate_container_id(ok), Ok(()), "{ok}");
        }
        for bad in ["", "-a", "_a", ".a", "a b", "a/b", "a:b", "é", "a\n"] {
            assert!(validate_container_id(bad).is_err(), "{bad:?}");
        }
        let got = parse_owned(&with(
            "DEL",
            &[(CNI_CONTAINERID, "-x"), (CNI_IFNAME, "eth0")],
        ));
        assert_eq!(got, Err(EnvError::ContainerId("-x".into())));
    }

    #[test]
    fn interface_names() {
        for ok in ["eth0", "a", "net1", "abcdefghijklmno", "veth-x_y.z"] {
            assert_eq!(validate_ifname(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "abcdefghijklmnop",
            "eth/0",
            "eth:0",
            "eth 0",
            "eth\t0",
            "eth\u{a0}0",
        ] {
            assert!(validate_ifname(bad).is_err(), "{bad:?}");
        }
        let got = parse_owned(&with(
            "ADD",
            &[
                (CNI_CONTAINERID, "c"),
                (CNI_NETNS, "/n"),
                (CNI_IFNAME, ".."),
            ],
        ));
        assert!(matches!(got, Err(EnvError::IfName { .. })), "{got:?}");
    }

    #[test]
    fn cni_args() {
        let args = CniArgs::parse("FOO=BAR;ABC=123").expect("valid");
        assert_eq!(
            args.pairs(),
            &[("FOO".into(), "BAR".into()), ("ABC".into(), "123".into())]
        );
        assert_eq!(args.get("ABC"), Some("123"));
        assert_eq!(args.get("abc"), None);
        assert_eq!(CniArgs::parse(""), Ok(CniArgs::default()));
        assert_eq!(CniArgs::parse("A=1;").expect("trailing ;").pairs().len(), 1);
        assert_eq!(
            CniArgs::parse("A=").expect("empty value").get("A"),
            Some("")
        );
        assert_eq!(
            CniArgs::parse("A=b=c").expect("= in value").get("A"),
            Some("b=c")
        );
        assert_eq!(CniArgs::parse("FOO"), Err(EnvError::Args("FOO".into())));
        assert_eq!(CniArgs::parse("A=1;=2"), Err(EnvError::Args("=2".into())));
        let got = parse_owned(&with(
            "ADD",
            &[
                (CNI_CONTAINERID, "c"),
                (CNI_NETNS, "/n"),
                (CNI_IFNAME, "eth0"),
                (CNI_ARGS, "IgnoreUnknown"),
            ],
        ));
        assert_eq!(got, Err(EnvError::Args("IgnoreUnknown".into())));
    }

    #[test]
    fn non_unicode_values_are_named() {
        let bad = OsString::from_vec(vec![b'c', 0xff]);
        let got = Invocation::from_env(|name| match name {
            CNI_COMMAND => Some("DEL".into()),
            CNI_CONTAINERID => Some(bad.clone()),
            CNI_IFNAME => Some("eth0".into()),
            _ => None,
        });
        assert_eq!(got, Err(EnvError::NotUnicode(CNI_CONTAINERID)));
        let cni: CniError = EnvError::NotUnicode(CNI_CONTAINERID).into();
        assert_eq!(cni.code, ErrorCode::INVALID_ENVIRONMENT_VARIABLES);
        assert!(cni.msg.contains(CNI_CONTAINERID));
    }
}
