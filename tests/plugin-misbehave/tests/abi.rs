//! The misbehaving plugin's panic is caught at the boundary. (Also makes `cargo test --workspace`
//! build the `.so` the end-to-end tests load.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::{CStr, CString};

#[test]
fn panics_become_refusals() {
    unsafe { std::env::set_var("NYMVISOR_TEST_PLUGIN", "panic") };
    let req =
        CString::new(r#"{"abiVersion":1,"daemon":"nym-node","binaryPath":"/x","upgrade":{}}"#)
            .unwrap();
    let answer = unsafe { nymvisor_test_plugin::nymvisor_plugin_verify(req.as_ptr()) };
    let text = unsafe { CStr::from_ptr(answer) }
        .to_string_lossy()
        .into_owned();
    unsafe { nymvisor_test_plugin::nymvisor_plugin_free(answer) };
    assert!(
        text.contains("the plugin panicked: deliberate panic"),
        "{text}"
    );
}
