//! Who may use the page: the access token (an `Authorization: Bearer` header, or a cookie set
//! from the URL's `?token=`), the `Host` header (the bound address or localhost with the
//! port, so a DNS-rebinding page cannot reach the server through a name of its own), and a
//! CSRF token in every state change.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::App;
use crate::cli::Failure;

/// The form field (or `X-CSRF-Token` header) every POST carries.
pub(super) const CSRF_FIELD: &str = "csrf";

/// The largest form body read (a rule edit or a failure report).
pub(super) const MAX_FORM_BYTES: usize = 1 << 20;

/// The access rules of one server.
pub(super) struct Guard {
    token: String,
    csrf: String,
    port: u16,
    /// Host names (lowercase, without the port) the server answers to.
    hosts: Vec<String>,
    /// Bound to every interface: any IP literal is accepted too (an IP address cannot be
    /// rebound; only a name can).
    any_ip: bool,
    cookie: String,
}

impl Guard {
    /// The rules for a server on `addr` with `token`.
    pub(super) fn new(token: String, csrf: String, addr: SocketAddr) -> Guard {
        let mut hosts = vec!["localhost".to_string(), "127.0.0.1".into(), "[::1]".into()];
        let ip = addr.ip();
        if !ip.is_unspecified() {
            hosts.push(match ip {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => format!("[{v6}]"),
            });
        }
        Guard {
            token,
            csrf,
            port: addr.port(),
            hosts,
            any_ip: ip.is_unspecified(),
            // Cookies are per host, not per port: two servers keep two cookies.
            cookie: format!("promptloop_token_{}", addr.port()),
        }
    }

    /// The CSRF token pages put in their forms.
    pub(super) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether a `Host` header names this server.
    pub(super) fn host_ok(&self, host: Option<&str>) -> bool {
        let Some(host) = host.map(str::to_ascii_lowercase) else {
            return false;
        };
        let (name, port) = match host.rsplit_once(':') {
            // `[::1]:8765`, `localhost:8765`; a bare IPv6 literal has colons inside brackets.
            Some((name, port)) if !name.is_empty() && !port.contains(']') => {
                (name.to_string(), port.parse::<u16>().ok())
            }
            _ => (host.clone(), None),
        };
        let port_ok = match port {
            Some(p) => p == self.port,
            None => self.port == 80,
        };
        if !port_ok {
            return false;
        }
        if self.hosts.contains(&name) {
            return true;
        }
        self.any_ip
            && name
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
                .is_ok()
    }

    /// Whether the request carries the token (header or cookie).
    pub(super) fn authorised(&self, headers: &HeaderMap) -> bool {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| same(t.trim(), &self.token));
        bearer
            || headers
                .get_all(header::COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .any(|(name, value)| name == self.cookie && same(value, &self.token))
    }

    /// Whether `given` is the URL's token.
    pub(super) fn token_ok(&self, given: &str) -> bool {
        same(given, &self.token)
    }

    /// Whether `given` is the CSRF token.
    pub(super) fn csrf_ok(&self, given: &str) -> bool {
        same(given, &self.csrf)
    }

    /// The `Set-Cookie` value that lets a browser in after `?token=`.
    fn set_cookie(&self) -> String {
        format!(
            "{}={}; Path=/; HttpOnly; SameSite=Strict",
            self.cookie, self.token
        )
    }
}

/// Compares without stopping at the first difference, so timing does not tell how much of
/// a guess was right.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A new random token: 32 hex digits from the system's random source.
pub(super) fn random_token() -> Result<String, Failure> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| Failure::usage(format!("read /dev/urandom for an access token: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A token given with `--token` or `PROMPTLOOP_TOKEN`: it travels in a URL, a header and a
/// cookie, so only URL-safe characters, and long enough not to be guessed.
pub(super) fn check_token(token: &str) -> Result<(), Failure> {
    if token.len() < 8 {
        return Err(Failure::usage(
            "--token: the access token needs at least 8 characters",
        ));
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
    {
        return Err(Failure::usage(
            "--token: the access token may hold only letters, digits and - . _ ~",
        ));
    }
    Ok(())
}

/// Whether the server may listen on `ip`: loopback always; another address only when asked
/// for with `--bind` and with a token the user chose (a random one printed on a shared
/// screen or log is no protection on a network). Returns the warning to print, if any.
pub(super) fn check_bind(
    ip: IpAddr,
    explicit_bind: bool,
    explicit_token: bool,
) -> Result<Option<String>, Failure> {
    if ip.is_loopback() {
        return Ok(None);
    }
    if !explicit_bind {
        return Err(Failure::usage(format!(
            "serve listens on 127.0.0.1 unless --bind says otherwise (asked for {ip})"
        )));
    }
    if !explicit_token {
        return Err(Failure::usage(format!(
            "--bind {ip} is not a loopback address: anyone who can reach it could change your \
             rules, so choose the access token yourself (the --token flag or PROMPTLOOP_TOKEN)"
        )));
    }
    Ok(Some(format!(
        "listening on {ip}, not only on this machine: everyone who can reach it and knows the \
         token can read the project's rules, failures and runs, and change the rules"
    )))
}

/// Checks every request: Host, then the token, then (for a state change) the CSRF token;
/// and adds the headers that keep the page out of frames, caches and referrers.
pub(super) async fn check(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let guard = &app.guard;
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if !guard.host_ok(host) {
        return refuse(
            StatusCode::FORBIDDEN,
            "This server answers only to the address it printed (localhost or its IP address \
             with its port).",
        );
    }
    let query_token = request.uri().query().and_then(|q| {
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "token")
            .map(|(_, v)| v.into_owned())
    });
    if let Some(given) = query_token {
        if !guard.token_ok(&given) {
            return refuse(StatusCode::UNAUTHORIZED, UNAUTHORISED);
        }
        if request.method() == Method::GET {
            // Set the cookie and drop the token from the address bar and the history.
            let rest: Vec<(String, String)> = request
                .uri()
                .query()
                .map(|q| {
                    form_urlencoded::parse(q.as_bytes())
                        .filter(|(k, _)| k != "token")
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect()
                })
                .unwrap_or_default();
            let mut location = request.uri().path().to_string();
            if !rest.is_empty() {
                location.push('?');
                location.push_str(
                    &form_urlencoded::Serializer::new(String::new())
                        .extend_pairs(rest)
                        .finish(),
                );
            }
            let mut response = Response::builder()
                .status(StatusCode::SEE_OTHER)
                .header(header::LOCATION, location)
                .header(header::SET_COOKIE, guard.set_cookie())
                .body(Body::empty())
                .unwrap_or_default();
            harden(response.headers_mut());
            return response;
        }
    } else if !guard.authorised(request.headers()) {
        return refuse(StatusCode::UNAUTHORIZED, UNAUTHORISED);
    }
    let request = if request.method() == Method::GET || request.method() == Method::HEAD {
        request
    } else {
        match with_csrf_checked(guard, request).await {
            Ok(request) => request,
            Err(response) => return response,
        }
    };
    let mut response = next.run(request).await;
    harden(response.headers_mut());
    response
}

const UNAUTHORISED: &str = "This page needs its access token: open the address that \
`promptloop serve` printed (it ends in ?token=…), or send the header \
`Authorization: Bearer TOKEN`.";

/// The request again, its body read, when its CSRF token (header or form field) is right.
async fn with_csrf_checked(guard: &Guard, request: Request) -> Result<Request, Response> {
    let header_ok = request
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| guard.csrf_ok(v));
    if header_ok {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| refuse(StatusCode::PAYLOAD_TOO_LARGE, "The form is too large."))?;
    let field_ok = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == CSRF_FIELD)
        .is_some_and(|(_, v)| guard.csrf_ok(&v));
    if !field_ok {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "This change did not come from one of the server's own pages (its CSRF token is \
             missing or wrong). Reload the page and try again.",
        ));
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// A refusal: a short page that says why.
fn refuse(status: StatusCode, why: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>{code}</title><h1>{code}</h1><p>{why}</p>",
        code = status.as_u16()
    );
    let mut response = (status, axum::response::Html(body)).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"promptloop\""),
        );
    }
    harden(response.headers_mut());
    response
}

/// Headers for every answer: no framing, no caching, no referrer (the first address carries
/// the token), and only the server's own styles and script.
fn harden(headers: &mut HeaderMap) {
    let set = |headers: &mut HeaderMap, name: &'static str, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        "content-security-policy",
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(headers, "x-frame-options", "DENY");
    set(headers, "x-content-type-options", "nosniff");
    set(headers, "referrer-policy", "no-referrer");
    set(headers, "cache-control", "no-store");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(addr: &str) -> Guard {
        Guard::new("t0ken-t0ken".into(), "csrf".into(), addr.parse().unwrap())
    }

    #[test]
    fn only_the_bound_address_or_localhost_with_the_port_is_a_host() {
        let g = guard("127.0.0.1:8765");
        for ok in [
            "127.0.0.1:8765",
            "localhost:8765",
            "LOCALHOST:8765",
            "[::1]:8765",
        ] {
            assert!(g.host_ok(Some(ok)), "{ok}");
        }
        for bad in [
            "evil.example:8765",
            "localhost:8766",
            "localhost",
            "127.0.0.1",
            "10.0.0.1:8765",
            "localhost.evil.example:8765",
            "",
        ] {
            assert!(!g.host_ok(Some(bad)), "{bad}");
        }
        assert!(!g.host_ok(None));
        let all = guard("0.0.0.0:9000");
        assert!(all.host_ok(Some("192.168.1.20:9000")));
        assert!(!all.host_ok(Some("rebind.example:9000")));
        let v6 = guard("[::1]:9000");
        assert!(v6.host_ok(Some("[::1]:9000")));
        assert!(guard("127.0.0.1:80").host_ok(Some("localhost")));
    }

    #[test]
    fn the_token_comes_in_a_bearer_header_or_the_ports_cookie() {
        let g = guard("127.0.0.1:8765");
        let mut h = HeaderMap::new();
        assert!(!g.authorised(&h));
        h.insert(header::AUTHORIZATION, "Bearer t0ken-t0ken".parse().unwrap());
        assert!(g.authorised(&h));
        h.insert(header::AUTHORIZATION, "Bearer t0ken-t0kem".parse().unwrap());
        assert!(!g.authorised(&h));
        let mut c = HeaderMap::new();
        c.insert(
            header::COOKIE,
            "a=b; promptloop_token_8765=t0ken-t0ken".parse().unwrap(),
        );
        assert!(g.authorised(&c));
        c.insert(
            header::COOKIE,
            "promptloop_token_8766=t0ken-t0ken".parse().unwrap(),
        );
        assert!(!g.authorised(&c));
    }

    #[test]
    fn another_address_needs_bind_and_a_chosen_token() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let any: IpAddr = "0.0.0.0".parse().unwrap();
        assert!(check_bind(lo, false, false).unwrap().is_none());
        assert!(
            check_bind("::1".parse().unwrap(), true, false)
                .unwrap()
                .is_none()
        );
        let refused = check_bind(any, true, false).err().unwrap();
        assert!(refused.message.contains("--token"), "{}", refused.message);
        assert_eq!(refused.code, crate::cli::EXIT_USAGE);
        let warning = check_bind(any, true, true).unwrap().unwrap();
        assert!(warning.contains("not only on this machine"), "{warning}");
        assert!(check_bind(any, false, true).is_err());
    }

    #[test]
    fn chosen_tokens_are_url_safe_and_not_short() {
        assert!(check_token("abcdefgh").is_ok());
        assert!(check_token("short").is_err());
        assert!(check_token("has space in it").is_err());
        assert!(check_token("semi;colon=yes").is_err());
        let t = random_token().unwrap();
        assert_eq!(t.len(), 32);
        assert_ne!(t, random_token().unwrap());
    }
}
