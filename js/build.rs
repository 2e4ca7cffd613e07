//! Builds the addon with the link settings Node.js needs (napi-build).
fn main() {
    napi_build::setup();
}
