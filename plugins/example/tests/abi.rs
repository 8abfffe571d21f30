//! The exported C ABI of the example plugin, called the way nymvisor calls it. (Having an
//! integration test also makes `cargo test --workspace` build the `.so` the end-to-end tests load.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::{CStr, CString};

use nymvisor_example_plugin::{
    nymvisor_plugin_abi_version, nymvisor_plugin_free, nymvisor_plugin_name, nymvisor_plugin_verify,
};

fn ask(version: &str) -> serde_json::Value {
    let req = serde_json::json!({
        "abiVersion": 1, "daemon": "nym-node", "binaryPath": "/x", "digests": {}, "downloaded": false,
        "upgrade": { "name": "v", "version": version, "upgradeTime": "2026-01-01T00:00:00Z" }
    });
    let req = CString::new(req.to_string()).unwrap();
    let answer = unsafe { nymvisor_plugin_verify(req.as_ptr()) };
    let text = unsafe { CStr::from_ptr(answer) }
        .to_string_lossy()
        .into_owned();
    unsafe { nymvisor_plugin_free(answer) };
    serde_json::from_str(&text).unwrap()
}

#[test]
fn speaks_abi_1_and_applies_the_allow_list() {
    assert_eq!(nymvisor_plugin_abi_version(), 1);
    let name = unsafe { CStr::from_ptr(nymvisor_plugin_name()) }
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(name, "version allow-list");
    // the allow-list is read from the environment at each call
    unsafe { std::env::set_var("NYMVISOR_ALLOWED_VERSIONS", "1.2.0, 1.3.0") };
    assert_eq!(ask("1.3.0")["accept"], true);
    let no = ask("9.9.9");
    assert_eq!(no["accept"], false);
    assert!(no["reason"].as_str().unwrap().contains("9.9.9"));
    // garbage in: a refusal, not a crash
    let bad = CString::new("not json").unwrap();
    let answer = unsafe { nymvisor_plugin_verify(bad.as_ptr()) };
    let text = unsafe { CStr::from_ptr(answer) }
        .to_string_lossy()
        .into_owned();
    unsafe { nymvisor_plugin_free(answer) };
    assert!(text.contains("unreadable request"), "{text}");
}
