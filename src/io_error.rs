//! One way to describe an `io::Error` in a message, and making a new file's name durable:
//! a leaf every layer may use.

use std::io;
use std::path::Path;

/// fsyncs the directory holding `path`, so that a newly created (or renamed) file's name
/// is durable.
pub(crate) fn sync_parent_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// An io::Error as a short lower-case phrase ("no space left on device"), without the
/// "(os error N)" suffix, to follow a path or an address in a message. The library's own
/// errors word I/O failures this way; an application's messages about its own files
/// (the CLI's data directory, say) read the same with it.
pub fn describe_io(e: &io::Error) -> String {
    let text = e.to_string();
    let text = match text.find(" (os error") {
        Some(i) => &text[..i],
        None => &text,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_os_error_reads_as_a_lower_case_phrase() {
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(describe_io(&e), "no space left on device");
        let custom = io::Error::other("Peer vanished");
        assert_eq!(describe_io(&custom), "peer vanished");
    }
}
