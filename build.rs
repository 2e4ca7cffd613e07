//! Build script: compiles the cxx bridge (src/bridge.rs), stages cxx's runtime source for
//! shared-library consumers, gives the cdylib its SONAME, and regenerates the C header
//! include/softadastra.h from src/ffi/ with cbindgen (rewriting it only when it changed).

use std::env;
use std::fs;
use std::path::{Path, PathBuf};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));

    cxx_build::bridge("src/bridge.rs")
        .std("c++17")
        .compile("softadastra_cxxbridge");

    stage_cxx_runtime();

    // A Rust cdylib has no SONAME by default; consumers must record a stable one.
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libsoftadastra.so");

    generate_c_header(&manifest_dir);

    for path in [
        "build.rs",
        "cbindgen.toml",
        "src/bridge.rs",
        "src/ffi",
        "Cargo.toml",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}

/// The directory cxx-build writes `cxxbridge/` into (same search as cxx-build).
fn target_dir() -> Option<PathBuf> {
    if let Some(dir) = env::var_os("CARGO_TARGET_DIR").map(PathBuf::from)
        && dir.is_absolute()
    {
        return Some(dir);
    }
    let out_dir = PathBuf::from(env::var_os("OUT_DIR")?);
    out_dir
        .ancestors()
        .find(|d| d.join("CACHEDIR.TAG").exists() || d.join(".rustc_info.json").exists())
        .map(Path::to_path_buf)
}

/// Copies cxx's runtime (cxx.cc) next to the generated `rust/cxx.h` as
/// `target/cxxbridge/rust/cxx.cc`. A Rust cdylib exports no C++ symbols, so a C++ program
/// linking the shared library compiles this file and the bridge's .cc itself (see
/// cmake/SoftadastraCargo.cmake).
fn stage_cxx_runtime() {
    let Some(header) = env::var_os("DEP_CXXBRIDGE1_HEADER").map(PathBuf::from) else {
        println!("cargo:warning=DEP_CXXBRIDGE1_HEADER is not set; cxx.cc not staged");
        return;
    };
    let Some(target) = target_dir() else {
        println!("cargo:warning=target directory not found; cxx.cc not staged");
        return;
    };
    let source = header
        .parent()
        .and_then(Path::parent)
        .map(|root| root.join("src").join("cxx.cc"))
        .expect("cxx.h lives in <cxx>/include");
    let text = fs::read_to_string(&source).expect("read cxx.cc");
    let text = text.replace("#include \"../include/cxx.h\"", "#include \"rust/cxx.h\"");
    let dest_dir = target.join("cxxbridge").join("rust");
    fs::create_dir_all(&dest_dir).expect("create target/cxxbridge/rust");
    write_if_changed(&dest_dir.join("cxx.cc"), &text);
}

fn write_if_changed(path: &Path, text: &str) {
    if fs::read_to_string(path).ok().as_deref() != Some(text) {
        fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

fn generate_c_header(manifest_dir: &Path) {
    let mut config = cbindgen::Config::from_file(manifest_dir.join("cbindgen.toml"))
        .expect("read cbindgen.toml");
    let version = env::var("CARGO_PKG_VERSION").expect("set by cargo");
    let part = |name: &str| env::var(name).expect("set by cargo");
    config.after_includes = Some(format!(
        "\n/* The version of this header; sa_version() returns the library's. */\n\
         #define SOFTADASTRA_VERSION \"{version}\"\n\
         #define SOFTADASTRA_VERSION_MAJOR {}\n\
         #define SOFTADASTRA_VERSION_MINOR {}\n\
         #define SOFTADASTRA_VERSION_PATCH {}\n",
        part("CARGO_PKG_VERSION_MAJOR"),
        part("CARGO_PKG_VERSION_MINOR"),
        part("CARGO_PKG_VERSION_PATCH"),
    ));
    let bindings = cbindgen::Builder::new()
        .with_crate(manifest_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen could not generate include/softadastra.h");
    // Rewrites the file only when its content changed, so CMake does not rebuild C code.
    bindings.write_to_file(manifest_dir.join("include").join("softadastra.h"));
}
