// Internal to the SDK library: conversions between the public SDK types and the cxx
// bridge types (src/bridge.rs). The only place, with the .cpp files, that sees rust::.
#ifndef SOFTADASTRA_SDK_SRC_BRIDGE_HPP
#define SOFTADASTRA_SDK_SRC_BRIDGE_HPP

// rust/cxx.h first: the generated header inlines only part of it (not rust::Error).
#include "rust/cxx.h"
#include "softadastra/src/bridge.rs.h"

#include <softadastra/sdk.hpp>

#include <cstdint>
#include <string>
#include <utility>

namespace softadastra::sdk::detail {

/// The SDK error for a bridge status (code 0 gives an Error with code None).
Error to_error(const ffi::FfiStatus& status);

/// Bytes of a std::string as a Rust byte slice (no copy; valid while `s` lives).
inline rust::Slice<const std::uint8_t> bytes_of(const std::string& s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

/// Options for the bridge. Fails with InvalidArgument naming the field when a string is
/// not UTF-8 (the Rust core keeps options as UTF-8 strings) or a number does not fit.
Result<rust::Box<ffi::RustOptions>> to_rust(const ClientOptions& options);

/// Options from the bridge.
ClientOptions from_rust(const ffi::RustOptions& options);

/// Node info from the bridge.
NodeInfo from_ffi(const ffi::FfiNodeInfo& info);

}  // namespace softadastra::sdk::detail

#endif  // SOFTADASTRA_SDK_SRC_BRIDGE_HPP
