//! `sa_node_info_t`: a description of the node, allocated by the library.

use std::ffi::c_char;

use crate::metadata::NodeInfo;

use super::boundary::{self, BoxHandle, free_owned, owned};

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
}

impl BoxHandle for SaNodeInfo {}

impl SaNodeInfo {
    pub(crate) fn from_rust(info: &NodeInfo) -> SaNodeInfo {
        let capabilities: Box<[*const c_char]> =
            info.capabilities.iter().map(|c| owned(c)).collect();
        let capabilities_len = capabilities.len();
        SaNodeInfo {
            node_id: owned(&info.node_id),
            display_name: owned(info.label()),
            hostname: owned(&info.hostname),
            os_name: owned(&info.os_name),
            version: owned(&info.version),
            started_at_ms: info.started_at_ms,
            uptime_ms: info.uptime_ms,
            capabilities: Box::into_raw(capabilities).cast::<*const c_char>(),
            capabilities_len,
        }
    }
}

impl Drop for SaNodeInfo {
    fn drop(&mut self) {
        // SAFETY: every pointer was made by from_rust (with `owned`) and is freed only here.
        unsafe {
            for p in [
                self.node_id,
                self.display_name,
                self.hostname,
                self.os_name,
                self.version,
            ] {
                free_owned(p);
            }
            let caps = std::ptr::slice_from_raw_parts_mut(
                self.capabilities.cast_mut(),
                self.capabilities_len,
            );
            for p in Box::from_raw(caps).iter() {
                free_owned(*p);
            }
        }
    }
}

/// Frees a node info and every string in it. NULL is a no-op. Does not touch the last
/// error.
///
/// Ownership: `info` must come from the library and must not be used afterwards.
/// Thread safety: any thread, but free each info once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn sa_node_info_free(info: *mut SaNodeInfo) {
    let _ = boundary::catch("sa_node_info_free", || {
        // SAFETY: the caller passes NULL or a live info nobody uses any more.
        unsafe { SaNodeInfo::free(info) };
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
        };
        let c = SaNodeInfo::from_rust(&info).into_raw();
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
