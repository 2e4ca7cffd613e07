// Built only with SOFTADASTRA_SANITIZE=ON: proves the sanitizers are really on. Each mode
// makes one mistake that the sanitizer must catch; ctest expects the program to fail.
#include <climits>
#include <cstring>

int main(int argc, char** argv) {
    if (argc > 1 && std::strcmp(argv[1], "heap-overflow") == 0) {
        volatile int* p = new int[2];
        int v = p[argc];  // argc == 2: one past the end
        delete[] p;
        return v;
    }
    if (argc > 1 && std::strcmp(argv[1], "signed-overflow") == 0) {
        volatile int big = INT_MAX;
        return big + argc;  // overflows
    }
    return 0;
}
