//! The recorder against a mock API server behind a real `kube::Client`:
//! the request kube sends is what `kubectl describe ingress` would show.

use std::time::Duration;

use http::{Request, Response};
use http_body_util::BodyExt;
use kube::client::Body;
use serde_json::Value;
use strait_cluster::ManifestLoader;
use tokio::sync::watch;
use tower_test::mock;

use super::*;

fn snapshot() -> ClusterSnapshot {
    ManifestLoader::parse_str(
        "ingress.yaml",
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\n\
         metadata: {name: shop, namespace: apps, uid: 1234-abcd}\n\
         spec: {rules: [{host: shop.example}]}\n",
    )
    .to_snapshot()
}

#[tokio::test]
async fn a_new_problem_becomes_a_warning_event_on_its_ingress() {
    let (service, mut handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let (sink, queue) = channel();
    let (_stop_tx, stop) = watch::channel(false);
    tokio::spawn(run(client, Some("pod-1".into()), queue, stop));

    sink.problems(
        &snapshot(),
        &[
            Problem {
                ingress: "apps/shop".into(),
                message: "TLS secret apps/missing does not exist".into(),
            },
            // No such Ingress in the view: nothing to attach an event to.
            Problem {
                ingress: "apps/gone".into(),
                message: "whatever".into(),
            },
        ],
    );

    let (request, respond) = tokio::time::timeout(Duration::from_secs(5), handle.next_request())
        .await
        .expect("an event is posted")
        .expect("request");
    assert_eq!(request.method(), "POST");
    assert_eq!(
        request.uri().path(),
        "/apis/events.k8s.io/v1/namespaces/apps/events"
    );
    let body = request.into_body().collect().await.unwrap().to_bytes();
    let event: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(event["type"], "Warning");
    assert_eq!(event["reason"], "InvalidConfiguration");
    assert_eq!(event["note"], "TLS secret apps/missing does not exist");
    assert_eq!(event["regarding"]["kind"], "Ingress");
    assert_eq!(event["regarding"]["name"], "shop");
    assert_eq!(event["regarding"]["uid"], "1234-abcd");
    assert_eq!(event["reportingController"], CONTROLLER);
    assert_eq!(event["reportingInstance"], "pod-1");
    respond.send_response(
        Response::builder()
            .status(201)
            .header("content-type", "application/json")
            .body(Body::from(body.to_vec()))
            .unwrap(),
    );
    // The problem for the missing Ingress sent nothing.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), handle.next_request())
            .await
            .is_err(),
        "no event for an Ingress that is not in the view"
    );
}

#[test]
fn long_notes_are_cut_at_a_character_boundary() {
    let text = "é".repeat(600);
    let cut = truncate(&text, 1000);
    assert_eq!(cut.len(), 1000);
    assert!(text.starts_with(&cut));
}
