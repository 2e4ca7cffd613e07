//! `sa_node_info_t`: a description of the node, allocated by the library.

use std::ffi::{CString, c_char};

use crate::metadata::NodeInfo;

use super::boundary::{self, Returned, to_c_string};

/// What a node is. Returned by `sa_client_node_info`; every pointer in it belongs to the
/// struct and stays valid until `sa_node_info_free`. Do not modify or free the fields.
#[repr(C)]
#[derive(Debug)]
pub struct SaNodeInfo {
    pub node_id: *const c_char,
    /// The configured display name, or the node id when none is set.
    pub display_name: *const c_char,
    pub hostname: *const c_char,
    /// "linux", "macos", "windows", ...
    pub os_name: *const c_char,
    pub version: *const c_char,
    /// When the client was opened, in milliseconds since the Unix epoch.
    pub started_at_ms: i64,
    pub uptime_ms: i64,
    /// `capabilities_len` strings: "core", "wal" (with a WAL), "store", "sync", "transport"
    /// (enabled), "discovery" (enabled), "metadata".
    pub capabilities: *const *const c_char,
    pub capabilities_len: usize,
    // Fields below were appended after the first release of the struct; the library
    // allocates it, so a program built against an older header reads the prefix it knows.
    /// The SHA-256 of the node's public key: 64 lowercase hex digits, how peers know it.
    pub fingerprint: *const c_char,
}

/// The storage behind a [`SaNodeInfo`]: its strings and the capability pointer array.
type Keep = (Vec<CString>, Box<[*const c_char]>);

impl SaNodeInfo {
    /// A returned node description (see [`Returned`]).
    pub(crate) fn into_raw(info: &NodeInfo) -> *mut SaNodeInfo {
        let NodeInfo {
            node_id,
            display_name: _,
            hostname,
            os_name,
            version,
            started_at_ms,
            uptime_ms,
            capabilities,
            fingerprint,
        } = info;
        let strings: Vec<CString> = [
            node_id.as_str(),
            info.label(),
            hostname,
            os_name,
            version,
            fingerprint,
        ]
        .into_iter()
        .chain(capabilities.iter().map(String::as_str))
        .map(to_c_string)
        .collect();
        let capability_pointers: Box<[*const c_char]> =
            strings[6..].iter().map(|c| c.as_ptr()).collect();
        let public = SaNodeInfo {
            node_id: strings[0].as_ptr(),
            display_name: strings[1].as_ptr(),
            hostname: strings[2].as_ptr(),
            os_name: strings[3].as_ptr(),
            version: strings[4].as_ptr(),
            started_at_ms: *started_at_ms,
            uptime_ms: *uptime_ms,
            capabilities: capability_pointers.as_ptr(),
            capabilities_len: capability_pointers.len(),
            fingerprint: strings[5].as_ptr(),
        };
        Returned::into_raw(public, (strings, capability_pointers))
    }
}

/// Frees a node description. NULL is a no-op.
///
/// Ownership: `info` must come from `sa_client_node_info` or `sa_client_refresh_node_info`
/// and must not be used afterwards. Thread safety: any thread, once. Does not touch the
/// last error.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_node_info_free(info: *mut SaNodeInfo) {
    let _ = boundary::catch("sa_node_info_free", || {
        // SAFETY: the caller passes NULL or an info from SaNodeInfo::into_raw, used no more.
        unsafe { Returned::<SaNodeInfo, Keep>::free(info) };
        Ok(())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn node_info_strings_and_capabilities_survive_the_trip() {
        let info = NodeInfo {
            node_id: "n1".into(),
            display_name: String::new(),
            hostname: "h".into(),
            os_name: "linux".into(),
            version: "0.1.0".into(),
            started_at_ms: 5,
            uptime_ms: 7,
            capabilities: vec!["core".into(), "wal".into()],
            fingerprint: "0".repeat(64),
        };
        let c = SaNodeInfo::into_raw(&info);
        // SAFETY: c is a live info; its strings are valid C strings.
        unsafe {
            let r = &*c;
            assert_eq!(CStr::from_ptr(r.display_name).to_str().unwrap(), "n1");
            assert_eq!(r.capabilities_len, 2);
            let wal = *r.capabilities.add(1);
            assert_eq!(CStr::from_ptr(wal).to_str().unwrap(), "wal");
            sa_node_info_free(c);
            sa_node_info_free(std::ptr::null_mut());
        }
    }
}
