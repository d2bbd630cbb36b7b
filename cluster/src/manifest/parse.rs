//! Parsing one manifest file into typed objects: document splitting, kind
//! dispatch, namespace defaulting, and errors with file/document/line.

use std::path::Path;

use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::error::ManifestError;
use super::keep::Keep;
use crate::kind::{Kind, Object, ObjectKey};
use crate::shared::SharedObject;

/// One object read from a file, as the loader keeps it (two words, so a
/// file's list of items costs little besides the objects).
#[derive(Clone, Debug)]
pub(crate) enum Item {
    /// One of the seven kinds.
    Object(SharedObject),
    /// core/v1 Endpoints, mirrored into EndpointSlices after assembly.
    Endpoints(Box<Endpoints>),
}

/// One decoded document, before [`Keep`] decides what is stored.
#[allow(clippy::large_enum_variant)]
enum Decoded {
    Object(Object),
    Endpoints(Endpoints),
}

impl Item {
    pub(crate) fn kind_name(&self) -> &'static str {
        match self {
            Item::Object(o) => o.kind().as_str(),
            Item::Endpoints(_) => "Endpoints",
        }
    }

    pub(crate) fn key(&self) -> Option<ObjectKey> {
        match self {
            Item::Object(o) => o.key(),
            Item::Endpoints(e) => ObjectKey::from_meta(Kind::Service, &e.metadata),
        }
    }
}

/// The outcome of parsing one file.
#[derive(Debug, Default)]
pub(crate) struct ParsedFile {
    pub items: Vec<Item>,
    pub errors: Vec<ManifestError>,
    /// Documents of kinds the view does not carry (Deployment, ConfigMap...).
    pub skipped: usize,
}

/// What went wrong in one document, before the path and index are attached.
struct DocError {
    line: Option<usize>,
    column: Option<usize>,
    message: String,
}

impl DocError {
    fn msg(message: impl Into<String>) -> DocError {
        DocError {
            line: None,
            column: None,
            message: message.into(),
        }
    }
}

#[derive(Deserialize)]
struct Header {
    #[serde(rename = "apiVersion")]
    api_version: Option<String>,
    kind: Option<String>,
}

#[derive(Deserialize)]
struct YamlList {
    #[serde(default)]
    items: Option<Vec<serde_yaml_ng::Value>>,
}

/// Whether `path` is a JSON file (decoded with serde_json; everything else
/// with the YAML parser).
fn is_json(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
}

/// Parses a whole file, keeping what `keep` asks for (other kinds count as
/// skipped). Never panics, whatever the bytes.
pub(crate) fn parse_file(path: &Path, text: &str, keep: &Keep) -> ParsedFile {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = ParsedFile::default();
    if is_json(path) {
        parse_json(path, text, keep, &mut out);
    } else {
        for segment in split_yaml(text) {
            parse_yaml_document(path, &segment, keep, &mut out);
        }
    }
    out
}

/// One YAML document: its 1-based index, the 1-based file line it starts
/// on, and its text.
pub(crate) struct Segment {
    pub index: usize,
    pub start_line: usize,
    pub text: String,
}

fn is_separator(line: &str) -> Option<&str> {
    let rest = line.strip_prefix("---")?;
    if rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']) {
        Some(rest)
    } else {
        None
    }
}

fn is_document_end(line: &str) -> bool {
    line.strip_prefix("...")
        .is_some_and(|rest| rest.trim().is_empty() || rest.trim_start().starts_with('#'))
}

fn has_content(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim();
        !t.is_empty() && !t.starts_with('#') && !t.starts_with('%')
    })
}

/// Splits YAML text into documents on `---` lines, as a YAML parser would
/// count them: content before the first `---` is a document only if it has
/// something besides comments and directives; every `---` starts a document
/// (possibly empty). Text after a `...` end marker is ignored until the next
/// `---`.
pub(crate) fn split_yaml(text: &str) -> Vec<Segment> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut start_line = 1;
    let mut explicit = false; // current segment was opened by `---`
    let mut ended = false; // a `...` closed the current document
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        if let Some(rest) = is_separator(line) {
            if explicit || has_content(&current) {
                segments.push((start_line, std::mem::take(&mut current)));
            }
            current.clear();
            // keep text after the marker on the same line, at its column
            current.push_str("   ");
            current.push_str(rest);
            start_line = line_no;
            explicit = true;
            ended = false;
            continue;
        }
        if ended {
            continue;
        }
        if is_document_end(line) {
            ended = true;
            continue;
        }
        current.push_str(line);
    }
    if explicit || has_content(&current) {
        segments.push((start_line, current));
    }
    segments
        .into_iter()
        .enumerate()
        .map(|(i, (start_line, text))| Segment {
            index: i + 1,
            start_line,
            text,
        })
        .collect()
}

/// Re-parses `text` as if it started at `start_line` of the file, so the
/// parser's message carries file-absolute line numbers (error path only).
fn yaml_error_at<T: DeserializeOwned>(
    text: &str,
    start_line: usize,
    fallback: serde_yaml_ng::Error,
) -> DocError {
    let mut padded = "\n".repeat(start_line.saturating_sub(1));
    padded.push_str(text);
    let err = match serde_yaml_ng::from_str::<T>(&padded) {
        Err(e) => e,
        Ok(_) => fallback,
    };
    let location = err.location();
    DocError {
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        message: err.to_string(),
    }
}

/// Decodes a typed object from whatever a document or list item came from.
trait Decode {
    fn decode<T: DeserializeOwned>(&self) -> Result<T, DocError>;
}

struct YamlText<'a> {
    text: &'a str,
    start_line: usize,
}

impl Decode for YamlText<'_> {
    fn decode<T: DeserializeOwned>(&self) -> Result<T, DocError> {
        serde_yaml_ng::from_str::<T>(self.text)
            .map_err(|e| yaml_error_at::<T>(self.text, self.start_line, e))
    }
}

/// A list item from a YAML `kind: List`. It is re-serialised and parsed
/// from text so scalars are read as leniently as in a top-level document.
struct YamlItem(String);

impl Decode for YamlItem {
    fn decode<T: DeserializeOwned>(&self) -> Result<T, DocError> {
        serde_yaml_ng::from_str::<T>(&self.0).map_err(|e| DocError::msg(e.to_string()))
    }
}

struct JsonText<'a> {
    text: &'a str,
    start: usize,
    end: usize,
}

impl Decode for JsonText<'_> {
    fn decode<T: DeserializeOwned>(&self) -> Result<T, DocError> {
        let doc = self.text.get(self.start..self.end).unwrap_or("");
        serde_json::from_str::<T>(doc).map_err(|first| {
            // blank out everything before the document so line/column are file-absolute
            let mut padded: String = self
                .text
                .bytes()
                .take(self.start)
                .map(|b| if b == b'\n' { '\n' } else { ' ' })
                .collect();
            padded.push_str(doc);
            let err = serde_json::from_str::<T>(&padded).err().unwrap_or(first);
            json_error(&err)
        })
    }
}

struct JsonItem(serde_json::Value);

impl Decode for JsonItem {
    fn decode<T: DeserializeOwned>(&self) -> Result<T, DocError> {
        serde_json::from_value::<T>(self.0.clone()).map_err(|e| DocError::msg(e.to_string()))
    }
}

fn json_error(err: &serde_json::Error) -> DocError {
    let known = err.line() > 0;
    DocError {
        line: known.then(|| err.line()),
        column: known.then(|| err.column()),
        message: err.to_string(),
    }
}

fn doc_error(path: &Path, document: usize, item: Option<usize>, e: DocError) -> ManifestError {
    let message = match item {
        Some(i) => format!("List item {i}: {}", e.message),
        None => e.message,
    };
    ManifestError::Document {
        path: path.to_path_buf(),
        document,
        line: e.line,
        column: e.column,
        message,
    }
}

fn parse_yaml_document(path: &Path, segment: &Segment, keep: &Keep, out: &mut ParsedFile) {
    let src = YamlText {
        text: &segment.text,
        start_line: segment.start_line,
    };
    // Most manifests state apiVersion and kind as plain top-level scalars;
    // reading them from the text avoids parsing every document twice.
    let parsed = match fast_header(&segment.text) {
        Some(h) => Ok(Some(h)),
        None => serde_yaml_ng::from_str::<Option<Header>>(&segment.text),
    };
    let header = match parsed {
        Ok(None) => return, // empty document
        Ok(Some(h)) => h,
        Err(e) => {
            let mut err = yaml_error_at::<Option<Header>>(&segment.text, segment.start_line, e);
            err.message = format!("not a Kubernetes object: {}", err.message);
            out.errors.push(doc_error(path, segment.index, None, err));
            return;
        }
    };
    let (api_version, kind) = match header_fields(header) {
        Ok(v) => v,
        Err(e) => {
            out.errors.push(doc_error(path, segment.index, None, e));
            return;
        }
    };
    if is_list(&api_version, &kind) {
        let list: YamlList = match src.decode() {
            Ok(l) => l,
            Err(e) => {
                out.errors.push(doc_error(path, segment.index, None, e));
                return;
            }
        };
        for (i, value) in list.items.unwrap_or_default().into_iter().enumerate() {
            let item_no = i + 1;
            let result = yaml_item_header(&value).and_then(|(api_version, kind)| {
                let text =
                    serde_yaml_ng::to_string(&value).map_err(|e| DocError::msg(e.to_string()))?;
                decode_item(&YamlItem(text), &api_version, &kind)
            });
            push_result(path, segment.index, Some(item_no), result, keep, out);
        }
        return;
    }
    let result = decode_item(&src, &api_version, &kind);
    push_result(path, segment.index, None, result, keep, out);
}

/// `apiVersion` and `kind` when both are plain scalars on top-level lines of
/// a block mapping; `None` whenever anything is unusual (flow style, tags,
/// anchors, quotes with escapes), so the full parser decides instead.
fn fast_header(text: &str) -> Option<Header> {
    let mut api_version = None;
    let mut kind = None;
    for line in text.lines() {
        let (slot, rest) = if let Some(rest) = line.strip_prefix("apiVersion:") {
            (&mut api_version, rest)
        } else if let Some(rest) = line.strip_prefix("kind:") {
            (&mut kind, rest)
        } else {
            continue;
        };
        if slot.is_some() {
            return None; // duplicate key: let the parser report it
        }
        let value = rest.split(" #").next()?.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        let plain = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'-' | b'_'));
        if !plain {
            return None;
        }
        *slot = Some(value.to_string());
    }
    Some(Header {
        api_version: Some(api_version?),
        kind: Some(kind?),
    })
}

fn yaml_item_header(value: &serde_yaml_ng::Value) -> Result<(String, String), DocError> {
    if !value.is_mapping() {
        return Err(DocError::msg(
            "not a Kubernetes object (expected a mapping)",
        ));
    }
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    header_fields(Header {
        api_version: field("apiVersion"),
        kind: field("kind"),
    })
}

fn header_fields(h: Header) -> Result<(String, String), DocError> {
    match (
        h.api_version.filter(|s| !s.is_empty()),
        h.kind.filter(|s| !s.is_empty()),
    ) {
        (Some(a), Some(k)) => Ok((a, k)),
        (None, _) => Err(DocError::msg(
            "missing apiVersion; every document needs apiVersion and kind",
        )),
        (_, None) => Err(DocError::msg(
            "missing kind; every document needs apiVersion and kind",
        )),
    }
}

fn is_list(api_version: &str, kind: &str) -> bool {
    api_version == "v1" && kind.ends_with("List")
}

fn push_result(
    path: &Path,
    document: usize,
    item: Option<usize>,
    result: Result<Option<Decoded>, DocError>,
    keep: &Keep,
    out: &mut ParsedFile,
) {
    let kept = match result {
        Ok(Some(Decoded::Object(object))) => keep.object(object).map(Item::Object),
        Ok(Some(Decoded::Endpoints(endpoints))) => keep
            .endpoints()
            .then(|| Item::Endpoints(Box::new(endpoints))),
        Ok(None) => None,
        Err(e) => {
            out.errors.push(doc_error(path, document, item, e));
            return;
        }
    };
    match kept {
        Some(item) => out.items.push(item),
        None => out.skipped += 1,
    }
}

fn parse_json(path: &Path, text: &str, keep: &Keep, out: &mut ParsedFile) {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>();
    let mut start = 0;
    let mut index = 0;
    loop {
        let value = match stream.next() {
            None => break,
            Some(v) => v,
        };
        index += 1;
        let end = stream.byte_offset();
        let value = match value {
            Ok(v) => v,
            Err(e) => {
                out.errors
                    .push(doc_error(path, index, None, json_error(&e)));
                // the stream cannot resynchronise after a syntax error
                break;
            }
        };
        let src = JsonText { text, start, end };
        start = end;
        let header = match json_header(&value) {
            Ok(h) => h,
            Err(e) => {
                out.errors.push(doc_error(path, index, None, e));
                continue;
            }
        };
        let (api_version, kind) = header;
        if is_list(&api_version, &kind) {
            let items = match value.get("items") {
                None | Some(serde_json::Value::Null) => Vec::new(),
                Some(serde_json::Value::Array(items)) => items.clone(),
                Some(_) => {
                    out.errors.push(doc_error(
                        path,
                        index,
                        None,
                        DocError::msg("List items must be an array"),
                    ));
                    continue;
                }
            };
            for (i, item) in items.into_iter().enumerate() {
                let result =
                    json_header(&item).and_then(|(a, k)| decode_item(&JsonItem(item), &a, &k));
                push_result(path, index, Some(i + 1), result, keep, out);
            }
            continue;
        }
        let result = decode_item(&src, &api_version, &kind);
        push_result(path, index, None, result, keep, out);
    }
}

fn json_header(value: &serde_json::Value) -> Result<(String, String), DocError> {
    if !value.is_object() {
        return Err(DocError::msg(
            "not a Kubernetes object (expected a JSON object)",
        ));
    }
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    header_fields(Header {
        api_version: field("apiVersion"),
        kind: field("kind"),
    })
}

/// The API group of an apiVersion ("" for core).
fn group(api_version: &str) -> &str {
    match api_version.rsplit_once('/') {
        Some((g, _)) => g,
        None => "",
    }
}

/// The kinds this crate reads, with the one apiVersion each is read at.
const KNOWN: &[(&str, &str)] = &[
    ("v1", "Service"),
    ("discovery.k8s.io/v1", "EndpointSlice"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "IngressClass"),
    ("v1", "Secret"),
    ("v1", "Node"),
    ("v1", "Pod"),
    ("v1", "Endpoints"),
];

/// Decodes a document of `api_version`/`kind`: `Ok(None)` for kinds the view
/// does not carry.
fn decode_item(
    src: &impl Decode,
    api_version: &str,
    kind: &str,
) -> Result<Option<Decoded>, DocError> {
    let with_kind = |e: DocError| DocError {
        message: format!("cannot decode {kind} ({api_version}): {}", e.message),
        ..e
    };
    let object = match (api_version, kind) {
        ("v1", "Service") => Object::Service(src.decode::<Service>().map_err(with_kind)?),
        ("discovery.k8s.io/v1", "EndpointSlice") => {
            Object::EndpointSlice(src.decode::<EndpointSlice>().map_err(with_kind)?)
        }
        ("networking.k8s.io/v1", "Ingress") => {
            Object::Ingress(src.decode::<Ingress>().map_err(with_kind)?)
        }
        ("networking.k8s.io/v1", "IngressClass") => {
            Object::IngressClass(src.decode::<IngressClass>().map_err(with_kind)?)
        }
        ("v1", "Secret") => Object::Secret(src.decode::<Secret>().map_err(with_kind)?),
        ("v1", "Node") => Object::Node(src.decode::<Node>().map_err(with_kind)?),
        ("v1", "Pod") => Object::Pod(src.decode::<Pod>().map_err(with_kind)?),
        ("v1", "Endpoints") => {
            let mut endpoints = src.decode::<Endpoints>().map_err(with_kind)?;
            normalise_meta(Kind::Service, &mut endpoints.metadata, kind)?;
            return Ok(Some(Decoded::Endpoints(endpoints)));
        }
        _ => {
            let legacy_ingress = kind == "Ingress" && group(api_version) == "extensions";
            if let Some((supported, _)) = KNOWN
                .iter()
                .find(|(v, k)| *k == kind && (group(v) == group(api_version) || legacy_ingress))
            {
                return Err(DocError::msg(format!(
                    "{kind} at apiVersion {api_version} is not supported; use apiVersion: {supported}"
                )));
            }
            tracing::debug!(
                api_version,
                kind,
                "skipping manifest document of a kind the view does not carry"
            );
            return Ok(None);
        }
    };
    let mut object = object;
    let object_kind = object.kind();
    normalise_meta(object_kind, object.meta_mut(), kind)?;
    Ok(Some(Decoded::Object(object)))
}

/// Requires a name and applies kubectl's namespace rules: a namespaced object
/// without a namespace goes to "default"; a cluster-scoped one has none.
fn normalise_meta(kind: Kind, meta: &mut ObjectMeta, kind_name: &str) -> Result<(), DocError> {
    if meta.name.as_deref().is_none_or(str::is_empty) {
        return Err(DocError::msg(format!(
            "{kind_name} has no metadata.name; every object needs a name (generateName is not supported)"
        )));
    }
    if kind.is_namespaced() {
        if meta.namespace.as_deref().is_none_or(str::is_empty) {
            meta.namespace = Some("default".to_owned());
        }
    } else {
        meta.namespace = None;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn parse(name: &str, text: &str) -> ParsedFile {
        parse_file(&PathBuf::from(name), text, &Keep::default())
    }

    fn names(p: &ParsedFile) -> Vec<String> {
        p.items
            .iter()
            .map(|i| {
                format!(
                    "{} {}",
                    i.kind_name(),
                    i.key().map(|k| k.to_string()).unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn splits_documents_like_yaml() {
        let segs = split_yaml("# comment\n---\na: 1\n---\n---\nb: 2\n...\n# trailing\n---\nc: 3\n");
        let got: Vec<_> = segs
            .iter()
            .map(|s| (s.index, s.start_line, has_content(&s.text)))
            .collect();
        assert_eq!(
            got,
            vec![(1, 2, true), (2, 4, false), (3, 5, true), (4, 9, true)]
        );
        // content before the first marker is a document
        let segs = split_yaml("a: 1\n---\nb: 2");
        assert_eq!(segs.len(), 2);
        assert_eq!(segs[1].start_line, 2);
        // a leading marker does not create an empty first document
        assert_eq!(split_yaml("---\na: 1\n").len(), 1);
        // `----` and `---x` are not markers
        assert_eq!(split_yaml("a: |\n  ---x\n----: 1\n").len(), 1);
        // text after the marker stays in the document
        let segs = split_yaml("--- {a: 1}\n");
        assert!(has_content(&segs[0].text));
        assert!(split_yaml("").is_empty());
    }

    #[test]
    fn multi_document_and_list() {
        let p = parse(
            "a.yaml",
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n---\n\
             apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n---\n\
             apiVersion: v1\nkind: List\nitems:\n\
             - apiVersion: v1\n  kind: Node\n  metadata:\n    name: n1\n    namespace: ignored\n\
             - apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: c\n\
             - apiVersion: v1\n  kind: Pod\n  metadata:\n    name: p\n    namespace: apps\n    labels:\n      version: 1\n",
        );
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(names(&p), ["Service default/web", "Node n1", "Pod apps/p"]);
        assert_eq!(p.skipped, 2);
    }

    #[test]
    fn json_documents() {
        let p = parse(
            "a.json",
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"a","namespace":"x"}}
               {"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Secret","metadata":{"name":"s"}}]}"#,
        );
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(names(&p), ["Service x/a", "Secret default/s"]);

        let p = parse(
            "b.json",
            "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"a\"}}\n\
             {\"apiVersion\":\"v1\",\"kind\":\"Service\",\n\"metadata\":{\"name\":\"b\"},\"spec\":{\"ports\":[{\"port\":\"x\"}]}}",
        );
        assert_eq!(p.items.len(), 1);
        match &p.errors[..] {
            [
                ManifestError::Document {
                    document: 2,
                    line: Some(3),
                    message,
                    ..
                },
            ] => {
                assert!(message.contains("Service"), "{message}")
            }
            other => panic!("unexpected errors {other:?}"),
        }
    }

    #[test]
    fn errors_name_document_and_absolute_line() {
        let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: ok\n---\n\
                    apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  ports:\n  - port: eighty\n";
        let p = parse("svc.yaml", text);
        assert_eq!(p.items.len(), 1);
        let [
            ManifestError::Document {
                document,
                line,
                message,
                path,
                ..
            },
        ] = &p.errors[..]
        else {
            panic!("expected one document error, got {:?}", p.errors);
        };
        assert_eq!(*document, 2);
        assert_eq!(*line, Some(12), "{message}");
        assert!(message.contains("line 12"), "{message}");
        assert_eq!(path, &PathBuf::from("svc.yaml"));
        let shown = p.errors[0].to_string();
        assert!(
            shown.starts_with("svc.yaml: document 2 (line 12"),
            "{shown}"
        );

        // syntax error
        let p = parse(
            "x.yaml",
            "apiVersion: v1\nkind: Node\nmetadata: {name: n}\n---\napiVersion: v1\nkind: Service\nmetadata: a: b\n",
        );
        let [
            ManifestError::Document {
                document: 2,
                line: Some(7),
                message,
                ..
            },
        ] = &p.errors[..]
        else {
            panic!("{:?}", p.errors);
        };
        assert!(message.contains("line 7"), "{message}");
    }

    #[test]
    fn missing_fields_and_versions() {
        let p = parse("m.yaml", "kind: Service\nmetadata:\n  name: a\n");
        assert!(p.errors[0].to_string().contains("missing apiVersion"));
        let p = parse("m.yaml", "apiVersion: v1\nkind: Service\nmetadata: {}\n");
        assert!(p.errors[0].to_string().contains("metadata.name"));
        let p = parse(
            "m.yaml",
            "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata: {name: a}\n",
        );
        assert!(
            p.errors[0]
                .to_string()
                .contains("use apiVersion: discovery.k8s.io/v1")
        );
        let p = parse(
            "m.yaml",
            "apiVersion: extensions/v1beta1\nkind: Ingress\nmetadata: {name: a}\n",
        );
        assert!(p.errors[0].to_string().contains("networking.k8s.io/v1"));
        // a Service of another group (Knative) is simply another kind
        let p = parse(
            "m.yaml",
            "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: a}\n",
        );
        assert!(p.errors.is_empty());
        assert_eq!(p.skipped, 1);
        let p = parse("m.yaml", "just a string\n");
        assert!(p.errors[0].to_string().contains("not a Kubernetes object"));
        let p = parse(
            "m.yaml",
            "apiVersion: v1\nkind: List\nitems:\n- 5\n- apiVersion: v1\n  kind: Pod\n",
        );
        assert_eq!(p.errors.len(), 2);
        assert!(p.errors[0].to_string().contains("List item 1"));
    }

    #[test]
    fn empty_and_comment_only_documents_are_not_errors() {
        let p = parse(
            "e.yaml",
            "# header\n---\n---\n# only a comment\n---\napiVersion: v1\nkind: Node\nmetadata: {name: n}\n---\n",
        );
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(names(&p), ["Node n"]);
        // the Node is document 3: an error there says so
        let p = parse(
            "e.yaml",
            "---\n---\n# c\n---\napiVersion: v1\nkind: Node\nmetadata: {}\n",
        );
        assert!(
            matches!(p.errors[..], [ManifestError::Document { document: 3, .. }]),
            "{:?}",
            p.errors
        );
        assert!(parse("e.json", "  \n").errors.is_empty());
    }

    #[test]
    fn namespace_defaulting() {
        let p = parse(
            "n.yaml",
            "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata: {name: strait, namespace: x}\n---\n\
             apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: ''}\n",
        );
        assert_eq!(names(&p), ["IngressClass strait", "Ingress default/web"]);
        let Item::Object(o) = &p.items[1] else {
            panic!()
        };
        assert_eq!(o.meta().namespace.as_deref(), Some("default"));
    }
}

#[cfg(test)]
mod fast_header_tests {
    use super::fast_header;

    #[test]
    fn reads_plain_headers_and_defers_anything_unusual() {
        let h =
            fast_header("apiVersion: v1\nkind: Service # c\nmetadata:\n  kind: nested\n").unwrap();
        assert_eq!(
            (h.api_version.as_deref(), h.kind.as_deref()),
            (Some("v1"), Some("Service"))
        );
        let h = fast_header("kind: 'Ingress'\napiVersion: \"networking.k8s.io/v1\"\n").unwrap();
        assert_eq!(h.api_version.as_deref(), Some("networking.k8s.io/v1"));
        assert_eq!(h.kind.as_deref(), Some("Ingress"));
        for unusual in [
            "{apiVersion: v1, kind: Service}",
            "apiVersion: v1\nkind: !!str Service\n",
            "apiVersion: v1\nkind: &a Service\n",
            "apiVersion: v1\nkind: Service\nkind: Pod\n",
            "apiVersion: v1\n",
            "  apiVersion: v1\n  kind: Service\n",
        ] {
            assert!(fast_header(unusual).is_none(), "{unusual:?}");
        }
    }
}
