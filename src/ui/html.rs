//! The pieces every page is made of: escaping, the page shell, tables, the pager. Pages are
//! plain HTML built on the server; the one script (`assets/app.js`) only refreshes the
//! `<main>` part, so every page also works without it.

use crate::model::lifecycle::rfc3339_utc;
use std::fmt::Write;

/// `text` with the characters that mean something in HTML (text or quoted attribute) escaped.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `value` encoded for a query string (every byte but unreserved characters).
pub fn query_value(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string()
}

const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A link target: `path` with its query parameters, each encoded; empty values are left out.
pub fn href(path: &str, params: &[(&str, &str)]) -> String {
    let mut out = path.to_string();
    let mut separator = '?';
    for (name, value) in params.iter().filter(|(_, v)| !v.is_empty()) {
        let _ = write!(out, "{separator}{name}={}", query_value(value));
        separator = '&';
    }
    out
}

/// A time in seconds since the epoch as the page shows it; unknown (0) as a dash.
pub fn time(secs: i64) -> String {
    if secs <= 0 {
        "—".to_string()
    } else {
        rfc3339_utc(secs)
    }
}

/// A link in the page's navigation.
pub struct NavLink {
    pub label: &'static str,
    pub href: String,
    pub current: bool,
}

/// The whole page: head, navigation, the search form (kept out of `<main>` so that a refresh
/// never takes the text being typed), and `main`, which `refresh` (a same-origin URL
/// answering with a new `<main>` content) keeps up to date.
pub struct Shell<'a> {
    pub title: &'a str,
    pub subtitle: &'a str,
    pub nav: &'a [NavLink],
    /// Hidden fields and the current search, when the page can be searched.
    pub search: Option<(&'a [(&'a str, &'a str)], &'a str)>,
    pub refresh: &'a str,
    pub main: &'a str,
}

impl Shell<'_> {
    pub fn render(&self) -> String {
        let mut page = String::with_capacity(self.main.len() + 2048);
        let _ = write!(
            page,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>{title} · edge-sync-service</title>\
             <link rel=\"stylesheet\" href=\"/ui/app.css\"><script src=\"/ui/app.js\" defer></script></head>\
             <body><header><h1>{title}</h1><p class=\"sub\">{subtitle}</p><nav>",
            title = escape(self.title),
            subtitle = escape(self.subtitle),
        );
        for link in self.nav {
            let current = if link.current { " aria-current=\"page\"" } else { "" };
            let _ = write!(
                page,
                "<a href=\"{}\"{current}>{}</a>",
                escape(&link.href),
                escape(link.label)
            );
        }
        page.push_str("</nav>");
        if let Some((hidden, search)) = self.search {
            page.push_str("<form method=\"get\" role=\"search\">");
            for (name, value) in hidden.iter().filter(|(_, v)| !v.is_empty()) {
                let _ = write!(
                    page,
                    "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
                    escape(name),
                    escape(value)
                );
            }
            let _ = write!(
                page,
                "<input type=\"search\" name=\"q\" value=\"{}\" placeholder=\"Search\" maxlength=\"{}\">\
                 <button type=\"submit\">Search</button></form>",
                escape(search),
                super::MAX_SEARCH
            );
        }
        let _ = writeln!(
            page,
            "<p class=\"live\" id=\"live\" aria-live=\"polite\"></p></header>\
             <main id=\"main\" data-refresh=\"{}\">{}</main></body></html>",
            escape(self.refresh),
            self.main
        );
        page
    }
}

/// "Showing 51-100 of 10000" with links to the previous and next pages (built by `page_href`
/// from a 1-based page number).
pub fn pager(total: u64, page: u64, page_size: u64, page_href: impl Fn(u64) -> String) -> String {
    let first = (page - 1) * page_size;
    let pages = total.div_ceil(page_size).max(1);
    let mut out = String::from("<p class=\"pager\">");
    if total == 0 {
        out.push_str("Nothing to show.");
    } else {
        let last = (first + page_size).min(total);
        let _ = write!(
            out,
            "<span data-total=\"{total}\">Showing {}–{last} of {total}</span>",
            (first + 1).min(total)
        );
    }
    if page > 1 {
        let _ = write!(
            out,
            " <a rel=\"prev\" href=\"{}\">Previous</a>",
            escape(&page_href(page - 1))
        );
    }
    if page < pages {
        let _ = write!(
            out,
            " <a rel=\"next\" href=\"{}\">Next</a>",
            escape(&page_href(page + 1))
        );
    }
    let _ = write!(out, " <span class=\"page\">page {page} of {pages}</span></p>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_names_is_shown_as_text() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }

    #[test]
    fn links_encode_every_parameter_and_skip_empty_ones() {
        assert_eq!(
            href(
                "/ui/object",
                &[("org", "my org"), ("type", "a&b=c"), ("q", ""), ("id", "é/#")]
            ),
            "/ui/object?org=my%20org&type=a%26b%3Dc&id=%C3%A9%2F%23"
        );
    }

    #[test]
    fn the_pager_links_only_to_pages_that_exist() {
        let link = |p: u64| format!("/p{p}");
        let middle = pager(120, 2, 50, link);
        assert!(middle.contains("Showing 51–100 of 120"), "{middle}");
        assert!(
            middle.contains("href=\"/p1\"") && middle.contains("href=\"/p3\""),
            "{middle}"
        );
        let last = pager(120, 3, 50, link);
        assert!(
            last.contains("Showing 101–120 of 120") && !last.contains("rel=\"next\""),
            "{last}"
        );
        assert!(pager(0, 1, 50, link).contains("Nothing to show."));
    }
}
