// Placeholder until the CLI lands; replaced by tools/qforge/*.cpp.
#include "qforge/host.hpp"
int main() { return 0; }
