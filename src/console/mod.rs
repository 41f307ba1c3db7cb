//! The web console at `/console`: static assets compiled into the binary, so the broker
//! needs no Node build and no files beside it. The console is plain JavaScript that talks to
//! the broker's own APIs (Kinesis JSON 1.1, Lambda's mapping API, `/_broker/throughput`)
//! with SigV4-signed requests, so it sees exactly the account of the credentials it is
//! opened with; the server side is only this asset table.

use bytes::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, StatusCode};

use crate::http::handler::Reply;

/// The console's path; every asset lives under `PREFIX/`.
pub const PREFIX: &str = "/console";

/// No inline script or style and nothing from elsewhere: record data is hostile input, and
/// should anything slip into the DOM as markup, the browser still refuses to run it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Asset names are not versioned, so browsers revalidate rather than keep a console older
/// than the broker serving it.
pub const CACHE_CONTROL: &str = "no-cache";

struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("assets/index.html"),
};

const ASSETS: &[Asset] = &[
    INDEX,
    Asset {
        name: "console.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("assets/console.css"),
    },
    Asset {
        name: "sigv4.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/sigv4.js"),
    },
    Asset {
        name: "chart.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/chart.js"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("assets/app.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("assets/favicon.svg"),
    },
];

/// Whether `path` belongs to the console.
pub fn routes(path: &str) -> bool {
    path == PREFIX || path.starts_with("/console/")
}

/// Answers a request for a console path (see [`routes`]): the asset with its content type,
/// 404 for an unknown one, 405 for a method other than GET or HEAD.
pub fn respond(method: &Method, path: &str) -> Reply {
    if method != Method::GET && method != Method::HEAD {
        let mut reply = plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        reply
            .headers
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return reply;
    }
    let name = path
        .strip_prefix(PREFIX)
        .unwrap_or_default()
        .trim_start_matches('/');
    // The pages are hash-routed, so the document itself is only ever at the root.
    let asset = if name.is_empty() || name == INDEX.name {
        Some(&INDEX)
    } else {
        ASSETS.iter().find(|a| a.name == name)
    };
    match asset {
        Some(asset) => with_headers(Reply {
            status: StatusCode::OK,
            content_type: Some(asset.content_type),
            body: Bytes::from_static(asset.body),
            headers: HeaderMap::new(),
            id_2: false,
            error: None,
            events: None,
        }),
        None => plain(StatusCode::NOT_FOUND, "Not Found\n"),
    }
}

fn plain(status: StatusCode, text: &'static str) -> Reply {
    let mut reply = with_headers(Reply {
        status,
        content_type: Some("text/plain; charset=utf-8"),
        body: Bytes::from_static(text.as_bytes()),
        headers: HeaderMap::new(),
        id_2: false,
        error: None,
        events: None,
    });
    reply.error = status.canonical_reason();
    reply
}

fn with_headers(mut reply: Reply) -> Reply {
    let headers = &mut reply.headers;
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    // A browser must never reinterpret an asset (or a 404 page) as another type.
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str) -> Reply {
        assert!(routes(path), "{path} is not routed to the console");
        respond(&Method::GET, path)
    }

    fn header(reply: &Reply, name: header::HeaderName) -> &str {
        reply
            .headers
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    #[test]
    fn the_console_root_and_index_are_the_html_document() {
        for path in ["/console", "/console/", "/console/index.html"] {
            let reply = get(path);
            assert_eq!(reply.status, StatusCode::OK, "{path}");
            assert_eq!(reply.content_type, Some("text/html; charset=utf-8"));
            let html = std::str::from_utf8(&reply.body).unwrap();
            assert!(html.contains("<script src=\"/console/app.js\""), "{html}");
        }
    }

    #[test]
    fn every_asset_has_its_content_type() {
        for (path, content_type) in [
            ("/console/app.js", "text/javascript; charset=utf-8"),
            ("/console/sigv4.js", "text/javascript; charset=utf-8"),
            ("/console/chart.js", "text/javascript; charset=utf-8"),
            ("/console/console.css", "text/css; charset=utf-8"),
            ("/console/favicon.svg", "image/svg+xml"),
        ] {
            let reply = get(path);
            assert_eq!(reply.status, StatusCode::OK, "{path}");
            assert_eq!(reply.content_type, Some(content_type), "{path}");
            assert!(!reply.body.is_empty(), "{path}");
        }
    }

    #[test]
    fn unknown_assets_are_404_with_the_same_protections() {
        for path in [
            "/console/nope.js",
            "/console/../Cargo.toml",
            "/console/app.js/",
            "/console//app.js/x",
        ] {
            let reply = get(path);
            assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(reply.content_type, Some("text/plain; charset=utf-8"));
            assert_eq!(
                header(&reply, header::CONTENT_SECURITY_POLICY),
                CONTENT_SECURITY_POLICY
            );
            assert_eq!(header(&reply, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
        }
    }

    #[test]
    fn only_console_paths_are_routed() {
        for path in [
            "/",
            "/consoles",
            "/console.js",
            "/_broker/console",
            "/x/console/",
        ] {
            assert!(!routes(path), "{path}");
        }
    }

    #[test]
    fn answers_carry_a_strict_csp_and_revalidation() {
        let reply = get("/console/");
        let csp = header(&reply, header::CONTENT_SECURITY_POLICY);
        assert!(csp.starts_with("default-src 'self';"), "{csp}");
        assert!(csp.contains("script-src 'self';"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(!csp.contains("unsafe-eval"), "{csp}");
        assert_eq!(header(&reply, header::CACHE_CONTROL), "no-cache");
        assert_eq!(header(&reply, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
    }

    #[test]
    fn the_document_has_no_inline_script_or_style() {
        // The CSP would block them; a test catches it before a browser does.
        let html = std::str::from_utf8(INDEX.body).unwrap();
        for script in html.split("<script").skip(1) {
            let tag_end = script.find('>').unwrap();
            assert!(
                script[..tag_end].contains("src="),
                "inline script: {script}"
            );
            assert!(script[tag_end + 1..].starts_with("</script>"), "{script}");
        }
        assert!(!html.contains("<style"), "inline style");
        assert!(!html.contains(" style="), "inline style attribute");
        let handler = html.match_indices(" on").find(|(at, _)| {
            let name: String = html[at + 3..]
                .chars()
                .take_while(char::is_ascii_alphabetic)
                .collect();
            !name.is_empty() && html[at + 3 + name.len()..].starts_with('=')
        });
        assert!(handler.is_none(), "inline event handler at {handler:?}");
    }

    #[test]
    fn other_methods_are_405_with_allow() {
        let reply = respond(&Method::POST, "/console/app.js");
        assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(header(&reply, header::ALLOW), "GET, HEAD");
        assert_eq!(respond(&Method::HEAD, "/console/").status, StatusCode::OK);
    }
}

#[cfg(test)]
mod served {
    use crate::{Config, Server};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            stream.read_to_string(&mut out),
        )
        .await
        .expect("no answer in 10 s")
        .unwrap();
        out.to_ascii_lowercase()
    }

    #[tokio::test]
    async fn the_broker_serves_the_console_without_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(Config::for_tests(dir.path())).await.unwrap();
        let addr = server.local_addr();

        let page = get(addr, "/console").await;
        assert!(page.starts_with("http/1.1 200"), "{page}");
        assert!(
            page.contains("content-type: text/html; charset=utf-8\r\n"),
            "{page}"
        );
        assert!(
            page.contains("content-security-policy: default-src 'self';"),
            "{page}"
        );
        assert!(page.contains("cache-control: no-cache\r\n"), "{page}");

        let script = get(addr, "/console/app.js").await;
        assert!(script.starts_with("http/1.1 200"), "{script}");
        assert!(script.contains("content-type: text/javascript; charset=utf-8\r\n"));

        let missing = get(addr, "/console/missing.js").await;
        assert!(missing.starts_with("http/1.1 404"), "{missing}");
        assert!(
            missing.contains("x-content-type-options: nosniff\r\n"),
            "{missing}"
        );

        server.shutdown().await.unwrap();
    }
}
