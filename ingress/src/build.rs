//! Building one configuration generation (router + certificates) from a
//! cluster snapshot. Runs off the request path; the result is swapped in
//! whole.
//!
//! Ingresses are processed oldest first (`creationTimestamp`, then
//! namespace/name; Ingresses without a timestamp count as newest), so when
//! two Ingresses claim the same host/path, TLS host or default backend, the
//! oldest wins and the conflict is reported.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use regex::Regex;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use strait_cluster::k8s_openapi::api::core::v1::Secret;
use strait_cluster::k8s_openapi::api::networking::v1::{Ingress, IngressBackend};
use strait_cluster::{ClusterSnapshot, ObjectKey};

use crate::annotations::{self, IngressSettings};
use crate::backend::UpstreamResolver;
use crate::canary::Canary;
use crate::class::ClassFilter;
use crate::config::{IngressConfig, PortRef, ServiceRef};
use crate::matching::{HostRule, PathError, PathRule, PathType, RouteTable};
use crate::router::{Rewrite, Route, Router, Target};
use crate::tls::{CertError, CertStore, DefaultCertError, certified_key_from_secret};

/// Label of the controller-wide default backend in logs and bodies.
pub const CONTROLLER_DEFAULT: &str = "<controller default backend>";

/// Something wrong with one Ingress that did not stop the others: an
/// invalid host or path, a missing Service, a bad certificate, a conflict.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Problem {
    /// `namespace/name` of the Ingress.
    pub ingress: String,
    /// What is wrong, for an operator.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ingress {}: {}", self.ingress, self.message)
    }
}

/// What one build did, for logs and tests.
#[derive(Debug, Clone, Default)]
pub struct BuildReport {
    /// The Ingresses served, oldest first.
    pub served: Vec<String>,
    /// Ingresses of other classes (ignored).
    pub ignored: usize,
    /// Ingresses rejected as a whole (invalid annotations).
    pub rejected: Vec<String>,
    /// Every problem found, sorted.
    pub problems: Vec<Problem>,
}

/// One built configuration generation.
#[derive(Debug, Clone)]
pub struct Built {
    /// The routes.
    pub router: Router,
    /// The certificates.
    pub certs: CertStore,
    /// What happened.
    pub report: BuildReport,
}

/// A parsed certificate with the Secret it came from, reused while the
/// Secret object is unchanged (snapshots share unchanged objects by `Arc`).
type CachedCert = (Arc<Secret>, Result<Arc<CertifiedKey>, CertError>);

/// Builds configuration generations, keeping what can be reused between
/// them: parsed certificates, round-robin cursors and endpoint statistics,
/// the default certificate.
///
/// It exists so a rebuild after an endpoint change re-parses no certificate
/// and does not reset load spreading.
pub struct ConfigBuilder {
    config: IngressConfig,
    provider: Arc<CryptoProvider>,
    default_cert: Arc<CertifiedKey>,
    certs: HashMap<ObjectKey, CachedCert>,
    carried: HashMap<Arc<str>, crate::backend::Carry>,
}

impl ConfigBuilder {
    /// A builder for `config`; generates the default certificate.
    pub fn new(
        config: IngressConfig,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, DefaultCertError> {
        let default_cert = crate::tls::default_certificate(&provider)?;
        Ok(Self {
            config,
            provider,
            default_cert,
            certs: HashMap::new(),
            carried: HashMap::new(),
        })
    }

    /// The generated default certificate.
    pub fn default_cert(&self) -> &Arc<CertifiedKey> {
        &self.default_cert
    }

    /// Builds the configuration for `snapshot`. Never fails: whatever is
    /// wrong is reported and left out, and the rest is served.
    pub fn build(&mut self, snapshot: &ClusterSnapshot) -> Built {
        let mut report = BuildReport::default();
        let (ingresses, canaries): (Vec<_>, Vec<_>) = self
            .served_ingresses(snapshot, &mut report)
            .into_iter()
            .partition(|a| a.settings.canary.is_none());
        let certs = self.build_certs(snapshot, &ingresses, &mut report);
        let previous = std::mem::take(&mut self.carried);
        let mut upstreams = UpstreamResolver::new(snapshot, &previous);
        let mut router = Router::default();
        let mut problems = Vec::new();
        let mut canaries = canary_claims(&canaries, &mut upstreams, &mut problems);
        add_rules(
            &ingresses,
            &mut canaries,
            &certs,
            &mut upstreams,
            &mut router,
            &mut problems,
        );
        for (claim, canary) in canaries {
            problems.push(Problem {
                ingress: canary.ingress.to_string(),
                message: format!(
                    "canary for host {:?} path {:?} ignored: no other Ingress serves that host \
                     and path",
                    host_label(&claim.0),
                    claim.1
                ),
            });
        }
        add_defaults(
            &ingresses,
            &certs,
            &mut upstreams,
            &mut router,
            &mut problems,
        );
        if let Some(default) = &self.config.default_backend {
            router.controller_default = Some(Arc::new(Route {
                ingress: Arc::from(CONTROLLER_DEFAULT),
                rule_host: Arc::from("*"),
                rule_path: Arc::from("-"),
                target: Target::Service(upstreams.resolve(default)),
                https_redirect: false,
                settings: Arc::default(),
                rewrite: None,
                canary: None,
            }));
        }
        self.carried = upstreams.into_carry();
        report.problems.append(&mut problems);
        report.problems.sort();
        report.problems.dedup();
        Built {
            router,
            certs,
            report,
        }
    }

    /// The Ingresses of our classes with valid annotations, oldest first.
    fn served_ingresses<'s>(
        &self,
        snapshot: &'s ClusterSnapshot,
        report: &mut BuildReport,
    ) -> Vec<Admitted<'s>> {
        let filter = ClassFilter::new(&self.config.class, snapshot.ingress_classes());
        let mut out = Vec::new();
        for (key, ingress) in snapshot.ingresses() {
            if !filter.verdict(ingress).served() {
                report.ignored += 1;
                continue;
            }
            let name = key.to_string();
            let parsed = annotations::parse(ingress.metadata.annotations.as_ref())
                .map_err(|e| e.to_string())
                .and_then(|(mut settings, ignored)| {
                    settings.load_balance =
                        Some(settings.load_balance.unwrap_or(self.config.load_balance));
                    let regex_paths = if settings.use_regex {
                        compile_regex_paths(ingress).map_err(|e| e.to_string())?
                    } else {
                        HashMap::new()
                    };
                    Ok((settings, ignored, regex_paths))
                });
            match parsed {
                Ok((settings, ignored, regex_paths)) => {
                    for (annotation, verdict) in ignored {
                        report.problems.push(Problem {
                            ingress: name.clone(),
                            message: format!("annotation {annotation}: {verdict}"),
                        });
                    }
                    out.push(Admitted {
                        name: Arc::from(name.as_str()),
                        namespace: key.namespace.clone().unwrap_or_default(),
                        ingress,
                        settings: Arc::new(settings),
                        regex_paths,
                    });
                }
                Err(e) => {
                    report.problems.push(Problem {
                        ingress: name.clone(),
                        message: format!("rejected: {e}"),
                    });
                    report.rejected.push(name);
                }
            }
        }
        out.sort_by(|a, b| {
            let ta = a.ingress.metadata.creation_timestamp.as_ref();
            let tb = b.ingress.metadata.creation_timestamp.as_ref();
            (ta.is_none(), ta, &a.name).cmp(&(tb.is_none(), tb, &b.name))
        });
        report.served = out.iter().map(|a| a.name.to_string()).collect();
        out
    }

    /// The certificate store: every `spec.tls` entry whose Secret (in the
    /// Ingress's own namespace) is a valid TLS Secret.
    fn build_certs(
        &mut self,
        snapshot: &ClusterSnapshot,
        ingresses: &[Admitted<'_>],
        report: &mut BuildReport,
    ) -> CertStore {
        let mut store = CertStore::new(self.default_cert.clone());
        let mut owners: HashMap<HostRule, (Arc<str>, String)> = HashMap::new();
        let mut used = HashSet::new();
        for ing in ingresses {
            let Some(spec) = ing.ingress.spec.as_ref() else {
                continue;
            };
            for tls in spec.tls.iter().flatten() {
                let Some(secret_name) = tls.secret_name.as_deref().filter(|s| !s.is_empty()) else {
                    // Allowed by the API: the hosts get the default certificate.
                    continue;
                };
                let key = ObjectKey::namespaced(&ing.namespace, secret_name);
                used.insert(key.clone());
                let cert = match self.cert_for(snapshot, &key) {
                    Ok(cert) => cert,
                    Err(e) => {
                        report.problems.push(ing.problem(format!(
                            "TLS secret {secret_name:?} not used, its hosts get the default \
                             certificate: {e}"
                        )));
                        continue;
                    }
                };
                let hosts: Vec<&str> = match tls.hosts.as_deref() {
                    Some(hosts) if !hosts.is_empty() => hosts.iter().map(String::as_str).collect(),
                    // No hosts: the certificate covers the Ingress's rule hosts.
                    _ => ing.rule_hosts().collect(),
                };
                for host in hosts {
                    let rule = match HostRule::new(host) {
                        Ok(HostRule::Any) => continue,
                        Ok(rule) => rule,
                        Err(e) => {
                            report.problems.push(ing.problem(format!("TLS host: {e}")));
                            continue;
                        }
                    };
                    if store.insert(&rule, cert.clone()) {
                        owners.insert(rule, (ing.name.clone(), secret_name.to_owned()));
                    } else if let Some((owner, owner_secret)) = owners.get(&rule)
                        && (owner != &ing.name || owner_secret != secret_name)
                    {
                        report.problems.push(ing.problem(format!(
                            "TLS host {host:?} conflicts with secret {owner_secret:?} of the \
                             older ingress {owner}, which wins"
                        )));
                    }
                }
            }
        }
        // Forget certificates no Ingress refers to any more.
        self.certs.retain(|k, _| used.contains(k));
        store
    }

    /// The parsed certificate of Secret `key`, from the cache when the
    /// Secret is unchanged.
    fn cert_for(
        &mut self,
        snapshot: &ClusterSnapshot,
        key: &ObjectKey,
    ) -> Result<Arc<CertifiedKey>, CertError> {
        let Some(secret) = snapshot.get::<Secret>(key) else {
            self.certs.remove(key);
            return Err(CertError::NotFound);
        };
        if let Some((cached, result)) = self.certs.get(key)
            && Arc::ptr_eq(cached, secret)
        {
            return result.clone();
        }
        let result = certified_key_from_secret(secret, &self.provider);
        self.certs
            .insert(key.clone(), (secret.clone(), result.clone()));
        result
    }
}

/// One served Ingress with its parsed settings.
struct Admitted<'s> {
    name: Arc<str>,
    namespace: String,
    ingress: &'s Ingress,
    settings: Arc<IngressSettings>,
    /// With `use-regex`: the compiled rule of every Prefix and
    /// ImplementationSpecific path, by path text and type.
    regex_paths: HashMap<(String, PathType), PathRule>,
}

/// With `use-regex`, every Prefix and ImplementationSpecific path of
/// `ingress` compiled; the first invalid one rejects the Ingress.
fn compile_regex_paths(
    ingress: &Ingress,
) -> Result<HashMap<(String, PathType), PathRule>, PathError> {
    let mut out = HashMap::new();
    let paths = ingress
        .spec
        .iter()
        .flat_map(|s| s.rules.iter().flatten())
        .filter_map(|r| r.http.as_ref())
        .flat_map(|h| h.paths.iter());
    for path in paths {
        // An unknown pathType is reported when the rule is added.
        let Ok(path_type) = path.path_type.parse::<PathType>() else {
            continue;
        };
        let text = path.path.as_deref().unwrap_or("");
        if path_type == PathType::Exact || out.contains_key(&(text.to_owned(), path_type)) {
            continue;
        }
        let rule = PathRule::regex(text, path_type)?;
        out.insert((text.to_owned(), path_type), rule);
    }
    Ok(out)
}

/// A host/path as claimed by a rule: the host, the path (without trailing
/// slashes unless Exact) and whether it is Exact.
type Claim = (HostRule, String, bool);

/// The claim of a rule path.
fn claim_of(host: &HostRule, rule: &PathRule) -> Claim {
    let exact = rule.path_type() == PathType::Exact;
    let norm = if exact {
        rule.path().to_owned()
    } else {
        rule.path().trim_end_matches('/').to_owned()
    };
    (host.clone(), norm, exact)
}

/// The canary of every host/path the canary Ingresses name; the oldest
/// canary wins a host/path.
fn canary_claims(
    canaries: &[Admitted<'_>],
    upstreams: &mut UpstreamResolver<'_>,
    problems: &mut Vec<Problem>,
) -> HashMap<Claim, Arc<Canary>> {
    let mut out: HashMap<Claim, Arc<Canary>> = HashMap::new();
    for ing in canaries {
        let Some(settings) = ing.settings.canary.clone() else {
            continue;
        };
        let Some(spec) = ing.ingress.spec.as_ref() else {
            continue;
        };
        if spec.default_backend.is_some() {
            problems.push(
                ing.problem(
                    "the defaultBackend of a canary Ingress is not used; only its rules split \
                 traffic"
                        .to_owned(),
                ),
            );
        }
        for rule in spec.rules.iter().flatten() {
            let Ok(host) = HostRule::new(rule.host.as_deref().unwrap_or("")) else {
                problems.push(ing.problem(format!(
                    "canary rule skipped: invalid host {:?}",
                    rule.host.as_deref().unwrap_or("")
                )));
                continue;
            };
            for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
                let Some(path_rule) =
                    ing.path_rule(&path.path_type, path.path.as_deref(), problems)
                else {
                    continue;
                };
                let claim = claim_of(&host, &path_rule);
                if let Some(owner) = out.get(&claim) {
                    if owner.ingress != ing.name {
                        problems.push(ing.problem(format!(
                            "canary for path {:?} on host {:?} ignored: the older canary \
                             ingress {} wins",
                            path_rule.path(),
                            rule.host.as_deref().unwrap_or("*"),
                            owner.ingress
                        )));
                    }
                    continue;
                }
                let target = ing.target(&path.backend, upstreams, problems);
                out.insert(
                    claim,
                    Arc::new(Canary::new(ing.name.clone(), target, settings.clone())),
                );
            }
        }
    }
    out
}

impl Admitted<'_> {
    fn problem(&self, message: String) -> Problem {
        Problem {
            ingress: self.name.to_string(),
            message,
        }
    }

    /// The rule of one `HTTPIngressPath` (a regex with `use-regex`),
    /// reporting an invalid one.
    fn path_rule(
        &self,
        path_type: &str,
        path: Option<&str>,
        problems: &mut Vec<Problem>,
    ) -> Option<PathRule> {
        let path = path.unwrap_or("");
        let parsed = path_type.parse::<PathType>().and_then(|t| {
            match self.regex_paths.get(&(path.to_owned(), t)) {
                Some(rule) => Ok(rule.clone()),
                None => PathRule::new(path, t),
            }
        });
        match parsed {
            Ok(p) => Some(p),
            Err(e) => {
                problems.push(self.problem(format!("path skipped: {e}")));
                None
            }
        }
    }

    /// The `rewrite-target` of a rule of this Ingress, if it sets one.
    fn rewrite(&self, rule: &PathRule, problems: &mut Vec<Problem>) -> Option<Rewrite> {
        let template = self.settings.rewrite_target.as_ref()?;
        if !self.settings.use_regex {
            let matched = match rule.path_type() {
                PathType::Exact => rule.path().len(),
                PathType::Prefix | PathType::ImplementationSpecific => {
                    rule.path().trim_end_matches('/').len()
                }
            };
            return Some(Rewrite::Prefix {
                matched,
                target: Arc::from(template.as_str()),
            });
        }
        let regex = match rule.compiled_regex() {
            Some(regex) => regex.clone(),
            // Exact paths stay literal; they have no groups to capture.
            None => Arc::new(Regex::new(&format!("^{}$", regex::escape(rule.path()))).ok()?),
        };
        let groups = regex.captures_len().saturating_sub(1);
        if template.max_group() > groups {
            problems.push(self.problem(format!(
                "rewrite-target {:?} refers to ${} but path {:?} has {groups} capture groups; \
                 the missing ones expand to nothing",
                template.as_str(),
                template.max_group(),
                rule.path()
            )));
        }
        Some(Rewrite::Regex {
            regex,
            template: template.clone(),
        })
    }

    /// The hosts of the Ingress's rules, as written.
    fn rule_hosts(&self) -> impl Iterator<Item = &str> {
        self.ingress
            .spec
            .iter()
            .flat_map(|s| s.rules.iter().flatten())
            .map(|r| r.host.as_deref().unwrap_or(""))
    }

    /// Whether plain HTTP to a host of `rule` is redirected to https.
    fn redirects(&self, rule: &HostRule, certs: &CertStore) -> bool {
        self.settings.force_ssl_redirect || (self.settings.ssl_redirect && certs.covers(rule))
    }

    /// The target of an Ingress backend, reporting what cannot be served.
    fn target(
        &self,
        backend: &IngressBackend,
        upstreams: &mut UpstreamResolver<'_>,
        problems: &mut Vec<Problem>,
    ) -> Target {
        let unavailable = |message: String, problems: &mut Vec<Problem>| {
            problems.push(self.problem(message.clone()));
            Target::Unavailable(Arc::from(message))
        };
        if let Some(svc) = &backend.service {
            let port = svc.port.as_ref();
            let port = match (
                port.and_then(|p| p.number),
                port.and_then(|p| p.name.as_deref()),
            ) {
                (Some(n), _) => match u16::try_from(n).ok().filter(|n| *n != 0) {
                    Some(n) => PortRef::Number(n),
                    None => {
                        return unavailable(
                            format!("service {}: port {n} is not a valid port", svc.name),
                            problems,
                        );
                    }
                },
                (None, Some(name)) if !name.is_empty() => PortRef::Name(name.to_owned()),
                _ => {
                    return unavailable(
                        format!("service {}: the backend names no port", svc.name),
                        problems,
                    );
                }
            };
            let target = ServiceRef {
                namespace: self.namespace.clone(),
                name: svc.name.clone(),
                port,
            };
            let upstream = upstreams.resolve(&target);
            if let Some(problem) = upstream.problem() {
                problems.push(self.problem(format!("backend {target}: {problem}")));
            }
            return Target::Service(upstream);
        }
        if let Some(res) = &backend.resource {
            return unavailable(
                format!(
                    "resource backend {}/{} {:?} is not supported (use a Service backend)",
                    res.api_group.as_deref().unwrap_or("core"),
                    res.kind,
                    res.name
                ),
                problems,
            );
        }
        unavailable(
            "the backend names neither a service nor a resource".to_owned(),
            problems,
        )
    }
}

/// Adds every host/path rule; the first (oldest) claim of a host/path wins.
/// A canary for the same host/path is attached to the winning route.
fn add_rules(
    ingresses: &[Admitted<'_>],
    canaries: &mut HashMap<Claim, Arc<Canary>>,
    certs: &CertStore,
    upstreams: &mut UpstreamResolver<'_>,
    router: &mut Router,
    problems: &mut Vec<Problem>,
) {
    let mut claimed: HashMap<Claim, Arc<str>> = HashMap::new();
    for ing in ingresses {
        let Some(spec) = ing.ingress.spec.as_ref() else {
            continue;
        };
        for rule in spec.rules.iter().flatten() {
            let host = match HostRule::new(rule.host.as_deref().unwrap_or("")) {
                Ok(h) => h,
                Err(e) => {
                    problems.push(ing.problem(format!("rule skipped: {e}")));
                    continue;
                }
            };
            let Some(http) = &rule.http else {
                continue;
            };
            let https_redirect = ing.redirects(&host, certs);
            let rule_host: Arc<str> = Arc::from(rule.host.as_deref().unwrap_or("*"));
            for path in &http.paths {
                let Some(path_rule) =
                    ing.path_rule(&path.path_type, path.path.as_deref(), problems)
                else {
                    continue;
                };
                let claim = claim_of(&host, &path_rule);
                if let Some(owner) = claimed.get(&claim) {
                    if owner != &ing.name {
                        problems.push(ing.problem(format!(
                            "path {:?} ({}) on host {:?} is also defined by the older \
                             ingress {owner}, which wins",
                            path_rule.path(),
                            path_rule.path_type(),
                            rule.host.as_deref().unwrap_or("*"),
                        )));
                    }
                    continue;
                }
                let canary = canaries.remove(&claim);
                claimed.insert(claim, ing.name.clone());
                let target = ing.target(&path.backend, upstreams, problems);
                let rule_path: Arc<str> = Arc::from(path_rule.path());
                let rewrite = ing.rewrite(&path_rule, problems);
                router.rules.insert(
                    host.clone(),
                    path_rule,
                    Arc::new(Route {
                        ingress: ing.name.clone(),
                        rule_host: rule_host.clone(),
                        rule_path,
                        target,
                        https_redirect,
                        settings: ing.settings.clone(),
                        rewrite,
                        canary,
                    }),
                );
            }
        }
    }
}

/// Adds `spec.defaultBackend`s: for an Ingress with rules, it serves the
/// unmatched paths of that Ingress's hosts; for an Ingress without rules, it
/// serves every request nothing else matches.
fn add_defaults(
    ingresses: &[Admitted<'_>],
    certs: &CertStore,
    upstreams: &mut UpstreamResolver<'_>,
    router: &mut Router,
    problems: &mut Vec<Problem>,
) {
    let mut host_owner: HashMap<HostRule, Arc<str>> = HashMap::new();
    let mut host_defaults = RouteTable::new();
    for ing in ingresses {
        let Some(backend) = ing
            .ingress
            .spec
            .as_ref()
            .and_then(|s| s.default_backend.as_ref())
        else {
            continue;
        };
        let hosts: Vec<HostRule> = ing
            .rule_hosts()
            .filter_map(|h| HostRule::new(h).ok())
            .collect();
        if hosts.is_empty() {
            if let Some(owner) = &router.catch_all {
                problems.push(ing.problem(format!(
                    "defaultBackend ignored: the older ingress {} already provides the \
                     catch-all default backend",
                    owner.ingress
                )));
                continue;
            }
            router.catch_all = Some(Arc::new(Route {
                ingress: ing.name.clone(),
                rule_host: Arc::from("*"),
                rule_path: Arc::from("-"),
                target: ing.target(backend, upstreams, problems),
                https_redirect: ing.settings.force_ssl_redirect,
                settings: ing.settings.clone(),
                rewrite: None,
                canary: None,
            }));
            continue;
        }
        let target = ing.target(backend, upstreams, problems);
        for host in hosts {
            if let Some(owner) = host_owner.get(&host) {
                if owner != &ing.name {
                    problems.push(ing.problem(format!(
                        "defaultBackend for host {host:?} ignored: the older ingress {owner} \
                         has one"
                    )));
                }
                continue;
            }
            host_owner.insert(host.clone(), ing.name.clone());
            let route = Arc::new(Route {
                ingress: ing.name.clone(),
                rule_host: Arc::from(host_label(&host).as_str()),
                rule_path: Arc::from("-"),
                target: target.clone(),
                https_redirect: ing.redirects(&host, certs),
                settings: ing.settings.clone(),
                rewrite: None,
                canary: None,
            });
            // "/" is a valid Prefix path, so this cannot fail.
            if let Ok(root) = PathRule::prefix("/") {
                host_defaults.insert(host, root, route);
            }
        }
    }
    router.host_defaults = host_defaults;
}

/// A host rule as written in an Ingress, for labels.
fn host_label(host: &HostRule) -> String {
    match host {
        HostRule::Any => "*".to_owned(),
        HostRule::Exact(name) => name.to_string(),
        HostRule::Wildcard(suffix) => format!("*.{suffix}"),
    }
}
