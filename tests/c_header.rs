//! include/softadastra.h is generated from src/ffi by cbindgen and committed. This test
//! generates it again and fails when the committed copy differs; `scripts/gen-header.sh`
//! (`SOFTADASTRA_WRITE_HEADER=1` here) writes the new one instead.

use std::path::Path;

/// The header cbindgen makes from the crate, with the version defines in front.
fn generated_header(root: &Path) -> String {
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("read cbindgen.toml");
    config.after_includes = Some(format!(
        "\n/* The version of this header; sa_version() returns the library's. */\n\
         #define SOFTADASTRA_VERSION \"{}\"\n\
         #define SOFTADASTRA_VERSION_MAJOR {}\n\
         #define SOFTADASTRA_VERSION_MINOR {}\n\
         #define SOFTADASTRA_VERSION_PATCH {}\n",
        env!("CARGO_PKG_VERSION"),
        env!("CARGO_PKG_VERSION_MAJOR"),
        env!("CARGO_PKG_VERSION_MINOR"),
        env!("CARGO_PKG_VERSION_PATCH"),
    ));
    let bindings = cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut out = Vec::new();
    bindings.write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn the_committed_c_header_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path = root.join("include").join("softadastra.h");
    let generated = generated_header(root);
    if std::env::var_os("SOFTADASTRA_WRITE_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write include/softadastra.h");
        return;
    }
    let committed = std::fs::read_to_string(&path).expect("read include/softadastra.h");
    assert!(
        committed == generated,
        "include/softadastra.h is stale: run scripts/gen-header.sh and commit the result"
    );
}
