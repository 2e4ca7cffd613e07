// Must NOT compile with -Werror=unused-result: Result is [[nodiscard]], so ignoring the
// outcome of a call is caught by the compiler (ctest expects this build to fail).
#include <softadastra/sdk.hpp>

softadastra::sdk::Result<void> save() { return {}; }

int main() {
    save();
    return 0;
}
