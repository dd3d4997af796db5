//! Mapping a request target to a file under the served directory, and directory listings.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Entries shown in a generated listing at most.
const MAX_LISTING: usize = 10_000;

/// What a target names.
#[derive(Debug, PartialEq)]
pub enum Resolved {
    /// A regular file and its length.
    File(PathBuf, u64),
    /// A directory without index.html: its generated listing.
    Listing(String),
    /// A directory named without its trailing slash: where it really is.
    Redirect(String),
}

/// Resolves `target` under `root` (canonical). `..` above the root and symlinks leading out
/// of it are 403; what does not exist is 404.
pub fn resolve(root: &Path, target: &str) -> Result<Resolved, u16> {
    let path = target.split(['?', '#']).next().unwrap_or("");
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for raw in path.split('/') {
        let seg = percent_decode(raw).ok_or(400u16)?;
        match seg.as_slice() {
            b"" | b"." => {}
            b".." => {
                segments.pop().ok_or(403u16)?;
            }
            s if s.contains(&b'/') || s.contains(&0) => return Err(400),
            _ => segments.push(seg),
        }
    }
    let mut full = root.to_path_buf();
    full.extend(segments.iter().map(|s| OsStr::from_bytes(s)));
    let real = inside(root, &full)?;
    let meta = fs::metadata(&real).map_err(status)?;
    if meta.is_file() {
        return Ok(Resolved::File(real, meta.len()));
    }
    if !meta.is_dir() {
        return Err(403);
    }
    if !path.ends_with('/') {
        return Ok(Resolved::Redirect(format!("{path}/")));
    }
    match inside(root, &real.join("index.html")) {
        Ok(index) => match fs::metadata(&index) {
            Ok(m) if m.is_file() => Ok(Resolved::File(index, m.len())),
            _ => listing(&real, path),
        },
        Err(404) => listing(&real, path),
        Err(code) => Err(code),
    }
}

/// `path` with symlinks resolved, if it stays under `root`.
fn inside(root: &Path, path: &Path) -> Result<PathBuf, u16> {
    let real = path.canonicalize().map_err(status)?;
    if real.starts_with(root) {
        Ok(real)
    } else {
        Err(403)
    }
}

fn status(e: io::Error) -> u16 {
    match e.kind() {
        io::ErrorKind::PermissionDenied => 403,
        _ => 404,
    }
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

fn percent_encode(name: &[u8]) -> String {
    name.iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn html_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// A small HTML page linking to the directory's entries, sorted by name.
fn listing(dir: &Path, url_path: &str) -> Result<Resolved, u16> {
    let mut names: Vec<(Vec<u8>, bool)> = fs::read_dir(dir)
        .map_err(status)?
        .filter_map(Result::ok)
        .take(MAX_LISTING)
        .map(|e| {
            let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
            (e.file_name().as_bytes().to_vec(), is_dir)
        })
        .collect();
    names.sort();
    let title = html_escape(&String::from_utf8_lossy(
        &percent_decode(url_path).unwrap_or_default(),
    ));
    let mut page = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of {title}</title></head>\n\
         <body><h1>Index of {title}</h1>\n<ul>\n<li><a href=\"../\">../</a></li>\n"
    );
    for (name, is_dir) in names {
        let slash = if is_dir { "/" } else { "" };
        let text = html_escape(&String::from_utf8_lossy(&name));
        let href = percent_encode(&name);
        page.push_str(&format!(
            "<li><a href=\"{href}{slash}\">{text}{slash}</a></li>\n"
        ));
    }
    page.push_str("</ul></body></html>\n");
    Ok(Resolved::Listing(page))
}

/// The media type for a file name's extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(OsStr::to_str)
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("html" | "htm") => "text/html; charset=utf-8",
        Some("txt" | "md") => "text/plain; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("svg") => "image/svg+xml",
        Some("pdf") => "application/pdf",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_inside_the_root_only() {
        let root = std::env::temp_dir().join(format!("http-files-{}", std::process::id()));
        fs::create_dir_all(root.join("sub")).unwrap();
        fs::write(root.join("a b.txt"), b"x").unwrap();
        let _ = std::os::unix::fs::symlink("/etc", root.join("out"));
        let root = root.canonicalize().unwrap();
        let r = |t: &str| resolve(&root, t);
        assert_eq!(
            r("/a%20b.txt?q"),
            Ok(Resolved::File(root.join("a b.txt"), 1))
        );
        assert_eq!(r("/sub/../a%20b.txt").map(|_| ()), Ok(()));
        assert_eq!(r("/sub"), Ok(Resolved::Redirect("/sub/".into())));
        assert!(matches!(r("/"), Ok(Resolved::Listing(p)) if p.contains("a%20b.txt")));
        assert_eq!(r("/../etc/passwd"), Err(403));
        assert_eq!(r("/sub/%2e%2e/%2e%2e/x"), Err(403));
        assert_eq!(r("/out/passwd"), Err(403));
        assert_eq!(r("/missing"), Err(404));
        assert_eq!(r("/a%2Fb"), Err(400));
        assert_eq!(r("/%zz"), Err(400));
        fs::remove_dir_all(&root).unwrap();
    }
}
