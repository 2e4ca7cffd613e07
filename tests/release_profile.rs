//! The profiles the library ships from keep panic = "unwind": the C and C++ boundary
//! catches a panic and reports SA_INTERNAL_ERROR (src/ffi/boundary.rs), and a client whose
//! call panicked refuses further calls; with "abort" the same bug would kill the
//! application. `cargo test` builds its tests with unwinding whatever a profile says, so
//! the setting itself is checked here; scripts/size-report.sh checks the built library
//! (it still imports the unwinder's raise function) for the size profile.

const CARGO_TOML: &str = include_str!("../Cargo.toml");

/// The `key = value` lines of section `[name]` of Cargo.toml.
fn section(name: &str) -> Vec<(String, String)> {
    let header = format!("[{name}]");
    let mut lines = CARGO_TOML.lines().skip_while(|l| l.trim() != header);
    assert!(lines.next().is_some(), "Cargo.toml has no {header}");
    lines
        .take_while(|l| !l.trim_start().starts_with('['))
        .filter_map(|l| {
            let l = l.split('#').next().unwrap_or("").trim();
            let (key, value) = l.split_once('=')?;
            Some((
                key.trim().to_string(),
                value.trim().trim_matches('"').to_string(),
            ))
        })
        .collect()
}

fn setting(name: &str, key: &str) -> Option<String> {
    section(name)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

#[test]
fn the_size_profile_unwinds_and_is_built_for_size() {
    let expected = [
        ("panic", "unwind"),
        ("inherits", "release"),
        ("opt-level", "z"),
        ("strip", "true"),
    ];
    for (key, value) in expected {
        let found = setting("profile.release-small", key);
        assert_eq!(found.as_deref(), Some(value), "release-small's {key}");
    }
}

#[test]
fn no_profile_aborts_on_panic() {
    for profile in ["profile.release", "profile.dev", "profile.release-small"] {
        if CARGO_TOML.contains(&format!("[{profile}]")) {
            assert_ne!(
                setting(profile, "panic").as_deref(),
                Some("abort"),
                "{profile}"
            );
        }
    }
    let cli = include_str!("../cli/Cargo.toml");
    assert!(
        !cli.contains("[profile"),
        "profiles are the workspace's, in the root Cargo.toml"
    );
}
