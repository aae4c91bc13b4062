//! Cookies: reading one from the request, and the one builder of every `Set-Cookie` Latchkey
//! sends. Every cookie is `HttpOnly; SameSite=Lax` (the upstream round trip's `None` behind
//! https), scoped to a path, and `Secure` when the public URL is https.

use std::fmt;

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;

/// The value of cookie `name` from the request's `Cookie` headers.
pub fn read<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` header value.
pub struct SetCookie<'a> {
    name: &'a str,
    value: &'a str,
    path: &'a str,
    max_age: Option<i64>,
    secure: bool,
    cross_site: bool,
}

impl<'a> SetCookie<'a> {
    /// A cookie that lasts for the browser session.
    pub fn new(name: &'a str, value: &'a str, path: &'a str) -> Self {
        SetCookie { name, value, path, max_age: None, secure: false, cross_site: false }
    }

    /// A cookie that removes `name` at once.
    pub fn removal(name: &'a str, path: &'a str) -> Self {
        SetCookie { name, value: "", path, max_age: Some(0), secure: false, cross_site: false }
    }

    pub fn max_age(mut self, seconds: i64) -> Self {
        self.max_age = Some(seconds);
        self
    }

    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = secure;
        self
    }

    /// Sent on cross-site requests too (`SameSite=None`), which browsers accept only with
    /// `Secure`: without it the cookie stays `Lax`. For the upstream round trip, whose answer
    /// may come back as a cross-site form post (Apple's `form_post`).
    pub fn cross_site(mut self, cross_site: bool) -> Self {
        self.cross_site = cross_site;
        self
    }

    /// Appends this cookie to `res`.
    pub fn append_to(&self, res: &mut Response) {
        if let Ok(h) = HeaderValue::from_str(&self.to_string()) {
            res.headers_mut().append(header::SET_COOKIE, h);
        }
    }
}

impl fmt::Display for SetCookie<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let same_site = if self.cross_site && self.secure { "None" } else { "Lax" };
        write!(f, "{}={}; Path={}; HttpOnly; SameSite={same_site}", self.name, self.value, self.path)?;
        if let Some(age) = self.max_age {
            write!(f, "; Max-Age={age}")?;
        }
        if self.secure {
            f.write_str("; Secure")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_in_a_fixed_order() {
        let c = SetCookie::new("lk_session", "abc", "/apps/x").max_age(60).secure(true);
        assert_eq!(c.to_string(), "lk_session=abc; Path=/apps/x; HttpOnly; SameSite=Lax; Max-Age=60; Secure");
        let gone = SetCookie::removal("lk_pending", "/apps/x");
        assert_eq!(gone.to_string(), "lk_pending=; Path=/apps/x; HttpOnly; SameSite=Lax; Max-Age=0");
        let round = SetCookie::new("lk_upstream", "v", "/apps/x/oauth").cross_site(true);
        assert!(round.to_string().contains("SameSite=Lax"), "never None without Secure");
        assert_eq!(
            round.secure(true).to_string(),
            "lk_upstream=v; Path=/apps/x/oauth; HttpOnly; SameSite=None; Secure"
        );
    }

    #[test]
    fn reads_one_cookie_among_many() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; lk_csrf=xyz"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(read(&h, "lk_csrf"), Some("xyz"));
        assert_eq!(read(&h, "b"), Some("2"));
        assert_eq!(read(&h, "c"), None);
    }
}
