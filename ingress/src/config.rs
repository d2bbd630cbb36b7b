//! What an operator can set on the controller: listeners, the IngressClass
//! it answers to, the controller-wide default backend and timeouts.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use crate::status::StatusConfig;

/// The `spec.controller` value of the IngressClasses Strait serves by default.
pub const DEFAULT_CONTROLLER: &str = "strait.dev/ingress";
/// The IngressClass name Strait answers to when no IngressClass object names
/// it (the `kubernetes.io/ingress.class` annotation and `ingressClassName`).
pub const DEFAULT_CLASS: &str = "strait";

/// The whole controller configuration.
///
/// It exists so the CLI, tests and benchmarks start the same server with the
/// same knobs; [`IngressConfig::default`] is what `strait ingress` runs with.
#[derive(Debug, Clone)]
pub struct IngressConfig {
    /// Plain HTTP listener (`None`: no plain listener).
    pub http: Option<SocketAddr>,
    /// HTTPS listener (`None`: no TLS listener).
    pub https: Option<SocketAddr>,
    /// `/healthz` and `/metrics` listener (`None`: not served).
    pub metrics: Option<SocketAddr>,
    /// Which Ingresses are ours.
    pub class: ClassConfig,
    /// Backend for requests no Ingress rule or Ingress default backend serves
    /// (`None`: a 404 with an explanatory body).
    pub default_backend: Option<ServiceRef>,
    /// The port put into https redirects; `None` uses the HTTPS listener's
    /// port (and omits it when it is 443).
    pub redirect_https_port: Option<u16>,
    /// Timeouts of the proxy.
    pub timeouts: Timeouts,
    /// Most upstream endpoints tried for one request when connecting fails.
    pub max_attempts: usize,
    /// Log one structured line per request (target `strait_ingress::access`).
    pub access_log: bool,
    /// Writing `status.loadBalancer.ingress`.
    pub status: StatusConfig,
    /// Record problems as Kubernetes Events on their Ingress (needs an API
    /// server: off with `--manifests`).
    pub events: bool,
    /// How upstream endpoints share requests unless an Ingress says
    /// otherwise (`load-balance` annotation).
    pub load_balance: crate::balance::Balance,
}

impl Default for IngressConfig {
    fn default() -> Self {
        Self {
            http: Some(SocketAddr::from(([0, 0, 0, 0], 80))),
            https: Some(SocketAddr::from(([0, 0, 0, 0], 443))),
            metrics: None,
            class: ClassConfig::default(),
            default_backend: None,
            redirect_https_port: None,
            timeouts: Timeouts::default(),
            max_attempts: 3,
            access_log: true,
            status: StatusConfig::default(),
            events: false,
            load_balance: crate::balance::Balance::RoundRobin,
        }
    }
}

/// Which Ingresses the controller serves (see [`crate::class`]).
///
/// It exists so several ingress controllers can share a cluster: each serves
/// only the classes whose IngressClass names its controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassConfig {
    /// `IngressClass.spec.controller` of the classes we serve.
    pub controller: String,
    /// A class name we serve even without an IngressClass object of that
    /// name (an IngressClass of that name for another controller wins).
    pub class_name: String,
}

impl Default for ClassConfig {
    fn default() -> Self {
        Self {
            controller: DEFAULT_CONTROLLER.to_owned(),
            class_name: DEFAULT_CLASS.to_owned(),
        }
    }
}

/// How long the proxy waits, so a stuck client or upstream costs a bounded
/// amount of resources and the client gets a clear 502/504.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting to one upstream endpoint (then the next one is tried).
    pub connect: Duration,
    /// From the end of sending the request upstream to the response
    /// headers (504 after).
    pub read: Duration,
    /// Longest time the upstream may receive nothing while a request is
    /// sent: a client pausing in its body, or an upstream not reading (504
    /// after; nginx's `proxy_send_timeout`).
    pub send: Duration,
    /// A client has this long to send its request headers.
    pub client_header: Duration,
    /// A TLS client has this long to finish the handshake.
    pub tls_handshake: Duration,
    /// Idle upstream keep-alive connections are closed after this.
    pub upstream_idle: Duration,
    /// Graceful shutdown waits this long for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            read: Duration::from_secs(60),
            send: Duration::from_secs(60),
            client_header: Duration::from_secs(60),
            tls_handshake: Duration::from_secs(10),
            upstream_idle: Duration::from_secs(90),
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// A Service port, named the way `--default-backend ns/name:port` spells it.
///
/// It exists for the controller-wide default backend, which is not part of
/// any Ingress.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ServiceRef {
    /// The Service's namespace.
    pub namespace: String,
    /// The Service's name.
    pub name: String,
    /// The Service port, by number or name.
    pub port: PortRef,
}

/// A Service port by number or by name (`ServiceBackendPort`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PortRef {
    /// `port.number`: the Service port (not the target port).
    Number(u16),
    /// `port.name`: the name of a Service port.
    Name(String),
}

impl fmt::Display for PortRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Number(n) => write!(f, "{n}"),
            Self::Name(name) => f.write_str(name),
        }
    }
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.namespace, self.name, self.port)
    }
}

/// Why a `ns/name:port` service reference did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a service reference: expected NAMESPACE/NAME:PORT (PORT a number or a port name)"
)]
pub struct ServiceRefError(pub String);

impl FromStr for ServiceRef {
    type Err = ServiceRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ServiceRefError(s.to_owned());
        let (namespace, rest) = s.split_once('/').ok_or_else(err)?;
        let (name, port) = rest.rsplit_once(':').ok_or_else(err)?;
        if namespace.is_empty() || name.is_empty() || port.is_empty() || name.contains('/') {
            return Err(err());
        }
        let port = match port.parse::<u16>() {
            Ok(0) => return Err(err()),
            Ok(n) => PortRef::Number(n),
            Err(_) => PortRef::Name(port.to_owned()),
        };
        Ok(Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_refs_parse() {
        assert_eq!(
            "default/web:80".parse(),
            Ok(ServiceRef {
                namespace: "default".into(),
                name: "web".into(),
                port: PortRef::Number(80)
            })
        );
        assert_eq!(
            "ns/web:http".parse::<ServiceRef>().map(|r| r.port),
            Ok(PortRef::Name("http".into()))
        );
        for bad in [
            "web:80", "ns/web", "/web:80", "ns/:80", "ns/web:", "ns/web:0", "a/b/c:1",
        ] {
            assert!(bad.parse::<ServiceRef>().is_err(), "{bad}");
        }
        assert_eq!(
            "ns/web:http".parse::<ServiceRef>().map(|r| r.to_string()),
            Ok("ns/web:http".to_owned())
        );
    }
}
