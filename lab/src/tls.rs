//! TLS Secrets the lab's Ingresses name but the manifests do not provide: the
//! lab makes a self-signed certificate for the hosts once and keeps it, so a
//! re-render never rotates it behind the user's back.
use std::collections::BTreeMap;
use std::fs;

use strait_cluster::k8s_openapi::ByteString;
use strait_cluster::k8s_openapi::api::core::v1::Secret;
use strait_cluster::k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::error::{LabError, Result};
use crate::paths::LabPaths;
use crate::state::create_dir;

/// Label on Secrets the lab generated.
pub const GENERATED_LABEL: &str = "lab.strait.dev/generated";

/// A `kubernetes.io/tls` Secret for `hosts`, reusing the key pair generated
/// the first time for this `namespace/name`.
pub fn lab_tls_secret(
    paths: &LabPaths,
    namespace: &str,
    name: &str,
    hosts: &[String],
) -> Result<Secret> {
    let dir = paths.root().join("tls");
    create_dir(&dir)?;
    let crt_path = dir.join(format!("{namespace}-{name}.crt"));
    let key_path = dir.join(format!("{namespace}-{name}.key"));
    let (crt, key) = match (fs::read_to_string(&crt_path), fs::read_to_string(&key_path)) {
        (Ok(c), Ok(k)) => (c, k),
        _ => {
            let mut names = hosts.to_vec();
            if names.is_empty() {
                names.push(format!("{name}.lab.strait.dev"));
            }
            let cert = rcgen::generate_simple_self_signed(names).map_err(|e| {
                LabError::State(format!(
                    "generating a certificate for Secret {namespace}/{name}: {e}"
                ))
            })?;
            let (c, k) = (cert.cert.pem(), cert.signing_key.serialize_pem());
            fs::write(&key_path, &k).map_err(LabError::io("writing a lab TLS key", &key_path))?;
            fs::write(&crt_path, &c)
                .map_err(LabError::io("writing a lab certificate", &crt_path))?;
            (c, k)
        }
    };
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(BTreeMap::from([(
                GENERATED_LABEL.to_owned(),
                "true".to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/tls".into()),
        data: Some(BTreeMap::from([
            ("tls.crt".to_owned(), ByteString(crt.into_bytes())),
            ("tls.key".to_owned(), ByteString(key.into_bytes())),
        ])),
        ..Secret::default()
    })
}
