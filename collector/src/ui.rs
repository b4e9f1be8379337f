//! The web UI: static files compiled into the binary (`collector/ui/`), so
//! that it works on a gateway with no internet. The page reads the query
//! API (`/api/v1/…`) and keeps its view and filters in the URL's fragment.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// (name under `/ui/`, content type, bytes).
const FILES: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../ui/app.js"),
    ),
    ("app.css", "text/css; charset=utf-8", include_bytes!("../ui/app.css")),
    (
        "force-graph.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("../ui/vendor/force-graph.min.js"),
    ),
    (
        "land-110m.json",
        "application/json",
        include_bytes!("../ui/vendor/land-110m.json"),
    ),
    ("favicon.svg", "image/svg+xml", include_bytes!("../ui/favicon.svg")),
];

const INDEX: &str = include_str!("../ui/index.html");

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/", get(index)).route("/ui/{file}", get(file))
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
