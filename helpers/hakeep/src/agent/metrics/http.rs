//! The endpoint: `GET /metrics` and nothing else, answered by one thread (a scrape is a
//! few kilobytes of text from atomics; tiny_http reads the requests on its own threads).

use std::net::SocketAddr;
use std::time::Duration;

use tiny_http::{Header, Method, Request, Response, Server};

use super::CONTENT_TYPE;

/// Listens on `address` (the agent refuses to start when it cannot).
pub fn bind(address: SocketAddr) -> anyhow::Result<Server> {
    Server::http(address).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Answers requests until the process ends. tiny_http stops accepting after an accept
/// error (too many open files): the endpoint is then bound anew, with a back-off.
pub fn serve(mut server: Server, address: SocketAddr, render: &dyn Fn() -> String) {
    loop {
        match server.recv() {
            Ok(request) => answer(request, render),
            Err(e) => {
                log::error!("metrics endpoint {address}: {e}; listening again");
                server = rebind(address);
            }
        }
    }
}

fn rebind(address: SocketAddr) -> Server {
    let mut back_off = Duration::from_secs(1);
    loop {
        std::thread::sleep(back_off);
        match bind(address) {
            Ok(server) => {
                log::info!("metrics endpoint {address}: listening again");
                return server;
            }
            Err(e) => log::error!("metrics endpoint {address}: {e:#}; next try in {back_off:?}"),
        }
        back_off = (back_off * 2).min(Duration::from_secs(30));
    }
}

fn answer(request: Request, render: &dyn Fn() -> String) {
    let path = request.url().split('?').next().unwrap_or_default();
    let response = if path != "/metrics" {
        plain(404, "not found: the metrics are at /metrics\n")
    } else if *request.method() != Method::Get {
        plain(405, "only GET\n").with_header(header("Allow", "GET"))
    } else {
        Response::from_string(render()).with_header(header("Content-Type", CONTENT_TYPE))
    };
    // A client that went away is no error of ours.
    let _ = request.respond(response);
}

fn plain(status: u16, text: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    Response::from_string(text)
        .with_status_code(status)
        .with_header(header("Content-Type", "text/plain; charset=utf-8"))
}

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}
